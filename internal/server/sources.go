package server

import (
	"context"
	"sync"

	"github.com/mailarc/mailarc/internal/config"
	"github.com/mailarc/mailarc/internal/source/pull"
)

// startSources starts the journal-mailbox pollers of [[sources]]. Sources
// owned by another node are listed in status but not polled.
func (n *Node) startSources(ctx context.Context, wg *sync.WaitGroup, c *components) error {
	if len(n.Cfg.Sources) == 0 {
		return nil
	}
	srcs := append([]config.Source(nil), n.Cfg.Sources...)
	for i := range srcs {
		srcs[i].PasswordFile = n.defaultPath(srcs[i].PasswordFile)
		srcs[i].TokenFile = n.defaultPath(srcs[i].TokenFile)
	}
	m, err := pull.NewManagerOptions(n.Cfg.NodeName, srcs, n.Archive, n.Catalog, n.Log.With("component", "pull"), n.Registry,
		pull.Options{MaxMessageSize: int64(n.Cfg.MaxMessageSize)})
	if err != nil {
		return err
	}
	n.sources.Store(m)
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = m.Run(ctx)
	}()
	c.stop = append(c.stop, func(context.Context) error {
		n.sources.Store(nil)
		return nil
	})
	return nil
}

// sourceStatus is the sources[] part of /api/v1/status.
func (n *Node) sourceStatus() []any {
	m := n.sources.Load()
	if m == nil {
		return []any{}
	}
	st := m.Status()
	out := make([]any, 0, len(st))
	for _, s := range st {
		out = append(out, s)
	}
	return out
}
