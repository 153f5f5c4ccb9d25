package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/mailarc/mailarc/internal/config"
	"github.com/mailarc/mailarc/internal/migrate"
	"github.com/mailarc/mailarc/internal/server"
)

const migrateUsage = `migrate --to CONFIG [--config FILE] [--data DIR] [--to-data DIR] [--skip-index] [--verify-only]

Copies the whole archive of the node given by --config/--data (the source)
onto the backends of the config file CONFIG (the destination): e.g. from the
embedded local store + SQLite catalog onto S3 + PostgreSQL, or back. Stop the
source node (and every node using the destination) first; the destination
must be new and empty, with its own data_dir. An interrupted run continues
where it stopped when started again; a finished one is verified again.
Exit status 1 when the verification finds a difference.`

func runMigrate(ctx context.Context, args []string) error {
	fs := newFlagSet("migrate", migrateUsage)
	var f nodeFlags
	f.register(fs, false)
	to := fs.String("to", "", "config file (TOML) of the destination (required)")
	toData := fs.String("to-data", "", "data directory of the destination (overrides its data_dir)")
	skipIndex := fs.Bool("skip-index", false, "do not build the destination's full-text index (the server builds it on first start)")
	verifyOnly := fs.Bool("verify-only", false, "only compare source and destination; copy nothing")
	batch := fs.Int("batch", 1000, "catalog rows per batch")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *to == "" {
		return usageError{"migrate: --to CONFIG is required"}
	}
	if fs.NArg() > 0 {
		return usageError{"migrate: unexpected arguments"}
	}
	src, err := f.openLocal(ctx)
	if err != nil {
		return fmt.Errorf("source: %w", err)
	}
	defer src.Close(context.Background())
	dcfg, err := config.Load(*to, os.Environ())
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	if *toData != "" {
		dcfg.DataDir = *toData
	}
	level := dcfg.LogLevel
	if level == "info" {
		level = "warn"
	}
	dst, err := server.Open(ctx, dcfg, newLogger(level))
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	defer dst.Close(context.Background())
	fmt.Printf("source:      %s\ndestination: %s\n", describe(src), describe(dst))

	var bar *progress
	label := ""
	opt := migrate.Options{
		BatchRows: *batch,
		SkipIndex: *skipIndex,
		Logger:    src.Log,
		Progress: func(p migrate.Progress) {
			l := p.Phase
			if p.Item != "" {
				l += " " + p.Item
			}
			if l != label {
				if bar != nil {
					bar.done()
				}
				label, bar = l, newProgress(l, int(p.Total))
			}
			bar.set(int(p.Done))
		},
	}
	var rep *migrate.Report
	start := time.Now()
	if *verifyOnly {
		rep, err = migrate.Verify(ctx, src, dst, opt)
	} else {
		var res *migrate.Result
		res, err = migrate.Run(ctx, src, dst, opt)
		if res != nil {
			rep = res.Report
			if bar != nil {
				bar.done()
				bar = nil
			}
			switch {
			case res.Already:
				fmt.Println("the migration had already completed; verified again")
			case res.Resumed:
				fmt.Println("continued an interrupted migration")
			}
			fmt.Printf("copied %d blobs and %d catalog rows", res.Blobs, res.Rows)
			if !*skipIndex && !res.Already {
				fmt.Printf("; indexed %d messages", res.Indexed)
			}
			fmt.Println()
		}
	}
	if bar != nil {
		bar.done()
	}
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted; run the same command again to continue: %w", err)
		}
		return err
	}
	printReport(rep, time.Since(start))
	if !rep.OK() {
		fmt.Fprintln(os.Stderr, "mailarc migrate: the destination differs from the source (listed above); do not switch over")
		return errSilent
	}
	return nil
}

func describe(n *server.Node) string {
	st, cat := n.Cfg.Store.Backend, n.Cfg.Catalog.Backend
	if st == "s3" {
		st = fmt.Sprintf("s3 (%s/%s%s)", n.Cfg.Store.Endpoint, n.Cfg.Store.Bucket, "/"+n.Cfg.Store.Prefix)
	}
	return fmt.Sprintf("store %s, catalog %s, data_dir %s", st, cat, n.Dir.Path)
}

func printReport(r *migrate.Report, took time.Duration) {
	fmt.Println("verification:")
	for _, t := range r.Tables {
		state := "same"
		if !t.Same {
			state = "DIFFERENT"
		}
		fmt.Printf("  table %-20s %9d rows  %9d rows  %s\n", t.Name, t.Source, t.Dest, state)
	}
	fmt.Printf("  message ids: %d compared; blobs re-hashed in the destination: %d; source blobs: %d (destination has %d more; %d purged left behind)\n",
		r.Messages, r.BlobsChecked, r.SourceBlobs, r.ExtraBlobs, r.PurgedBlobs)
	fmt.Printf("  change feed head: %d / %d; audit entries: %d\n", r.SourceHead, r.DestHead, r.AuditEntries)
	for _, p := range r.Listed {
		fmt.Printf("  BAD %s\n", p)
	}
	if int64(len(r.Listed)) < r.Problems {
		fmt.Printf("  ... and %d more problems\n", r.Problems-int64(len(r.Listed)))
	}
	fmt.Printf("%d problems (%s)\n", r.Problems, took.Truncate(time.Millisecond))
}
