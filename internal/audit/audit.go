// Package audit is mailarc's append-only, hash-chained audit log: who
// searched, viewed, downloaded, exported, changed holds, policies or users,
// logged in (or failed to), and which messages retention purged.
//
// # Storage
//
// Entries live in the catalog database (component "audit"):
//
//	audit(seq INTEGER PRIMARY KEY, time INTEGER, user TEXT, action TEXT,
//	      detail TEXT, prev_hash TEXT, hash TEXT)
//
// time is Unix nanoseconds (UTC); detail is compact JSON text exactly as
// hashed. Triggers refuse UPDATE and DELETE on the table (and TRUNCATE on
// PostgreSQL, where the column is spelt "user" quoted and the integers are
// BIGINT), so the log is append-only for everything that goes through the
// database's normal path. The
// catalog's meta table holds "audit_head" = "SEQ:HASH", the last entry,
// written in the same transaction as the entries, so a truncated tail is
// detected too.
//
// # Chain
//
// Entry n's prev_hash is entry n-1's hash (64 zeros for entry 1) and
//
//	hash = hex(SHA-256("mailarc-audit-v1\x00" || u64be(seq) || i64be(time) ||
//	                   lp(user) || lp(action) || lp(detail) || lp(prev_hash)))
//
// where lp(s) = u64be(len(s)) || s. Verify recomputes every hash, checks the
// links and the seq sequence (1, 2, 3, ...) and compares the last entry with
// audit_head: an edited, inserted, deleted or truncated entry is reported.
// The chain is not signed: someone who can rewrite the whole database and
// recompute every hash is not detected (see docs/governance.md).
//
// # Writes
//
// Record hands the entry to one writer goroutine that appends every
// concurrently queued entry in one transaction (group commit) and returns
// once that transaction is durable. Entries are never written from the
// ingest path. On a PostgreSQL catalog shared by several nodes the append
// transaction holds an advisory lock (catalog.LockTx), so the nodes extend
// one chain, one after the other.
package audit

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailarc/mailarc/internal/catalog"
)

// Actions written by mailarc. Detail fields are listed per action.
const (
	ActionLogin        = "login"              // method, client
	ActionLoginFailed  = "login.failed"       // method, client, reason
	ActionSearch       = "search"             // query, total, limit, offset
	ActionView         = "message.view"       // id
	ActionRaw          = "message.raw"        // id
	ActionAttachment   = "message.attachment" // id, n
	ActionExport       = "export"             // custody record
	ActionHoldCreate   = "hold.create"        // hold
	ActionHoldRelease  = "hold.release"       // id
	ActionPolicyChange = "retention.policy"   // version, policy
	ActionRetentionRun = "retention.run"      // dry_run, would_purge/purged, held, version
	ActionPurge        = "retention.purge"    // ids, reason
	ActionUserAdd      = "user.add"           // name, role, addresses
	ActionUserDelete   = "user.delete"        // name
	ActionUserPassword = "user.password"      // name
	ActionUserUpdate   = "user.update"        // name, role, addresses (new values), before
	ActionTokenCreate  = "token.create"       // id, user, name
	ActionTokenRevoke  = "token.revoke"       // id
)

// GenesisHash is the prev_hash of the first entry.
const GenesisHash = "0000000000000000000000000000000000000000000000000000000000000000"

const headKey = "audit_head"

var migrations = []string{
	`CREATE TABLE audit (
		seq       INTEGER PRIMARY KEY,
		time      INTEGER NOT NULL,
		user      TEXT NOT NULL,
		action    TEXT NOT NULL,
		detail    TEXT NOT NULL,
		prev_hash TEXT NOT NULL,
		hash      TEXT NOT NULL
	);
	CREATE INDEX audit_action ON audit(action, seq);
	CREATE INDEX audit_user ON audit(user, seq);
	CREATE INDEX audit_time ON audit(time);
	CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
	CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;`,
}

// pgMigrations are migrations for a PostgreSQL catalog, version for
// version. Row triggers refuse UPDATE and DELETE as on SQLite, and a
// statement trigger refuses TRUNCATE (which skips row triggers).
var pgMigrations = []string{
	`CREATE TABLE audit (
		seq       BIGINT PRIMARY KEY,
		time      BIGINT NOT NULL,
		"user"    TEXT COLLATE "C" NOT NULL,
		action    TEXT COLLATE "C" NOT NULL,
		detail    TEXT NOT NULL,
		prev_hash TEXT NOT NULL,
		hash      TEXT NOT NULL
	);
	CREATE INDEX audit_action ON audit(action, seq);
	CREATE INDEX audit_user ON audit("user", seq);
	CREATE INDEX audit_time ON audit(time);
	CREATE FUNCTION audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		RAISE EXCEPTION 'audit log is append-only';
	END $$;
	CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit FOR EACH ROW EXECUTE FUNCTION audit_append_only();
	CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit FOR EACH ROW EXECUTE FUNCTION audit_append_only();
	CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();`,
}

// lockName serialises appends of every node sharing a PostgreSQL catalog
// (see catalog.LockTx), so the chain never forks.
const lockName = "audit"

// Entry is one audit record.
type Entry struct {
	Seq      int64           `json:"seq"`
	Time     time.Time       `json:"time"`
	User     string          `json:"user"`
	Action   string          `json:"action"`
	Detail   json.RawMessage `json:"detail"`
	PrevHash string          `json:"prev_hash"`
	Hash     string          `json:"hash"`
}

// Options tune a Log.
type Options struct {
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Logger reports write failures (default slog.Default()).
	Logger *slog.Logger
	// LoginDedup suppresses repeated successful-login entries for the same
	// user, client and method within this window (default 15 minutes);
	// HTTP Basic authenticates every request, and one entry per session-like
	// window is what an auditor wants. Failures are always recorded.
	LoginDedup time.Duration
}

// Log is an open audit log. It is safe for concurrent use.
type Log struct {
	cat  *catalog.Catalog
	w, r *sql.DB
	opt  Options
	log  *slog.Logger
	reqs chan *request
	done chan struct{}

	mu      sync.Mutex // guards closing and logins
	closing bool
	logins  map[string]time.Time
}

type request struct {
	user, action, detail string
	resp                 chan result
}

type result struct {
	e   Entry
	err error
}

// ErrClosed is returned by Record after Close.
var ErrClosed = errors.New("audit: log closed")

// Open migrates the audit schema in cat and starts the writer.
func Open(ctx context.Context, cat *catalog.Catalog, opt Options) (*Log, error) {
	if err := cat.MigrateDialects(ctx, "audit", migrations, pgMigrations); err != nil {
		return nil, err
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.LoginDedup == 0 {
		opt.LoginDedup = 15 * time.Minute
	}
	w, r := cat.DB()
	l := &Log{cat: cat, w: w, r: r, opt: opt, log: opt.Logger, reqs: make(chan *request, 256), done: make(chan struct{}), logins: map[string]time.Time{}}
	go l.writer()
	return l, nil
}

// Close stops the writer after the queued entries are written.
func (l *Log) Close(ctx context.Context) error {
	l.mu.Lock()
	if !l.closing {
		l.closing = true
		close(l.reqs)
	}
	l.mu.Unlock()
	select {
	case <-l.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("audit: close: %w", ctx.Err())
	}
}

// Record appends an entry and returns it once it is durable. detail is
// marshalled to JSON (nil becomes {}).
func (l *Log) Record(ctx context.Context, user, action string, detail any) (Entry, error) {
	d := []byte("{}")
	if detail != nil {
		var err error
		if d, err = json.Marshal(detail); err != nil {
			return Entry{}, fmt.Errorf("audit: encode detail of %s: %w", action, err)
		}
	}
	req := &request{user: user, action: action, detail: string(d), resp: make(chan result, 1)}
	l.mu.Lock()
	if l.closing {
		l.mu.Unlock()
		return Entry{}, ErrClosed
	}
	select {
	case l.reqs <- req:
		l.mu.Unlock()
	case <-ctx.Done():
		l.mu.Unlock()
		return Entry{}, fmt.Errorf("audit: %w", ctx.Err())
	}
	select {
	case r := <-req.resp:
		return r.e, r.err
	case <-ctx.Done():
		return Entry{}, fmt.Errorf("audit: %w", ctx.Err())
	}
}

// RecordLogin records a login attempt. Successful logins of the same user,
// method and client are recorded once per Options.LoginDedup window.
func (l *Log) RecordLogin(ctx context.Context, user, method, client string, ok bool, reason string) error {
	if ok {
		key := user + "\x00" + method + "\x00" + client
		now := l.opt.Now()
		l.mu.Lock()
		last, seen := l.logins[key]
		if seen && now.Sub(last) < l.opt.LoginDedup {
			l.mu.Unlock()
			return nil
		}
		if len(l.logins) > 10000 { // bounded: forget everything, at worst log again
			clear(l.logins)
		}
		l.logins[key] = now
		l.mu.Unlock()
		_, err := l.Record(ctx, user, ActionLogin, map[string]string{"method": method, "client": client})
		return err
	}
	_, err := l.Record(ctx, user, ActionLoginFailed, map[string]string{"method": method, "client": client, "reason": reason})
	return err
}

// Hash computes an entry's hash (see the package doc).
func Hash(seq int64, t time.Time, user, action, detail, prevHash string) string {
	h := sha256.New()
	h.Write([]byte("mailarc-audit-v1\x00"))
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(seq))
	h.Write(b[:])
	binary.BigEndian.PutUint64(b[:], uint64(t.UnixNano()))
	h.Write(b[:])
	for _, s := range []string{user, action, detail, prevHash} {
		binary.BigEndian.PutUint64(b[:], uint64(len(s)))
		h.Write(b[:])
		h.Write([]byte(s))
	}
	return hex.EncodeToString(h.Sum(nil))
}

func (l *Log) writer() {
	defer close(l.done)
	for first := range l.reqs {
		batch := []*request{first}
	gather:
		for len(batch) < 256 {
			select {
			case r, ok := <-l.reqs:
				if !ok {
					break gather
				}
				batch = append(batch, r)
			default:
				break gather
			}
		}
		entries, err := l.append(context.Background(), batch)
		if err != nil {
			l.log.Error("audit write failed", "entries", len(batch), "err", err)
		}
		for i, r := range batch {
			if err != nil {
				r.resp <- result{err: err}
			} else {
				r.resp <- result{e: entries[i]}
			}
		}
	}
}

// append writes a batch in one transaction, chaining from the stored head.
func (l *Log) append(ctx context.Context, batch []*request) ([]Entry, error) {
	tx, err := l.w.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("audit: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after Commit
	if err := l.cat.LockTx(ctx, tx, lockName); err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	var seq int64
	prev := GenesisHash
	err = tx.QueryRowContext(ctx, `SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1`).Scan(&seq, &prev)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("audit: read head: %w", err)
	}
	ins, err := tx.PrepareContext(ctx, `INSERT INTO audit(seq, time, "user", action, detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?)`)
	if err != nil {
		return nil, fmt.Errorf("audit: prepare: %w", err)
	}
	defer ins.Close()
	out := make([]Entry, len(batch))
	for i, r := range batch {
		seq++
		now := l.opt.Now().UTC()
		h := Hash(seq, now, r.user, r.action, r.detail, prev)
		if _, err := ins.ExecContext(ctx, seq, now.UnixNano(), r.user, r.action, r.detail, prev, h); err != nil {
			return nil, fmt.Errorf("audit: insert: %w", err)
		}
		out[i] = Entry{Seq: seq, Time: now, User: r.user, Action: r.action, Detail: json.RawMessage(r.detail), PrevHash: prev, Hash: h}
		prev = h
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value`,
		headKey, strconv.FormatInt(seq, 10)+":"+prev); err != nil {
		return nil, fmt.Errorf("audit: write head: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("audit: commit: %w", err)
	}
	return out, nil
}

// Filter selects entries for Query. Zero fields do not filter.
type Filter struct {
	// Limit caps the entries returned (default 100, at most 10000).
	Limit int
	// Action matches exactly, or as a prefix when it ends in "*"
	// ("retention.*").
	Action string
	User   string
	// After and Before bound the entry time (After inclusive, Before exclusive).
	After, Before time.Time
	// BeforeSeq returns only entries with a smaller seq (paging backwards).
	BeforeSeq int64
}

// Query returns matching entries, newest first.
func (l *Log) Query(ctx context.Context, f Filter) ([]Entry, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 10000)
	var where []string
	var args []any
	if f.Action != "" {
		if p, ok := strings.CutSuffix(f.Action, "*"); ok {
			where = append(where, "substr(action, 1, ?) = ?")
			args = append(args, len(p), p)
		} else {
			where = append(where, "action = ?")
			args = append(args, f.Action)
		}
	}
	if f.User != "" {
		where = append(where, `"user" = ?`)
		args = append(args, f.User)
	}
	if !f.After.IsZero() {
		where = append(where, "time >= ?")
		args = append(args, f.After.UnixNano())
	}
	if !f.Before.IsZero() {
		where = append(where, "time < ?")
		args = append(args, f.Before.UnixNano())
	}
	if f.BeforeSeq > 0 {
		where = append(where, "seq < ?")
		args = append(args, f.BeforeSeq)
	}
	q := `SELECT seq, time, "user", action, detail, prev_hash, hash FROM audit`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY seq DESC LIMIT ?"
	rows, err := l.r.QueryContext(ctx, q, append(args, f.Limit)...)
	if err != nil {
		return nil, fmt.Errorf("audit: query: %w", err)
	}
	defer rows.Close()
	out := []Entry{}
	for rows.Next() {
		e, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("audit: query: %w", err)
	}
	return out, nil
}

func scan(rows *sql.Rows) (Entry, error) {
	var e Entry
	var t int64
	var detail string
	if err := rows.Scan(&e.Seq, &t, &e.User, &e.Action, &detail, &e.PrevHash, &e.Hash); err != nil {
		return e, fmt.Errorf("audit: scan: %w", err)
	}
	e.Time = time.Unix(0, t).UTC()
	e.Detail = json.RawMessage(detail)
	return e, nil
}
