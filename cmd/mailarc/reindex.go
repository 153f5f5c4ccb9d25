package main

import (
	"context"
	"fmt"
)

func runReindex(ctx context.Context, args []string) error {
	fs := newFlagSet("reindex", "reindex [--data DIR]   (stop the server first)")
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
	if err := n.Index.Reset(ctx); err != nil {
		return err
	}
	cs, err := n.Catalog.Stats(ctx)
	if err != nil {
		return err
	}
	p := newProgress("reindex", int(cs.Messages))
	if err := n.NewIndexer().CatchUp(ctx, p.set); err != nil {
		return err
	}
	p.done()
	c, err := n.Index.Count(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("reindexed %d messages\n", c)
	return nil
}
