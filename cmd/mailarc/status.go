package main

import (
	"context"
	"encoding/json"
	"os"
)

func runStatus(ctx context.Context, args []string) error {
	fs := newFlagSet("status", "status [--server URL | --data DIR]")
	var f nodeFlags
	f.register(fs, true)
	if err := parse(fs, args); err != nil {
		return err
	}
	var st any
	if f.server != "" {
		if err := f.client().getJSON(ctx, "/api/v1/status", &st); err != nil {
			return err
		}
	} else {
		n, err := f.openLocal(ctx)
		if err != nil {
			return err
		}
		defer n.Close(context.Background())
		if st, err = n.Status(ctx); err != nil {
			return err
		}
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(st)
}
