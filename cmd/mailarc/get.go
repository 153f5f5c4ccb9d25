package main

import (
	"context"
	"io"
	"net/http"
	"os"

	"github.com/mailarc/mailarc/internal/message"
)

func runGet(ctx context.Context, args []string) error {
	fs := newFlagSet("get", "get [--server URL | --data DIR] ID > message.eml")
	var f nodeFlags
	f.register(fs, true)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return usageError{"exactly one message id expected"}
	}
	id := fs.Arg(0)
	if !message.ValidID(id) {
		return usageError{"a message id is 64 lowercase hex digits"}
	}
	if f.server != "" {
		resp, err := f.client().do(ctx, http.MethodGet, "/api/v1/messages/"+id+"/raw", nil, "")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(os.Stdout, resp.Body)
		return err
	}
	n, err := f.openLocal(ctx)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())
	raw, err := n.Archive.Raw(ctx, id)
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(raw)
	return err
}
