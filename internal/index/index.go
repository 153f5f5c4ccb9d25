// Package index is mailarc's full-text engine: documents derived from
// archived messages go in, query ASTs from package query come out as
// message ids, newest first (or oldest first, or by relevance). The index is
// derived data: it can be dropped (Reset) and rebuilt from the store.
//
// # Engine and on-disk format
//
// OpenSQLite keeps an index in its own SQLite database file (WAL mode,
// synchronous=NORMAL, 8 KiB pages), separate from the catalog. A data
// directory's index is two such files, index.db and index-1.db
// (OpenSQLiteDir, SQLiteFiles): Sharded puts each message in the file its
// id hashes to, so that two FTS5 writers index in parallel (one writer was
// the slowest stage of indexing) and merges each search's results. It needs
// SQLite's FTS5 extension, which github.com/mattn/go-sqlite3 compiles in only
// with the build tag sqlite_fts5 (go build -tags sqlite_fts5); without it
// OpenSQLite returns an error saying so. The file holds:
//
//   - fts: a contentless FTS5 table (content=”, contentless_delete=1,
//     secure-delete on, tokenize="unicode61 remove_diacritics 2") with the
//     columns hfrom (From and Sender), hto (To and envelope recipients), hcc,
//     hbcc (Bcc and all envelope recipients), subject, body, attach
//     (attachment text), fname (attachment names and media types) and tags.
//     Being contentless it stores no text: searches return ids, snippets are
//     built by the caller from the raw message (see Snippet).
//   - meta: rid INTEGER PRIMARY KEY (= the fts rowid), seq, id (unique),
//     date (unix seconds), size, has_attachment. Results and the size filter
//     come from here.
//   - state: key/value pairs; "watermark" is the highest change-feed seq
//     indexed, written in the same transaction as the documents.
//   - PRAGMA user_version is the schema version; a file with another
//     version is emptied at open (watermark 0) so the indexer rebuilds it.
//     Each shard file keeps its own watermark; the index's is the lowest.
//
// The rowid follows the message date: rowid = unix_seconds<<20 | (seq &
// 0xFFFFF), the low bits moved on to the next free value on a collision, and
// dates clamped to years 0001-9999. "Newest N matching" therefore walks the
// FTS index by descending rowid and stops after N hits, and date filters are
// rowid ranges. Because FTS5 starts a new segment whenever a write's rowid
// is lower than the previous one, each batch is written in ascending rowid
// order (old rows of re-indexed documents deleted first), not in feed order.
//
// # Tokens
//
// What is a word and which exact-match tokens a document gets (CJK
// bigrams, address forms, origins, has:attachment) is defined once, for
// both indexes, in package tokens. In the SQLite index unicode61 splits
// text at everything but letters, digits and private-use characters and
// folds case and diacritics; CJK runs are rewritten before indexing. The
// exact-match tokens are single words U+E000 + kind + tokens.Digest (20
// hex digits of SHA-256(kind + lowercase value)), which no document or
// query text can produce because private-use characters are turned into
// spaces in all of it. Address forms follow each entry's words in the
// address columns; origins and has:attachment are in the tags column,
// which bare words do not search.
package index

import (
	"context"
	"time"

	"github.com/mailarc/mailarc/internal/query"
)

// Document is what the indexer extracts from one archived message.
type Document struct {
	Seq  int64     // change-feed sequence number
	ID   string    // message id (hex SHA-256)
	Date time.Time // message date; clamped to years 0001-9999
	Size int64     // stored size in bytes
	// Addresses as "Name <addr>" or "addr". From and Sender are searched by
	// from:, To and Envelope by to:, Cc by cc:, Bcc and Envelope by bcc:.
	From, Sender, To, Cc, Bcc, Envelope []string
	Subject, Body                       string
	// AttachmentNames and AttachmentTypes are searched by filename:; a
	// message has an attachment (has:attachment) when either is non-empty.
	AttachmentNames, AttachmentTypes []string
	AttachmentText                   string   // extracted text, searched by attachment:
	Origins                          []string // e.g. "smtp", "import", "api", "imap:journal", "peer:arc-b"
}

// Dates are clamped to 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
const (
	minUnix = -62135596800
	maxUnix = 253402300799
)

// ClampUnix returns the Unix time of t clamped to years 0001-9999: the
// date an index stores for a Document and compares query dates with.
func ClampUnix(t time.Time) int64 { return min(max(t.Unix(), minUnix), maxUnix) }

// HasAttachment reports whether d counts as having an attachment.
func (d *Document) HasAttachment() bool {
	return len(d.AttachmentNames) > 0 || len(d.AttachmentTypes) > 0
}

// Sort is the order of search results.
type Sort int

// Result orders. Ties (equal dates) are broken by seq.
const (
	SortDateDesc  Sort = iota // newest first (default)
	SortDateAsc               // oldest first
	SortRelevance             // best BM25 score first, then newest
)

// Options control a search.
type Options struct {
	// Limit is the page size; <= 0 means DefaultLimit. Offset skips that
	// many results.
	Limit, Offset int
	Sort          Sort
	// Addresses, when non-nil, restricts the search to messages where one
	// of these addresses (exact, case-insensitive) is in From, Sender, To,
	// Cc, Bcc or Envelope (per-user rights). An empty non-nil slice sees
	// nothing.
	Addresses []string
	// After, with SortDateAsc or SortDateDesc, returns only the matches
	// that come after this hit in that order (keyset paging): pass the last
	// hit of the previous page. Unlike Offset, every page costs the same
	// however deep it is, and documents added or removed meanwhile do not
	// shift the pages. The index orders equal dates by Hit.Key. Total, when
	// counted, is the number of matches after the hit. Not allowed with
	// SortRelevance.
	After *Hit
	// CountTotal requests Result.Total, the exact number of matches.
	CountTotal bool
	// CountLimit, when > 0 with CountTotal, stops counting at CountLimit
	// matches: Total is then CountLimit and TotalCapped is set. An exact
	// count costs time in proportion to the matches (tens of ms for a
	// common word at a million messages); a capped one is bounded.
	CountLimit int
}

// DefaultLimit is the page size used when Options.Limit <= 0.
const DefaultLimit = 50

// Hit is one search result.
type Hit struct {
	Seq  int64
	ID   string
	Date time.Time // UTC, second precision
	Size int64
	// Rank is the relevance score (higher is better); it is computed only
	// for SortRelevance with a query that has words, and is 0 otherwise.
	Rank float64
	// Key is the hit's place in the date orders (an index-specific value
	// that orders hits of the same date); Options.After uses it.
	Key int64
}

// Result is one page of search results.
type Result struct {
	Total int // number of matches when Options.CountTotal, else 0
	// TotalCapped reports that counting stopped at Options.CountLimit:
	// there are at least Total matches.
	TotalCapped bool
	Hits        []Hit
}

// Shared is implemented by indexes that several nodes share (the
// PostgreSQL index): the indexer of only one node at a time follows the
// feed, so a batch is not built and written twice. The others wait; when
// the leader stops or its connection drops, one of them takes over from the
// stored watermark.
type Shared interface {
	// LeadIndexing blocks until this process holds the indexing lead or
	// ctx ends. release gives the lead up; lost is closed if the lead is
	// lost without release (the holder should stop and call LeadIndexing
	// again).
	LeadIndexing(ctx context.Context) (release func(), lost <-chan struct{}, err error)
}

// Index is a full-text index of archived messages. Implementations are safe
// for concurrent use.
type Index interface {
	// Add indexes docs in one transaction and records watermark (the
	// highest change-feed seq processed) atomically with them. Re-adding an
	// existing ID replaces the old document.
	Add(ctx context.Context, docs []Document, watermark int64) error
	// Delete removes the documents with these ids; unknown ids are ignored.
	Delete(ctx context.Context, ids []string) error
	// Search returns one page of the messages matching q.
	Search(ctx context.Context, q *query.Query, opt Options) (Result, error)
	// Matches returns which of ids match q (in no particular order); used by
	// retention and holds.
	Matches(ctx context.Context, q *query.Query, ids []string) ([]string, error)
	// Watermark returns the last watermark given to Add (0 when empty).
	Watermark(ctx context.Context) (int64, error)
	// Count returns the number of indexed documents.
	Count(ctx context.Context) (int64, error)
	// Reset drops every document and the watermark (for a reindex).
	Reset(ctx context.Context) error
	Close() error
}
