package pgindex

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// migration is one schema change. Migrations are applied in order and
// never edited once released: a change is a new migration.
type migration struct {
	version     int
	description string
	stmts       []string
}

var migrations = []migration{
	{1, "documents, tsvector GIN index, watermark", []string{
		`CREATE TABLE idx_docs (
			id   text PRIMARY KEY,
			seq  bigint NOT NULL,
			date bigint NOT NULL,
			size bigint NOT NULL,
			tsv  tsvector NOT NULL)`,
		`CREATE INDEX idx_docs_tsv ON idx_docs USING gin (tsv)`,
		`CREATE INDEX idx_docs_date ON idx_docs (date, seq)`,
		`CREATE TABLE idx_state (key text PRIMARY KEY, value bigint NOT NULL)`,
		`INSERT INTO idx_state(key, value) VALUES ('watermark', 0)`,
	}},
}

// migrationLock is the pg_advisory_xact_lock key that serialises
// migrations of nodes starting at the same time ("mailarc idx" in ASCII).
const migrationLock int64 = 0x6d61696c61726349

// migrate applies the missing migrations in one transaction.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, migrationLock); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS idx_migrations (
			version     integer PRIMARY KEY,
			description text NOT NULL,
			applied_at  timestamptz NOT NULL DEFAULT now())`); err != nil {
			return fmt.Errorf("create idx_migrations: %w", err)
		}
		var cur int
		if err := tx.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM idx_migrations`).Scan(&cur); err != nil {
			return fmt.Errorf("read schema version: %w", err)
		}
		latest := migrations[len(migrations)-1].version
		if cur > latest {
			return fmt.Errorf("index schema version %d is newer than this program's %d: upgrade mailarc", cur, latest)
		}
		for _, m := range migrations {
			if m.version <= cur {
				continue
			}
			for _, st := range m.stmts {
				if _, err := tx.Exec(ctx, st); err != nil {
					return fmt.Errorf("migration %d: %w", m.version, err)
				}
			}
			if _, err := tx.Exec(ctx, `INSERT INTO idx_migrations(version, description) VALUES ($1, $2)`, m.version, m.description); err != nil {
				return fmt.Errorf("migration %d: record: %w", m.version, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate schema: %w", err)
	}
	return nil
}
