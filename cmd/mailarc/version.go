package main

import (
	"context"
	"fmt"

	"github.com/mailarc/mailarc/internal/version"
)

func runVersion(ctx context.Context, args []string) error {
	fs := newFlagSet("version", "version")
	if err := parse(fs, args); err != nil {
		return err
	}
	fmt.Println(version.Version)
	return nil
}
