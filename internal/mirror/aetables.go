package mirror

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// aeRow is a peer's row of mirror_ae.
type aeRow struct {
	Instance      string
	Head          int64
	Wanted        string // reason of a requested pass not started yet
	PassStarted   int64  // unix seconds; 0 = no pass in progress
	PassHead      int64  // our feed head when the pass started
	PassReason    string
	Total         int64
	Verified      int64
	LastComplete  int64 // unix seconds of the last completed pass
	ConfirmedHead int64 // every id with seq <= this is on the peer (or purged there)
	Pulled        int64
	Pushed        int64
	Passes        int64 // completed passes
	LastError     string
}

func (t *tables) aeLoad(ctx context.Context, peer string) (aeRow, bool, error) {
	var r aeRow
	err := t.r.QueryRowContext(ctx, `SELECT instance, head, wanted, pass_started, pass_head, pass_reason, total, verified,
		last_complete, confirmed_head, pulled, pushed, passes, last_error FROM mirror_ae WHERE peer=?`, peer).
		Scan(&r.Instance, &r.Head, &r.Wanted, &r.PassStarted, &r.PassHead, &r.PassReason, &r.Total, &r.Verified,
			&r.LastComplete, &r.ConfirmedHead, &r.Pulled, &r.Pushed, &r.Passes, &r.LastError)
	if errors.Is(err, sql.ErrNoRows) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("mirror: anti-entropy state of %s: %w", peer, err)
	}
	return r, true, nil
}

func (t *tables) aeExec(ctx context.Context, what, q string, args ...any) error {
	if _, err := t.w.ExecContext(ctx, q, args...); err != nil {
		return fmt.Errorf("mirror: %s: %w", what, err)
	}
	return nil
}

// aeEnsure creates the peer's row (first contact) with wanted set.
func (t *tables) aeEnsure(ctx context.Context, peer, instance string, head int64, wanted string) error {
	return t.aeExec(ctx, "anti-entropy state", `INSERT INTO mirror_ae(peer, instance, head, wanted) VALUES (?,?,?,?) ON CONFLICT(peer) DO NOTHING`,
		peer, instance, head, wanted)
}

// aeSeen records the peer's instance and head from its latest hello.
func (t *tables) aeSeen(ctx context.Context, peer, instance string, head int64) error {
	return t.aeExec(ctx, "anti-entropy state", `UPDATE mirror_ae SET instance=?, head=? WHERE peer=?`, instance, head, peer)
}

// aeWant requests a pass (kept across restarts until one starts).
func (t *tables) aeWant(ctx context.Context, peer, reason string) error {
	return t.aeExec(ctx, "request anti-entropy", `UPDATE mirror_ae SET wanted=? WHERE peer=?`, reason, peer)
}

// aeForget drops what we believed the peer holds (it was rebuilt or
// restored): confirmed head, known tombstones and a pass in progress.
func (t *tables) aeForget(ctx context.Context, peer, reason string) error {
	if err := t.aeExec(ctx, "reset anti-entropy", `UPDATE mirror_ae SET wanted=?, confirmed_head=0, pass_started=0 WHERE peer=?`, reason, peer); err != nil {
		return err
	}
	if err := t.aeExec(ctx, "reset anti-entropy", `DELETE FROM mirror_ae_done WHERE peer=?`, peer); err != nil {
		return err
	}
	return t.aeExec(ctx, "reset anti-entropy", `DELETE FROM mirror_peer_tombs WHERE peer=?`, peer)
}

func (t *tables) aeStart(ctx context.Context, peer string, head int64, reason string) error {
	if err := t.aeExec(ctx, "start anti-entropy", `DELETE FROM mirror_ae_done WHERE peer=?`, peer); err != nil {
		return err
	}
	return t.aeExec(ctx, "start anti-entropy", `UPDATE mirror_ae SET wanted='', pass_started=?, pass_head=?, pass_reason=?, total=0, verified=0,
		pulled=0, pushed=0, last_error='' WHERE peer=?`, time.Now().Unix(), head, reason, peer)
}

func (t *tables) aeProgress(ctx context.Context, peer string, total, verified, pulled, pushed int64) error {
	return t.aeExec(ctx, "anti-entropy progress", `UPDATE mirror_ae SET total=?, verified=?, pulled=?, pushed=? WHERE peer=?`,
		total, verified, pulled, pushed, peer)
}

func (t *tables) aeDone(ctx context.Context, peer, bucket string) error {
	return t.aeExec(ctx, "anti-entropy progress", `INSERT INTO mirror_ae_done(peer, bucket) VALUES (?,?) ON CONFLICT DO NOTHING`, peer, bucket)
}

func (t *tables) aeDoneSet(ctx context.Context, peer string) (map[string]bool, error) {
	rows, err := t.r.QueryContext(ctx, `SELECT bucket FROM mirror_ae_done WHERE peer=?`, peer)
	if err != nil {
		return nil, fmt.Errorf("mirror: anti-entropy progress: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var b string
		if err := rows.Scan(&b); err != nil {
			return nil, fmt.Errorf("mirror: anti-entropy progress: %w", err)
		}
		out[b] = true
	}
	return out, rows.Err()
}

// aeFinish records a completed pass: every id held when it started is
// now confirmed on the peer.
func (t *tables) aeFinish(ctx context.Context, peer string) error {
	if err := t.aeExec(ctx, "finish anti-entropy", `UPDATE mirror_ae SET pass_started=0, verified=total, last_complete=?, passes=passes+1,
		confirmed_head=CASE WHEN pass_head > confirmed_head THEN pass_head ELSE confirmed_head END, last_error='' WHERE peer=?`, time.Now().Unix(), peer); err != nil {
		return err
	}
	return t.aeExec(ctx, "finish anti-entropy", `DELETE FROM mirror_ae_done WHERE peer=?`, peer)
}

func (t *tables) aeFail(ctx context.Context, peer, msg string) error {
	return t.aeExec(ctx, "anti-entropy error", `UPDATE mirror_ae SET last_error=? WHERE peer=?`, msg, peer)
}

// peerTombs returns the ids peer told us it purged.
func (t *tables) peerTombs(ctx context.Context, peer string) (map[string]bool, error) {
	rows, err := t.r.QueryContext(ctx, `SELECT id FROM mirror_peer_tombs WHERE peer=?`, peer)
	if err != nil {
		return nil, fmt.Errorf("mirror: tombstones of %s: %w", peer, err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("mirror: tombstones of %s: %w", peer, err)
		}
		out[id] = true
	}
	return out, rows.Err()
}

func (t *tables) addPeerTombs(ctx context.Context, peer string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	tx, err := t.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("mirror: record tombstones of %s: %w", peer, err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `INSERT INTO mirror_peer_tombs(peer, id) VALUES (?,?) ON CONFLICT DO NOTHING`, peer, id); err != nil {
			return fmt.Errorf("mirror: record tombstones of %s: %w", peer, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("mirror: record tombstones of %s: %w", peer, err)
	}
	return nil
}

// parkedSet returns which of ids are parked for peer.
func (t *tables) parkedSet(ctx context.Context, peer string) (map[string]bool, error) {
	rows, err := t.r.QueryContext(ctx, `SELECT id FROM mirror_parked WHERE peer=?`, peer)
	if err != nil {
		return nil, fmt.Errorf("mirror: parked of %s: %w", peer, err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("mirror: parked of %s: %w", peer, err)
		}
		out[id] = true
	}
	return out, rows.Err()
}
