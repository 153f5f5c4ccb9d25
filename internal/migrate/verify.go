package migrate

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"math"
	"sync"

	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/server"
	"github.com/mailarc/mailarc/internal/store"
)

// maxListed bounds the problems a Report lists; Problems counts on.
const maxListed = 100

// Report is the outcome of Verify.
type Report struct {
	Tables       []TableCheck
	Messages     int64 // message ids compared (source catalog)
	BlobsChecked int64 // destination blobs re-read and re-hashed
	SourceBlobs  int64 // blobs in the source store
	ExtraBlobs   int64 // destination blobs the source store lacks (harmless)
	PurgedBlobs  int64 // source blobs of purged messages, not copied on purpose
	SourceHead   int64 // change-feed heads
	DestHead     int64
	AuditEntries int64
	Problems     int64    // number of problems found
	Listed       []string // the first problems, described
}

// TableCheck compares one table.
type TableCheck struct {
	Name         string
	Source, Dest int64 // rows (meta: rows that are copied)
	Same         bool  // same rows with the same values
}

// OK reports whether the verification found no problem.
func (r *Report) OK() bool { return r.Problems == 0 }

func (r *Report) problem(format string, args ...any) {
	r.Problems++
	if len(r.Listed) < maxListed {
		r.Listed = append(r.Listed, fmt.Sprintf(format, args...))
	}
}

// Verify compares a migrated destination with its source:
//
//   - every copied table has the same number of rows with the same values
//     (a digest over the rows in primary-key order; text normalised as the
//     destination engine stores it; meta without the keys not copied);
//   - the set of message ids is the same (compared id by id);
//   - every message and journal report blob the destination catalog names
//     is in the destination store and its bytes hash to its id;
//   - every blob of the source store is in the destination store;
//   - the change-feed heads are equal and the destination's audit chain
//     verifies.
func Verify(ctx context.Context, src, dst *server.Node, opt Options) (*Report, error) {
	opt.defaults()
	tables, err := plan(ctx, src.Catalog, dst.Catalog)
	if err != nil {
		return nil, err
	}
	return verify(ctx, src, dst, tables, opt, opt.Progress)
}

func verify(ctx context.Context, src, dst *server.Node, tables []catalog.Table, opt Options, progress func(Progress)) (*Report, error) {
	if progress == nil {
		progress = func(Progress) {}
	}
	r := &Report{}
	progress(Progress{Phase: PhaseVerify, Item: "tables"})
	for _, t := range tables {
		sd, sn, err := digest(ctx, src.Catalog, t, opt.BatchRows, dst.Catalog.Dialect())
		if err != nil {
			return nil, err
		}
		dd, dn, err := digest(ctx, dst.Catalog, t, opt.BatchRows, dst.Catalog.Dialect())
		if err != nil {
			return nil, err
		}
		tc := TableCheck{Name: t.Name, Source: sn, Dest: dn, Same: sd == dd && sn == dn}
		r.Tables = append(r.Tables, tc)
		if !tc.Same {
			r.problem("table %s differs: %d rows in the source, %d in the destination", t.Name, sn, dn)
		}
	}
	if err := compareIDs(ctx, src.Catalog, dst.Catalog, r); err != nil {
		return nil, err
	}
	if err := checkBlobs(ctx, dst, opt, r, progress); err != nil {
		return nil, err
	}
	if err := compareStores(ctx, src, dst, tables, r); err != nil {
		return nil, err
	}
	var err error
	if r.SourceHead, err = src.Catalog.Head(ctx); err != nil {
		return nil, err
	}
	if r.DestHead, err = dst.Catalog.Head(ctx); err != nil {
		return nil, err
	}
	if r.SourceHead != r.DestHead {
		r.problem("change-feed head differs: %d in the source, %d in the destination", r.SourceHead, r.DestHead)
	}
	ar, err := audit.Verify(ctx, dst.Catalog)
	if err != nil {
		return nil, err
	}
	r.AuditEntries = ar.Entries
	for _, p := range ar.Problems {
		r.problem("audit log: %s", p)
	}
	return r, nil
}

// digest hashes every row of t (meta: the copied keys only) in key order.
func digest(ctx context.Context, c *catalog.Catalog, t catalog.Table, batch int, d catalog.Dialect) ([32]byte, int64, error) {
	h := sha256.New()
	var n int64
	var after []any
	keyIdx := make([]int, len(t.Key))
	for i, k := range t.Key {
		for j, col := range t.Columns {
			if col == k {
				keyIdx[i] = j
			}
		}
	}
	for {
		rows, err := c.ReadRows(ctx, t, t.Columns, after, batch)
		if err != nil {
			return [32]byte{}, 0, err
		}
		for _, row := range rows {
			if skipRow(t.Name, row[keyIdx[0]]) {
				continue
			}
			n++
			for _, v := range row {
				hashValue(h, v, d)
			}
		}
		if len(rows) < batch {
			break
		}
		last := rows[len(rows)-1]
		after = make([]any, len(keyIdx))
		for i, j := range keyIdx {
			after[i] = last[j]
		}
	}
	var sum [32]byte
	h.Sum(sum[:0])
	return sum, n, nil
}

// hashValue feeds one typed value into h, unambiguously.
func hashValue(h hash.Hash, v any, d catalog.Dialect) {
	var b [9]byte
	switch x := v.(type) {
	case nil:
		h.Write([]byte{0})
	case int64:
		b[0] = 1
		binary.BigEndian.PutUint64(b[1:], uint64(x))
		h.Write(b[:])
	case float64:
		b[0] = 2
		binary.BigEndian.PutUint64(b[1:], math.Float64bits(x))
		h.Write(b[:])
	case string:
		s := catalog.TextAsStored(d, x)
		b[0] = 3
		binary.BigEndian.PutUint64(b[1:], uint64(len(s)))
		h.Write(b[:])
		h.Write([]byte(s))
	}
}

// idWalk visits ids in ascending order (catalog.WalkIDs, store.Walk).
type idWalk func(ctx context.Context, fn func(id string) error) error

// mergeIDs walks two id-ordered sequences side by side (src in a goroutine,
// dst on this one) and reports each id to onlySrc, onlyDst or both. It
// returns the first error of each walk (a callback's error ends the walk
// that called it).
func mergeIDs(ctx context.Context, src, dst idWalk, onlySrc, onlyDst, both func(id string) error) (srcErr, dstErr error) {
	ids := make(chan string, 1024)
	walkErr := make(chan error, 1)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(ids)
		walkErr <- src(wctx, func(id string) error {
			select {
			case ids <- id:
				return nil
			case <-wctx.Done():
				return wctx.Err()
			}
		})
	}()
	next := func() (string, bool) { id, ok := <-ids; return id, ok }
	cur, ok := next()
	dstErr = dst(ctx, func(id string) error {
		for ok && cur < id {
			if err := onlySrc(cur); err != nil {
				return err
			}
			cur, ok = next()
		}
		if ok && cur == id {
			cur, ok = next()
			return both(id)
		}
		return onlyDst(id)
	})
	if dstErr != nil {
		return nil, dstErr
	}
	for ok {
		if err := onlySrc(cur); err != nil {
			return nil, err
		}
		cur, ok = next()
	}
	return <-walkErr, nil
}

// compareIDs merges the two catalogs' ids (both in id order).
func compareIDs(ctx context.Context, src, dst *catalog.Catalog, r *Report) error {
	srcErr, dstErr := mergeIDs(ctx, src.WalkIDs, dst.WalkIDs,
		func(id string) error {
			r.Messages++
			r.problem("message %s is missing from the destination catalog", id)
			return nil
		},
		func(id string) error {
			r.problem("message %s is in the destination catalog but not in the source", id)
			return nil
		},
		func(string) error { r.Messages++; return nil })
	return errors.Join(dstErr, srcErr)
}

// checkBlobs re-reads every blob the destination catalog names and checks
// its hash.
func checkBlobs(ctx context.Context, dst *server.Node, opt Options, r *Report, progress func(Progress)) error {
	cs, err := dst.Catalog.Stats(ctx)
	if err != nil {
		return err
	}
	reports, err := dst.Catalog.ReportIDs(ctx)
	if err != nil {
		return err
	}
	total := cs.Messages + int64(len(reports))
	var mu sync.Mutex
	sem := make(chan struct{}, opt.Concurrency)
	var wg sync.WaitGroup
	check := func(id string) {
		defer wg.Done()
		defer func() { <-sem }()
		data, err := dst.Store.Get(ctx, id)
		mu.Lock()
		defer mu.Unlock()
		r.BlobsChecked++
		switch {
		case errors.Is(err, store.ErrNotFound):
			r.problem("blob %s is missing from the destination store", id)
		case err != nil:
			r.problem("blob %s cannot be read from the destination store: %v", id, err)
		case store.ID(data) != id:
			r.problem("blob %s in the destination store does not hash to its id", id)
		}
		if r.BlobsChecked%256 == 0 {
			progress(Progress{Phase: PhaseVerify, Item: "blobs", Done: r.BlobsChecked, Total: total})
		}
	}
	each := func(id string) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		wg.Add(1)
		sem <- struct{}{}
		go check(id)
		return nil
	}
	err = dst.Catalog.WalkIDs(ctx, each)
	for _, id := range reports {
		if err != nil {
			break
		}
		err = each(id)
	}
	wg.Wait()
	progress(Progress{Phase: PhaseVerify, Item: "blobs", Done: r.BlobsChecked, Total: total})
	return err
}

// compareStores checks that every source blob is in the destination store
// (both walk in id order).
func compareStores(ctx context.Context, srcNode, dstNode *server.Node, tables []catalog.Table, r *Report) error {
	src, dst := srcNode.Store, dstNode.Store
	// A source blob missing from the destination is a problem unless it is
	// purged (tombstoned, or waiting for a refused deletion): those are not
	// copied on purpose. Checked in batches, so memory stays bounded.
	var missing []string
	flush := func() error {
		if len(missing) == 0 {
			return nil
		}
		gone, err := purged(ctx, srcNode.Catalog, tables, missing)
		if err != nil {
			return err
		}
		for _, id := range missing {
			if gone[id] {
				r.PurgedBlobs++
			} else {
				r.problem("blob %s of the source store is missing from the destination store", id)
			}
		}
		missing = missing[:0]
		return nil
	}
	miss := func(id string) error {
		r.SourceBlobs++
		missing = append(missing, id)
		if len(missing) >= 500 {
			return flush()
		}
		return nil
	}
	storeWalk := func(st store.Store) idWalk {
		return func(ctx context.Context, fn func(string) error) error {
			return st.Walk(ctx, func(id string, _ int64) error { return fn(id) })
		}
	}
	srcErr, dstErr := mergeIDs(ctx, storeWalk(src), storeWalk(dst), miss,
		func(string) error { r.ExtraBlobs++; return nil },
		func(string) error { r.SourceBlobs++; return nil })
	if dstErr != nil {
		return fmt.Errorf("migrate: walk the destination store: %w", dstErr)
	}
	if srcErr != nil {
		return fmt.Errorf("migrate: walk the source store: %w", srcErr)
	}
	return flush()
}
