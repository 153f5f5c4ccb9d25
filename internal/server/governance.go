package server

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/governance"
	"github.com/mailarc/mailarc/internal/mirror"
)

// startGovernance opens the audit log and governance service and starts
// the scheduled retention sweeper and, when the store enforces retention
// itself (S3 Object Lock), the WORM sync with its metrics.
func (n *Node) startGovernance(ctx context.Context, wg *sync.WaitGroup, c *components) error {
	gov, _, err := n.Governance(ctx)
	if err != nil {
		return err
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		gov.RunLoop(ctx)
	}()
	if err := n.Registry.Register(gov.WORMCollector()); err != nil {
		if !errors.As(err, new(prometheus.AlreadyRegisteredError)) {
			return fmt.Errorf("governance metrics: %w", err)
		}
	}
	if gov.WORMEnabled() {
		n.Log.Info("object store enforces retention and holds (S3 Object Lock): WORM sync started")
		wg.Add(1)
		go func() {
			defer wg.Done()
			gov.WORMLoop(ctx)
		}()
	}
	return nil
}

// WORMStatus returns the state of the WORM sync (retention and holds
// applied to the object store), or nil before governance is open.
func (n *Node) WORMStatus(ctx context.Context) (*governance.WORMStatus, error) {
	if n.gov == nil {
		return nil, nil
	}
	st, err := n.gov.WORMStatus(ctx)
	if err != nil {
		return nil, err
	}
	return &st, nil
}

// AuditLog opens (once) the node's audit log; it is closed with the node.
func (n *Node) AuditLog(ctx context.Context) (*audit.Log, error) {
	if n.auditLog != nil {
		return n.auditLog, nil
	}
	l, err := audit.Open(ctx, n.Catalog, audit.Options{Logger: n.Log.With("component", "audit")})
	if err != nil {
		return nil, err
	}
	n.auditLog = l
	n.extra = append(n.extra, func(ctx context.Context) error {
		err := l.Close(ctx)
		n.auditLog = nil
		return err
	})
	return l, nil
}

// ensureAdmin creates the bootstrap admin on a first start (auth
// EnsureAdmin) and records it in the audit log as a user.add by "system".
// The log is opened first, so an archive whose log cannot be written gets
// no unrecorded account.
func (n *Node) ensureAdmin(ctx context.Context, password string) (created bool, generated string, err error) {
	al, err := n.AuditLog(ctx)
	if err != nil {
		return false, "", err
	}
	created, generated, err = n.Auth.EnsureAdmin(ctx, password)
	if err != nil || !created {
		return created, generated, err
	}
	from := "MAILARC_ADMIN_PASSWORD"
	if generated != "" {
		from = "generated"
	}
	if _, err := al.Record(ctx, "system", audit.ActionUserAdd, map[string]any{
		"name": "admin", "role": "admin", "addresses": []string{}, "bootstrap": true, "password": from,
	}); err != nil {
		return created, generated, fmt.Errorf("audit the bootstrap admin: %w", err)
	}
	return created, generated, nil
}

// Governance opens (once) the retention and hold service with the audit log.
func (n *Node) Governance(ctx context.Context) (*governance.Service, *audit.Log, error) {
	al, err := n.AuditLog(ctx)
	if err != nil {
		return nil, nil, err
	}
	if n.gov != nil {
		return n.gov, al, nil
	}
	gov, err := governance.New(ctx, n.Catalog, n.Index, n.Store, governance.Options{
		Audit:      al,
		AfterPurge: n.scrubIndex,
		Interval:   time.Duration(n.Cfg.Retention.SweepInterval),
		Logger:     n.Log.With("component", "governance"),
	})
	if err != nil {
		return nil, nil, err
	}
	n.gov = gov
	return gov, al, nil
}

// MigrateComponents runs the schema migrations of every component that
// owns catalog tables (governance, audit, mirror), as starting them would:
// for offline tools (mailarc migrate) that copy a whole catalog.
func (n *Node) MigrateComponents(ctx context.Context) error {
	if _, _, err := n.Governance(ctx); err != nil { // audit + governance
		return fmt.Errorf("governance and audit tables: %w", err)
	}
	if err := mirror.MigrateTables(ctx, n.Catalog); err != nil {
		return fmt.Errorf("mirror tables: %w", err)
	}
	return nil
}

// scrubIndex removes every trace of purged documents from index.db (and
// the text the search cache kept for snippets).
func (n *Node) scrubIndex(ctx context.Context) error {
	if t := n.searchTexts.Load(); t != nil {
		t.clear()
	}
	ix, ok := n.Index.(interface{ Scrub(context.Context) error })
	if !ok {
		return nil
	}
	return ix.Scrub(ctx)
}
