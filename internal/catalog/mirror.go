package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// This file holds the catalog queries of mirroring: the per-peer cursor in
// peer_cursors and the size of a peer's queue. A message is "pushable" when
// at least one of its origins is not a peer ("peer:NAME"), or when it has no
// origin at all: mail that reached this node only from peers is not pushed on.

// pushable is the SQL condition (over messages m) of a pushable message.
const pushable = `(EXISTS (SELECT 1 FROM origins o WHERE o.seq = m.seq AND o.origin NOT LIKE 'peer:%')
	OR NOT EXISTS (SELECT 1 FROM origins o WHERE o.seq = m.seq))`

// PeerCursor returns the change-feed position up to which peer has every
// pushable message (0 when the peer was never synced).
func (c *Catalog) PeerCursor(ctx context.Context, peer string) (int64, error) {
	var seq int64
	err := c.r.QueryRowContext(ctx, `SELECT seq FROM peer_cursors WHERE peer=?`, peer).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("catalog: cursor of peer %s: %w", peer, err)
	}
	return seq, nil
}

// SetPeerCursor durably records peer's cursor. It never moves a cursor
// backwards.
func (c *Catalog) SetPeerCursor(ctx context.Context, peer string, seq int64) error {
	_, err := c.w.ExecContext(ctx, `INSERT INTO peer_cursors(peer, seq, updated) VALUES (?,?,?)
		ON CONFLICT(peer) DO UPDATE SET seq=CASE WHEN excluded.seq > peer_cursors.seq THEN excluded.seq ELSE peer_cursors.seq END,
		updated=excluded.updated`, peer, seq, time.Now().Unix())
	if err != nil {
		return fmt.Errorf("catalog: set cursor of peer %s: %w", peer, err)
	}
	return nil
}

// PushableAfter counts the pushable messages with seq above after and
// returns the arrival time of the oldest (zero when none).
func (c *Catalog) PushableAfter(ctx context.Context, after int64) (int64, time.Time, error) {
	var n int64
	var oldest sql.NullInt64
	err := c.r.QueryRowContext(ctx, `SELECT count(*), min(m.arrival) FROM messages m WHERE m.seq > ? AND `+pushable, after).Scan(&n, &oldest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("catalog: pushable after %d: %w", after, err)
	}
	var t time.Time
	if oldest.Valid && n > 0 {
		t = time.Unix(0, oldest.Int64).UTC()
	}
	return n, t, nil
}

// feedSeqKey is the meta key of the highest seq assigned on PostgreSQL
// (SQLite keeps it in sqlite_sequence).
const feedSeqKey = "feed_seq"

// Head returns the highest seq ever assigned (cheaper than Stats).
func (c *Catalog) Head(ctx context.Context) (int64, error) {
	q := `SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name='messages'),0)`
	if c.dialect == Postgres {
		q = `SELECT coalesce((SELECT CAST(value AS BIGINT) FROM meta WHERE key='` + feedSeqKey + `'),0)`
	}
	var h int64
	if err := c.r.QueryRowContext(ctx, q).Scan(&h); err != nil {
		return 0, fmt.Errorf("catalog: head: %w", err)
	}
	return h, nil
}
