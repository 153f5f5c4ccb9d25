package catalog

import (
	"context"
	"database/sql"
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
	// 2: where an account comes from: 'local' (password hash here) or
	// 'ldap' (a directory account, package auth; no local password).
	`ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'local';`,
}

// pgMigrations are the PostgreSQL form of migrations, version for version.
// Text columns that are compared, ordered or range-scanned use the "C"
// collation, so comparisons are bytewise as in SQLite whatever the
// database's default collation. messages.seq has no sequence: Commit
// assigns it from the feed_seq counter under the feed lock. "user" is a
// reserved word in PostgreSQL and is quoted (SQLite accepts the quotes too).
var pgMigrations = []string{
	// 1: core tables.
	`CREATE TABLE meta (key TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL);
	CREATE TABLE messages (
		seq         BIGINT PRIMARY KEY,
		id          TEXT COLLATE "C" NOT NULL UNIQUE,
		mseq        BIGINT NOT NULL,
		date        BIGINT NOT NULL,
		date_source TEXT NOT NULL,
		arrival     BIGINT NOT NULL,
		size        BIGINT NOT NULL,
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
	CREATE TABLE origins (seq BIGINT NOT NULL, origin TEXT COLLATE "C" NOT NULL, first_seen BIGINT NOT NULL,
		PRIMARY KEY (seq, origin));
	CREATE TABLE envelope (seq BIGINT NOT NULL, kind TEXT COLLATE "C" NOT NULL, addr TEXT COLLATE "C" NOT NULL,
		PRIMARY KEY (seq, kind, addr));
	CREATE INDEX envelope_addr ON envelope(addr);
	CREATE TABLE journal_reports (seq BIGINT NOT NULL, report_id TEXT COLLATE "C" NOT NULL,
		PRIMARY KEY (seq, report_id));
	CREATE INDEX journal_reports_id ON journal_reports(report_id);
	CREATE TABLE tombstones (id TEXT COLLATE "C" PRIMARY KEY, purged_at BIGINT NOT NULL, reason TEXT NOT NULL);
	CREATE TABLE users (
		name          TEXT COLLATE "C" PRIMARY KEY,
		password_hash TEXT NOT NULL,
		role          TEXT NOT NULL,
		addresses     TEXT NOT NULL,
		created       BIGINT NOT NULL,
		updated       BIGINT NOT NULL
	);
	CREATE TABLE tokens (
		hash      TEXT COLLATE "C" PRIMARY KEY,
		id        TEXT COLLATE "C" NOT NULL UNIQUE,
		"user"    TEXT COLLATE "C" NOT NULL,
		name      TEXT NOT NULL,
		created   BIGINT NOT NULL,
		last_used BIGINT NOT NULL DEFAULT 0
	);
	CREATE TABLE peer_cursors (peer TEXT COLLATE "C" PRIMARY KEY, seq BIGINT NOT NULL, updated BIGINT NOT NULL);
	CREATE TABLE source_state (source TEXT COLLATE "C" NOT NULL, key TEXT COLLATE "C" NOT NULL, value TEXT NOT NULL,
		PRIMARY KEY (source, key));`,
	// 2: account source, as in migrations.
	`ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT 'local';`,
}

func (c *Catalog) migrate(ctx context.Context) error {
	ddl := `CREATE TABLE IF NOT EXISTS schema_migrations (
		component TEXT NOT NULL, version INTEGER NOT NULL, applied INTEGER NOT NULL,
		PRIMARY KEY (component, version)) WITHOUT ROWID`
	if c.dialect == Postgres {
		ddl = `CREATE TABLE IF NOT EXISTS schema_migrations (
		component TEXT COLLATE "C" NOT NULL, version INTEGER NOT NULL, applied BIGINT NOT NULL,
		PRIMARY KEY (component, version))`
	}
	// Under the migration lock: CREATE TABLE IF NOT EXISTS is not safe
	// against a second node creating the table at the same moment.
	err := c.inTx(ctx, func(tx *sql.Tx) error {
		if err := c.lockTx(ctx, tx, lockMigrate); err != nil {
			return err
		}
		_, err := tx.ExecContext(ctx, ddl)
		return err
	})
	if err != nil {
		return fmt.Errorf("catalog: migrations table: %w", err)
	}
	return c.MigrateDialects(ctx, "core", migrations, pgMigrations)
}

// inTx runs fn in a write transaction and commits it.
func (c *Catalog) inTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := c.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("catalog: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("catalog: commit: %w", err)
	}
	return nil
}

// Migrate applies a component's schema migrations (each a SQL script) in
// order, each exactly once, in its own transaction, recording them in
// schema_migrations under the component's name. Packages that own tables
// in the catalog (auth, governance, audit, mirror, pull) call it when they
// are constructed, so each keeps its schema next to its code. Never edit a
// released migration: append a new one.
//
// The same scripts run on both engines, so they must be portable SQL;
// a component whose DDL differs per engine calls MigrateDialects.
func (c *Catalog) Migrate(ctx context.Context, component string, steps []string) error {
	return c.MigrateDialects(ctx, component, steps, steps)
}

// MigrateDialects is Migrate with the scripts written per engine: sqlite
// on SQLite, postgres on PostgreSQL. Both lists must have the same length:
// version N is sqlite[N-1] or postgres[N-1].
//
// Nodes sharing one PostgreSQL database may start at once: each version is
// applied in a transaction holding an advisory lock, after re-reading the
// recorded version inside it, so exactly one node applies it and the
// others find it done. PostgreSQL DDL is transactional, so a failing
// script leaves nothing behind.
func (c *Catalog) MigrateDialects(ctx context.Context, component string, sqlite, postgres []string) error {
	if len(sqlite) != len(postgres) {
		return fmt.Errorf("catalog: %s migrations: %d SQLite scripts but %d PostgreSQL scripts", component, len(sqlite), len(postgres))
	}
	steps := sqlite
	if c.dialect == Postgres {
		steps = postgres
	}
	for {
		done := false
		err := c.inTx(ctx, func(tx *sql.Tx) error {
			if err := c.lockTx(ctx, tx, lockMigrate); err != nil {
				return err
			}
			var have int
			if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(version),0) FROM schema_migrations WHERE component=?`, component).Scan(&have); err != nil {
				return fmt.Errorf("catalog: schema version of %s: %w", component, err)
			}
			if have > len(steps) {
				return fmt.Errorf("catalog: %s schema version %d is newer than this release knows (%d): refusing to open with an older mailarc", component, have, len(steps))
			}
			if have == len(steps) {
				done = true
				return nil
			}
			v := have + 1
			if _, err := tx.ExecContext(ctx, steps[v-1]); err != nil {
				return fmt.Errorf("catalog: %s migration %d: %w", component, v, err)
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations(component, version, applied) VALUES (?, ?, ?)`, component, v, time.Now().Unix()); err != nil {
				return fmt.Errorf("catalog: %s migration %d: %w", component, v, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if done {
			return nil
		}
	}
}
