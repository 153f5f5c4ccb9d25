package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"text/tabwriter"

	"github.com/mailarc/mailarc/internal/audit"
)

func runAudit(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{"usage: mailarc audit verify|list [flags]"}
	}
	switch args[0] {
	case "verify":
		return runAuditVerify(ctx, args[1:])
	case "list":
		return runAuditList(ctx, args[1:])
	}
	return usageError{fmt.Sprintf("unknown audit subcommand %q: want verify or list", args[0])}
}

func runAuditVerify(ctx context.Context, args []string) error {
	fs := newFlagSet("audit verify", "audit verify [--data DIR] [--json]")
	var f nodeFlags
	f.register(fs, false)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	n, err := f.openLocal(ctx)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())
	rep, err := audit.Verify(ctx, n.Catalog)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		for _, p := range rep.Problems {
			fmt.Println("PROBLEM:", p)
		}
		if rep.OK() {
			fmt.Printf("audit log intact: %d entries, head %d %s\n", rep.Entries, rep.HeadSeq, rep.HeadHash)
		} else {
			fmt.Printf("audit log FAILED verification: %d problems in %d entries\n", len(rep.Problems), rep.Entries)
		}
	}
	if !rep.OK() {
		return errSilent
	}
	return nil
}

func runAuditList(ctx context.Context, args []string) error {
	fs := newFlagSet("audit list", "audit list [--server URL | --data DIR] [--limit N] [--action A] [--by USER] [--json]")
	var f nodeFlags
	f.register(fs, true)
	limit := fs.Int("limit", 100, "entries to show, newest first (1-10000)")
	action := fs.String("action", "", "only this action (a trailing * matches a prefix, e.g. retention.*)")
	byUser := fs.String("by", "", "only entries of this user")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	var es []audit.Entry
	if f.server != "" {
		v := url.Values{"limit": {strconv.Itoa(*limit)}, "action": {*action}, "user": {*byUser}}
		var res struct {
			Entries []audit.Entry `json:"entries"`
		}
		if err := f.client().getJSON(ctx, "/api/v1/audit?"+v.Encode(), &res); err != nil {
			return err
		}
		es = res.Entries
	} else {
		n, err := f.openLocal(ctx)
		if err != nil {
			return err
		}
		defer n.Close(context.Background())
		l, err := n.AuditLog(ctx)
		if err != nil {
			return err
		}
		if es, err = l.Query(ctx, audit.Filter{Limit: *limit, Action: *action, User: *byUser}); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"entries": es})
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SEQ\tTIME\tUSER\tACTION\tDETAIL")
	for _, e := range es {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.Format("2006-01-02 15:04:05"), clip(e.User, 20), e.Action, clip(string(e.Detail), 100))
	}
	return tw.Flush()
}

// localActor names whoever runs a command on the data directory directly
// (export, user changes) in audit entries: "local:" and the OS user name,
// or "local" when that is unknown. Through --server the API records the
// logged-in mailarc user instead.
func localActor() string {
	if u, err := user.Current(); err == nil {
		return "local:" + u.Username
	}
	return "local"
}
