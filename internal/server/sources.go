package server

import (
	"context"
	"sync"

	"github.com/mailarc/mailarc/internal/config"
	"github.com/mailarc/mailarc/internal/source/pull"
)

// startSources starts the journal-mailbox pollers of [[sources]]. Sources
// owned by another node are listed in status but not polled, unless this
// node is one of their standby nodes (failover: the lease heartbeats are
// wired into the mirror by startMirror, which runs after this).
func (n *Node) startSources(ctx context.Context, wg *sync.WaitGroup, c *components) error {
	if len(n.Cfg.Sources) == 0 {
		return nil
	}
	srcs := append([]config.Source(nil), n.Cfg.Sources...)
	for i := range srcs {
		srcs[i].PasswordFile = n.defaultPath(srcs[i].PasswordFile)
		srcs[i].TokenFile = n.defaultPath(srcs[i].TokenFile)
		srcs[i].CAFile = n.defaultPath(srcs[i].CAFile)
	}
	m, err := pull.NewManagerOptions(n.Cfg.NodeName, srcs, n.Archive, n.Catalog, n.Log.With("component", "pull"), n.Registry,
		pull.Options{MaxMessageSize: int64(n.Cfg.MaxMessageSize)})
	if err != nil {
		return err
	}
	if m.HasFailover() && len(n.Cfg.Mirror.Peers) == 0 {
		n.Log.Warn("sources name standby nodes but no [[mirror.peers]] are configured: no heartbeats can be exchanged, so an owner waits takeover_after before polling and a standby takes over after it")
	}
	n.sources.Store(m)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := m.Run(ctx); err != nil {
			n.Log.Error("journal mailbox polling stopped", "err", err)
		}
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
