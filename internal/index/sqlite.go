package index

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"maps"
	"math"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "github.com/mattn/go-sqlite3" // database/sql driver "sqlite3"

	"github.com/mailarc/mailarc/internal/index/tokens"
	"github.com/mailarc/mailarc/internal/query"
)

// schemaVersion is stored in PRAGMA user_version. Version 2: a data
// directory's index is split over SQLiteShards files by message id
// (Sharded); a version-1 index.db held every document, so it is emptied and
// rebuilt rather than left holding documents that now belong to another
// shard.
const schemaVersion = 2

const (
	ridShift = 20
	ridMask  = 1<<ridShift - 1
)

// ErrNoFTS5 is returned by OpenSQLite when the program was built without
// SQLite's FTS5 extension.
var ErrNoFTS5 = errors.New("index: SQLite FTS5 is not available: build mailarc with -tags sqlite_fts5")

const createFTS = `CREATE VIRTUAL TABLE fts USING fts5(
	hfrom, hto, hcc, hbcc, subject, body, attach, fname, tags,
	content='', contentless_delete=1,
	tokenize="unicode61 remove_diacritics 2")`

// ftsWeights are the BM25 column weights in column order.
const ftsWeights = "2.0, 1.0, 1.0, 1.0, 3.0, 1.0, 1.0, 1.5, 0.0"

// schema returns the statements that create an empty index.
func schema() []string {
	return []string{
		createFTS,
		`INSERT INTO fts(fts, rank) VALUES('secure-delete', 1)`,
		`INSERT INTO fts(fts, rank) VALUES('automerge', 8)`,
		`INSERT INTO fts(fts, rank) VALUES('crisismerge', 32)`,
		`INSERT INTO fts(fts, rank) VALUES('pgsz', 8000)`,
		`INSERT INTO fts(fts, rank) VALUES('hashsize', 33554432)`,
		`CREATE TABLE meta(
		rid INTEGER PRIMARY KEY,
		seq INTEGER NOT NULL,
		id TEXT NOT NULL UNIQUE,
		date INTEGER NOT NULL,
		size INTEGER NOT NULL,
		has_attachment INTEGER NOT NULL)`,
		`CREATE TABLE state(key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID`,
		fmt.Sprintf(`PRAGMA user_version = %d`, schemaVersion),
	}
}

// SQLite is the SQLite FTS5 implementation of Index.
type SQLite struct {
	db  *sql.DB
	wmu sync.Mutex // one writer at a time
}

var _ Index = (*SQLite)(nil)

// OpenSQLite opens (creating if needed) the index database at path.
func OpenSQLite(path string) (*SQLite, error) {
	if !fts5Compiled {
		return nil, ErrNoFTS5
	}
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_synchronous=NORMAL&_busy_timeout=10000&_txlock=immediate&_cache_size=-65536&_secure_delete=FAST"
	db, err := sql.Open("sqlite3", dsn)
	if err != nil {
		return nil, fmt.Errorf("index: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	s := &SQLite{db: db}
	if err := s.init(context.Background()); err != nil {
		return nil, errors.Join(fmt.Errorf("index: open %s: %w", path, err), db.Close())
	}
	return s, nil
}

func (s *SQLite) init(ctx context.Context) error {
	c, err := s.db.Conn(ctx)
	if err != nil {
		return err
	}
	defer c.Close()
	// page_size only takes effect before the first table exists, and must
	// precede the switch to WAL.
	for _, p := range []string{`PRAGMA page_size = 8192`, `PRAGMA journal_mode = WAL`} {
		if _, err := c.ExecContext(ctx, p); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	var ver int
	if err := c.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&ver); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if ver == schemaVersion {
		return nil
	}
	return s.recreate(ctx, c)
}

// recreate drops and creates all tables in one transaction.
func (s *SQLite) recreate(ctx context.Context, c *sql.Conn) error {
	tx, err := c.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	for _, st := range append([]string{
		`DROP TABLE IF EXISTS fts`, `DROP TABLE IF EXISTS meta`, `DROP TABLE IF EXISTS state`,
	}, schema()...) {
		if _, err := tx.ExecContext(ctx, st); err != nil {
			if strings.Contains(err.Error(), "no such module: fts5") {
				return ErrNoFTS5
			}
			return fmt.Errorf("create schema: %w", err)
		}
	}
	return tx.Commit()
}

// Close closes the database.
func (s *SQLite) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("index: close: %w", err)
	}
	return nil
}

// row is the FTS column values of a document.
func ftsValues(d *Document) []any {
	var tags []string
	for _, o := range d.Origins {
		for _, p := range query.OriginPrefixes(o) {
			tags = append(tags, specialToken(tokens.KindOrigin, p))
		}
	}
	if d.HasAttachment() {
		tags = append(tags, specialToken(tokens.KindTag, "attachment"))
	}
	fname := append(append([]string(nil), d.AttachmentNames...), d.AttachmentTypes...)
	return []any{
		addressColumn(d.From, d.Sender),
		addressColumn(d.To, d.Envelope),
		addressColumn(d.Cc),
		addressColumn(d.Bcc, d.Envelope),
		textColumn(d.Subject),
		textColumn(d.Body),
		textColumn(d.AttachmentText),
		textColumn(fname...),
		strings.Join(tags, " "),
	}
}

// Add indexes docs and stores watermark in one transaction.
//
// Rows are written in ascending rowid order: FTS5 flushes its in-memory
// term hash to a new segment whenever a write's rowid is lower than the
// previous one, and rowids follow message dates, which arrive in no
// particular order. Written in feed order, a batch of 1,000 documents made
// hundreds of tiny segments for the merger to fold together; sorted, it
// makes one (two when the batch replaces documents: deletions go first).
// Only the last copy of a document that occurs twice in docs is indexed.
func (s *SQLite) Add(ctx context.Context, docs []Document, watermark int64) error {
	order := writeOrder(docs)

	// Column text (sanitising, CJK bigrams, address and tag tokens) is
	// prepared on every CPU in that order, streaming into the single
	// writer: the writer waits only for the document it inserts next.
	cols := make([][]any, len(docs))
	ready := make([]chan struct{}, len(docs))
	for _, i := range order {
		ready[i] = make(chan struct{})
	}
	stop := make(chan struct{})
	defer close(stop)
	var next atomic.Int64
	for range min(runtime.GOMAXPROCS(0), max(len(order)/16, 1)) {
		go func() {
			for {
				k := int(next.Add(1) - 1)
				if k >= len(order) {
					return
				}
				select {
				case <-stop:
					return
				default:
				}
				i := order[k]
				cols[i] = ftsValues(&docs[i])
				close(ready[i])
			}
		}()
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("index add: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	prep := func(q string) *sql.Stmt {
		if err != nil {
			return nil
		}
		var st *sql.Stmt
		st, err = tx.PrepareContext(ctx, q)
		return st
	}
	taken := prep(`SELECT 1 FROM meta WHERE rid = ?`)
	delFTS := prep(`DELETE FROM fts WHERE rowid = ?`)
	delMeta := prep(`DELETE FROM meta WHERE rid = ?`)
	insFTS := prep(`INSERT INTO fts(rowid, hfrom, hto, hcc, hbcc, subject, body, attach, fname, tags) VALUES (?,?,?,?,?,?,?,?,?,?)`)
	insMeta := prep(`INSERT INTO meta(rid, seq, id, date, size, has_attachment) VALUES (?,?,?,?,?,?)`)
	if err != nil {
		return fmt.Errorf("index add: prepare: %w", err)
	}
	// The per-row statements run without ctx's cancellation (the driver
	// starts a watcher goroutine per statement for a cancellable context);
	// ctx is checked between documents instead.
	outer := ctx
	ctx = context.WithoutCancel(ctx)

	// Documents already indexed are replaced: their old rows go first, in
	// rowid order (one query finds them for the whole batch).
	present, err := s.indexedRids(outer, tx, docs)
	if err != nil {
		return fmt.Errorf("index add: %w", err)
	}
	for _, rid := range slices.Sorted(maps.Values(present)) {
		if err := outer.Err(); err != nil {
			return fmt.Errorf("index add: %w", err)
		}
		if err := s.removeRow(ctx, delFTS, delMeta, rid); err != nil {
			return fmt.Errorf("index add: replace row %d: %w", rid, err)
		}
	}

	rids, err := s.assignRids(ctx, outer, tx, taken, docs, order)
	if err != nil {
		return err
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(rids[a], rids[b]) })

	for _, i := range order {
		d := &docs[i]
		if err := outer.Err(); err != nil {
			return fmt.Errorf("index add: %w", err)
		}
		<-ready[i]
		if _, err := insFTS.ExecContext(ctx, append([]any{rids[i]}, cols[i]...)...); err != nil {
			return fmt.Errorf("index add %s: fts insert: %w", d.ID, err)
		}
		if _, err := insMeta.ExecContext(ctx, rids[i], d.Seq, d.ID, ClampUnix(d.Date), d.Size, d.HasAttachment()); err != nil {
			return fmt.Errorf("index add %s: meta insert: %w", d.ID, err)
		}
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO state(key, value) VALUES('watermark', ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`, watermark); err != nil {
		return fmt.Errorf("index add: watermark: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("index add: commit: %w", err)
	}
	return nil
}

// firstRid is the rowid a document gets unless another row has it.
func firstRid(d *Document) int64 { return ClampUnix(d.Date)<<ridShift | d.Seq&ridMask }

// writeOrder returns the indexes of the documents of docs to write (the
// last copy of each id), by first-choice rowid: almost always their final
// order, so column text is prepared in the order the writer needs it.
func writeOrder(docs []Document) []int {
	last := make(map[string]int, len(docs))
	for i := range docs {
		last[docs[i].ID] = i
	}
	order := make([]int, 0, len(last))
	for i := range docs {
		if last[docs[i].ID] == i {
			order = append(order, i)
		}
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(firstRid(&docs[a]), firstRid(&docs[b])) })
	return order
}

// assignRids gives each document of order its rowid (indexed like docs):
// its first choice unless taken (checked for the whole batch at once),
// else the next free one in the same second, probed with taken. Rows of
// the batch are not written yet, so rowids handed out earlier in the batch
// count as taken too. ctx runs the statements; outer is the caller's
// context.
func (s *SQLite) assignRids(ctx, outer context.Context, tx *sql.Tx, taken *sql.Stmt, docs []Document, order []int) ([]int64, error) {
	firsts := make([]any, len(order))
	for k, i := range order {
		firsts[k] = firstRid(&docs[i])
	}
	takenAtStart, err := s.takenRids(outer, tx, firsts)
	if err != nil {
		return nil, fmt.Errorf("index add: %w", err)
	}
	rids := make([]int64, len(docs))
	assigned := make(map[int64]bool, len(order))
	for _, i := range order {
		d := &docs[i]
		sec := ClampUnix(d.Date)
		low := d.Seq & ridMask
		rid := int64(-1)
		if first := firstRid(d); !takenAtStart[first] && !assigned[first] {
			rid = first // known free: not in the index when the batch began, not used since
		}
		for n := int64(0); rid == -1 && n <= ridMask; n++ {
			cand := sec<<ridShift | (low+n)&ridMask
			if assigned[cand] {
				continue
			}
			var one int
			err := taken.QueryRowContext(ctx, cand).Scan(&one)
			if errors.Is(err, sql.ErrNoRows) {
				rid = cand
				break
			}
			if err != nil {
				return nil, fmt.Errorf("index add %s: rowid probe: %w", d.ID, err)
			}
		}
		if rid == -1 {
			return nil, fmt.Errorf("index add %s: more than %d messages in one second", d.ID, ridMask+1)
		}
		rids[i] = rid
		assigned[rid] = true
	}
	return rids, nil
}

// indexedRids returns the rowids of the documents of docs already in the
// index, by id.
func (s *SQLite) indexedRids(ctx context.Context, tx *sql.Tx, docs []Document) (map[string]int64, error) {
	ids := make([]any, len(docs))
	for i := range docs {
		ids[i] = docs[i].ID
	}
	present := make(map[string]int64)
	err := queryIn(ctx, tx, `SELECT id, rid FROM meta WHERE id IN `, ids, func(rows *sql.Rows) error {
		var id string
		var rid int64
		if err := rows.Scan(&id, &rid); err != nil {
			return err
		}
		present[id] = rid
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("look up indexed ids: %w", err)
	}
	return present, nil
}

// takenRids returns which of rids are rowids of indexed documents.
func (s *SQLite) takenRids(ctx context.Context, tx *sql.Tx, rids []any) (map[int64]bool, error) {
	taken := make(map[int64]bool)
	err := queryIn(ctx, tx, `SELECT rid FROM meta WHERE rid IN `, rids, func(rows *sql.Rows) error {
		var rid int64
		if err := rows.Scan(&rid); err != nil {
			return err
		}
		taken[rid] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("check rowids: %w", err)
	}
	return taken, nil
}

// queryIn runs query + "(?,?,...)" for args in chunks of 500 (well below
// SQLite's parameter limit) and calls row for every result row.
func queryIn(ctx context.Context, tx *sql.Tx, query string, args []any, row func(*sql.Rows) error) error {
	const chunk = 500
	for start := 0; start < len(args); start += chunk {
		part := args[start:min(start+chunk, len(args))]
		rows, err := tx.QueryContext(ctx, query+`(?`+strings.Repeat(`,?`, len(part)-1)+`)`, part...)
		if err != nil {
			return err
		}
		for rows.Next() {
			if err := row(rows); err != nil {
				rows.Close()
				return err
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}
	return nil
}

// removeRow deletes one indexed document by rowid.
func (s *SQLite) removeRow(ctx context.Context, delFTS, delMeta *sql.Stmt, rid int64) error {
	if _, err := delFTS.ExecContext(ctx, rid); err != nil {
		return fmt.Errorf("fts delete: %w", err)
	}
	if _, err := delMeta.ExecContext(ctx, rid); err != nil {
		return fmt.Errorf("meta delete: %w", err)
	}
	return nil
}

func (s *SQLite) removeTx(ctx context.Context, byID, delFTS, delMeta *sql.Stmt, id string) error {
	var rid int64
	err := byID.QueryRowContext(ctx, id).Scan(&rid)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lookup: %w", err)
	}
	return s.removeRow(ctx, delFTS, delMeta, rid)
}

// Delete removes the documents with these ids.
func (s *SQLite) Delete(ctx context.Context, ids []string) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("index delete: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	var stmts [3]*sql.Stmt
	for i, q := range []string{`SELECT rid FROM meta WHERE id = ?`, `DELETE FROM fts WHERE rowid = ?`, `DELETE FROM meta WHERE rid = ?`} {
		if stmts[i], err = tx.PrepareContext(ctx, q); err != nil {
			return fmt.Errorf("index delete: prepare: %w", err)
		}
	}
	for _, id := range ids {
		if err := s.removeTx(ctx, stmts[0], stmts[1], stmts[2], id); err != nil {
			return fmt.Errorf("index delete %s: %w", id, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("index delete: commit: %w", err)
	}
	return nil
}

// Watermark returns the stored watermark, 0 if none.
func (s *SQLite) Watermark(ctx context.Context) (int64, error) {
	var w int64
	err := s.db.QueryRowContext(ctx, `SELECT value FROM state WHERE key = 'watermark'`).Scan(&w)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("index watermark: %w", err)
	}
	return w, nil
}

// Count returns the number of indexed documents.
func (s *SQLite) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM meta`).Scan(&n); err != nil {
		return 0, fmt.Errorf("index count: %w", err)
	}
	return n, nil
}

// Reset drops all documents and the watermark.
func (s *SQLite) Reset(ctx context.Context) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	c, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("index reset: %w", err)
	}
	defer c.Close()
	if err := s.recreate(ctx, c); err != nil {
		return fmt.Errorf("index reset: %w", err)
	}
	return nil
}

// Search returns one page of matches for q.
func (s *SQLite) Search(ctx context.Context, q *query.Query, opt Options) (Result, error) {
	var root query.Node
	if q != nil {
		root = q.Root
	}
	p := makePlan(root, opt.Addresses)
	if p.none {
		return Result{Hits: []Hit{}}, nil
	}
	if opt.After != nil {
		// Keyset paging: Key is the rowid, whose order is the date order,
		// so "after the hit" narrows the rowid range (and bounds the FTS
		// subqueries of the conditions too).
		if opt.Sort == SortRelevance {
			return Result{}, errors.New("index search: Options.After needs a date sort")
		}
		r := ridRange{lo: math.MinInt64, hi: math.MaxInt64}
		if p.rng != nil {
			r = *p.rng
		}
		if opt.Sort == SortDateAsc {
			r.lo = max(r.lo, opt.After.Key+1)
		} else {
			r.hi = min(r.hi, opt.After.Key-1)
		}
		if r.lo > r.hi {
			return Result{Hits: []Hit{}}, nil
		}
		p.rng = &r
	}
	limit := opt.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	offset := max(opt.Offset, 0)

	var from, rowid, rank string
	var where []string
	var args []any
	if p.match != "" {
		from = "fts CROSS JOIN meta m ON m.rid = fts.rowid"
		rowid = "fts.rowid"
		where = append(where, "fts MATCH ?")
		args = append(args, p.match)
		rank = "0.0"
		if opt.Sort == SortRelevance {
			// Only relevance needs the score. bm25() counts the documents
			// of every phrase of the query (a scan of their whole doclists)
			// the first time it runs: 13-17 ms of a 1 ms date-ordered page
			// at 500,000 documents per index.
			rank = "-bm25(fts, " + ftsWeights + ")"
		}
	} else {
		from = "meta m"
		rowid = "m.rid"
		rank = "0.0"
	}
	if p.rng != nil {
		where = append(where, rowid+" BETWEEN ? AND ?")
		args = append(args, p.rng.lo, p.rng.hi)
	}
	sc := sqlCtx{lo: math.MinInt64, hi: math.MaxInt64}
	if p.rng != nil {
		sc = sqlCtx{lo: p.rng.lo, hi: p.rng.hi}
	}
	for _, c := range p.conds {
		var sb strings.Builder
		toSQL(c, sc, &sb, &args)
		where = append(where, sb.String())
	}
	whereSQL := ""
	if len(where) > 0 {
		whereSQL = " WHERE " + strings.Join(where, " AND ")
	}
	var order string
	switch opt.Sort {
	case SortDateAsc:
		order = rowid + " ASC"
	case SortRelevance:
		if p.match != "" {
			order = "bm25(fts, " + ftsWeights + "), " + rowid + " DESC"
		} else {
			order = rowid + " DESC"
		}
	default:
		order = rowid + " DESC"
	}
	var res Result
	// The count runs beside the page query, on another connection, so a
	// search costs the longer of the two rather than their sum.
	countDone := make(chan error, 1)
	if opt.CountTotal {
		countFrom := from
		if p.match != "" && len(p.conds) == 0 {
			countFrom = "fts"
		}
		countSQL := "SELECT count(*) FROM " + countFrom + whereSQL
		countArgs := args
		if opt.CountLimit > 0 {
			countSQL = "SELECT count(*) FROM (SELECT 1 FROM " + countFrom + whereSQL + " LIMIT ?)"
			countArgs = append(append([]any{}, args...), opt.CountLimit+1)
		}
		go func() {
			countDone <- s.db.QueryRowContext(ctx, countSQL, countArgs...).Scan(&res.Total)
		}()
	} else {
		countDone <- nil
	}
	hits, err := s.page(ctx, "SELECT m.seq, m.id, m.date, m.size, "+rank+", m.rid FROM "+from+whereSQL+
		" ORDER BY "+order+" LIMIT ? OFFSET ?", append(args, limit, offset))
	if cerr := <-countDone; cerr != nil && err == nil {
		err = fmt.Errorf("index search: count: %w", cerr)
	}
	if err != nil {
		return Result{}, err
	}
	res.Hits = hits
	if opt.CountLimit > 0 && res.Total > opt.CountLimit {
		res.Total, res.TotalCapped = opt.CountLimit, true
	}
	return res, nil
}

// page runs a search's page query.
func (s *SQLite) page(ctx context.Context, stmt string, args []any) ([]Hit, error) {
	rows, err := s.db.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, fmt.Errorf("index search: %w", err)
	}
	defer rows.Close()
	hits := []Hit{}
	for rows.Next() {
		var h Hit
		var date int64
		if err := rows.Scan(&h.Seq, &h.ID, &date, &h.Size, &h.Rank, &h.Key); err != nil {
			return nil, fmt.Errorf("index search: scan: %w", err)
		}
		h.Date = time.Unix(date, 0).UTC()
		hits = append(hits, h)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("index search: %w", err)
	}
	return hits, nil
}

// matchChunk bounds the number of ids per Matches statement.
const matchChunk = 500

// Matches returns which of ids match q.
func (s *SQLite) Matches(ctx context.Context, q *query.Query, ids []string) ([]string, error) {
	var root query.Node
	if q != nil {
		root = q.Root
	}
	e := compileNode(root)
	out := []string{}
	for start := 0; start < len(ids); start += matchChunk {
		chunk := ids[start:min(start+matchChunk, len(ids))]
		args := make([]any, 0, len(chunk)+8)
		for _, id := range chunk {
			args = append(args, id)
		}
		inList := "(" + strings.Repeat("?,", len(chunk)-1) + "?)"
		// Bound the FTS subqueries by the rowid range of this chunk: cheap
		// when callers pass ids in date order, as sweeps do.
		var sc sqlCtx
		err := s.db.QueryRowContext(ctx, "SELECT coalesce(min(rid), 0), coalesce(max(rid), -1) FROM meta WHERE id IN "+inList, args...).Scan(&sc.lo, &sc.hi)
		if err != nil {
			return nil, fmt.Errorf("index matches: %w", err)
		}
		if sc.lo > sc.hi {
			continue
		}
		var sb strings.Builder
		sb.WriteString("SELECT m.id FROM meta m WHERE m.id IN " + inList + " AND ")
		toSQL(e, sc, &sb, &args)
		rows, err := s.db.QueryContext(ctx, sb.String(), args...)
		if err != nil {
			return nil, fmt.Errorf("index matches: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("index matches: scan: %w", err)
			}
			out = append(out, id)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("index matches: %w", err)
		}
	}
	return out, nil
}

// Scrub removes every trace of deleted documents from the database file:
// the FTS5 table is optimised (merged into one segment, the old segments'
// pages zeroed with secure_delete on) and the WAL, which still holds old
// page images, is checkpointed and truncated. Retention purges call it so
// purged words are really gone. Readers keep working meanwhile.
func (s *SQLite) Scrub(ctx context.Context) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	c, err := s.db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("index scrub: %w", err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, `PRAGMA secure_delete = ON`); err != nil {
		return fmt.Errorf("index scrub: %w", err)
	}
	// The connection goes back to the pool afterwards: restore the default.
	defer c.ExecContext(context.WithoutCancel(ctx), `PRAGMA secure_delete = FAST`) //nolint:errcheck
	if _, err := c.ExecContext(ctx, `INSERT INTO fts(fts) VALUES('optimize')`); err != nil {
		return fmt.Errorf("index scrub: optimize: %w", err)
	}
	for {
		var busy, logFrames, done int
		if err := c.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logFrames, &done); err != nil {
			return fmt.Errorf("index scrub: checkpoint: %w", err)
		}
		if busy == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("index scrub: readers kept the WAL busy: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}
