// Package migrate moves a whole archive from one pair of backends to
// another (`mailarc migrate --to CONFIG`): the embedded default (local
// packs + SQLite catalog) onto S3 + PostgreSQL, back again, or any
// combination to any other. Both nodes must be stopped; the caller opens
// them (server.Open takes each data directory's lock, so a running source
// is refused).
//
// # Phases
//
// A run goes through these phases, in order, each resumable:
//
//  1. schema: every component's tables (core, audit, governance, mirror)
//     are migrated on both sides with the components' own migrations, so
//     the two catalogs have the same logical tables. On a first run the
//     destination must be empty.
//  2. blobs: the source store is walked in id order and copied in batches
//     (bounded by count and bytes) with Put, which skips blobs already
//     present. Blobs go first, so a catalog row never reaches the
//     destination before the bytes it names. Blobs of purged messages the
//     source still holds (tombstoned, or listed in store_deletes after the
//     store refused the deletion) are not copied.
//  3. catalog: every table of the source catalog (except schema_migrations
//     and the full-text index's idx_* tables) is copied in batches ordered
//     by primary key, with the same column values: messages keep their seq
//     (the change feed is identical), the audit log its hash chain. Order:
//     messages, origins, envelope, journal_reports, the other tables by
//     name, meta last. Then the feed head counter (sqlite_sequence or
//     meta.feed_seq) is set to the source's head, purged numbers included.
//     Not copied: worm_objects and governance_state "worm" (the Object
//     Lock state applied to the source store's objects: the destination's
//     WORM sync makes a full pass over its own objects).
//  4. index: the destination's full-text index is reset and rebuilt from
//     the destination's catalog and store (as `mailarc reindex` does),
//     unless Options.SkipIndex leaves it to the server's indexer.
//  5. verify: see Verify. The state becomes "done" only when it passes.
//
// # Progress record
//
// The destination catalog's meta table holds the run's state under the key
// "migrate_state" (JSON):
//
//	{"source": "<source store instance>", "phase": "blobs|catalog|index|verify|done",
//	 "blobs_after": "<last blob id copied>", "blobs": N,
//	 "table": "<table being copied>", "after": [<primary key of its last copied row>],
//	 "index_reset": true, "started": "...", "finished": "..."}
//
// Each catalog batch is written in one transaction together with the new
// state, so an interrupted run (Ctrl-C, kill -9, power loss) continues
// exactly where it stopped; blob batches are idempotent and the state moves
// after each one. Re-running after completion copies nothing and verifies
// again. Meta keys starting with "migrate_" are never copied, so a
// destination can later be the source of another migration.
//
// # Store instance
//
// The destination keeps its own store instance id (a bucket's store.json,
// or the new data directory's marker): its catalog's store_instance names
// the destination store, not the source's. Mirrored peers therefore see a
// changed instance on the first hello, reset their cursor for this node and
// run an anti-entropy pass, which is cheap (they answer "have") and correct
// for a node whose storage was rebuilt. Every other meta row is copied.
// The data directory's tls/ (the mirror key pair peers have pinned, the
// SMTP certificate) is copied when the destination has none.
package migrate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/fsutil"
	"github.com/mailarc/mailarc/internal/server"
)

// StateKey is the destination meta key holding the migration state.
const StateKey = "migrate_state"

// Phases of a migration, in order.
const (
	PhaseBlobs   = "blobs"
	PhaseCatalog = "catalog"
	PhaseIndex   = "index"
	PhaseVerify  = "verify"
	PhaseDone    = "done"
)

// Options tune Run.
type Options struct {
	// BatchRows is catalog rows per batch (default 1000).
	BatchRows int
	// BatchBlobs and BatchBytes bound one blob batch (default 256 blobs,
	// 64 MiB); BatchBytes bounds the memory a run holds.
	BatchBlobs int
	BatchBytes int64
	// Concurrency is the number of blob reads in flight (default 8).
	Concurrency int
	// SkipIndex leaves the destination's full-text index to the server's
	// indexer, which builds it on first start.
	SkipIndex bool
	// Progress, if set, is called after every batch and at each phase start.
	Progress func(Progress)
	// Logger receives phase changes (default slog.Default()).
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.BatchRows <= 0 {
		o.BatchRows = 1000
	}
	if o.BatchBlobs <= 0 {
		o.BatchBlobs = 256
	}
	if o.BatchBytes <= 0 {
		o.BatchBytes = 64 << 20
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 8
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Progress is one progress report.
type Progress struct {
	Phase string // one of the Phase constants
	Item  string // the table being copied, in PhaseCatalog
	Done  int64  // items done in this phase (or table)
	Total int64  // items in this phase (or table); 0 when unknown
}

// state is the resumable progress record (see the package doc).
type state struct {
	Source     string    `json:"source"`
	Phase      string    `json:"phase"`
	BlobsAfter string    `json:"blobs_after,omitempty"`
	Blobs      int64     `json:"blobs"`
	Table      string    `json:"table,omitempty"`
	After      []any     `json:"after,omitempty"`
	IndexReset bool      `json:"index_reset,omitempty"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished,omitzero"`
}

func (s *state) encode() string {
	b, _ := json.Marshal(s) // plain types only
	return string(b)
}

func decodeState(v string) (*state, error) {
	d := json.NewDecoder(strings.NewReader(v))
	d.UseNumber()
	var s state
	if err := d.Decode(&s); err != nil {
		return nil, fmt.Errorf("migrate: the destination's %s record is damaged: %w", StateKey, err)
	}
	for i, a := range s.After {
		if n, ok := a.(json.Number); ok {
			if iv, err := n.Int64(); err == nil {
				s.After[i] = iv
			} else if fv, err := n.Float64(); err == nil {
				s.After[i] = fv
			} else {
				return nil, fmt.Errorf("migrate: the destination's %s record is damaged: key value %q", StateKey, n)
			}
		}
	}
	return &s, nil
}

// skipMetaKey reports the meta keys that are not copied: the destination
// keeps its own store instance and migration state, and the PostgreSQL
// feed counter is set by SetFeedHead.
func skipMetaKey(k string) bool {
	return k == "store_instance" || k == catalog.FeedHeadKey || strings.HasPrefix(k, "migrate_")
}

// Store-bound governance state (see package governance, WORM): the Object
// Lock state applied to the source store's objects and the WORM sync's
// progress describe the source store, not the archive. They are not
// copied, so the destination's first WORM sync makes a full pass and locks
// the new objects itself.
const (
	wormObjectsTable  = "worm_objects"
	governanceState   = "governance_state"
	wormStateKey      = "worm"
	storeDeletesTable = "store_deletes"
)

// skipRow reports a row of table that is not copied (key: its first key
// column's value).
func skipRow(table string, key any) bool {
	k, _ := key.(string)
	switch table {
	case "meta":
		return skipMetaKey(k)
	case governanceState:
		return k == wormStateKey
	}
	return false
}

// skipTable reports the tables that are not copied: the full-text index's
// tables in a PostgreSQL catalog (the index is rebuilt) and the Object Lock
// state of the source store's objects.
func skipTable(name string) bool {
	return strings.HasPrefix(name, "idx_") || name == wormObjectsTable
}

// Result is the outcome of Run.
type Result struct {
	Resumed  bool    // a previous interrupted run was continued
	Already  bool    // the migration had completed before; only verified
	Blobs    int64   // blobs copied (or found present) over all runs
	Rows     int64   // catalog rows copied in this run
	Indexed  int64   // documents in the destination's index (0 with SkipIndex)
	Report   *Report // the verification
	Duration time.Duration
}

// Run migrates src onto dst (both opened with server.Open, both stopped
// otherwise), resuming a previous run recorded in dst, and verifies the
// result. It returns an error when the migration could not run; a finished
// migration whose verification found differences returns a Result whose
// Report is not OK (and the state stays at "verify").
func Run(ctx context.Context, src, dst *server.Node, opt Options) (*Result, error) {
	opt.defaults()
	start := time.Now()
	if src.Dir != nil && dst.Dir != nil && src.Dir.Path == dst.Dir.Path {
		return nil, errors.New("migrate: source and destination use the same data directory; give the destination config its own data_dir")
	}
	for _, n := range []*server.Node{src, dst} {
		if err := n.MigrateComponents(ctx); err != nil {
			return nil, fmt.Errorf("migrate: %w", err)
		}
	}
	srcInst, err := src.Catalog.Meta(ctx, "store_instance")
	if err != nil {
		return nil, err
	}
	dstInst, err := dst.Catalog.Meta(ctx, "store_instance")
	if err != nil {
		return nil, err
	}
	if srcInst == dstInst {
		return nil, fmt.Errorf("migrate: source and destination are the same archive (store instance %s): the destination must be a new, empty catalog and store", srcInst)
	}
	tables, err := plan(ctx, src.Catalog, dst.Catalog)
	if err != nil {
		return nil, err
	}
	if src.Dir != nil && dst.Dir != nil {
		if err := copyTLS(src.Dir.Join("tls"), dst.Dir.Join("tls")); err != nil {
			return nil, err
		}
	}
	res := &Result{}
	raw, err := dst.Catalog.Meta(ctx, StateKey)
	if err != nil {
		return nil, err
	}
	var st *state
	if raw == "" {
		if err := checkEmpty(ctx, dst.Catalog, tables); err != nil {
			return nil, err
		}
		st = &state{Source: srcInst, Phase: PhaseBlobs, Started: time.Now().UTC().Truncate(time.Second)}
		if err := dst.Catalog.SetMeta(ctx, StateKey, st.encode()); err != nil {
			return nil, err
		}
	} else {
		if st, err = decodeState(raw); err != nil {
			return nil, err
		}
		if st.Source != srcInst {
			return nil, fmt.Errorf("migrate: the destination holds a migration from another archive (store instance %s, not %s); use an empty destination", st.Source, srcInst)
		}
		res.Resumed = st.Phase != PhaseDone
		res.Already = st.Phase == PhaseDone
	}
	m := &run{src: src, dst: dst, opt: opt, st: st, res: res, tables: tables}
	if err := m.run(ctx); err != nil {
		return nil, err
	}
	res.Blobs = st.Blobs
	res.Duration = time.Since(start)
	return res, nil
}

// plan lists the source tables to copy, in copy order, and checks that the
// destination has each with every column.
func plan(ctx context.Context, src, dst *catalog.Catalog) ([]catalog.Table, error) {
	st, err := src.Tables(ctx)
	if err != nil {
		return nil, err
	}
	dt, err := dst.Tables(ctx)
	if err != nil {
		return nil, err
	}
	have := map[string]catalog.Table{}
	for _, t := range dt {
		have[t.Name] = t
	}
	rank := func(name string) int {
		switch name {
		case "messages":
			return 0
		case "origins":
			return 1
		case "envelope":
			return 2
		case "journal_reports":
			return 3
		case "meta":
			return 5
		}
		return 4
	}
	var out []catalog.Table
	for _, t := range st {
		if skipTable(t.Name) {
			continue
		}
		d, ok := have[t.Name]
		if !ok {
			return nil, fmt.Errorf("migrate: source table %s does not exist in the destination (a component this release does not know?)", t.Name)
		}
		for _, c := range t.Columns {
			if !contains(d.Columns, c) {
				return nil, fmt.Errorf("migrate: source column %s.%s does not exist in the destination", t.Name, c)
			}
		}
		if !equal(t.Key, d.Key) {
			return nil, fmt.Errorf("migrate: table %s has primary key (%s) in the source but (%s) in the destination", t.Name, strings.Join(t.Key, ","), strings.Join(d.Key, ","))
		}
		out = append(out, t)
	}
	// Stable: the source listing is sorted by name.
	sorted := make([]catalog.Table, 0, len(out))
	for r := 0; r <= 5; r++ {
		for _, t := range out {
			if rank(t.Name) == r {
				sorted = append(sorted, t)
			}
		}
	}
	return sorted, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// checkEmpty refuses a destination catalog that already holds data (meta
// aside, which the destination node wrote when it opened).
func checkEmpty(ctx context.Context, dst *catalog.Catalog, tables []catalog.Table) error {
	for _, t := range tables {
		if t.Name == "meta" {
			continue
		}
		n, err := dst.CountRows(ctx, t.Name)
		if err != nil {
			return err
		}
		if n > 0 {
			return fmt.Errorf("migrate: the destination catalog is not empty (table %s has %d rows): migrate needs a new, empty PostgreSQL database or data directory", t.Name, n)
		}
	}
	return nil
}

// copyTLS copies the node's certificates and keys (data_dir/tls: the
// mirror link's key pair, which peers have pinned, and the SMTP STARTTLS
// certificate) into the destination's data directory, unless it has its
// own already.
func copyTLS(from, to string) error {
	ents, err := os.ReadDir(from)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("migrate: certificates: %w", err)
	}
	if _, err := os.Stat(to); err == nil {
		return nil
	}
	if err := os.MkdirAll(to, 0o700); err != nil {
		return fmt.Errorf("migrate: certificates: %w", err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			return fmt.Errorf("migrate: certificates: %w", err)
		}
		b, err := os.ReadFile(filepath.Join(from, e.Name()))
		if err != nil {
			return fmt.Errorf("migrate: certificates: %w", err)
		}
		if err := fsutil.WriteFileAtomic(filepath.Join(to, e.Name()), b, fi.Mode().Perm()); err != nil {
			return fmt.Errorf("migrate: certificates: %w", err)
		}
	}
	return nil
}
