package catalog

import (
	"context"
	"fmt"
	"time"
)

// This file holds the catalog queries of mirroring's anti-entropy: walks
// over the held ids by message date and over the tombstoned ids, and the
// cursor reset for a peer that was rebuilt.

// WalkIDsByDate calls fn for every held message whose date (Unix seconds,
// the messages.date column) is in [from, to), in no particular order. It
// uses the date index, so a narrow range is cheap.
func (c *Catalog) WalkIDsByDate(ctx context.Context, from, to int64, fn func(id string, date int64) error) error {
	rows, err := c.r.QueryContext(ctx, `SELECT id, date FROM messages WHERE date >= ? AND date < ?`, from, to)
	if err != nil {
		return fmt.Errorf("catalog: walk ids by date: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		var d int64
		if err := rows.Scan(&id, &d); err != nil {
			return fmt.Errorf("catalog: walk ids by date: %w", err)
		}
		if err := fn(id, d); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("catalog: walk ids by date: %w", err)
	}
	return nil
}

// WalkTombstones calls fn for every tombstoned id starting with prefix
// (lowercase hex; "" for all).
func (c *Catalog) WalkTombstones(ctx context.Context, prefix string, fn func(id string) error) error {
	rows, err := c.r.QueryContext(ctx, `SELECT id FROM tombstones WHERE id >= ? AND id < ?`, prefix, prefix+"\x7f")
	if err != nil {
		return fmt.Errorf("catalog: walk tombstones: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return fmt.Errorf("catalog: walk tombstones: %w", err)
		}
		if err := fn(id); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("catalog: walk tombstones: %w", err)
	}
	return nil
}

// ResetPeerCursor moves peer's cursor back to 0 (the peer was rebuilt or
// restored from a backup: what it acknowledged before may be gone), so the
// whole feed is offered to it again (it answers "have" for what it holds).
func (c *Catalog) ResetPeerCursor(ctx context.Context, peer string) error {
	_, err := c.w.ExecContext(ctx, `INSERT INTO peer_cursors(peer, seq, updated) VALUES (?,0,?)
		ON CONFLICT(peer) DO UPDATE SET seq=0, updated=excluded.updated`, peer, time.Now().Unix())
	if err != nil {
		return fmt.Errorf("catalog: reset cursor of peer %s: %w", peer, err)
	}
	return nil
}

// MessagesByID returns the catalog rows (with origins and envelope) of the
// held ids among ids, in batches, keyed by id.
func (c *Catalog) MessagesByID(ctx context.Context, ids []string) (map[string]*Message, error) {
	out := make(map[string]*Message, len(ids))
	for len(ids) > 0 {
		n := min(len(ids), 500)
		ms, err := c.GetMany(ctx, ids[:n])
		if err != nil {
			return nil, err
		}
		for _, m := range ms {
			out[m.ID] = m
		}
		ids = ids[n:]
	}
	return out, nil
}
