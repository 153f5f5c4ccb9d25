package ui

import (
	"errors"
	"html/template"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/web"
)

// searchForm is the search page's input.
type searchForm struct {
	Q, From, To, After, Before string
	HasAttachment              bool
	Sort                       string
	Limit, Page                int
	ExactCount                 bool // count=exact: count every match
}

type resultRow struct {
	ID, From, To, Subject string
	Date                  time.Time
	Size                  int64
	Attachments           int
	Snippet               template.HTML
}

type searchData struct {
	Form      searchForm
	Query     string // effective query
	Searched  bool
	Available bool
	Total     int
	Capped    bool   // Total is a lower bound
	CountAll  string // link to the same search with an exact count, when Capped
	Took      string
	Rows      []resultRow
	First     int
	Last      int
	Prev      string
	Next      string
	Pages     string
	ExportZip string
	ExportBox string
	HoldURL   string
	QueryErr  string
	Sorts     []option
	Limits    []option
}

type option struct {
	Value, Label string
	Selected     bool
}

func readSearchForm(v url.Values) searchForm {
	f := searchForm{
		Q: strings.TrimSpace(v.Get("q")), From: strings.TrimSpace(v.Get("from")), To: strings.TrimSpace(v.Get("to")),
		After: strings.TrimSpace(v.Get("after")), Before: strings.TrimSpace(v.Get("before")),
		HasAttachment: v.Get("has") == "attachment", Sort: v.Get("sort"), ExactCount: v.Get("count") == "exact",
	}
	switch f.Sort {
	case "date", "-date", "relevance":
	default:
		f.Sort = "-date"
	}
	f.Limit, _ = strconv.Atoi(v.Get("limit"))
	switch f.Limit {
	case 25, 50, 100, 200:
	default:
		f.Limit = 50
	}
	f.Page, _ = strconv.Atoi(v.Get("page"))
	if f.Page < 1 || f.Page > 100000 {
		f.Page = 1
	}
	if f.Sort == "relevance" {
		f.Page = min(f.Page, web.MaxRelevanceDepth/f.Limit)
	}
	return f
}

// term renders field:value, quoting values with spaces or quotes.
func term(field, v string) string {
	if strings.ContainsAny(v, " \t\"()") {
		v = `"` + strings.ReplaceAll(v, `"`, "") + `"`
	}
	return field + ":" + v
}

// query builds the effective query from the box and the helper fields.
func (f searchForm) query() string {
	parts := []string{}
	if f.Q != "" {
		parts = append(parts, f.Q)
	}
	if f.From != "" {
		parts = append(parts, term("from", f.From))
	}
	if f.To != "" {
		parts = append(parts, term("to", f.To))
	}
	if f.After != "" {
		parts = append(parts, term("after", f.After))
	}
	if f.Before != "" {
		parts = append(parts, term("before", f.Before))
	}
	if f.HasAttachment {
		parts = append(parts, "has:attachment")
	}
	return strings.Join(parts, " ")
}

func (f searchForm) values(page int) url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("q", f.Q)
	set("from", f.From)
	set("to", f.To)
	set("after", f.After)
	set("before", f.Before)
	if f.HasAttachment {
		v.Set("has", "attachment")
	}
	if f.ExactCount {
		v.Set("count", "exact")
	}
	if f.Sort != "-date" {
		v.Set("sort", f.Sort)
	}
	if f.Limit != 50 {
		v.Set("limit", strconv.Itoa(f.Limit))
	}
	if page > 1 {
		v.Set("page", strconv.Itoa(page))
	}
	return v
}

func (h *Handler) searchPage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	f := readSearchForm(r.URL.Query())
	d := searchData{Form: f, Query: f.query(), Available: h.d.Search != nil}
	for _, o := range []option{{"-date", "Newest first", false}, {"date", "Oldest first", false}, {"relevance", "Relevance", false}} {
		o.Selected = o.Value == f.Sort
		d.Sorts = append(d.Sorts, o)
	}
	for _, n := range []string{"25", "50", "100", "200"} {
		d.Limits = append(d.Limits, option{n, n, n == strconv.Itoa(f.Limit)})
	}
	_, submitted := r.URL.Query()["q"]
	status := http.StatusOK
	if d.Available && (submitted || d.Query != "") {
		d.Searched = true
		start := time.Now()
		res, err := h.d.Search.Search(r.Context(), web.SearchRequest{
			Query: d.Query, Limit: f.Limit, Offset: (f.Page - 1) * f.Limit, Sort: f.Sort, User: c.User,
			ExactCount: f.ExactCount,
		})
		var qe web.QueryError
		switch {
		case errors.As(err, &qe):
			d.QueryErr = qe.Error()
			status = http.StatusBadRequest
		case err != nil:
			return err
		default:
			took := time.Since(start)
			if res.TookMS > 0 {
				took = time.Duration(res.TookMS * float64(time.Millisecond))
			}
			d.Took = took.Round(time.Millisecond / 10).String()
			d.Total, d.Capped = res.Total, res.TotalCapped
			if d.Capped {
				ff := f
				ff.ExactCount = true
				d.CountAll = "/search?" + ff.values(f.Page).Encode()
			}
			for _, m := range res.Messages {
				d.Rows = append(d.Rows, resultRow{
					ID: m.ID, From: m.From, To: strings.Join(m.To, ", "), Subject: m.Subject, Date: m.Date,
					Size: m.Size, Attachments: len(m.Attachments), Snippet: markSnippet(m.Snippet),
				})
			}
			offset := (f.Page - 1) * f.Limit
			if len(d.Rows) > 0 {
				d.First, d.Last = offset+1, offset+len(d.Rows)
			}
			if f.Page > 1 {
				d.Prev = "/search?" + f.values(f.Page-1).Encode()
			}
			if offset+len(d.Rows) < res.Total {
				d.Next = "/search?" + f.values(f.Page+1).Encode()
			}
			pages := (res.Total + f.Limit - 1) / f.Limit
			if pages > 1 && !d.Capped {
				d.Pages = "page " + strconv.Itoa(f.Page) + " of " + strconv.Itoa(pages)
			}
			h.record(r.Context(), c, audit.ActionSearch, map[string]any{
				"query": d.Query, "total": res.Total, "limit": f.Limit, "offset": offset, "via": "web"})
		}
		ex := url.Values{"q": {d.Query}}
		ex.Set("format", "zip")
		d.ExportZip = "/api/v1/export?" + ex.Encode()
		ex.Set("format", "mbox")
		d.ExportBox = "/api/v1/export?" + ex.Encode()
		d.HoldURL = "/holds?" + url.Values{"q": {d.Query}}.Encode()
	}
	v := c.view("Search", "search", d)
	if d.Query != "" {
		v.Title = d.Query + " — Search"
	}
	h.render(w, r, status, "search", v)
	return nil
}
