package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"text/tabwriter"

	"github.com/mailarc/mailarc/internal/auth"
	"github.com/mailarc/mailarc/internal/web"
)

func runSearch(ctx context.Context, args []string) error {
	fs := newFlagSet("search", "search [--server URL | --data DIR] [--json] [--limit N] [--offset N] [--sort -date|date|relevance] [--exact-count] QUERY...")
	var f nodeFlags
	f.register(fs, true)
	asJSON := fs.Bool("json", false, "print the API's JSON answer")
	limit := fs.Int("limit", 50, "results per page (1-1000)")
	offset := fs.Int("offset", 0, "skip this many results")
	sort := fs.String("sort", "-date", "-date (newest first), date or relevance")
	exact := fs.Bool("exact-count", false, "count every match (by default counting stops at 10000)")
	if err := parse(fs, args); err != nil {
		return err
	}
	q := ""
	for i, a := range fs.Args() {
		if i > 0 {
			q += " "
		}
		q += a
	}
	var res web.SearchResult
	if f.server != "" {
		v := url.Values{"q": {q}, "limit": {strconv.Itoa(*limit)}, "offset": {strconv.Itoa(*offset)}, "sort": {*sort}}
		if *exact {
			v.Set("count", "exact")
		}
		if err := f.client().getJSON(ctx, "/api/v1/search?"+v.Encode(), &res); err != nil {
			return err
		}
	} else {
		n, err := f.openLocal(ctx)
		if err != nil {
			return err
		}
		defer n.Close(context.Background())
		// Bring the index up to date with what was imported offline.
		if err := n.NewIndexer().CatchUp(ctx, nil); err != nil {
			return err
		}
		// Whoever can open the data directory can read all of it: search as admin.
		res, err = n.Searcher().Search(ctx, web.SearchRequest{Query: q, Limit: *limit, Offset: *offset, Sort: *sort,
			User: &auth.User{Name: "local", Role: auth.RoleAdmin}, ExactCount: *exact})
		if err != nil {
			return err
		}
		if res.Messages == nil {
			res.Messages = []web.SearchHit{}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DATE\tFROM\tSUBJECT\tID")
	for _, m := range res.Messages {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Date.Format("2006-01-02 15:04"), clip(m.From, 32), clip(m.Subject, 60), m.ID)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	more := ""
	if res.TotalCapped {
		more = "more than "
	}
	fmt.Printf("%d of %s%d matching messages (%.1f ms)\n", len(res.Messages), more, res.Total, res.TookMS)
	return nil
}

var controlChars = regexp.MustCompile(`[\x00-\x1f\x7f]`)

// clip shortens s to n runes for a table cell and removes control characters
// (archived headers must not drive the terminal).
func clip(s string, n int) string {
	s = controlChars.ReplaceAllString(s, " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
