// Package catalog is mailarc's metadata database: one SQLite file
// (data_dir/catalog.db) in WAL mode with synchronous=FULL, so a committed
// transaction survives power loss.
//
// Writes go through a single connection (one writer); the archive's group
// commit calls Commit with many messages per transaction. Reads use a
// separate pool and never block the writer.
//
// Tables (versions in schema_migrations per component; the core migrations
// in migrate.go run at Open, other packages add their own tables through
// Migrate with their own component name):
//
//	meta(key, value)            node facts: store_instance, created, counters;
//	                            last_commit ("A B S": the last Commit's mseq
//	                            range (A, B] and first new seq S, for the
//	                            archive's crash recovery; removed by
//	                            SettleCommits at a clean close)
//	messages(seq, id, ...)      one row per archived message. seq INTEGER
//	                            PRIMARY KEY AUTOINCREMENT is the change feed:
//	                            it only grows and is never reused, even after
//	                            a purge. mseq is a second counter bumped on
//	                            every metadata change (insert or union), which
//	                            the indexer follows.
//	origins(seq, origin)        every source that delivered the message (union)
//	envelope(seq, kind, addr)   SMTP/journal envelope: kind 'from' or 'rcpt'
//	journal_reports(seq, report_id)
//	                            journal report blobs the message was unwrapped from
//	tombstones(id, purged_at, reason)
//	                            ids purged by retention; never stored again
//	users, tokens               accounts and API tokens (package auth)
//	peer_cursors, source_state  reserved for mirroring and journal pull
//
// # PostgreSQL
//
// OpenPostgres opens the same catalog in a PostgreSQL database (pgx v5
// through database/sql), which several mailarc nodes may share. The Catalog
// type, its methods and DB() are the same; the differences are internal:
//
//   - Placeholders: components keep writing "?"; the connections rewrite
//     them to $1, $2, ... (pgdriver.go), and make string arguments valid
//     UTF-8 without NUL bytes, which PostgreSQL text cannot hold.
//   - Schema: the same tables and versions per component, with PostgreSQL
//     DDL where SQLite's differs (BIGINT, no WITHOUT ROWID, "C" collation
//     on compared text so ordering is bytewise as in SQLite, plpgsql
//     triggers); components pass both with MigrateDialects. Each migration
//     step runs in a transaction holding an advisory lock, so nodes starting
//     together apply it once.
//   - Change feed: messages.seq is not a sequence (sequences hand out
//     numbers in an order other than commit order, so a follower reading
//     seq > watermark could skip a row that commits late). Commit and Purge
//     take one transaction-level advisory lock (lockFeed) first; under it
//     seq comes from meta.feed_seq and mseq from meta.mseq, and the lock is
//     released only after the commit is visible. Feed order is then commit
//     order, ids are deduplicated against every committed row, and a purge
//     cannot interleave with a commit of the same id.
//   - Cursors and leases: SetPeerCursor is a single monotone upsert;
//     UpdateSourceState is a locked read-modify-write; LockTx gives
//     components the same lock for their own transactions (audit appends,
//     retention versions).
//   - Purge has no secure_delete; Scrub runs VACUUM on the message tables.
package catalog

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	_ "github.com/mattn/go-sqlite3" // registers the "sqlite3" driver
)

// ErrNotFound is returned when a message or row does not exist.
var ErrNotFound = errors.New("catalog: not found")

// Catalog is an open catalog database.
type Catalog struct {
	w       *sql.DB // single writer connection
	r       *sql.DB // readers
	dialect Dialect

	stmts map[string]*sql.Stmt // Commit's statements (prepareCommit); read-only after open
	tombs *sql.Stmt            // IsTombstoned's query on the readers (prepareCommit)
}

// Statements Commit runs for every message, prepared once (prepareCommit).
const (
	insertSQLite = `INSERT INTO messages
		(id, mseq, date, date_source, arrival, size, from_addr, to_addrs, cc_addrs, bcc_addrs, subject, message_id, attachments)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING`
	insertPostgres = `INSERT INTO messages
		(id, mseq, date, date_source, arrival, size, from_addr, to_addrs, cc_addrs, bcc_addrs, subject, message_id, attachments, seq)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO NOTHING`
	lookupSQL    = `SELECT seq FROM messages WHERE id=?`
	addOriginSQL = `INSERT INTO origins(seq, origin, first_seen) VALUES (?,?,?) ON CONFLICT DO NOTHING`
	addFromSQL   = `INSERT INTO envelope(seq, kind, addr) VALUES (?,'from',?) ON CONFLICT DO NOTHING`
	addRcptSQL   = `INSERT INTO envelope(seq, kind, addr) VALUES (?,'rcpt',?) ON CONFLICT DO NOTHING`
	addReportSQL = `INSERT INTO journal_reports(seq, report_id) VALUES (?,?) ON CONFLICT DO NOTHING`
	bumpMseqSQL  = `UPDATE messages SET mseq=? WHERE seq=?`
	readMetaSQL  = `SELECT CAST(value AS BIGINT) FROM meta WHERE key=?`
	writeMetaSQL = `INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value`

	// Lookups of a whole batch of ids, passed as one JSON array (so that
	// one prepared statement serves any batch size): the seq of those that
	// have a row, -1 for those that are tombstoned.
	lookupBatchSQLite = `SELECT id, seq FROM messages WHERE id IN (SELECT value FROM json_each(?))
		UNION ALL SELECT id, -1 FROM tombstones WHERE id IN (SELECT value FROM json_each(?))`
	lookupBatchPostgres = `SELECT id, seq FROM messages WHERE id IN (SELECT json_array_elements_text(?::json))
		UNION ALL SELECT id, -1 FROM tombstones WHERE id IN (SELECT json_array_elements_text(?::json))`
	tombstonesSQLite   = `SELECT id FROM tombstones WHERE id IN (SELECT value FROM json_each(?))`
	tombstonesPostgres = `SELECT id FROM tombstones WHERE id IN (SELECT json_array_elements_text(?::json))`
)

// prepareCommit prepares Commit's statements on the writer, once: preparing
// them in every transaction was a tenth of a group commit's CPU. It runs at
// open, before any transaction holds the writer's only connection.
func (c *Catalog) prepareCommit(ctx context.Context) error {
	ins, batch, tombs := insertSQLite, lookupBatchSQLite, tombstonesSQLite
	if c.dialect == Postgres {
		ins, batch, tombs = insertPostgres, lookupBatchPostgres, tombstonesPostgres
	}
	st, err := c.r.PrepareContext(ctx, tombs)
	if err != nil {
		return fmt.Errorf("catalog: prepare: %w", err)
	}
	c.tombs = st
	c.stmts = map[string]*sql.Stmt{}
	for _, q := range []string{ins, batch, lookupSQL, addOriginSQL, addFromSQL, addRcptSQL, addReportSQL, bumpMseqSQL, readMetaSQL, writeMetaSQL} {
		st, err := c.w.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("catalog: prepare: %w", err)
		}
		c.stmts[q] = st
	}
	return nil
}

// stmt returns q bound to tx: the statement prepareCommit prepared, or one
// prepared for tx alone (closed with it).
func (c *Catalog) stmt(ctx context.Context, tx *sql.Tx, q string) (*sql.Stmt, error) {
	if st, ok := c.stmts[q]; ok {
		return tx.StmtContext(ctx, st), nil
	}
	st, err := tx.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("catalog: prepare: %w", err)
	}
	return st, nil
}

// Open opens (creating if needed) the catalog at path and runs migrations.
func Open(ctx context.Context, path string) (*Catalog, error) {
	dsn := "file:" + path + "?_journal_mode=WAL&_synchronous=FULL&_busy_timeout=15000&_foreign_keys=on"
	w, err := sql.Open("sqlite3", dsn+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("catalog: open %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	if err := w.PingContext(ctx); err != nil {
		w.Close()
		return nil, fmt.Errorf("catalog: open %s: %w", path, err)
	}
	c := &Catalog{w: w, dialect: SQLite}
	if err := c.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}

	r, err := sql.Open("sqlite3", dsn+"&mode=ro&_query_only=1")
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("catalog: open readers %s: %w", path, err)
	}
	r.SetMaxOpenConns(8)
	c.r = r
	if err := c.prepareCommit(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close closes the database.
func (c *Catalog) Close() error {
	var errs []error
	for _, s := range c.stmts {
		errs = append(errs, s.Close())
	}
	if c.tombs != nil {
		errs = append(errs, c.tombs.Close())
	}
	return errors.Join(append(errs, c.r.Close(), c.w.Close())...)
}

// Attachment is listing metadata for one attachment.
type Attachment struct {
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
}

// Message is a message's catalog row.
type Message struct {
	Seq         int64
	MSeq        int64
	ID          string
	Date        time.Time
	DateSource  string
	Arrival     time.Time
	Size        int64
	From        string
	To          []string
	Cc          []string
	Bcc         []string
	Subject     string
	MessageID   string
	Attachments []Attachment
	Origins     []string
	MailFrom    []string
	RcptTo      []string
	Reports     []string // journal report blob ids
}

// NewMessage is one item of a Commit batch.
type NewMessage struct {
	ID          string
	Date        time.Time
	DateSource  string
	Arrival     time.Time
	Size        int64
	From        string
	To, Cc, Bcc []string
	Subject     string
	MessageID   string
	Attachments []Attachment
	// Metadata merged by union when the id already exists:
	Origin   string
	MailFrom string
	RcptTo   []string
	ReportID string // id of a journal report blob this was unwrapped from
}

// CommitResult is the outcome of one NewMessage.
type CommitResult struct {
	Seq       int64
	Duplicate bool
	// Purged: the id was tombstoned (purged by retention) before this
	// commit; nothing was inserted or merged.
	Purged bool
}

// Commit applies a batch in one transaction: new ids are inserted (getting
// a fresh seq), existing ids have their origins and envelope merged by
// union. It returns only once the transaction is durable. Items with the
// same id in one batch are handled in order (the later ones are duplicates).
func (c *Catalog) Commit(ctx context.Context, items []NewMessage) ([]CommitResult, error) {
	res := make([]CommitResult, len(items))
	tx, err := c.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("catalog: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	// PostgreSQL: every node's Commit (and Purge) runs under one advisory
	// lock, so seq and mseq are assigned in commit order and the dedup
	// lookup below sees every id committed before.
	if err := c.lockTx(ctx, tx, lockFeed); err != nil {
		return nil, err
	}
	mseq, err := c.counter(ctx, tx, "mseq")
	if err != nil {
		return nil, err
	}
	// SQLite assigns seq through AUTOINCREMENT; PostgreSQL takes it from the
	// feed_seq counter in meta, read and written under the feed lock (a
	// sequence would hand out numbers in an order other than commit order).
	var feedSeq int64
	insSQL := insertSQLite
	if c.dialect == Postgres {
		if feedSeq, err = c.counter(ctx, tx, feedSeqKey); err != nil {
			return nil, err
		}
		insSQL = insertPostgres
	}
	ins, err := c.stmt(ctx, tx, insSQL)
	if err != nil {
		return nil, err
	}
	// One query for the whole batch: which ids exist, which are
	// tombstoned. Checked inside the transaction: a purge that committed
	// after the archive's own tombstone check must still win.
	known, purged, err := c.lookupBatch(ctx, tx, items)
	if err != nil {
		return nil, err
	}
	firstMseq, firstNewSeq := mseq, int64(0)
	for i, m := range items {
		if purged[m.ID] {
			res[i].Purged = true
			continue
		}
		mseq++
		seq, ok := known[m.ID]
		n := int64(0)
		if ok {
			res[i].Duplicate = true
		} else {
			// Inserted only when the lookup found no row: a conflicting
			// INSERT would still consume an AUTOINCREMENT number and
			// leave a gap in the feed head.
			args := []any{m.ID, mseq, m.Date.Unix(), m.DateSource, m.Arrival.UnixNano(), m.Size,
				m.From, jsonList(m.To), jsonList(m.Cc), jsonList(m.Bcc), m.Subject, m.MessageID, jsonAtt(m.Attachments)}
			if c.dialect == Postgres {
				args = append(args, feedSeq+1)
			}
			r, err := ins.ExecContext(ctx, args...)
			if err != nil {
				return nil, fmt.Errorf("catalog: insert %s: %w", m.ID, err)
			}
			if n, err = r.RowsAffected(); err != nil {
				return nil, fmt.Errorf("catalog: insert %s: %w", m.ID, err)
			}
			switch {
			case n == 0:
				// Unreachable while the writer and the feed lock serialise
				// commits; the unique id still guards against a second row.
				look, err := c.stmt(ctx, tx, lookupSQL)
				if err != nil {
					return nil, err
				}
				if err := look.QueryRowContext(ctx, m.ID).Scan(&seq); err != nil {
					return nil, fmt.Errorf("catalog: lookup %s: %w", m.ID, err)
				}
				res[i].Duplicate = true
			case c.dialect == Postgres:
				feedSeq++
				seq = feedSeq
			default:
				if seq, err = r.LastInsertId(); err != nil {
					return nil, fmt.Errorf("catalog: insert %s: %w", m.ID, err)
				}
			}
			known[m.ID] = seq // a later item with the same id is a duplicate
		}
		res[i].Seq = seq
		if n == 1 && firstNewSeq == 0 {
			firstNewSeq = seq
		}
		changed := n == 1
		add := func(q string, args ...any) error {
			st, err := c.stmt(ctx, tx, q)
			if err != nil {
				return err
			}
			r, err := st.ExecContext(ctx, args...)
			if err != nil {
				return fmt.Errorf("catalog: merge metadata of %s: %w", m.ID, err)
			}
			if k, _ := r.RowsAffected(); k > 0 {
				changed = true
			}
			return nil
		}
		if m.Origin != "" {
			if err := add(addOriginSQL, seq, m.Origin, m.Arrival.Unix()); err != nil {
				return nil, err
			}
		}
		if m.MailFrom != "" {
			if err := add(addFromSQL, seq, strings.ToLower(m.MailFrom)); err != nil {
				return nil, err
			}
		}
		for _, a := range m.RcptTo {
			if a == "" {
				continue
			}
			if err := add(addRcptSQL, seq, strings.ToLower(a)); err != nil {
				return nil, err
			}
		}
		if m.ReportID != "" {
			if err := add(addReportSQL, seq, m.ReportID); err != nil {
				return nil, err
			}
		}
		if changed && n == 0 {
			bump, err := c.stmt(ctx, tx, bumpMseqSQL)
			if err != nil {
				return nil, err
			}
			if _, err := bump.ExecContext(ctx, mseq, seq); err != nil {
				return nil, fmt.Errorf("catalog: bump mseq: %w", err)
			}
		}
	}
	if err := c.setCounter(ctx, tx, "mseq", mseq); err != nil {
		return nil, err
	}
	if c.dialect == SQLite {
		// Only a node's own SQLite catalog is recovered this way (the
		// archive overlaps its syncs only then).
		if err := c.setMeta(ctx, tx, lastCommitKey, fmt.Sprintf("%d %d %d", firstMseq, mseq, firstNewSeq)); err != nil {
			return nil, err
		}
	}
	if c.dialect == Postgres {
		if err := c.setCounter(ctx, tx, feedSeqKey, feedSeq); err != nil {
			return nil, err
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("catalog: commit: %w", err)
	}
	return res, nil
}

// lookupBatch returns, for the ids of items, the seq of those that have a
// row and the set of those that are tombstoned, with one query (a query per
// message was a quarter of Commit's CPU per message: database/sql starts a
// goroutine for every query in a transaction).
func (c *Catalog) lookupBatch(ctx context.Context, tx *sql.Tx, items []NewMessage) (known map[string]int64, purged map[string]bool, err error) {
	ids := make([]string, len(items))
	for i, m := range items {
		ids[i] = m.ID
	}
	q := lookupBatchSQLite
	if c.dialect == Postgres {
		q = lookupBatchPostgres
	}
	st, err := c.stmt(ctx, tx, q)
	if err != nil {
		return nil, nil, err
	}
	list := jsonList(ids)
	rows, err := st.QueryContext(ctx, list, list)
	if err != nil {
		return nil, nil, fmt.Errorf("catalog: look up batch: %w", err)
	}
	defer rows.Close()
	known = make(map[string]int64, len(items))
	purged = map[string]bool{}
	for rows.Next() {
		var id string
		var seq int64
		if err := rows.Scan(&id, &seq); err != nil {
			return nil, nil, fmt.Errorf("catalog: look up batch: %w", err)
		}
		if seq < 0 {
			purged[id] = true
		} else {
			known[id] = seq
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("catalog: look up batch: %w", err)
	}
	return known, purged, nil
}

func (c *Catalog) counter(ctx context.Context, tx *sql.Tx, name string) (int64, error) {
	st, err := c.stmt(ctx, tx, readMetaSQL)
	if err != nil {
		return 0, err
	}
	var v int64
	err = st.QueryRowContext(ctx, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("catalog: read counter %s: %w", name, err)
	}
	return v, nil
}

func (c *Catalog) setCounter(ctx context.Context, tx *sql.Tx, name string, v int64) error {
	return c.setMeta(ctx, tx, name, fmt.Sprint(v))
}

func (c *Catalog) setMeta(ctx context.Context, tx *sql.Tx, key, value string) error {
	st, err := c.stmt(ctx, tx, writeMetaSQL)
	if err != nil {
		return err
	}
	if _, err := st.ExecContext(ctx, key, value); err != nil {
		return fmt.Errorf("catalog: write meta %s: %w", key, err)
	}
	return nil
}

// lastCommitKey is the meta key describing the last Commit: "A B S", where
// the mseq values it handed out are in (A, B] and S is the seq of the
// first message it inserted (0: none). SQLite catalogs only.
const lastCommitKey = "last_commit"

// LastInserted returns the messages that the last Commit inserted and that
// nothing has changed since (their mseq is still the one that commit gave
// them), with their journal report ids. The archive uses it after a crash:
// its group commit syncs the blobs while the catalog commits, so the last
// group's new rows may have reached the disk without their blobs.
func (c *Catalog) LastInserted(ctx context.Context) ([]*Message, error) {
	v, err := c.Meta(ctx, lastCommitKey)
	if err != nil || v == "" {
		return nil, err
	}
	var after, last, firstSeq int64
	if _, err := fmt.Sscanf(v, "%d %d %d", &after, &last, &firstSeq); err != nil {
		return nil, fmt.Errorf("catalog: meta %s = %q: %w", lastCommitKey, v, err)
	}
	if firstSeq == 0 {
		return nil, nil
	}
	return c.list(ctx, `SELECT `+messageCols+` FROM messages WHERE mseq > ? AND mseq <= ? AND seq >= ? ORDER BY mseq`, after, last, firstSeq)
}

// SettleCommits records that every Commit so far is durable together with
// its blobs, so that LastInserted returns nothing until the next Commit.
// The archive calls it when it closes cleanly: after that, a blob missing
// from the store is damage for verify to report, not a lost group.
func (c *Catalog) SettleCommits(ctx context.Context) error {
	if _, err := c.w.ExecContext(ctx, `DELETE FROM meta WHERE key=?`, lastCommitKey); err != nil {
		return fmt.Errorf("catalog: settle commits: %w", err)
	}
	return nil
}

// Forget deletes the rows of messages that were never acknowledged (see
// LastInserted) with their origins, envelope and journal report links. Unlike
// Purge it leaves no tombstone: a sender's retry stores the message again.
func (c *Catalog) Forget(ctx context.Context, ids []string) error {
	return c.inTx(ctx, func(tx *sql.Tx) error {
		if err := c.lockTx(ctx, tx, lockFeed); err != nil {
			return err
		}
		for _, id := range ids {
			if _, err := deleteMessageRows(ctx, tx, id); err != nil {
				return fmt.Errorf("catalog: forget: %w", err)
			}
		}
		return nil
	})
}

// deleteMessageRows deletes message id's row with its origins, envelope and
// journal report links, and returns the report ids it was linked to. An
// unknown id is not an error.
func deleteMessageRows(ctx context.Context, tx *sql.Tx, id string) ([]string, error) {
	var seq int64
	err := tx.QueryRowContext(ctx, `SELECT seq FROM messages WHERE id=?`, id).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	rows, err := tx.QueryContext(ctx, `SELECT report_id FROM journal_reports WHERE seq=?`, seq)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	var reports []string
	for rows.Next() {
		var r string
		if err := rows.Scan(&r); err != nil {
			rows.Close()
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		reports = append(reports, r)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("%s: %w", id, err)
	}
	for _, q := range []string{`DELETE FROM origins WHERE seq=?`, `DELETE FROM envelope WHERE seq=?`,
		`DELETE FROM journal_reports WHERE seq=?`, `DELETE FROM messages WHERE seq=?`} {
		if _, err := tx.ExecContext(ctx, q, seq); err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
	}
	return reports, nil
}

// Exists reports which of ids are in the catalog (as message rows).
func (c *Catalog) Exists(ctx context.Context, ids []string) (map[string]bool, error) {
	out := make(map[string]bool, len(ids))
	const chunk = 500
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		part := ids[:n]
		ids = ids[n:]
		args := make([]any, len(part))
		for i, id := range part {
			args[i] = id
		}
		rows, err := c.r.QueryContext(ctx, `SELECT id FROM messages WHERE id IN (`+placeholders(len(part))+`)`, args...)
		if err != nil {
			return nil, fmt.Errorf("catalog: exists: %w", err)
		}
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				rows.Close()
				return nil, fmt.Errorf("catalog: exists: %w", err)
			}
			out[id] = true
		}
		if err := rows.Close(); err != nil {
			return nil, fmt.Errorf("catalog: exists: %w", err)
		}
	}
	return out, nil
}

const messageCols = `seq, mseq, id, date, date_source, arrival, size, from_addr, to_addrs, cc_addrs, bcc_addrs, subject, message_id, attachments`

func scanMessage(sc interface{ Scan(...any) error }) (*Message, error) {
	var m Message
	var date, arrival int64
	var to, cc, bcc, att string
	if err := sc.Scan(&m.Seq, &m.MSeq, &m.ID, &date, &m.DateSource, &arrival, &m.Size, &m.From, &to, &cc, &bcc, &m.Subject, &m.MessageID, &att); err != nil {
		return nil, err
	}
	m.Date = time.Unix(date, 0).UTC()
	m.Arrival = time.Unix(0, arrival).UTC()
	_ = json.Unmarshal([]byte(to), &m.To)
	_ = json.Unmarshal([]byte(cc), &m.Cc)
	_ = json.Unmarshal([]byte(bcc), &m.Bcc)
	_ = json.Unmarshal([]byte(att), &m.Attachments)
	return &m, nil
}

// Get returns the message with the given id, with origins and envelope.
func (c *Catalog) Get(ctx context.Context, id string) (*Message, error) {
	m, err := scanMessage(c.r.QueryRowContext(ctx, `SELECT `+messageCols+` FROM messages WHERE id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("catalog: get %s: %w", id, err)
	}
	if err := c.loadExtras(ctx, []*Message{m}); err != nil {
		return nil, err
	}
	return m, nil
}

// GetMany returns the messages with the given ids, in the order given;
// unknown ids are skipped.
func (c *Catalog) GetMany(ctx context.Context, ids []string) ([]*Message, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	rows, err := c.r.QueryContext(ctx, `SELECT `+messageCols+` FROM messages WHERE id IN (`+placeholders(len(ids))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: get many: %w", err)
	}
	byID := map[string]*Message{}
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("catalog: get many: %w", err)
		}
		byID[m.ID] = m
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("catalog: get many: %w", err)
	}
	out := make([]*Message, 0, len(ids))
	for _, id := range ids {
		if m, ok := byID[id]; ok {
			out = append(out, m)
		}
	}
	if err := c.loadExtras(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// loadExtras fills origins, envelope and journal reports, each list
// sorted bytewise (in Go, so the order does not depend on the database's
// collation).
func (c *Catalog) loadExtras(ctx context.Context, ms []*Message) error {
	// Three placeholders per message: stay well below PostgreSQL's 65535
	// parameters and SQLite's 32766 variables.
	const chunk = 2000
	for len(ms) > chunk {
		if err := c.loadExtras(ctx, ms[:chunk]); err != nil {
			return err
		}
		ms = ms[chunk:]
	}
	if len(ms) == 0 {
		return nil
	}
	bySeq := make(map[int64]*Message, len(ms))
	args := make([]any, len(ms))
	for i, m := range ms {
		bySeq[m.Seq] = m
		args[i] = m.Seq
	}
	in := `(` + placeholders(len(ms)) + `)`
	q := `SELECT seq, 'origin', origin FROM origins WHERE seq IN ` + in +
		` UNION ALL SELECT seq, kind, addr FROM envelope WHERE seq IN ` + in +
		` UNION ALL SELECT seq, 'report', report_id FROM journal_reports WHERE seq IN ` + in
	rows, err := c.r.QueryContext(ctx, q, append(append(append([]any{}, args...), args...), args...)...)
	if err != nil {
		return fmt.Errorf("catalog: load metadata: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var seq int64
		var kind, v string
		if err := rows.Scan(&seq, &kind, &v); err != nil {
			return fmt.Errorf("catalog: load metadata: %w", err)
		}
		m := bySeq[seq]
		switch kind {
		case "origin":
			m.Origins = append(m.Origins, v)
		case "from":
			m.MailFrom = append(m.MailFrom, v)
		case "rcpt":
			m.RcptTo = append(m.RcptTo, v)
		case "report":
			m.Reports = append(m.Reports, v)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("catalog: load metadata: %w", err)
	}
	for _, m := range ms {
		slices.Sort(m.Origins)
		slices.Sort(m.MailFrom)
		slices.Sort(m.RcptTo)
		slices.Sort(m.Reports)
	}
	return nil
}

// ChangedAfter returns up to limit messages whose metadata counter mseq is
// greater than after, in mseq order (what the indexer follows).
func (c *Catalog) ChangedAfter(ctx context.Context, after int64, limit int) ([]*Message, error) {
	return c.list(ctx, `SELECT `+messageCols+` FROM messages WHERE mseq > ? ORDER BY mseq LIMIT ?`, after, limit)
}

// FeedAfter returns up to limit messages with seq greater than after, in
// seq order: the change feed.
func (c *Catalog) FeedAfter(ctx context.Context, after int64, limit int) ([]*Message, error) {
	return c.list(ctx, `SELECT `+messageCols+` FROM messages WHERE seq > ? ORDER BY seq LIMIT ?`, after, limit)
}

func (c *Catalog) list(ctx context.Context, q string, args ...any) ([]*Message, error) {
	rows, err := c.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: list: %w", err)
	}
	var out []*Message
	for rows.Next() {
		m, err := scanMessage(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("catalog: list: %w", err)
		}
		out = append(out, m)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("catalog: list: %w", err)
	}
	if err := c.loadExtras(ctx, out); err != nil {
		return nil, err
	}
	return out, nil
}

// Walk calls fn for every message id and raw size, in seq order.
func (c *Catalog) Walk(ctx context.Context, fn func(id string, size int64) error) error {
	var after int64
	for {
		rows, err := c.r.QueryContext(ctx, `SELECT seq, id, size FROM messages WHERE seq > ? ORDER BY seq LIMIT 5000`, after)
		if err != nil {
			return fmt.Errorf("catalog: walk: %w", err)
		}
		type row struct {
			id   string
			size int64
		}
		var batch []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&after, &r.id, &r.size); err != nil {
				rows.Close()
				return fmt.Errorf("catalog: walk: %w", err)
			}
			batch = append(batch, r)
		}
		if err := rows.Close(); err != nil {
			return fmt.Errorf("catalog: walk: %w", err)
		}
		if len(batch) == 0 {
			return nil
		}
		for _, r := range batch {
			if err := fn(r.id, r.size); err != nil {
				return err
			}
		}
	}
}

// Stats are catalog-wide counts.
type Stats struct {
	Messages int64
	Bytes    int64
	Head     int64 // highest seq ever assigned
	MSeq     int64 // highest metadata-change counter
}

// Stats returns counts and feed heads.
func (c *Catalog) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := c.r.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(size),0) FROM messages`).Scan(&s.Messages, &s.Bytes)
	if err != nil {
		return s, fmt.Errorf("catalog: stats: %w", err)
	}
	if s.Head, err = c.Head(ctx); err != nil {
		return s, fmt.Errorf("catalog: stats: %w", err)
	}
	if err := c.r.QueryRowContext(ctx, `SELECT coalesce((SELECT CAST(value AS BIGINT) FROM meta WHERE key='mseq'),0)`).Scan(&s.MSeq); err != nil {
		return s, fmt.Errorf("catalog: stats: %w", err)
	}
	return s, nil
}

// Meta returns a value from the meta table ("" when unset).
func (c *Catalog) Meta(ctx context.Context, key string) (string, error) {
	var v string
	err := c.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key=?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("catalog: meta %s: %w", key, err)
	}
	return v, nil
}

// SetMeta writes a value into the meta table.
func (c *Catalog) SetMeta(ctx context.Context, key, value string) error {
	_, err := c.w.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value`, key, value)
	if err != nil {
		return fmt.Errorf("catalog: set meta %s: %w", key, err)
	}
	return nil
}

// InitMeta stores value under key unless the key already has a value, and
// returns the value stored: value, or the one another node (sharing a
// PostgreSQL catalog) wrote first. For once-per-archive secrets and ids.
func (c *Catalog) InitMeta(ctx context.Context, key, value string) (string, error) {
	if _, err := c.w.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING`, key, value); err != nil {
		return "", fmt.Errorf("catalog: init meta %s: %w", key, err)
	}
	var stored string
	if err := c.w.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = ?`, key).Scan(&stored); err != nil {
		return "", fmt.Errorf("catalog: init meta %s: %w", key, err)
	}
	return stored, nil
}

// IsTombstoned reports which of ids were purged.
func (c *Catalog) IsTombstoned(ctx context.Context, ids []string) (map[string]bool, error) {
	out := map[string]bool{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := c.tombs.QueryContext(ctx, jsonList(ids))
	if err != nil {
		return nil, fmt.Errorf("catalog: tombstones: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("catalog: tombstones: %w", err)
		}
		out[id] = true
	}
	return out, rows.Err()
}

// DB returns the writer and reader handles for packages that own their own
// tables in the catalog (auth, governance, mirror). Writes must go through
// the writer.
func (c *Catalog) DB() (writer, reader *sql.DB) { return c.w, c.r }

func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?,", n-1) + "?"
}

func jsonList(v []string) string {
	if v == nil {
		v = []string{}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

func jsonAtt(v []Attachment) string {
	if v == nil {
		v = []Attachment{}
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// ReportIDs returns the ids of every journal report blob referenced.
func (c *Catalog) ReportIDs(ctx context.Context) ([]string, error) {
	rows, err := c.r.QueryContext(ctx, `SELECT DISTINCT report_id FROM journal_reports`)
	if err != nil {
		return nil, fmt.Errorf("catalog: report ids: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("catalog: report ids: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// CountChangedAfter counts messages whose metadata counter is above after
// (the indexer's backlog).
func (c *Catalog) CountChangedAfter(ctx context.Context, after int64) (int64, error) {
	var n int64
	if err := c.r.QueryRowContext(ctx, `SELECT count(*) FROM messages WHERE mseq > ?`, after).Scan(&n); err != nil {
		return 0, fmt.Errorf("catalog: count changes: %w", err)
	}
	return n, nil
}

// SourceState returns every key/value persisted for a mail source (cursors,
// UIDL sets, lease data).
func (c *Catalog) SourceState(ctx context.Context, source string) (map[string]string, error) {
	rows, err := c.r.QueryContext(ctx, `SELECT key, value FROM source_state WHERE source=?`, source)
	if err != nil {
		return nil, fmt.Errorf("catalog: source state %s: %w", source, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return nil, fmt.Errorf("catalog: source state %s: %w", source, err)
		}
		out[k] = v
	}
	return out, rows.Err()
}

// UpdateSourceState is an atomic read-modify-write of a source's state,
// for leases and cursors that several nodes sharing one PostgreSQL catalog
// update: fn gets the current keys and returns the keys to write (an empty
// value deletes a key); no other UpdateSourceState of the same source, on
// any node, runs in between. Nothing is written when fn returns an error,
// which UpdateSourceState then returns as is.
func (c *Catalog) UpdateSourceState(ctx context.Context, source string, fn func(cur map[string]string) (map[string]string, error)) error {
	tx, err := c.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("catalog: update source state: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if err := c.LockTx(ctx, tx, "source_state:"+source); err != nil {
		return err
	}
	rows, err := tx.QueryContext(ctx, `SELECT key, value FROM source_state WHERE source=?`, source)
	if err != nil {
		return fmt.Errorf("catalog: source state %s: %w", source, err)
	}
	cur := map[string]string{}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return fmt.Errorf("catalog: source state %s: %w", source, err)
		}
		cur[k] = v
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("catalog: source state %s: %w", source, err)
	}
	kv, err := fn(cur)
	if err != nil {
		return err
	}
	if err := writeSourceState(ctx, tx, source, kv); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("catalog: update source state: %w", err)
	}
	return nil
}

func writeSourceState(ctx context.Context, tx *sql.Tx, source string, kv map[string]string) error {
	for k, v := range kv {
		var err error
		if v == "" {
			_, err = tx.ExecContext(ctx, `DELETE FROM source_state WHERE source=? AND key=?`, source, k)
		} else {
			_, err = tx.ExecContext(ctx, `INSERT INTO source_state(source, key, value) VALUES (?,?,?) ON CONFLICT(source, key) DO UPDATE SET value=excluded.value`, source, k, v)
		}
		if err != nil {
			return fmt.Errorf("catalog: set source state %s/%s: %w", source, k, err)
		}
	}
	return nil
}

// SetSourceState durably writes keys for a source in one transaction; an
// empty value deletes the key.
func (c *Catalog) SetSourceState(ctx context.Context, source string, kv map[string]string) error {
	tx, err := c.w.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("catalog: set source state: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck
	if err := writeSourceState(ctx, tx, source, kv); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("catalog: set source state: %w", err)
	}
	return nil
}

// ReportOwners returns the messages unwrapped from the journal report
// blob reportID.
func (c *Catalog) ReportOwners(ctx context.Context, reportID string) ([]*Message, error) {
	return c.list(ctx, `SELECT `+messageCols+` FROM messages WHERE seq IN (SELECT seq FROM journal_reports WHERE report_id=?) ORDER BY seq`, reportID)
}
