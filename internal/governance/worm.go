package governance

// WORM: mirroring retention policies and litigation holds onto the object
// store (S3 Object Lock) through store.Retainer. See the package comment.

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/query"
	"github.com/mailarc/mailarc/internal/store"
)

// wormMigration is governance schema version 2 (SQLite).
const wormMigration = `CREATE TABLE worm_objects (
		id           TEXT PRIMARY KEY,
		retain_until INTEGER NOT NULL,
		legal_hold   INTEGER NOT NULL
	) WITHOUT ROWID;
	CREATE TABLE store_deletes (
		id    TEXT PRIMARY KEY,
		since INTEGER NOT NULL,
		tries INTEGER NOT NULL,
		error TEXT NOT NULL
	) WITHOUT ROWID;`

// pgWormMigration is governance schema version 2 (PostgreSQL).
const pgWormMigration = `CREATE TABLE worm_objects (
		id           TEXT COLLATE "C" PRIMARY KEY,
		retain_until BIGINT NOT NULL,
		legal_hold   INTEGER NOT NULL
	);
	CREATE TABLE store_deletes (
		id    TEXT COLLATE "C" PRIMARY KEY,
		since BIGINT NOT NULL,
		tries INTEGER NOT NULL,
		error TEXT NOT NULL
	);`

// wormStateKey is the governance_state key of the WORM sync's progress.
const wormStateKey = "worm"

// wormState is the persisted progress of the WORM sync (JSON in
// governance_state).
type wormState struct {
	// Cursor is the catalog mseq up to which every message's lock state
	// has been applied (the incremental pass follows the index watermark).
	Cursor int64 `json:"cursor"`
	// Policy is the retention version whose dates every message has had
	// applied (nil: none yet); Holds the fingerprint of the active hold set
	// applied.
	Policy *int64  `json:"policy,omitempty"`
	Holds  *string `json:"holds,omitempty"`
	// Full is a full pass in progress.
	Full *wormFull `json:"full,omitempty"`
}

// wormFull is a resumable full pass over the catalog, run after the policy
// version or the set of active holds changed.
type wormFull struct {
	Policy    int64  `json:"policy"`
	Holds     string `json:"holds"`
	Retention bool   `json:"retention"` // recompute retain-until dates
	LegalHold bool   `json:"legal_hold"`
	Seq       int64  `json:"seq"` // feed position reached
	WM        int64  `json:"wm"`  // index watermark when the pass started
}

// wormRuntime is the in-memory part of the WORM sync.
type wormRuntime struct {
	mu   sync.Mutex    // one sync at a time
	kick chan struct{} // wakes WORMLoop after a policy or hold change

	statMu      sync.Mutex
	errors      int64
	lastError   string
	lastErrorAt time.Time
	lastSync    time.Time
}

func (w *wormRuntime) noteError(err error, at time.Time) {
	w.statMu.Lock()
	defer w.statMu.Unlock()
	w.errors++
	w.lastError = err.Error()
	w.lastErrorAt = at
}

func (w *wormRuntime) noteSync(at time.Time) {
	w.statMu.Lock()
	defer w.statMu.Unlock()
	w.lastSync = at
}

// kickWORM wakes the WORM loop (no-op when it is busy or not running).
func (s *Service) kickWORM() {
	select {
	case s.worm.kick <- struct{}{}:
	default:
	}
}

// retainer returns the store's Retainer when WORM is in use: the store
// implements store.Retainer and, if it can tell, has Object Lock enabled.
func (s *Service) retainer() store.Retainer {
	r, ok := s.st.(store.Retainer)
	if !ok {
		return nil
	}
	if l, ok := s.st.(interface{ ObjectLock() bool }); ok && !l.ObjectLock() {
		return nil
	}
	return r
}

// WORMEnabled reports whether the store enforces retention and holds
// itself (S3 Object Lock), so that WORMLoop has work to do.
func (s *Service) WORMEnabled() bool { return s.retainer() != nil }

// WORMResult is the outcome of one SyncWORM.
type WORMResult struct {
	// Retained counts objects whose retain-until date was set or extended.
	Retained int64 `json:"retained"`
	// HoldsPlaced and HoldsLifted count S3 legal holds placed and lifted.
	HoldsPlaced int64 `json:"holds_placed"`
	HoldsLifted int64 `json:"holds_lifted"`
	// Missing counts objects the store did not have (skipped).
	Missing int64 `json:"missing"`
	// Unindexed counts messages at or below the index watermark but absent
	// from the index; they are retried by the next full pass.
	Unindexed int64 `json:"unindexed"`
	// FullPass is set when a full pass (after a policy or hold change)
	// completed.
	FullPass bool `json:"full_pass"`
	// Deleted counts purged messages' objects whose delete, refused
	// earlier, succeeded now.
	Deleted int64 `json:"deleted"`
}

// WORMStatus describes the WORM sync, for status pages and metrics.
type WORMStatus struct {
	// Enabled: the store enforces retention and holds (S3 Object Lock).
	Enabled bool `json:"enabled"`
	// LagMessages counts messages whose object lock state is not applied
	// yet (changed after the sync's cursor; includes the index backlog).
	LagMessages int64 `json:"lag_messages"`
	// Resync is set while a full pass after a policy or hold change is
	// pending or running.
	Resync *WORMResync `json:"resync,omitempty"`
	// PolicyVersion is the retention version fully applied (-1: none yet).
	PolicyVersion int64 `json:"policy_version"`
	// RetainedObjects and HeldObjects count the objects governance has
	// given a retain-until date or an S3 legal hold.
	RetainedObjects int64 `json:"retained_objects"`
	HeldObjects     int64 `json:"held_objects"`
	// PendingDeletes counts purged messages' objects the store has not
	// deleted yet (refused: still locked, or failed); retried by every
	// sweep and sync.
	PendingDeletes int64 `json:"pending_deletes"`
	// Errors counts failed syncs and object operations since start.
	Errors      int64     `json:"errors"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	LastSync    time.Time `json:"last_sync,omitzero"`
}

// WORMResync is the progress of a full pass.
type WORMResync struct {
	Reason  string `json:"reason"`   // "policy", "holds" or "policy+holds"
	DoneSeq int64  `json:"done_seq"` // feed position reached
	HeadSeq int64  `json:"head_seq"` // highest feed position
}

// WORMStatus returns the state of the WORM sync. PendingDeletes is
// reported for every store; the rest only matters when Enabled.
func (s *Service) WORMStatus(ctx context.Context) (WORMStatus, error) {
	st := WORMStatus{Enabled: s.WORMEnabled(), PolicyVersion: -1}
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM store_deletes`).Scan(&st.PendingDeletes); err != nil {
		return st, fmt.Errorf("governance: worm status: %w", err)
	}
	s.worm.statMu.Lock()
	st.Errors, st.LastError, st.LastErrorAt, st.LastSync = s.worm.errors, s.worm.lastError, s.worm.lastErrorAt, s.worm.lastSync
	s.worm.statMu.Unlock()
	if !st.Enabled {
		return st, nil
	}
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM worm_objects WHERE retain_until > 0`).Scan(&st.RetainedObjects); err != nil {
		return st, fmt.Errorf("governance: worm status: %w", err)
	}
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM worm_objects WHERE legal_hold = 1`).Scan(&st.HeldObjects); err != nil {
		return st, fmt.Errorf("governance: worm status: %w", err)
	}
	ws, err := s.loadWORMState(ctx)
	if err != nil {
		return st, err
	}
	if ws.Policy != nil {
		st.PolicyVersion = *ws.Policy
	}
	if st.LagMessages, err = s.cat.CountChangedAfter(ctx, ws.Cursor); err != nil {
		return st, err
	}
	ret, err := s.Retention(ctx)
	if err != nil {
		return st, err
	}
	_, fp, err := s.activeHoldSet(ctx)
	if err != nil {
		return st, err
	}
	needRet, needHold := ws.Policy == nil || *ws.Policy != ret.Version, ws.Holds == nil || *ws.Holds != fp
	if needRet || needHold {
		rs := &WORMResync{Reason: resyncReason(needRet, needHold)}
		if ws.Full != nil && ws.Full.Policy == ret.Version && ws.Full.Holds == fp {
			rs.DoneSeq = ws.Full.Seq
		}
		if rs.HeadSeq, err = s.cat.Head(ctx); err != nil {
			return st, err
		}
		st.Resync = rs
	}
	return st, nil
}

func resyncReason(ret, hold bool) string {
	switch {
	case ret && hold:
		return "policy+holds"
	case ret:
		return "policy"
	}
	return "holds"
}

// WORMLoop keeps the object store's lock state in step with governance
// until ctx ends: at start, every Options.WORMInterval, and soon after a
// policy or hold change. It returns at once when WORM is not in use.
func (s *Service) WORMLoop(ctx context.Context) {
	if !s.WORMEnabled() {
		return
	}
	t := time.NewTicker(s.opt.WORMInterval)
	defer t.Stop()
	for {
		res, err := s.SyncWORM(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			s.log.Error("worm sync failed; retrying", "err", err)
		case res.Retained+res.HoldsPlaced+res.HoldsLifted+res.Deleted > 0 || res.FullPass:
			s.log.Info("worm sync", "retained", res.Retained, "holds_placed", res.HoldsPlaced,
				"holds_lifted", res.HoldsLifted, "deleted", res.Deleted, "full_pass", res.FullPass)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.worm.kick:
		}
	}
}

// SyncWORM applies retention dates and legal holds to the objects of every
// message whose lock state is not applied yet: first a full pass when the
// policy version or the set of active holds changed since the last one,
// then the messages indexed since the last sync. It also retries purged
// objects the store refused to delete. Without WORM it does nothing.
func (s *Service) SyncWORM(ctx context.Context) (WORMResult, error) {
	var res WORMResult
	r := s.retainer()
	if r == nil {
		return res, nil
	}
	s.worm.mu.Lock()
	defer s.worm.mu.Unlock()
	err := s.syncWORM(ctx, r, &res)
	if err != nil {
		s.worm.noteError(err, s.now())
	} else {
		s.worm.noteSync(s.now())
	}
	return res, err
}

func (s *Service) syncWORM(ctx context.Context, r store.Retainer, res *WORMResult) error {
	n, err := s.retryDeletes(ctx)
	res.Deleted += n
	if err != nil {
		return err
	}
	st, err := s.Retention(ctx)
	if err != nil {
		return err
	}
	c, _, err := st.Retention.compile()
	if err != nil {
		return fmt.Errorf("governance: stored policy version %d: %w", st.Version, err)
	}
	holds, fp, err := s.activeHoldSet(ctx)
	if err != nil {
		return err
	}
	ws, err := s.loadWORMState(ctx)
	if err != nil {
		return err
	}
	needRet, needHold := ws.Policy == nil || *ws.Policy != st.Version, ws.Holds == nil || *ws.Holds != fp
	if needRet || needHold {
		if ws.Full == nil || ws.Full.Policy != st.Version || ws.Full.Holds != fp {
			wm, err := s.idx.Watermark(ctx)
			if err != nil {
				return fmt.Errorf("governance: index watermark: %w", err)
			}
			ws.Full = &wormFull{Policy: st.Version, Holds: fp, Retention: needRet, LegalHold: needHold, WM: wm}
		}
		for {
			if err := ctx.Err(); err != nil {
				return err
			}
			ms, err := s.cat.FeedAfter(ctx, ws.Full.Seq, s.opt.BatchSize)
			if err != nil {
				return err
			}
			if len(ms) == 0 {
				break
			}
			wm, err := s.idx.Watermark(ctx)
			if err != nil {
				return fmt.Errorf("governance: index watermark: %w", err)
			}
			// Messages the index has not reached are left to the
			// incremental pass, whose cursor is below their mseq.
			var ready []*catalog.Message
			for _, m := range ms {
				if m.MSeq <= wm {
					ready = append(ready, m)
				}
			}
			if err := s.wormBatch(ctx, r, c, holds, ready, ws.Full.Retention, ws.Full.LegalHold, res); err != nil {
				return err
			}
			ws.Full.Seq = ms[len(ms)-1].Seq
			if err := s.saveWORMState(ctx, ws); err != nil {
				return err
			}
		}
		v, h := st.Version, fp
		ws.Policy, ws.Holds = &v, &h
		// Everything the index had reached when the pass started has
		// been evaluated with the current policy and holds.
		ws.Cursor = max(ws.Cursor, ws.Full.WM)
		ws.Full = nil
		res.FullPass = true
		if err := s.saveWORMState(ctx, ws); err != nil {
			return err
		}
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		wm, err := s.idx.Watermark(ctx)
		if err != nil {
			return fmt.Errorf("governance: index watermark: %w", err)
		}
		if wm <= ws.Cursor {
			return nil
		}
		ms, err := s.cat.ChangedAfter(ctx, ws.Cursor, s.opt.BatchSize)
		if err != nil {
			return err
		}
		var ready []*catalog.Message
		for _, m := range ms {
			if m.MSeq > wm {
				break
			}
			ready = append(ready, m)
		}
		if len(ready) == 0 {
			return nil
		}
		if err := s.wormBatch(ctx, r, c, holds, ready, true, true, res); err != nil {
			return err
		}
		ws.Cursor = ready[len(ready)-1].MSeq
		if err := s.saveWORMState(ctx, ws); err != nil {
			return err
		}
	}
}

// activeHoldSet returns the active holds' conditions and a fingerprint of
// the set (it changes when a hold is created, released or expires).
func (s *Service) activeHoldSet(ctx context.Context) ([]*query.Query, string, error) {
	hs, err := s.Holds(ctx, false)
	if err != nil {
		return nil, "", err
	}
	ids := make([]string, 0, len(hs))
	qs := make([]*query.Query, 0, len(hs))
	for _, h := range hs {
		q, err := h.ast()
		if err != nil {
			return nil, "", err
		}
		qs = append(qs, q)
		ids = append(ids, h.ID)
	}
	slices.Sort(ids)
	sum := sha256.Sum256([]byte(strings.Join(ids, ",")))
	return qs, hex.EncodeToString(sum[:12]), nil
}

func (s *Service) loadWORMState(ctx context.Context) (wormState, error) {
	var ws wormState
	var v string
	err := s.r.QueryRowContext(ctx, `SELECT value FROM governance_state WHERE key=?`, wormStateKey).Scan(&v)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return ws, nil
	case err != nil:
		return ws, fmt.Errorf("governance: read worm state: %w", err)
	}
	if err := json.Unmarshal([]byte(v), &ws); err != nil {
		return ws, fmt.Errorf("governance: stored worm state: %w", err)
	}
	return ws, nil
}

func (s *Service) saveWORMState(ctx context.Context, ws wormState) error {
	b, err := json.Marshal(ws)
	if err != nil {
		return fmt.Errorf("governance: encode worm state: %w", err)
	}
	_, err = s.w.ExecContext(ctx, `INSERT INTO governance_state(key, value) VALUES (?, ?)
		ON CONFLICT(key) DO UPDATE SET value=excluded.value`, wormStateKey, string(b))
	if err != nil {
		return fmt.Errorf("governance: store worm state: %w", err)
	}
	return nil
}

// wormRow is what governance has applied to one object.
type wormRow struct {
	until int64 // retain-until, Unix seconds; 0 = none
	hold  bool
}

// wormRows loads the applied state of ids (absent ids have none).
func (s *Service) wormRows(ctx context.Context, ids []string) (map[string]wormRow, error) {
	out := make(map[string]wormRow, len(ids))
	for part := range slices.Chunk(ids, 500) {
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		rows, err := s.r.QueryContext(ctx, `SELECT id, retain_until, legal_hold FROM worm_objects WHERE id IN (`+marks(len(part))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("governance: read worm state: %w", err)
		}
		for rows.Next() {
			var id string
			var r wormRow
			var h int64
			if err := rows.Scan(&id, &r.until, &h); err != nil {
				rows.Close()
				return nil, fmt.Errorf("governance: read worm state: %w", err)
			}
			r.hold = h != 0
			out[id] = r
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("governance: read worm state: %w", err)
		}
	}
	return out, nil
}

func marks(n int) string {
	return strings.TrimSuffix(strings.Repeat("?,", n), ",")
}

// retentionExtender is implemented by stores (s3store) that can extend a
// retain-until date without ever shortening one, reporting the date in
// force; governance prefers it to store.Retainer.SetRetention.
type retentionExtender interface {
	ExtendRetention(ctx context.Context, id string, until time.Time) (time.Time, error)
}

// wormOp is the change to apply to one object.
type wormOp struct {
	id      string
	until   int64 // new retain-until (0: unchanged)
	setHold bool
	hold    bool
	prev    wormRow
}

// wormBatch evaluates msgs (all at or below the index watermark) against
// the policies (when doRet) and the active holds (when doHold), and applies
// the differences to the store: retain-until dates are only ever extended
// (never shortened or cleared), legal holds placed or lifted. Applied state
// is recorded after the store accepted it.
func (s *Service) wormBatch(ctx context.Context, r store.Retainer, c *compiled, holds []*query.Query,
	msgs []*catalog.Message, doRet, doHold bool, res *WORMResult) error {
	if len(msgs) == 0 {
		return nil
	}
	ids := make([]string, len(msgs))
	for i, m := range msgs {
		ids[i] = m.ID
	}
	present, err := s.idx.Matches(ctx, &query.Query{}, ids)
	if err != nil {
		return fmt.Errorf("governance: index lookup: %w", err)
	}
	indexed := toSet(present)
	matched := map[string][]int{}
	if doRet {
		for i, p := range c.policies {
			hits, err := s.idx.Matches(ctx, p.q, ids)
			if err != nil {
				return fmt.Errorf("governance: policy %q: %w", p.name, err)
			}
			for _, id := range hits {
				matched[id] = append(matched[id], i)
			}
		}
	}
	held := map[string]bool{}
	if doHold {
		for _, q := range holds {
			hits, err := s.idx.Matches(ctx, q, ids)
			if err != nil {
				return fmt.Errorf("governance: hold check: %w", err)
			}
			for _, id := range hits {
				held[id] = true
			}
		}
	}
	now := s.now().Unix()
	// Desired retain-until per object: messages, and journal report blobs
	// (which contain the message) with the latest date of their messages.
	until := map[string]int64{}
	var objs []string
	for _, m := range msgs {
		if !indexed[m.ID] {
			res.Unindexed++
			continue
		}
		objs = append(objs, m.ID)
		if !doRet {
			continue
		}
		t, ok := c.expiry(m.Date, matched[m.ID])
		if !ok {
			continue // kept forever: no retain-until (see the package comment)
		}
		u := t.Unix()
		if t.After(time.Unix(u, 0)) {
			u++ // round up to whole seconds
		}
		if u <= now {
			continue // already expired: nothing to protect
		}
		for _, id := range append([]string{m.ID}, m.Reports...) {
			until[id] = max(until[id], u)
		}
	}
	isMsg := toSet(objs)
	var reports []string
	for id := range until {
		if !isMsg[id] {
			reports = append(reports, id)
		}
	}
	slices.Sort(reports)
	objs = append(objs, reports...)
	rows, err := s.wormRows(ctx, objs)
	if err != nil {
		return err
	}
	var ops []wormOp
	for _, id := range objs {
		prev := rows[id]
		op := wormOp{id: id, prev: prev}
		if u := until[id]; u > prev.until {
			op.until = u
		}
		if doHold && isMsg[id] && held[id] != prev.hold {
			op.setHold, op.hold = true, held[id]
		}
		if op.until != 0 || op.setHold {
			ops = append(ops, op)
		}
	}
	return s.applyWORM(ctx, r, ops, res)
}

// applyWORM runs ops against the store (Options.WORMConcurrency at once)
// and records those the store accepted. Objects the store does not have
// are skipped; any other failure is returned after recording the rest, so
// the caller retries the batch.
func (s *Service) applyWORM(ctx context.Context, r store.Retainer, ops []wormOp, res *WORMResult) error {
	if len(ops) == 0 {
		return nil
	}
	type outcome struct{ ret, hold error }
	outs := make([]outcome, len(ops))
	sem := make(chan struct{}, s.opt.WORMConcurrency)
	var wg sync.WaitGroup
	for i := range ops {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			op := &ops[i]
			if op.until != 0 {
				t := time.Unix(op.until, 0).UTC()
				if x, ok := r.(retentionExtender); ok {
					inForce, err := x.ExtendRetention(ctx, op.id, t)
					if outs[i].ret = err; err != nil {
						return
					}
					op.until = max(op.until, inForce.Unix())
				} else if outs[i].ret = r.SetRetention(ctx, op.id, t); outs[i].ret != nil {
					return
				}
			}
			if op.setHold {
				outs[i].hold = r.SetLegalHold(ctx, op.id, op.hold)
			}
		}()
	}
	wg.Wait()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("governance: record worm state: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	var failed []error
	for i, op := range ops {
		o := outs[i]
		if errors.Is(o.ret, store.ErrNotFound) || errors.Is(o.hold, store.ErrNotFound) {
			res.Missing++
			s.log.Warn("worm: object missing from the store; not protected", "id", op.id)
			continue
		}
		if o.ret != nil {
			s.worm.noteError(o.ret, s.now())
			failed = append(failed, o.ret)
			continue // nothing applied
		}
		if o.hold != nil {
			s.worm.noteError(o.hold, s.now())
			failed = append(failed, o.hold)
			op.setHold = false // the retention (if any) stands
		}
		row := op.prev
		if op.until != 0 {
			row.until = op.until
			res.Retained++
		}
		if op.setHold {
			row.hold = op.hold
			if op.hold {
				res.HoldsPlaced++
			} else {
				res.HoldsLifted++
			}
		}
		if op.until == 0 && !op.setHold {
			continue
		}
		if row.until == 0 && !row.hold {
			_, err = tx.ExecContext(ctx, `DELETE FROM worm_objects WHERE id=?`, op.id)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO worm_objects(id, retain_until, legal_hold) VALUES (?,?,?)
				ON CONFLICT(id) DO UPDATE SET retain_until=excluded.retain_until, legal_hold=excluded.legal_hold`,
				op.id, row.until, boolInt(row.hold))
		}
		if err != nil {
			return fmt.Errorf("governance: record worm state: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("governance: record worm state: %w", err)
	}
	if len(failed) > 0 {
		return fmt.Errorf("governance: worm: %d of %d object lock updates failed (retried on the next sync): %w",
			len(failed), len(ops), errors.Join(failed[:min(len(failed), 3)]...))
	}
	return nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// deferLocked splits ids (expired, unheld messages) into those whose
// objects the store will let governance delete and the number still
// protected by a retain-until date in the future or a legal hold not lifted
// yet; those are purged by a later sweep.
func (s *Service) deferLocked(ctx context.Context, ids []string) ([]string, int64, error) {
	if len(ids) == 0 || s.retainer() == nil {
		return ids, 0, nil
	}
	rows, err := s.wormRows(ctx, ids)
	if err != nil {
		return nil, 0, err
	}
	now := s.now().Unix()
	keep := ids[:0:0]
	var locked int64
	for _, id := range ids {
		if r, ok := rows[id]; ok && (r.hold || r.until > now) {
			locked++
			continue
		}
		keep = append(keep, id)
	}
	return keep, locked, nil
}

// markDeletes records that the store objects of ids are to be deleted, so
// that an object whose delete fails (refused by Object Lock, or any other
// error) is retried until it is gone.
func (s *Service) markDeletes(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("governance: record store deletes: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	now := s.now().Unix()
	for _, id := range ids {
		if _, err := tx.ExecContext(ctx, `INSERT INTO store_deletes(id, since, tries, error) VALUES (?,?,0,'') ON CONFLICT DO NOTHING`, id, now); err != nil {
			return fmt.Errorf("governance: record store deletes: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("governance: record store deletes: %w", err)
	}
	return nil
}

// doneDeletes forgets ids whose objects are gone (pending delete and
// applied lock state).
func (s *Service) doneDeletes(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("governance: clear store deletes: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	for part := range slices.Chunk(ids, 500) {
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		for _, table := range []string{"store_deletes", "worm_objects"} {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+table+` WHERE id IN (`+marks(len(part))+`)`, args...); err != nil {
				return fmt.Errorf("governance: clear store deletes: %w", err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("governance: clear store deletes: %w", err)
	}
	return nil
}

// failedDelete records a failed delete attempt of id.
func (s *Service) failedDelete(ctx context.Context, id string, cause error) error {
	msg := cause.Error()
	if len(msg) > 500 {
		msg = msg[:500]
	}
	_, err := s.w.ExecContext(ctx, `UPDATE store_deletes SET tries=tries+1, error=? WHERE id=?`, msg, id)
	if err != nil {
		return fmt.Errorf("governance: record store delete failure: %w", err)
	}
	return nil
}

// retryDeletes retries the pending store deletes (up to 1000 per call)
// and returns how many objects are now gone. An id still in the catalog is
// a purge that never committed: it is dropped from the list, not deleted.
// A delete refused by Object Lock lifts a leftover legal hold first (the
// message was purged, so no active hold covered it) and leaves the id for
// a later retry while its retain-until date has not passed.
func (s *Service) retryDeletes(ctx context.Context) (int64, error) {
	s.purgeMu.Lock()
	defer s.purgeMu.Unlock()
	rows, err := s.r.QueryContext(ctx, `SELECT id FROM store_deletes ORDER BY id LIMIT 1000`)
	if err != nil {
		return 0, fmt.Errorf("governance: read store deletes: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, fmt.Errorf("governance: read store deletes: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		return 0, fmt.Errorf("governance: read store deletes: %w", err)
	}
	if len(ids) == 0 {
		return 0, nil
	}
	live, err := s.cat.Exists(ctx, ids)
	if err != nil {
		return 0, err
	}
	var stale, gone []string
	r := s.retainer()
	for _, id := range ids {
		if live[id] {
			stale = append(stale, id)
			continue
		}
		err := s.st.Delete(ctx, []string{id})
		if errors.Is(err, store.ErrLocked) && r != nil {
			if herr := r.SetLegalHold(ctx, id, false); herr == nil {
				err = s.st.Delete(ctx, []string{id})
			}
		}
		if err != nil {
			if ferr := s.failedDelete(ctx, id, err); ferr != nil {
				return int64(len(gone)), ferr
			}
			continue
		}
		gone = append(gone, id)
	}
	if len(stale) > 0 {
		args := make([]any, len(stale))
		for i, id := range stale {
			args[i] = id
		}
		if _, err := s.w.ExecContext(ctx, `DELETE FROM store_deletes WHERE id IN (`+marks(len(stale))+`)`, args...); err != nil {
			return 0, fmt.Errorf("governance: clear store deletes: %w", err)
		}
	}
	return int64(len(gone)), s.doneDeletes(ctx, gone)
}
