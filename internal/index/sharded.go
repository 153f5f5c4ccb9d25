package index

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"path/filepath"
	"slices"
	"sync"

	"github.com/mailarc/mailarc/internal/query"
)

// SQLiteShards is how many SQLite index files a data directory's index is
// split into (see OpenSQLiteDir). Changing it requires a new schema version
// (documents would otherwise sit in the wrong file).
const SQLiteShards = 2

// SQLiteFiles returns the index files of the data directory dir, shard 0
// first: index.db, index-1.db, ...
func SQLiteFiles(dir string) []string {
	out := []string{filepath.Join(dir, "index.db")}
	for i := 1; i < SQLiteShards; i++ {
		out = append(out, filepath.Join(dir, fmt.Sprintf("index-%d.db", i)))
	}
	return out
}

// OpenSQLiteDir opens the data directory dir's full-text index: SQLiteShards
// SQLite files (SQLiteFiles) behind one Sharded index.
func OpenSQLiteDir(dir string) (*Sharded, error) {
	var shards []Index
	for _, path := range SQLiteFiles(dir) {
		s, err := OpenSQLite(path)
		if err != nil {
			for _, o := range shards {
				_ = o.Close()
			}
			return nil, err
		}
		shards = append(shards, s)
	}
	return NewSharded(shards...), nil
}

// Sharded is an Index split over several indexes (shards) by message id,
// so that their writers work in parallel: one SQLite FTS5 writer is the
// slowest stage of indexing, and each shard file has its own.
//
// A document always goes to the shard its id hashes to (FNV-1a), so
// re-adding replaces it there. Add writes every shard's part in parallel
// and gives every shard the watermark; Watermark is the lowest of them,
// so after a failure in one shard the indexer resumes where that one
// stopped (re-adding to the others replaces). Search asks every shard for
// the first Offset+Limit hits and merges them in the requested order
// (a date-ordered page deeper than deepOffset walks there in keyset steps
// instead, see searchDeep; relevance pages are capped by the API);
// totals are summed, and a capped count (Options.CountLimit) is split
// between the shards (sumCounts). Hit.Key is the shard's key times the
// shard count plus the shard number, so keys stay distinct across shards
// and keyset paging (Options.After) resumes exactly.
type Sharded struct {
	shards []Index
}

var _ Index = (*Sharded)(nil)

// NewSharded returns an index over shards (at least one). It takes
// ownership: Close closes them.
func NewSharded(shards ...Index) *Sharded {
	if len(shards) == 0 {
		panic("index.NewSharded: no shards")
	}
	return &Sharded{shards: shards}
}

// shardOf returns the shard of message id.
func (s *Sharded) shardOf(id string) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	return int(h.Sum32() % uint32(len(s.shards)))
}

// each runs f for every shard concurrently and joins the errors.
func (s *Sharded) each(f func(i int, sh Index) error) error {
	if len(s.shards) == 1 {
		return f(0, s.shards[0])
	}
	errs := make([]error, len(s.shards))
	var wg sync.WaitGroup
	for i, sh := range s.shards {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(i, sh)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// Add implements Index: each shard's documents in parallel, the watermark
// to all of them (a shard with no documents in this batch records it too).
func (s *Sharded) Add(ctx context.Context, docs []Document, watermark int64) error {
	parts := make([][]Document, len(s.shards))
	for _, d := range docs {
		i := s.shardOf(d.ID)
		parts[i] = append(parts[i], d)
	}
	return s.each(func(i int, sh Index) error { return sh.Add(ctx, parts[i], watermark) })
}

// splitIDs returns ids grouped by shard.
func (s *Sharded) splitIDs(ids []string) [][]string {
	parts := make([][]string, len(s.shards))
	for _, id := range ids {
		i := s.shardOf(id)
		parts[i] = append(parts[i], id)
	}
	return parts
}

// Delete implements Index.
func (s *Sharded) Delete(ctx context.Context, ids []string) error {
	parts := s.splitIDs(ids)
	return s.each(func(i int, sh Index) error {
		if len(parts[i]) == 0 {
			return nil
		}
		return sh.Delete(ctx, parts[i])
	})
}

// Matches implements Index.
func (s *Sharded) Matches(ctx context.Context, q *query.Query, ids []string) ([]string, error) {
	parts := s.splitIDs(ids)
	found := make([][]string, len(s.shards))
	err := s.each(func(i int, sh Index) error {
		if len(parts[i]) == 0 {
			return nil
		}
		var err error
		found[i], err = sh.Matches(ctx, q, parts[i])
		return err
	})
	if err != nil {
		return nil, err
	}
	return slices.Concat(found...), nil
}

// Search implements Index.
func (s *Sharded) Search(ctx context.Context, q *query.Query, opt Options) (Result, error) {
	n := int64(len(s.shards))
	if opt.After != nil && opt.Sort == SortRelevance {
		return Result{}, errors.New("index search: Options.After needs a date sort")
	}
	limit := opt.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	offset := max(opt.Offset, 0)
	if offset > deepOffset && opt.Sort != SortRelevance {
		return s.searchDeep(ctx, q, opt, offset, limit)
	}
	results := make([]Result, len(s.shards))
	// A capped count is split between the shards (ids spread evenly, so
	// each holds about 1/n of any set of matches): counting 10,000 in each
	// of two shards would double the work of the single index it replaces.
	// sumCounts recounts the rare uneven case.
	shardCap := opt.CountLimit
	if opt.CountTotal && opt.CountLimit > 0 {
		shardCap = (opt.CountLimit + int(n) - 1) / int(n)
	}
	err := s.each(func(i int, sh Index) error {
		o := opt
		o.Offset, o.Limit, o.CountLimit = 0, offset+limit, shardCap
		if opt.After != nil {
			o.After = s.innerAfter(opt.After, int64(i), opt.Sort == SortDateAsc)
		}
		r, err := sh.Search(ctx, q, o)
		for j := range r.Hits {
			r.Hits[j].Key = r.Hits[j].Key*n + int64(i)
		}
		results[i] = r
		return err
	})
	if err != nil {
		return Result{}, err
	}
	var out Result
	var hits []Hit
	for _, r := range results {
		hits = append(hits, r.Hits...)
	}
	if opt.CountTotal {
		if out.Total, out.TotalCapped, err = s.sumCounts(ctx, q, opt, shardCap, results); err != nil {
			return Result{}, err
		}
	}
	slices.SortFunc(hits, func(a, b Hit) int { return compareHits(a, b, opt.Sort) })
	out.Hits = []Hit{}
	if offset < len(hits) {
		out.Hits = append(out.Hits, hits[offset:min(len(hits), offset+limit)]...)
	}
	return out, nil
}

// sumCounts adds up the shards' counts of one search. With a count
// limit, each shard counted up to shardCap: a shard that reached it holds
// at least shardCap+1 matches. When those lower bounds together pass the
// limit, the total is capped; otherwise (matches spread unevenly, which
// the id hash makes rare) the shards that reached their cap count again,
// up to the whole limit, so a total below the limit is always exact.
func (s *Sharded) sumCounts(ctx context.Context, q *query.Query, opt Options, shardCap int, results []Result) (int, bool, error) {
	total, atCap := 0, 0
	for _, r := range results {
		if r.TotalCapped {
			total += shardCap + 1
			atCap++
		} else {
			total += r.Total
		}
	}
	if opt.CountLimit <= 0 {
		return total, false, nil
	}
	if atCap > 0 && total <= opt.CountLimit {
		total = 0
		err := s.each(func(i int, sh Index) error {
			if !results[i].TotalCapped {
				return nil
			}
			o := opt
			o.Offset, o.Limit = 0, 1
			if opt.After != nil {
				o.After = s.innerAfter(opt.After, int64(i), opt.Sort == SortDateAsc)
			}
			r, err := sh.Search(ctx, q, o)
			results[i] = r
			return err
		})
		if err != nil {
			return 0, false, err
		}
		for _, r := range results {
			total += r.Total
		}
	}
	if total > opt.CountLimit {
		return opt.CountLimit, true, nil
	}
	return total, false, nil
}

// deepOffset is the offset beyond which a date-ordered search skips to
// its page through the shards in keyset steps of this many hits
// (searchDeep), instead of holding offset+limit hits of every shard in
// memory as a shallow page does.
const deepOffset = 1000

// searchDeep answers a date-ordered search whose offset is beyond
// deepOffset: it walks to the page in steps of deepOffset hits, each step
// resuming after the last hit of the one before (Options.After), then
// asks for the page itself; the total is counted once, as the caller
// asked.
func (s *Sharded) searchDeep(ctx context.Context, q *query.Query, opt Options, offset, limit int) (Result, error) {
	step := opt
	step.Offset, step.CountTotal, step.CountLimit = 0, false, 0
	after := opt.After
	out := Result{Hits: []Hit{}}
	found := true
	for offset > 0 {
		step.Limit, step.After = min(offset, deepOffset), after
		r, err := s.Search(ctx, q, step)
		if err != nil {
			return Result{}, err
		}
		if len(r.Hits) < step.Limit {
			found = false // fewer matches than the offset: the page is empty
			break
		}
		offset -= len(r.Hits)
		last := r.Hits[len(r.Hits)-1]
		after = &last
	}
	if found {
		page := opt
		page.Offset, page.Limit, page.After, page.CountTotal, page.CountLimit = 0, limit, after, false, 0
		r, err := s.Search(ctx, q, page)
		if err != nil {
			return Result{}, err
		}
		out.Hits = r.Hits
	}
	if opt.CountTotal {
		count := opt
		count.Offset, count.Limit = 0, 1
		r, err := s.Search(ctx, q, count)
		if err != nil {
			return Result{}, err
		}
		out.Total, out.TotalCapped = r.Total, r.TotalCapped
	}
	return out, nil
}

// compareHits orders hits as sort asks (negative: a first).
func compareHits(a, b Hit, sort Sort) int {
	byDate := cmp.Or(a.Date.Compare(b.Date), cmp.Compare(a.Key, b.Key))
	switch sort {
	case SortDateAsc:
		return byDate
	case SortRelevance:
		return cmp.Or(cmp.Compare(b.Rank, a.Rank), -byDate)
	default:
		return -byDate
	}
}

// innerAfter translates the merged keyset position after (whose Key is a
// Sharded key) into shard i's own keys. Hits of shard i with the same
// shard key k as after's come after it when i is on the far side of
// after's shard in the requested order, so the bound moves by one there.
func (s *Sharded) innerAfter(after *Hit, i int64, asc bool) *Hit {
	n := int64(len(s.shards))
	shard := ((after.Key % n) + n) % n
	k := (after.Key - shard) / n
	h := *after
	switch {
	case asc && i > shard:
		h.Key = k - 1 // includes shard i's key k
	case !asc && i < shard:
		h.Key = k + 1
	default:
		h.Key = k
	}
	return &h
}

// Watermark implements Index: the lowest shard watermark.
func (s *Sharded) Watermark(ctx context.Context) (int64, error) {
	var low int64
	for i, sh := range s.shards {
		w, err := sh.Watermark(ctx)
		if err != nil {
			return 0, err
		}
		if i == 0 || w < low {
			low = w
		}
	}
	return low, nil
}

// Count implements Index.
func (s *Sharded) Count(ctx context.Context) (int64, error) {
	var total int64
	for _, sh := range s.shards {
		c, err := sh.Count(ctx)
		if err != nil {
			return 0, err
		}
		total += c
	}
	return total, nil
}

// Reset implements Index.
func (s *Sharded) Reset(ctx context.Context) error {
	return s.each(func(_ int, sh Index) error { return sh.Reset(ctx) })
}

// Scrub removes every trace of deleted documents from the shards that
// support it (see SQLite.Scrub).
func (s *Sharded) Scrub(ctx context.Context) error {
	return s.each(func(_ int, sh Index) error {
		if sc, ok := sh.(interface{ Scrub(context.Context) error }); ok {
			return sc.Scrub(ctx)
		}
		return nil
	})
}

// Close implements Index.
func (s *Sharded) Close() error {
	var errs []error
	for _, sh := range s.shards {
		errs = append(errs, sh.Close())
	}
	return errors.Join(errs...)
}
