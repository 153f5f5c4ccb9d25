package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/source/file"
)

func runImport(ctx context.Context, args []string) error {
	fs := newFlagSet("import", "import [--server URL | --data DIR] [--workers N] PATH...")
	var f nodeFlags
	f.register(fs, true)
	workers := fs.Int("workers", 16, "messages ingested concurrently (they share group commits)")
	retryFor := fs.Duration("retry-for", 5*time.Minute, "with --server: how long to keep retrying a message the node cannot take now (429, 503, node restarting or unreachable) before stopping the import")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return usageError{"no PATH given: name .eml files, directories, maildirs or mbox files"}
	}
	paths := fs.Args()

	var ingest func(ctx context.Context, raw []byte) (archive.Result, error)
	var deferred func() int64 // bytes left uncompressed by a local import, if known
	cfg, err := f.loadConfig()
	if err != nil {
		return err
	}
	maxSize := int64(cfg.MaxMessageSize)
	if f.server != "" {
		ingest = remoteIngest(f.client(), retryPolicy{first: 250 * time.Millisecond, max: 10 * time.Second, giveUp: *retryFor})
	} else {
		n, err := f.openLocal(ctx)
		if err != nil {
			return err
		}
		defer n.Close(context.Background())
		ingest = func(ctx context.Context, raw []byte) (archive.Result, error) {
			return n.Archive.Ingest(ctx, raw, archive.Origin{Source: "import"})
		}
		if st, ok := n.Archive.Store().(interface{ PendingRecompress() int64 }); ok {
			deferred = st.PendingRecompress
		}
	}

	// A refused login, or a node that stays unreachable, stops the whole
	// import (stopErr) instead of failing every remaining file.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var stopOnce sync.Once
	var stopErr error
	stop := func(err error) { stopOnce.Do(func() { stopErr = err; cancel() }) }

	p := newProgress("import", 0)
	var mu sync.Mutex // guards p and the counters below
	if p.tty {
		// The total (for the bar and ETA) is counted beside the import,
		// which starts at once; without a terminal nobody sees it, and
		// counting reads every file an extra time.
		go func() {
			if total, err := file.Count(ctx, paths); err == nil {
				mu.Lock()
				p.total = total
				mu.Unlock()
			}
		}()
	}
	type job struct {
		source string
		raw    []byte
	}
	jobs := make(chan job, *workers*2)
	var imported, dups, seen int
	var failures []string
	fail := func(source string, err error) {
		mu.Lock()
		failures = append(failures, fmt.Sprintf("%s: %v", source, err))
		seen++
		p.set(seen)
		mu.Unlock()
	}
	var wg sync.WaitGroup
	for i := 0; i < max(1, *workers); i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				res, err := ingest(ctx, j.raw)
				if err != nil {
					if refused := authRefusal(err, f.user); refused != nil {
						stop(refused)
					} else if errors.Is(err, errGaveUp) {
						stop(fmt.Errorf("%s: %w", j.source, err))
					}
					if ctx.Err() != nil {
						continue // stopped: not this file's fault, reported below
					}
					fail(j.source, err)
					continue
				}
				mu.Lock()
				if res.Duplicate {
					dups++
				} else {
					imported++
				}
				seen++
				p.set(seen)
				mu.Unlock()
			}
		}()
	}
	walkErr := file.Walk(ctx, paths, file.Options{MaxMessageSize: maxSize}, func(it file.Item) error {
		if it.Err != nil {
			fail(it.Source, it.Err)
			return nil
		}
		select {
		case jobs <- job{it.Source, it.Raw}:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	close(jobs)
	wg.Wait()
	mu.Lock()
	p.done()
	mu.Unlock()
	for _, fl := range failures {
		fmt.Fprintf(os.Stderr, "failed: %s\n", fl)
	}
	fmt.Printf("imported %d, duplicates %d, failed %d\n", imported, dups, len(failures))
	if deferred != nil {
		if b := deferred(); b > 0 {
			// The archive stores a burst uncompressed (store.Deferred);
			// only a serving node compresses it afterwards.
			fmt.Fprintf(os.Stderr, "%.1f MB were stored uncompressed to import faster; `mailarc serve` compresses them once it is idle\n", float64(b)/1e6)
		}
	}
	if stopErr != nil {
		return fmt.Errorf("import stopped after %d messages: %w", seen, stopErr)
	}
	if walkErr != nil {
		return walkErr
	}
	if len(failures) > 0 {
		return errSilent
	}
	return nil
}
