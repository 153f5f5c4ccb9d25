package catalog

import (
	"context"
	"fmt"
	"time"
)

// Candidate is the part of a message row retention needs.
type Candidate struct {
	Seq  int64
	MSeq int64
	ID   string
	Date time.Time
}

// Candidates returns up to limit messages with seq > afterSeq whose date is
// before cutoff, in seq order (a resumable walk for the retention sweeper).
func (c *Catalog) Candidates(ctx context.Context, cutoff time.Time, afterSeq int64, limit int) ([]Candidate, error) {
	rows, err := c.r.QueryContext(ctx, `SELECT seq, mseq, id, date FROM messages WHERE seq > ? AND date < ? ORDER BY seq LIMIT ?`,
		afterSeq, cutoff.Unix(), limit)
	if err != nil {
		return nil, fmt.Errorf("catalog: candidates: %w", err)
	}
	defer rows.Close()
	var out []Candidate
	for rows.Next() {
		var m Candidate
		var d int64
		if err := rows.Scan(&m.Seq, &m.MSeq, &m.ID, &d); err != nil {
			return nil, fmt.Errorf("catalog: candidates: %w", err)
		}
		m.Date = time.Unix(d, 0).UTC()
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("catalog: candidates: %w", err)
	}
	return out, nil
}

// Purge removes messages for good, in one transaction on a connection with
// secure_delete on (freed bytes are overwritten with zeros): it writes a
// tombstone per id (so the id is never stored again), and deletes the
// message rows with their origins, envelope and journal report links. It
// returns the journal report blob ids no message references any more: those
// blobs contain the purged message too and must be deleted from the store.
// Only package governance calls Purge.
func (c *Catalog) Purge(ctx context.Context, ids []string, reason string, at time.Time) (orphanReports []string, err error) {
	if len(ids) == 0 {
		return nil, nil
	}
	conn, err := c.w.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("catalog: purge: %w", err)
	}
	defer conn.Close()
	if c.dialect == SQLite {
		if _, err := conn.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
			return nil, fmt.Errorf("catalog: purge: secure_delete: %w", err)
		}
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("catalog: purge: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	// PostgreSQL: serialised with every node's Commit, so a commit that
	// checked the tombstones before this purge cannot re-insert an id it
	// deletes.
	if err := c.lockTx(ctx, tx, lockFeed); err != nil {
		return nil, err
	}
	reports := map[string]bool{}
	for _, id := range ids {
		linked, err := deleteMessageRows(ctx, tx, id)
		if err != nil {
			return nil, fmt.Errorf("catalog: purge: %w", err)
		}
		for _, r := range linked {
			reports[r] = true
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO tombstones(id, purged_at, reason) VALUES (?,?,?) ON CONFLICT DO NOTHING`, id, at.Unix(), reason); err != nil {
			return nil, fmt.Errorf("catalog: tombstone %s: %w", id, err)
		}
	}
	for r := range reports {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM journal_reports WHERE report_id=?`, r).Scan(&n); err != nil {
			return nil, fmt.Errorf("catalog: purge: report %s: %w", r, err)
		}
		if n == 0 {
			orphanReports = append(orphanReports, r)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("catalog: purge: commit: %w", err)
	}
	return orphanReports, nil
}

// Scrub makes sure deleted rows leave no trace on disk: it writes the WAL
// back into the database and truncates it to zero bytes (the WAL keeps old
// page images otherwise). Readers holding old snapshots make the checkpoint
// incomplete; Scrub then retries until ctx ends.
//
// On PostgreSQL, Scrub vacuums the message tables, so the space of deleted
// rows is reclaimed and reused; the server's WAL archive and backups are the
// operator's to expire (docs/configuration.md).
func (c *Catalog) Scrub(ctx context.Context) error {
	if c.dialect == Postgres {
		if _, err := c.w.ExecContext(ctx, `VACUUM messages, origins, envelope, journal_reports`); err != nil {
			return fmt.Errorf("catalog: scrub: %w", err)
		}
		return nil
	}
	for {
		var busy, logFrames, done int
		if err := c.w.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil {
			return fmt.Errorf("catalog: scrub: %w", err)
		}
		if busy == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("catalog: scrub: readers kept the WAL busy: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
