// Package governance holds mailarc's retention policies, litigation holds
// and the retention sweeper. It is the only code that purges mail.
//
// # Tables (catalog component "governance")
//
//	retention(version INTEGER PRIMARY KEY, policy TEXT, updated INTEGER, updated_by TEXT)
//	    every policy ever set (JSON Retention); the highest version is current.
//	    Version 0 (no row) is the built-in default: keep forever.
//	governance_state(key TEXT PRIMARY KEY, value TEXT)
//	    "confirmed" = JSON {version, count, by, at}: the policy version an
//	    admin last confirmed with POST /retention/run?confirm=N.
//	holds(id, name, description, query, after, before, creator, created,
//	      expires, released, released_by)   times are Unix seconds, NULL = unset
//	worm_objects(id TEXT PRIMARY KEY, retain_until INTEGER, legal_hold INTEGER)
//	    (version 2) the Object Lock state governance has applied to a store
//	    object: retain-until in Unix seconds (0 = none), legal hold 0/1;
//	    objects with neither have no row.
//	store_deletes(id TEXT PRIMARY KEY, since INTEGER, tries INTEGER, error TEXT)
//	    (version 2) store objects of purged messages not deleted yet
//	    (refused by Object Lock, or a failed request); retried.
//	governance_state "worm" = JSON {cursor, policy, holds, full}: the WORM
//	    sync's progress (see WORM below).
//
// # Sweeps
//
// A sweep walks the catalog for messages dated before the earliest possible
// expiry, in batches. For each batch it asks the index which policies match
// each message (the longest matching period wins, the default applies when
// none does) and computes the expiry from the message date. Messages the
// index has not indexed yet (absent from the index, or whose catalog change
// counter is above the index watermark) cannot be evaluated and are skipped
// ("pending"). Expired messages matching any active hold are kept ("held").
// The rest are purged: audit entry with the ids, tombstones and catalog rows
// (catalog.Purge, secure_delete), index documents, then blobs; after the
// last batch the store is compacted, the index optimised (Options.AfterPurge)
// and the catalog WAL truncated, so the bytes are gone from disk.
//
// A dry run counts what a real run would purge. A real run must name that
// count (confirm=N): a different count is refused (ErrConfirm). Confirming
// records the policy version; scheduled sweeps purge only while the current
// policy version is the confirmed one, so a policy change purges nothing
// until an admin has looked at its dry run and confirmed it.
//
// # WORM (S3 Object Lock)
//
// When the store implements store.Retainer and has Object Lock enabled,
// retention and holds are also enforced by the object store. The WORM
// sync (SyncWORM, run by WORMLoop) follows the catalog's metadata counter
// (mseq) up to the index watermark with its own cursor, since policies and
// holds are index queries, and for every indexed message:
//
//   - sets the object's retain-until to message date + the longest
//     matching keep period (the default when none matches), and the same
//     date (the latest of their messages) on journal report blobs that
//     contain it. Dates are only ever extended, never shortened or
//     cleared: shortening a policy does not shorten dates already set,
//     which is what WORM means; such messages are purged once their date
//     has passed. Mail kept forever gets no retain-until (S3 needs a
//     date, and a far one could never be undone if a finite policy came
//     later); it is still never purged by mailarc. Dates already in the
//     past are not set.
//   - places an S3 legal hold while an active litigation hold covers the
//     message and lifts it when none does (released or expired). Report
//     blobs get no legal hold.
//
// A change of the policy version or of the set of active holds starts a
// resumable full pass over the catalog (retention part, hold part or
// both) before the incremental pass continues. Applied state is recorded
// in worm_objects after the store accepted it; calls are diffed against
// it, so repeated syncs cost nothing.
//
// Sweeps skip ("locked") expired, unheld messages whose recorded
// retain-until is still ahead or whose legal hold is not lifted yet, in
// dry and real runs alike. Every purge records its store objects in
// store_deletes before the catalog purge; if the store refuses a delete
// (store.ErrLocked, e.g. a lock set by someone else) or fails, the id
// stays there and is retried by every sweep and WORM sync until the object
// is gone (a leftover legal hold on a purged message is lifted first).
package governance

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/store"
)

var migrations = []string{
	`CREATE TABLE retention (version INTEGER PRIMARY KEY, policy TEXT NOT NULL, updated INTEGER NOT NULL, updated_by TEXT NOT NULL);
	CREATE TABLE governance_state (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
	CREATE TABLE holds (
		id          TEXT PRIMARY KEY,
		name        TEXT NOT NULL,
		description TEXT NOT NULL,
		query       TEXT NOT NULL,
		after       INTEGER,
		before      INTEGER,
		creator     TEXT NOT NULL,
		created     INTEGER NOT NULL,
		expires     INTEGER,
		released    INTEGER,
		released_by TEXT NOT NULL
	) WITHOUT ROWID;`,
	wormMigration,
}

// pgMigrations are migrations for a PostgreSQL catalog, version for version.
var pgMigrations = []string{
	`CREATE TABLE retention (version BIGINT PRIMARY KEY, policy TEXT NOT NULL, updated BIGINT NOT NULL, updated_by TEXT NOT NULL);
	CREATE TABLE governance_state (key TEXT COLLATE "C" PRIMARY KEY, value TEXT NOT NULL);
	CREATE TABLE holds (
		id          TEXT COLLATE "C" PRIMARY KEY,
		name        TEXT NOT NULL,
		description TEXT NOT NULL,
		query       TEXT NOT NULL,
		after       BIGINT,
		before      BIGINT,
		creator     TEXT NOT NULL,
		created     BIGINT NOT NULL,
		expires     BIGINT,
		released    BIGINT,
		released_by TEXT NOT NULL
	);`,
	pgWormMigration,
}

// Options tune a Service.
type Options struct {
	// Audit receives every policy, hold and purge record (nil: not logged,
	// for tests only).
	Audit *audit.Log
	// AfterPurge runs after a real sweep purged something, after the store
	// compaction: the server passes a function that optimises the full-text
	// index and truncates its WAL so no term of a purged message remains.
	AfterPurge func(ctx context.Context) error
	// BatchSize is messages per evaluation and purge batch (default 500).
	BatchSize int
	// Interval is the scheduled sweep period (default 1 h).
	Interval time.Duration
	// Samples caps the ids a dry run returns (default 20).
	Samples int
	// PeersHave, when set, is consulted before purging (mirroring's
	// purge_requires_peers): only ids it reports ok are purged; the others
	// are deferred to a later sweep and holdingBack names the peers that
	// have not acknowledged them yet. SetPeersHave sets it after New.
	PeersHave func(ctx context.Context, ids []string) (ok map[string]bool, holdingBack []string, err error)
	// WORMInterval is the period of the WORM sync (WORMLoop) when the
	// store enforces retention itself (default 30 s; policy and hold
	// changes wake it at once).
	WORMInterval time.Duration
	// WORMConcurrency bounds the object lock requests run at once (default 8).
	WORMConcurrency int
	Now             func() time.Time
	Logger          *slog.Logger
}

// Service is the governance service of one node.
type Service struct {
	cat  *catalog.Catalog
	w, r *sql.DB
	idx  index.Index
	st   store.Store
	opt  Options
	log  *slog.Logger

	peersHave atomic.Pointer[peersHaveFunc]

	runMu   sync.Mutex // one sweep at a time
	purgeMu sync.Mutex // hold creation vs. a purge batch's hold check and delete

	worm wormRuntime // WORM sync (worm.go)
}

// New migrates the governance tables and returns the service.
func New(ctx context.Context, cat *catalog.Catalog, idx index.Index, st store.Store, opt Options) (*Service, error) {
	if err := cat.MigrateDialects(ctx, "governance", migrations, pgMigrations); err != nil {
		return nil, err
	}
	if opt.BatchSize <= 0 {
		opt.BatchSize = 500
	}
	if opt.Interval <= 0 {
		opt.Interval = time.Hour
	}
	if opt.Samples <= 0 {
		opt.Samples = 20
	}
	if opt.WORMInterval <= 0 {
		opt.WORMInterval = 30 * time.Second
	}
	if opt.WORMConcurrency <= 0 {
		opt.WORMConcurrency = 8
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	w, r := cat.DB()
	s := &Service{cat: cat, w: w, r: r, idx: idx, st: st, opt: opt, log: opt.Logger}
	s.worm.kick = make(chan struct{}, 1)
	if opt.PeersHave != nil {
		s.SetPeersHave(opt.PeersHave)
	}
	return s, nil
}

type peersHaveFunc func(ctx context.Context, ids []string) (map[string]bool, []string, error)

// SetPeersHave installs (or with nil removes) the purge-safety check of
// Options.PeersHave; the server sets it once mirroring has started.
func (s *Service) SetPeersHave(fn func(ctx context.Context, ids []string) (ok map[string]bool, holdingBack []string, err error)) {
	if fn == nil {
		s.peersHave.Store(nil)
		return
	}
	f := peersHaveFunc(fn)
	s.peersHave.Store(&f)
}

// deferUnacked splits ids into those every peer acknowledged and the
// number deferred, with the peers holding them back.
func (s *Service) deferUnacked(ctx context.Context, ids []string) (keep []string, deferred int64, by []string, err error) {
	f := s.peersHave.Load()
	if f == nil || len(ids) == 0 {
		return ids, 0, nil, nil
	}
	ok, by, err := (*f)(ctx, ids)
	if err != nil {
		return nil, 0, nil, fmt.Errorf("governance: purge safety check: %w", err)
	}
	for _, id := range ids {
		if ok[id] {
			keep = append(keep, id)
		} else {
			deferred++
		}
	}
	return keep, deferred, by, nil
}

func (s *Service) now() time.Time { return s.opt.Now() }

func (s *Service) record(ctx context.Context, user, action string, detail any) error {
	if s.opt.Audit == nil {
		return nil
	}
	if _, err := s.opt.Audit.Record(ctx, user, action, detail); err != nil {
		return fmt.Errorf("governance: audit %s: %w", action, err)
	}
	return nil
}

// Confirmation is the policy version an admin confirmed, with the dry-run
// count they confirmed.
type Confirmation struct {
	Version int64     `json:"version"`
	Count   int64     `json:"count"`
	By      string    `json:"by"`
	At      time.Time `json:"at"`
}

// State is the current retention configuration with its version and
// confirmation.
type State struct {
	Retention
	Version   int64         `json:"version"`
	Updated   time.Time     `json:"updated,omitzero"`
	UpdatedBy string        `json:"updated_by,omitempty"`
	Confirmed *Confirmation `json:"confirmed,omitempty"`
}

// Retention returns the current configuration.
func (s *Service) Retention(ctx context.Context) (State, error) {
	st := State{Retention: Retention{Default: "forever", Policies: []Policy{}}}
	var policy string
	var updated int64
	err := s.r.QueryRowContext(ctx, `SELECT version, policy, updated, updated_by FROM retention ORDER BY version DESC LIMIT 1`).
		Scan(&st.Version, &policy, &updated, &st.UpdatedBy)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return st, fmt.Errorf("governance: read retention: %w", err)
	default:
		if err := json.Unmarshal([]byte(policy), &st.Retention); err != nil {
			return st, fmt.Errorf("governance: stored retention version %d: %w", st.Version, err)
		}
		st.Updated = time.Unix(updated, 0).UTC()
	}
	var conf string
	err = s.r.QueryRowContext(ctx, `SELECT value FROM governance_state WHERE key='confirmed'`).Scan(&conf)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return st, fmt.Errorf("governance: read confirmation: %w", err)
	default:
		var c Confirmation
		if err := json.Unmarshal([]byte(conf), &c); err != nil {
			return st, fmt.Errorf("governance: stored confirmation: %w", err)
		}
		st.Confirmed = &c
	}
	return st, nil
}

// SetRetention validates and stores a new configuration as a new version
// and audit-logs it. The new version purges nothing on schedule until it is
// confirmed.
func (s *Service) SetRetention(ctx context.Context, user string, r Retention) (State, error) {
	norm, err := r.Validate()
	if err != nil {
		return State{}, err
	}
	b, err := json.Marshal(norm)
	if err != nil {
		return State{}, fmt.Errorf("governance: encode retention: %w", err)
	}
	s.runMu.Lock() // not while a sweep is evaluating the old version
	v, err := s.storeRetention(ctx, string(b), user)
	s.runMu.Unlock()
	if err != nil {
		return State{}, fmt.Errorf("governance: store retention: %w", err)
	}
	s.kickWORM()
	if err := s.record(ctx, user, audit.ActionPolicyChange, map[string]any{"version": v, "policy": norm}); err != nil {
		return State{}, err
	}
	return s.Retention(ctx)
}

// storeRetention appends a retention version and returns its number. The
// transaction holds the catalog lock "governance.retention", so nodes
// sharing a PostgreSQL catalog number their versions one after the other.
func (s *Service) storeRetention(ctx context.Context, policy, user string) (int64, error) {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if err := s.cat.LockTx(ctx, tx, "governance.retention"); err != nil {
		return 0, err
	}
	var v int64
	err = tx.QueryRowContext(ctx, `INSERT INTO retention(version, policy, updated, updated_by)
		VALUES ((SELECT coalesce(max(version),0)+1 FROM retention), ?, ?, ?) RETURNING version`, policy, s.now().Unix(), user).Scan(&v)
	if err != nil {
		return 0, err
	}
	return v, tx.Commit()
}

func (s *Service) confirm(ctx context.Context, c Confirmation) error {
	b, _ := json.Marshal(c)
	_, err := s.w.ExecContext(ctx, `INSERT INTO governance_state(key, value) VALUES ('confirmed', ?)
		ON CONFLICT(key) DO UPDATE SET value=excluded.value`, string(b))
	if err != nil {
		return fmt.Errorf("governance: store confirmation: %w", err)
	}
	return nil
}
