package catalog

import (
	"context"
	"fmt"
	"time"
)

// migrations are the core schema (component "core"), applied by Migrate.
var migrations = []string{
	// 1: core tables.
	`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
	CREATE TABLE messages (
		seq         INTEGER PRIMARY KEY AUTOINCREMENT,
		id          TEXT NOT NULL UNIQUE,
		mseq        INTEGER NOT NULL,
		date        INTEGER NOT NULL,
		date_source TEXT NOT NULL,
		arrival     INTEGER NOT NULL,
		size        INTEGER NOT NULL,
		from_addr   TEXT NOT NULL,
		to_addrs    TEXT NOT NULL,
		cc_addrs    TEXT NOT NULL,
		bcc_addrs   TEXT NOT NULL,
		subject     TEXT NOT NULL,
		message_id  TEXT NOT NULL,
		attachments TEXT NOT NULL
	);
	CREATE INDEX messages_mseq ON messages(mseq);
	CREATE INDEX messages_date ON messages(date);
	CREATE TABLE origins (seq INTEGER NOT NULL, origin TEXT NOT NULL, first_seen INTEGER NOT NULL,
		PRIMARY KEY (seq, origin)) WITHOUT ROWID;
	CREATE TABLE envelope (seq INTEGER NOT NULL, kind TEXT NOT NULL, addr TEXT NOT NULL,
		PRIMARY KEY (seq, kind, addr)) WITHOUT ROWID;
	CREATE INDEX envelope_addr ON envelope(addr);
	CREATE TABLE journal_reports (seq INTEGER NOT NULL, report_id TEXT NOT NULL,
		PRIMARY KEY (seq, report_id)) WITHOUT ROWID;
	CREATE INDEX journal_reports_id ON journal_reports(report_id);
	CREATE TABLE tombstones (id TEXT PRIMARY KEY, purged_at INTEGER NOT NULL, reason TEXT NOT NULL) WITHOUT ROWID;
	CREATE TABLE users (
		name          TEXT PRIMARY KEY,
		password_hash TEXT NOT NULL,
		role          TEXT NOT NULL,
		addresses     TEXT NOT NULL,
		created       INTEGER NOT NULL,
		updated       INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE tokens (
		hash      TEXT PRIMARY KEY,
		id        TEXT NOT NULL UNIQUE,
		user      TEXT NOT NULL,
		name      TEXT NOT NULL,
		created   INTEGER NOT NULL,
		last_used INTEGER NOT NULL DEFAULT 0
	) WITHOUT ROWID;
	CREATE TABLE peer_cursors (peer TEXT PRIMARY KEY, seq INTEGER NOT NULL, updated INTEGER NOT NULL) WITHOUT ROWID;
	CREATE TABLE source_state (source TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,
		PRIMARY KEY (source, key)) WITHOUT ROWID;`,
}

func (c *Catalog) migrate(ctx context.Context) error {
	if _, err := c.w.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		component TEXT NOT NULL, version INTEGER NOT NULL, applied INTEGER NOT NULL,
		PRIMARY KEY (component, version)) WITHOUT ROWID`); err != nil {
		return fmt.Errorf("catalog: migrations table: %w", err)
	}
	return c.Migrate(ctx, "core", migrations)
}

// Migrate applies a component's schema migrations (each a SQL script) in
// order, each exactly once, in its own transaction, recording them in
// schema_migrations under the component's name. Packages that own tables
// in the catalog (auth, governance, audit, mirror, pull) call it when they
// are constructed, so each keeps its schema next to its code. Never edit a
// released migration: append a new one.
func (c *Catalog) Migrate(ctx context.Context, component string, steps []string) error {
	var have int
	if err := c.w.QueryRowContext(ctx, `SELECT coalesce(max(version),0) FROM schema_migrations WHERE component=?`, component).Scan(&have); err != nil {
		return fmt.Errorf("catalog: schema version of %s: %w", component, err)
	}
	if have > len(steps) {
		return fmt.Errorf("catalog: %s schema version %d is newer than this release knows (%d): refusing to open with an older mailarc", component, have, len(steps))
	}
	for v := have + 1; v <= len(steps); v++ {
		tx, err := c.w.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("catalog: %s migration %d: %w", component, v, err)
		}
		if _, err := tx.ExecContext(ctx, steps[v-1]); err != nil {
			tx.Rollback() //nolint:errcheck
			return fmt.Errorf("catalog: %s migration %d: %w", component, v, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(component, version, applied) VALUES (?, ?, ?)`, component, v, time.Now().Unix()); err != nil {
			tx.Rollback() //nolint:errcheck
			return fmt.Errorf("catalog: %s migration %d: %w", component, v, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("catalog: %s migration %d: %w", component, v, err)
		}
	}
	return nil
}
