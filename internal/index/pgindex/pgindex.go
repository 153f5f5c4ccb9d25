// Package pgindex is the PostgreSQL implementation of index.Index: the
// full-text index of a scaled-out mailarc, shared by several nodes through
// one database. It passes the same contract suite (indextest) as the
// embedded SQLite index and gives the same results for every query.
//
// # Schema
//
// All objects carry the prefix idx_ so the index can share a database with
// the catalog:
//
//   - idx_migrations(version, description, applied_at): one row per applied
//     migration. Open applies the missing ones in one transaction under an
//     advisory lock, so nodes starting together migrate once; a database
//     with a newer version than this program knows is refused.
//   - idx_docs(id text PRIMARY KEY, seq, date, size, tsv tsvector): one row
//     per message; date is Unix seconds clamped to years 0001-9999. A GIN
//     index on tsv serves every word, phrase, address and tag query and a
//     b-tree on (date, seq) the date order and date filters. Results are
//     ordered by date, then seq, then id.
//   - idx_state(key, value): "watermark", the highest change-feed seq
//     indexed. Add, Delete and Reset lock this row first (SELECT ... FOR
//     UPDATE) and update it in the same transaction as the documents, so
//     writers on different nodes are serialised and the watermark always
//     matches the documents; document rows are upserted (INSERT ... ON
//     CONFLICT (id) DO UPDATE), so indexing a message twice is harmless.
//
// # Lexemes
//
// The text is tokenised and folded in Go, not by a PostgreSQL text search
// configuration, so that results do not depend on the server's locale,
// dictionaries or parser (which would split "foo-bar", e-mail addresses and
// file names its own way) and match the SQLite index exactly: the rules
// shared with it (CJK bigrams, address forms, exact-match tokens) are in
// package tokens. Tokens are runs of letters and digits, lowercased, with
// diacritics removed (café = CAFE; this is what the "unaccent" + "simple"
// configuration would do), CJK runs rewritten by tokens.CJKPrep, and cut
// at 255 bytes. The tsvector literal is built in Go and the tsquery
// likewise, so PostgreSQL only stores and matches lexemes.
//
// Every lexeme starts with a one-letter field code: f (From and Sender),
// t (To and envelope), c (Cc), b (Bcc and envelope), s (subject), y (body),
// a (attachment text), n (attachment names and types), g (tags). "sreport"
// is the word report in the subject; a bare word searches the eight text
// codes, from: only f. Word lexemes carry positions (per field, from 1, a
// free position between two address entries so a phrase cannot span them)
// and the weight labels used by ts_rank: subject A, from B, file names C,
// the rest D. Exact-match facets are position-less special lexemes: code,
// '!', kind and tokens.Digest (20 hex digits of SHA-256(kind + lowercase
// value)), kind 'a' for an address (the full address, "local@" and
// "@domain" for the domain and each of its suffixes), 'o' for an origin and
// each colon-segment prefix, 't' for has:attachment. Words never contain
// '!', so only the compiler's own exact lexemes reach them.
//
// # Limits
//
// PostgreSQL keeps at most 256 positions per lexeme and clamps positions
// to 16383 per field: a phrase whose match lies beyond the 16383rd token
// of a field, or uses a word's 257th occurrence, is not found. A tsvector
// may not exceed 1 MiB: a document whose vector would exceed 512 KiB (some
// 40,000 distinct words in one field) is truncated, dropping the words of
// its largest field in reverse order of first occurrence until it fits,
// so its last distinct words are not found.
package pgindex

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/index/boolexpr"
	"github.com/mailarc/mailarc/internal/query"
)

// Index is the PostgreSQL implementation of index.Index. It is safe for
// concurrent use, also by several processes sharing the database.
type Index struct {
	pool *pgxpool.Pool
}

var _ index.Index = (*Index)(nil)

// Open connects to the database named by dsn (a libpq keyword/value string
// or URL, see pgxpool.ParseConfig; pool_max_conns and the like are
// accepted) and applies missing schema migrations.
func Open(ctx context.Context, dsn string) (*Index, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("pgindex: parse dsn: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("pgindex: connect: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, fmt.Errorf("pgindex: %w", err)
	}
	return &Index{pool: pool}, nil
}

// Close closes the connection pool.
func (x *Index) Close() error {
	x.pool.Close()
	return nil
}

// writeTx runs f in a transaction that holds the watermark row lock, which
// serialises all writers, also across processes.
func (x *Index) writeTx(ctx context.Context, f func(tx pgx.Tx) error) error {
	return pgx.BeginFunc(ctx, x.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT value FROM idx_state WHERE key = 'watermark' FOR UPDATE`); err != nil {
			return fmt.Errorf("lock watermark: %w", err)
		}
		return f(tx)
	})
}

// Add indexes docs and stores watermark in one transaction. Within docs
// the last document with a given ID wins.
func (x *Index) Add(ctx context.Context, docs []index.Document, watermark int64) error {
	last := make(map[string]int, len(docs))
	for i := range docs {
		last[docs[i].ID] = i
	}
	n := len(last)
	ids, vecs := make([]string, 0, n), make([]string, 0, n)
	seqs, dates, sizes := make([]int64, 0, n), make([]int64, 0, n), make([]int64, 0, n)
	for i := range docs {
		d := &docs[i]
		if last[d.ID] != i {
			continue
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("pgindex add: %w", err)
		}
		ids = append(ids, d.ID)
		seqs = append(seqs, d.Seq)
		dates = append(dates, index.ClampUnix(d.Date))
		sizes = append(sizes, d.Size)
		vecs = append(vecs, docVector(d))
	}
	err := x.writeTx(ctx, func(tx pgx.Tx) error {
		if n > 0 {
			_, err := tx.Exec(ctx, `INSERT INTO idx_docs(id, seq, date, size, tsv)
				SELECT u.id, u.seq, u.date, u.size, u.tsv::tsvector
				FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[]) AS u(id, seq, date, size, tsv)
				ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, date = excluded.date, size = excluded.size, tsv = excluded.tsv`,
				ids, seqs, dates, sizes, vecs)
			if err != nil {
				return fmt.Errorf("upsert %d documents: %w", n, err)
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE idx_state SET value = $1 WHERE key = 'watermark'`, watermark); err != nil {
			return fmt.Errorf("watermark: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pgindex add: %w", err)
	}
	return nil
}

// Delete removes the documents with these ids; unknown ids are ignored.
func (x *Index) Delete(ctx context.Context, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	err := x.writeTx(ctx, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `DELETE FROM idx_docs WHERE id = ANY($1::text[])`, ids)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgindex delete: %w", err)
	}
	return nil
}

// Watermark returns the stored watermark, 0 if none.
func (x *Index) Watermark(ctx context.Context) (int64, error) {
	var w int64
	err := x.pool.QueryRow(ctx, `SELECT value FROM idx_state WHERE key = 'watermark'`).Scan(&w)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("pgindex watermark: %w", err)
	}
	return w, nil
}

// Count returns the number of indexed documents.
func (x *Index) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := x.pool.QueryRow(ctx, `SELECT count(*) FROM idx_docs`).Scan(&n); err != nil {
		return 0, fmt.Errorf("pgindex count: %w", err)
	}
	return n, nil
}

// Reset drops every document and the watermark. It truncates idx_docs,
// which briefly blocks concurrent searches.
func (x *Index) Reset(ctx context.Context) error {
	err := x.writeTx(ctx, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `TRUNCATE idx_docs`); err != nil {
			return err
		}
		_, err := tx.Exec(ctx, `UPDATE idx_state SET value = 0 WHERE key = 'watermark'`)
		return err
	})
	if err != nil {
		return fmt.Errorf("pgindex reset: %w", err)
	}
	return nil
}

// Scrub vacuums idx_docs after deletions (retention purges), so that dead
// rows and their index entries are removed and the space reused. Unlike
// the SQLite index it cannot promise that the bytes are overwritten:
// PostgreSQL does not zero freed space in pages, and its WAL and any WAL
// archive or backup keep old row versions until they are recycled.
func (x *Index) Scrub(ctx context.Context) error {
	if _, err := x.pool.Exec(ctx, `VACUUM idx_docs`); err != nil {
		return fmt.Errorf("pgindex scrub: %w", err)
	}
	return nil
}

// Search returns one page of the messages matching q.
func (x *Index) Search(ctx context.Context, q *query.Query, opt index.Options) (index.Result, error) {
	var root query.Node
	if q != nil {
		root = q.Root
	}
	qe := compileNode(root)
	e := simplifyAnd([]expr{qe, visibilityExpr(opt.Addresses)})
	if c, ok := e.(boolexpr.Const); ok && !bool(c) {
		return index.Result{Hits: []index.Hit{}}, nil
	}
	limit := opt.Limit
	if limit <= 0 {
		limit = index.DefaultLimit
	}
	offset := max(opt.Offset, 0)

	var b sqlBuilder
	b.sb.WriteString(" FROM idx_docs d WHERE (")
	b.cond(e)
	b.sb.WriteString(")")
	if opt.After != nil {
		// Keyset paging in the (date, seq) order of idx_docs_date; Key is
		// the seq.
		op := " > "
		switch opt.Sort {
		case index.SortDateAsc:
		case index.SortDateDesc:
			op = " < "
		default:
			return index.Result{}, errors.New("pgindex search: Options.After needs a date sort")
		}
		b.sb.WriteString(" AND (d.date, d.seq)" + op + "(" + b.param(index.ClampUnix(opt.After.Date)) + "::bigint, " + b.param(opt.After.Key) + "::bigint)")
	}
	where := b.sb.String()
	whereArgs := len(b.args)

	rank := "0::float8"
	order := "d.date DESC, d.seq DESC, d.id DESC"
	switch opt.Sort {
	case index.SortDateAsc:
		order = "d.date ASC, d.seq ASC, d.id ASC"
	case index.SortRelevance:
		if rq := rankQuery(qe); rq != "" {
			rank = "ts_rank('" + rankWeights + "'::float4[], d.tsv, " + b.param(rq) + "::text::tsquery, 1)::float8"
			order = "5 DESC, " + order
		}
	}
	page := "SELECT d.seq, d.id, d.date, d.size, " + rank + where +
		" ORDER BY " + order + " LIMIT " + b.param(int64(limit)) + " OFFSET " + b.param(int64(offset))

	res := index.Result{Hits: []index.Hit{}}
	run := func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, page, b.args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var h index.Hit
			var date int64
			if err := rows.Scan(&h.Seq, &h.ID, &date, &h.Size, &h.Rank); err != nil {
				return fmt.Errorf("scan: %w", err)
			}
			h.Date = time.Unix(date, 0).UTC()
			h.Key = h.Seq
			res.Hits = append(res.Hits, h)
		}
		return rows.Err()
	}
	// Plan choice. PostgreSQL's cost model does not know that testing
	// "tsv @@ query" row by row means de-TOASTing every tsvector: left alone
	// it counts with a sequential scan and pages by walking the date index
	// with that filter, ~100 ms at 12,000 messages and seconds for a rare
	// word at a million. So sequential scans are off for searches, the
	// matches are counted through the GIN index first (capped at
	// sparseMatches when no exact count is wanted), and when they are few
	// the page comes from the GIN bitmap sorted by date (plain index scans
	// off); when they are many, walking the date index newest first finds 50
	// within about limit*docs/matches rows. Count and page share one
	// snapshot, so Total agrees with the hits.
	err := pgx.BeginTxFunc(ctx, x.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL enable_seqscan = off"); err != nil {
			return err
		}
		probe := sparseMatches
		if opt.CountTotal {
			probe = max(probe, opt.CountLimit)
		}
		countSQL, countArgs := "SELECT count(*)"+where, b.args[:whereArgs]
		if !opt.CountTotal || opt.CountLimit > 0 {
			countArgs = append(append([]any{}, countArgs...), probe+1)
			countSQL = fmt.Sprintf("SELECT count(*) FROM (SELECT 1%s LIMIT $%d) capped", where, len(countArgs))
		}
		var matches int
		if err := tx.QueryRow(ctx, countSQL, countArgs...).Scan(&matches); err != nil {
			return fmt.Errorf("count: %w", err)
		}
		if opt.CountTotal {
			res.Total = matches
		}
		if matches <= sparseMatches {
			if _, err := tx.Exec(ctx, "SET LOCAL enable_indexscan = off"); err != nil {
				return err
			}
		}
		return run(tx)
	})
	if err != nil {
		return index.Result{}, fmt.Errorf("pgindex search: %w", err)
	}
	if opt.CountLimit > 0 && res.Total > opt.CountLimit {
		res.Total, res.TotalCapped = opt.CountLimit, true
	}
	return res, nil
}

// matchChunk bounds the number of ids per Matches statement.
const matchChunk = 5000

// sparseMatches is the match count up to which a search page is read from
// the GIN index and sorted, rather than found by walking the date index.
const sparseMatches = 10000

// Matches returns which of ids match q (in no particular order).
func (x *Index) Matches(ctx context.Context, q *query.Query, ids []string) ([]string, error) {
	var root query.Node
	if q != nil {
		root = q.Root
	}
	e := compileNode(root)
	out := []string{}
	if c, ok := e.(boolexpr.Const); ok && !bool(c) {
		return out, nil
	}
	for start := 0; start < len(ids); start += matchChunk {
		chunk := ids[start:min(start+matchChunk, len(ids))]
		var b sqlBuilder
		b.sb.WriteString("SELECT d.id FROM idx_docs d WHERE d.id = ANY(" + b.param(chunk) + "::text[]) AND ")
		b.cond(e)
		rows, err := x.pool.Query(ctx, b.sb.String(), b.args...)
		if err != nil {
			return nil, fmt.Errorf("pgindex matches: %w", err)
		}
		got, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return nil, fmt.Errorf("pgindex matches: %w", err)
		}
		out = append(out, got...)
	}
	return out, nil
}
