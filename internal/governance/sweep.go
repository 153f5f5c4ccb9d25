package governance

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/query"
	"github.com/mailarc/mailarc/internal/store"
)

// RunResult is the outcome of a sweep.
type RunResult struct {
	DryRun bool `json:"dry_run"`
	// WouldPurge (dry run) or Purged (real run) counts expired, unheld messages.
	WouldPurge int64 `json:"would_purge"`
	Purged     int64 `json:"purged"`
	// Held counts expired messages kept by an active hold.
	Held int64 `json:"held"`
	// Deferred counts expired, unheld messages kept because a mirrored
	// peer has not acknowledged them yet (purge_requires_peers); HeldBackBy
	// names those peers. A later sweep purges them.
	Deferred   int64    `json:"deferred,omitempty"`
	HeldBackBy []string `json:"held_back_by,omitempty"`
	// Locked counts expired, unheld messages kept because their object is
	// still locked in the object store (S3 Object Lock: a retain-until
	// date set under a longer policy not passed yet, or a legal hold not
	// lifted yet). A later sweep purges them.
	Locked int64 `json:"locked,omitempty"`
	// Pending counts possibly expired messages the index has not indexed
	// yet; they are evaluated by a later sweep.
	Pending int64 `json:"pending"`
	// Samples are some ids a dry run would purge.
	Samples []string `json:"samples,omitempty"`
	// Version is the policy version evaluated.
	Version int64 `json:"version"`
	// AwaitingConfirmation is set by a scheduled sweep that purged nothing
	// because the current policy version is not confirmed.
	AwaitingConfirmation bool `json:"awaiting_confirmation,omitempty"`
}

// ConfirmError is returned by Run when confirm differs from the current
// dry-run count.
type ConfirmError struct {
	Given, Count int64
}

func (e *ConfirmError) Error() string {
	return fmt.Sprintf("confirm=%d does not match the %d messages a run would purge now: review the dry run and confirm its count", e.Given, e.Count)
}

// DryRun counts what a real run would purge now, without changing anything.
func (s *Service) DryRun(ctx context.Context, user string) (RunResult, error) {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	res, err := s.sweep(ctx, true)
	if err != nil {
		return res, err
	}
	if user != "" {
		err = s.record(ctx, user, audit.ActionRetentionRun, res)
	}
	return res, err
}

// Run purges what the current policy expires, if confirm equals the
// dry-run count; it then records the policy version as confirmed, so
// scheduled sweeps purge under it.
func (s *Service) Run(ctx context.Context, user string, confirm int64) (RunResult, error) {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	dry, err := s.sweep(ctx, true)
	if err != nil {
		return dry, err
	}
	if dry.WouldPurge != confirm {
		_ = s.record(ctx, user, audit.ActionRetentionRun, map[string]any{"refused": true, "confirm": confirm, "would_purge": dry.WouldPurge, "version": dry.Version})
		return dry, &ConfirmError{Given: confirm, Count: dry.WouldPurge}
	}
	if err := s.confirm(ctx, Confirmation{Version: dry.Version, Count: confirm, By: user, At: s.now().UTC().Truncate(time.Second)}); err != nil {
		return dry, err
	}
	res, err := s.sweep(ctx, false)
	if rerr := s.record(ctx, user, audit.ActionRetentionRun, res); err == nil {
		err = rerr
	}
	return res, err
}

// Scheduled is one scheduled sweep: a real run when the current policy
// version is confirmed, else only a dry run reported as awaiting
// confirmation.
func (s *Service) Scheduled(ctx context.Context) (RunResult, error) {
	s.runMu.Lock()
	defer s.runMu.Unlock()
	st, err := s.Retention(ctx)
	if err != nil {
		return RunResult{}, err
	}
	if st.Confirmed == nil || st.Confirmed.Version != st.Version {
		// Earlier purges' objects the store refused to delete are retried
		// even while the current policy awaits confirmation.
		if n, err := s.retryDeletes(ctx); err != nil {
			return RunResult{}, err
		} else if n > 0 {
			if err := s.scrub(ctx); err != nil {
				return RunResult{}, err
			}
		}
		res, err := s.sweep(ctx, true)
		res.AwaitingConfirmation = true
		if err == nil && res.WouldPurge > 0 {
			s.log.Warn("retention policy not confirmed: nothing purged; review a dry run and confirm it",
				"version", st.Version, "would_purge", res.WouldPurge)
		}
		return res, err
	}
	res, err := s.sweep(ctx, false)
	if res.Purged > 0 || err != nil {
		if rerr := s.record(ctx, "system", audit.ActionRetentionRun, map[string]any{"scheduled": true, "result": res, "error": errString(err)}); err == nil {
			err = rerr
		}
	}
	return res, err
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// RunLoop runs Scheduled every Options.Interval until ctx ends.
func (s *Service) RunLoop(ctx context.Context) {
	t := time.NewTicker(s.opt.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		res, err := s.Scheduled(ctx)
		if err != nil && !errors.Is(err, context.Canceled) {
			s.log.Error("scheduled retention sweep failed", "err", err)
		} else if res.Purged > 0 {
			s.log.Info("retention sweep", "purged", res.Purged, "held", res.Held, "pending", res.Pending)
		}
	}
}

// sweep evaluates (and unless dry, purges) every possibly expired message.
func (s *Service) sweep(ctx context.Context, dry bool) (RunResult, error) {
	st, err := s.Retention(ctx)
	if err != nil {
		return RunResult{}, err
	}
	res := RunResult{DryRun: dry, Version: st.Version, Samples: []string{}}
	c, _, err := st.Retention.compile()
	if err != nil {
		return res, fmt.Errorf("governance: stored policy version %d: %w", st.Version, err)
	}
	now := s.now()
	cutoff, ok := c.cutoff(now)
	if !ok {
		return res, nil
	}
	purgedAny := false
	if !dry {
		// Objects of earlier purges the store refused to delete.
		n, err := s.retryDeletes(ctx)
		if err != nil {
			return res, err
		}
		purgedAny = n > 0
	}
	var after int64
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		cands, err := s.cat.Candidates(ctx, cutoff, after, s.opt.BatchSize)
		if err != nil {
			return res, err
		}
		if len(cands) == 0 {
			break
		}
		after = cands[len(cands)-1].Seq
		expired, pending, err := s.expired(ctx, c, cands, now)
		if err != nil {
			return res, err
		}
		res.Pending += pending
		if len(expired) == 0 {
			continue
		}
		if dry {
			held, err := s.held(ctx, expired)
			if err != nil {
				return res, err
			}
			var unheld []string
			for _, id := range expired {
				if held[id] {
					res.Held++
					continue
				}
				unheld = append(unheld, id)
			}
			unheld, d, by, err := s.deferUnacked(ctx, unheld)
			if err != nil {
				return res, err
			}
			res.Deferred += d
			res.HeldBackBy = mergeNames(res.HeldBackBy, by)
			unheld, locked, err := s.deferLocked(ctx, unheld)
			if err != nil {
				return res, err
			}
			res.Locked += locked
			for _, id := range unheld {
				res.WouldPurge++
				if len(res.Samples) < s.opt.Samples {
					res.Samples = append(res.Samples, id)
				}
			}
			continue
		}
		n, h, d, l, by, err := s.purgeBatch(ctx, expired, st.Version)
		res.Purged += n
		res.Held += h
		res.Deferred += d
		res.Locked += l
		res.HeldBackBy = mergeNames(res.HeldBackBy, by)
		purgedAny = purgedAny || n > 0
		if err != nil {
			return res, err
		}
	}
	if purgedAny {
		if err := s.scrub(ctx); err != nil {
			return res, err
		}
	}
	return res, nil
}

// expired returns the ids of cands that are expired at now, and how many
// could not be evaluated because the index has not caught up with them.
func (s *Service) expired(ctx context.Context, c *compiled, cands []catalog.Candidate, now time.Time) ([]string, int64, error) {
	wm, err := s.idx.Watermark(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("governance: index watermark: %w", err)
	}
	ids := make([]string, len(cands))
	for i, m := range cands {
		ids[i] = m.ID
	}
	present, err := s.idx.Matches(ctx, &query.Query{}, ids)
	if err != nil {
		return nil, 0, fmt.Errorf("governance: index lookup: %w", err)
	}
	indexed := toSet(present)
	matched := map[string][]int{}
	for i, p := range c.policies {
		hits, err := s.idx.Matches(ctx, p.q, ids)
		if err != nil {
			return nil, 0, fmt.Errorf("governance: policy %q: %w", p.name, err)
		}
		for _, id := range hits {
			matched[id] = append(matched[id], i)
		}
	}
	var out []string
	var pending int64
	for _, m := range cands {
		if !indexed[m.ID] || m.MSeq > wm {
			pending++
			continue
		}
		if t, ok := c.expiry(m.Date, matched[m.ID]); ok && t.Before(now) {
			out = append(out, m.ID)
		}
	}
	return out, pending, nil
}

// held returns which ids match an active hold.
func (s *Service) held(ctx context.Context, ids []string) (map[string]bool, error) {
	holds, err := s.activeHolds(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, q := range holds {
		hits, err := s.idx.Matches(ctx, q, ids)
		if err != nil {
			return nil, fmt.Errorf("governance: hold check: %w", err)
		}
		for _, id := range hits {
			out[id] = true
		}
	}
	return out, nil
}

// purgeBatch checks holds and purges the unheld ids, under purgeMu so a
// hold created meanwhile is either seen here or created after the purge.
func (s *Service) purgeBatch(ctx context.Context, expired []string, version int64) (purged, heldN, deferred, locked int64, by []string, err error) {
	s.purgeMu.Lock()
	defer s.purgeMu.Unlock()
	held, err := s.held(ctx, expired)
	if err != nil {
		return 0, 0, 0, 0, nil, err
	}
	ids := make([]string, 0, len(expired))
	for _, id := range expired {
		if held[id] {
			heldN++
		} else {
			ids = append(ids, id)
		}
	}
	ids, deferred, by, err = s.deferUnacked(ctx, ids)
	if err != nil {
		return 0, heldN, 0, 0, nil, err
	}
	if deferred > 0 {
		s.log.Warn("retention: purges deferred until mirrored peers have the messages", "deferred", deferred, "peers", by)
	}
	ids, locked, err = s.deferLocked(ctx, ids)
	if err != nil {
		return 0, heldN, deferred, 0, by, err
	}
	purged, heldN, err = s.purgeIDs(ctx, ids, heldN, version)
	return purged, heldN, deferred, locked, by, err
}

// purgeIDs purges ids (already checked against holds and peers).
func (s *Service) purgeIDs(ctx context.Context, ids []string, heldN, version int64) (purged, held int64, err error) {
	if len(ids) == 0 {
		return 0, heldN, nil
	}
	reason := fmt.Sprintf("retention policy version %d", version)
	// The audit entry comes first: a purge that is not on record must not happen.
	if err := s.record(ctx, "system", audit.ActionPurge, map[string]any{"ids": ids, "reason": reason}); err != nil {
		return 0, heldN, err
	}
	// The store deletes are recorded before the catalog forgets the ids,
	// so a delete that fails (an object still locked by the object store,
	// a network error, a crash) is retried until the object is gone.
	if err := s.markDeletes(ctx, ids); err != nil {
		return 0, heldN, err
	}
	orphans, err := s.cat.Purge(ctx, ids, reason, s.now())
	if err != nil {
		return 0, heldN, err
	}
	if err := s.markDeletes(ctx, orphans); err != nil {
		return int64(len(ids)), heldN, err
	}
	if err := s.idx.Delete(ctx, ids); err != nil {
		return int64(len(ids)), heldN, fmt.Errorf("governance: purge from index (catalog already purged): %w", err)
	}
	all := append(ids, orphans...)
	if err := s.st.Delete(ctx, all); err != nil {
		if errors.Is(err, store.ErrLocked) {
			// Not lost: retryDeletes tries again on every sweep and sync.
			s.log.Warn("retention: the object store refused to delete locked objects of purged messages; retrying later", "err", err)
			return int64(len(ids)), heldN, nil
		}
		return int64(len(ids)), heldN, fmt.Errorf("governance: purge from store (catalog already purged; retried later): %w", err)
	}
	if err := s.doneDeletes(ctx, all); err != nil {
		return int64(len(ids)), heldN, err
	}
	return int64(len(ids)), heldN, nil
}

// scrub makes purged bytes unrecoverable: store compaction, index
// optimisation, catalog WAL truncation.
func (s *Service) scrub(ctx context.Context) error {
	if err := s.st.Compact(ctx); err != nil {
		return fmt.Errorf("governance: compact store: %w", err)
	}
	if s.opt.AfterPurge != nil {
		if err := s.opt.AfterPurge(ctx); err != nil {
			return fmt.Errorf("governance: scrub index: %w", err)
		}
	}
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return s.cat.Scrub(sctx)
}

// mergeNames adds the names of b missing from a, keeping a's order.
func mergeNames(a, b []string) []string {
	for _, n := range b {
		found := false
		for _, x := range a {
			found = found || x == n
		}
		if !found {
			a = append(a, n)
		}
	}
	return a
}

func toSet(ids []string) map[string]bool {
	m := make(map[string]bool, len(ids))
	for _, id := range ids {
		m[id] = true
	}
	return m
}
