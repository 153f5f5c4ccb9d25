package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"text/tabwriter"

	"github.com/mailarc/mailarc/internal/source/pull"
)

func runSource(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] != "test" {
		return usageError{"usage: mailarc source test [--config FILE] [--json] NAME"}
	}
	fs := newFlagSet("source test", "source test [--config FILE] [--json] NAME")
	var f nodeFlags
	f.register(fs, false)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"mailarc source test: exactly one source NAME expected"}
	}
	cfg, err := f.loadConfig()
	if err != nil {
		return err
	}
	for _, src := range cfg.Sources {
		if src.Name != fs.Arg(0) {
			continue
		}
		for _, p := range []*string{&src.PasswordFile, &src.TokenFile, &src.CAFile} {
			if *p != "" && !filepath.IsAbs(*p) {
				*p = filepath.Join(cfg.DataDir, *p)
			}
		}
		rep, err := pull.Test(ctx, src)
		if err != nil {
			return fmt.Errorf("source %s: %w", src.Name, err)
		}
		if *asJSON {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(rep)
		}
		fmt.Printf("%s (%s) at %s: connected with TLS %s, authenticated with %s\n", rep.Name, rep.Type, rep.Address, rep.TLS, rep.Auth)
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "FOLDER\tMESSAGES\tPOLLED")
		for _, fo := range rep.Folders {
			fmt.Fprintf(tw, "%s\t%d\t%v\n", fo.Name, fo.Messages, fo.Polled)
		}
		return tw.Flush()
	}
	return fmt.Errorf("no source named %q in the configuration", fs.Arg(0))
}
