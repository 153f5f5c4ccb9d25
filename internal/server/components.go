package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/web"
)

// startComponents starts the background workers and optional listeners of
// a serving node. Each started component appends its stop function.
func (n *Node) startComponents(bg context.Context, wg *sync.WaitGroup) (*components, error) {
	c := &components{}
	ix := n.NewIndexer()
	n.Archive.OnCommit(ix.Notify)
	n.indexer = ix
	if err := n.Registry.Register(newIndexCollector(n)); err != nil && !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
		return nil, fmt.Errorf("index metrics: %w", err)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = ix.Run(bg)
	}()
	n.startRecompress(bg, wg)
	srch := newSearcher(n.Index, n.Archive)
	n.searchTexts.Store(srch.texts)
	c.search = srch
	if err := n.startSMTP(bg, c); err != nil {
		return nil, err
	}
	if err := n.startSources(bg, wg, c); err != nil {
		return nil, err
	}
	if err := n.startGovernance(bg, wg, c); err != nil {
		return nil, err
	}
	if err := n.startMirror(bg, wg, c); err != nil {
		return nil, err
	}
	return c, nil
}

// NewIndexer builds the indexer over this node's feed and index.
func (n *Node) NewIndexer() *index.Indexer {
	return index.NewIndexer(n.Index, feed{n.Archive}, index.IndexerOptions{
		BatchSize:  n.Cfg.Index.BatchSize,
		Workers:    n.Cfg.Index.Workers,
		Logger:     n.Log.With("component", "indexer"),
		Registerer: n.Registry,
		Busy:       n.indexShouldYield,
	})
}

// indexShouldYield reports whether the indexer should leave the CPU to
// ingest (a burst) or to mirroring (a backlog being sent to a peer).
func (n *Node) indexShouldYield() bool {
	if n.Archive.Busy() {
		return true
	}
	m := n.mirror.Load()
	return m != nil && m.Draining()
}

// Searcher returns a search adapter over this node (for CLI use).
func (n *Node) Searcher() web.Searcher {
	return newSearcher(n.Index, n.Archive)
}

// indexStatus fills the index counts and lag of st. It fills in what it
// can read and returns what it could not (the status document shows what
// is known; the index metrics report the error rather than a wrong zero).
func (n *Node) indexStatus(ctx context.Context, st *Status, cs catalog.Stats) error {
	if n.Index == nil {
		return nil
	}
	c, cerr := n.Index.Count(ctx)
	if cerr == nil {
		st.Counts.Indexed = c
	}
	wm, err := n.Index.Watermark(ctx)
	if err != nil {
		return errors.Join(cerr, err)
	}
	lag, lerr := n.Catalog.CountChangedAfter(ctx, wm)
	if lerr == nil {
		st.Index.LagMessages = lag
	}
	if n.indexer != nil {
		if t := n.indexer.OldestPending(); !t.IsZero() && st.Index.LagMessages > 0 {
			st.Index.LagSeconds = time.Since(t).Seconds()
		}
		st.Index.Skipped = n.indexer.SkippedAttachments()
	}
	return errors.Join(cerr, lerr)
}
