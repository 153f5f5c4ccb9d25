package main

import (
	"context"
	"fmt"
	"os"
)

func runVerify(ctx context.Context, args []string) error {
	fs := newFlagSet("verify", "verify [--data DIR]")
	var f nodeFlags
	f.register(fs, false)
	if err := parse(fs, args); err != nil {
		return err
	}
	n, err := f.openLocal(ctx)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())
	p := newProgress("verify", 0)
	rep, err := n.Archive.Verify(ctx, func(k int64) { p.set(int(k)) })
	p.done()
	if err != nil {
		return err
	}
	for _, pr := range rep.Problems {
		fmt.Printf("BAD %s: %s\n", pr.ID, pr.Reason)
	}
	for _, id := range rep.Orphans {
		fmt.Printf("note %s: stored blob not in the catalog (an ingest interrupted before it was acknowledged; harmless)\n", id)
	}
	fmt.Printf("verified %d blobs and %d catalog messages: %d problems, %d unreferenced blobs\n", rep.Blobs, rep.Messages, len(rep.Problems), len(rep.Orphans))
	if len(rep.Problems) > 0 {
		fmt.Fprintln(os.Stderr, "mailarc verify: problems found (listed above)")
		return errSilent
	}
	return nil
}
