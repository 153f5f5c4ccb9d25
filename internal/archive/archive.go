// Package archive is mailarc's core service: the single entry point through
// which every source (SMTP, journal pull, file import, HTTP API, peers)
// stores a message, and through which everything else reads one.
//
// Ingest normalises the bytes (bare LF -> CRLF), unwraps Exchange journal
// reports, computes the id (SHA-256; a store that can, store.Local.Encode,
// computes it while compressing the blob on the caller's goroutine, so the
// bytes are hashed once; while ingest is busy it leaves the blob
// uncompressed for the node to compress later, store.Deferred),
// parses headers for the catalog, and hands the message to the committer.
// The committer is one goroutine that gathers concurrent requests into a
// group and commits it to the store and the catalog, each with one sync,
// and only then answers every request in the group: a message is
// acknowledged only when both are durable. With the local store and a
// SQLite catalog the two syncs run at the same time (commitLoop); a crash
// can then leave the last group's rows without their blobs, which
// RecoverTail removes at the next start. Otherwise the store goes first: a
// crash between the two leaves at worst an unreferenced blob, which the
// next ingest of the same bytes adopts (store puts are idempotent) and
// `mailarc verify` reports.
//
// archive imports no protocol: sources adapt their wire to Ingest.
package archive

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/message"
	"github.com/mailarc/mailarc/internal/store"
)

// Options tune an Archive.
type Options struct {
	// MaxMessageSize refuses larger messages with ErrTooLarge (default 100 MiB).
	MaxMessageSize int64
	// MaxBatch caps messages per group commit (default 512).
	MaxBatch int
	// MaxBatchBytes caps raw bytes per group commit (default 64 MiB).
	MaxBatchBytes int64
	// Logger for commit failures (default slog.Default()).
	Logger *slog.Logger
	// Registerer for metrics (nil: not registered).
	Registerer prometheus.Registerer
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MinFreeSpace is the free-space reserve: while the file system holding
	// SpacePath has fewer bytes available, Ingest refuses with ErrLowSpace
	// (wrapped in ErrUnavailable) so that senders retry instead of the
	// disk filling up. 0 or an empty SpacePath disables the check.
	MinFreeSpace int64
	// SpacePath is the directory whose file system is checked (the data
	// directory: catalog, index and, with the local store, the packs).
	SpacePath string
	// FreeSpace returns the bytes available on path's file system
	// (default FreeSpace, statfs); tests inject their own.
	FreeSpace func(path string) (int64, error)
}

// Archive is the core service. Create it with New, call Close when done.
type Archive struct {
	cat  *catalog.Catalog
	st   store.Store
	opt  Options
	log  *slog.Logger
	reqs chan *request
	m    *metrics

	space *spaceGuard // nil without a free-space reserve

	onCommitMu sync.Mutex
	onCommit   atomic.Pointer[[]func()] // copy-on-write list of callbacks
	lastCommit atomic.Int64             // unix nanos of the last successful group commit
	load       loadMeter                // commit rate (see Busy)
	ingested   atomic.Int64             // messages newly stored since New (see Ingested)
	inflight   atomic.Int64             // Ingest calls in progress (see Busy)
	recovered  atomic.Bool              // RecoverTail has run (see Close)
	unsettled  atomic.Bool              // a group's rows committed but its blobs' sync failed (see Close)

	mu      sync.RWMutex // guards closing against concurrent sends on reqs
	closing bool
	done    chan struct{}
}

type request struct {
	blob   store.Blob // the message's id and bytes, encoded ahead when the store can (see encoder)
	report *store.Blob
	meta   catalog.NewMessage
	resp   chan response
}

type response struct {
	res Result
	err error
}

// New starts an Archive over an open catalog and store. The caller keeps
// ownership of both and closes them after Close.
func New(cat *catalog.Catalog, st store.Store, opt Options) *Archive {
	if opt.MaxMessageSize <= 0 {
		opt.MaxMessageSize = 100 << 20
	}
	if opt.MaxBatch <= 0 {
		opt.MaxBatch = 512
	}
	if opt.MaxBatchBytes <= 0 {
		opt.MaxBatchBytes = 64 << 20
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	a := &Archive{
		cat:  cat,
		st:   st,
		opt:  opt,
		log:  opt.Logger,
		reqs: make(chan *request, 4096),
		m:    newMetrics(opt.Registerer, st),
		done: make(chan struct{}),
	}
	a.space = newSpaceGuard(opt)
	go a.commitLoop()
	return a
}

// Close stops accepting new messages (Ingest returns ErrShuttingDown),
// finishes every request already queued and returns when the committer has
// stopped, or when ctx ends.
func (a *Archive) Close(ctx context.Context) error {
	a.mu.Lock()
	if !a.closing {
		a.closing = true
		close(a.reqs)
	}
	a.mu.Unlock()
	select {
	case <-a.done:
	case <-ctx.Done():
		return fmt.Errorf("archive: close: %w", ctx.Err())
	}
	if _, ok := a.overlapped(); ok && a.recovered.Load() && !a.unsettled.Load() {
		// RecoverTail has looked at what an earlier crash left, and every
		// group since was answered, so its blobs are durable: nothing is
		// left for the next RecoverTail. (Not after a failed sync, and not
		// when RecoverTail never ran, e.g. a start that failed before it:
		// the record of a crashed group must survive until it is checked.)
		if err := a.cat.SettleCommits(ctx); err != nil {
			return fmt.Errorf("archive: close: %w", err)
		}
	}
	return nil
}

// Ingest archives raw and returns once it is durable. See the package doc.
// Ingest is safe for concurrent use; concurrent calls share group commits.
func (a *Archive) Ingest(ctx context.Context, raw []byte, o Origin) (Result, error) {
	if len(raw) == 0 {
		return Result{}, ErrEmpty
	}
	if int64(len(raw)) > a.opt.MaxMessageSize {
		return Result{}, fmt.Errorf("%w (%d bytes, limit %d)", ErrTooLarge, len(raw), a.opt.MaxMessageSize)
	}
	if err := a.space.check(); err != nil {
		return Result{}, err
	}
	a.inflight.Add(1)
	defer a.inflight.Add(-1)
	arrival := o.Arrival
	if arrival.IsZero() {
		arrival = a.opt.Now()
	}
	req := &request{resp: make(chan response, 1)}
	data := message.Normalize(raw)
	rcpt := make([]string, 0, len(o.RcptTo))
	for _, r := range o.RcptTo {
		rcpt = append(rcpt, normAddr(r))
	}
	mailFrom := normAddr(o.MailFrom)
	if orig, env, ok := message.UnwrapJournal(data); ok && len(orig) > 0 {
		rb := store.Blob{ID: message.ID(data), Data: data}
		req.report = &rb
		data = message.Normalize(orig)
		for _, r := range env.Recipients {
			rcpt = append(rcpt, normAddr(r))
		}
		if env.Sender != "" {
			mailFrom = normAddr(env.Sender)
		}
	}
	req.blob = store.Blob{Data: data}
	if enc, ok := a.st.(encoder); ok {
		// Hash (the id, which is the store's id: sha256 of the bytes) and
		// compress here, on the caller's goroutine, so concurrent ingests
		// spread it over the CPUs while the committer only writes and
		// syncs. During a burst, do not compress (store.Deferred): the CPU
		// goes to acknowledging, and the store compresses those records
		// once the burst is over (Recompress, run by the node). On failure
		// Put encodes (and reports) as usual.
		lvl := store.Smaller
		if a.Busy() {
			lvl = store.Deferred
		}
		_ = enc.Encode(&req.blob, lvl)
	}
	if req.blob.ID == "" {
		req.blob.ID = message.ID(data)
	}
	// The catalog needs header fields and the attachment list only; the
	// indexer decodes the text later, off the acknowledgement path.
	p := message.Parse(data, message.Options{Arrival: arrival, SkipText: true, SkipHeaderList: true})
	req.meta = catalog.NewMessage{
		ID:          req.blob.ID,
		Date:        p.Date,
		DateSource:  p.DateSource,
		Arrival:     arrival,
		Size:        int64(len(data)),
		From:        firstAddr(p.From),
		To:          addrs(p.To),
		Cc:          addrs(p.Cc),
		Bcc:         addrs(p.Bcc),
		Subject:     p.Subject,
		MessageID:   p.MessageID,
		Attachments: atts(p.Attachments),
		Origin:      o.Source,
		MailFrom:    mailFrom,
		RcptTo:      rcpt,
	}
	if req.report != nil {
		req.meta.ReportID = req.report.ID
	}

	a.mu.RLock()
	if a.closing {
		a.mu.RUnlock()
		return Result{}, ErrShuttingDown
	}
	select {
	case a.reqs <- req:
		a.mu.RUnlock()
	case <-ctx.Done():
		a.mu.RUnlock()
		return Result{}, ctx.Err()
	}
	select {
	case r := <-req.resp:
		return r.res, r.err
	case <-ctx.Done():
		// The request may still be committed; the caller must not treat
		// this as stored, and a retry deduplicates.
		return Result{}, ctx.Err()
	}
}

// encoder is implemented by stores that can encode a blob before Put
// (store.Local.Encode).
type encoder interface {
	Encode(b *store.Blob, lvl store.Level) error
}

// appender is implemented by stores whose Put splits into a write that
// makes blobs readable and a sync that makes them durable (store.Local).
type appender interface {
	Append(ctx context.Context, blobs []store.Blob) error
	Sync(ctx context.Context) error
}

// overlapped reports whether group commits overlap the store's sync with
// the catalog transaction: with a store that can append and sync
// separately and a SQLite catalog, which this node alone writes (nodes
// sharing a PostgreSQL catalog keep the pipeline, see commitLoop).
func (a *Archive) overlapped() (appender, bool) {
	ap, ok := a.st.(appender)
	return ap, ok && a.cat.Dialect() == catalog.SQLite
}

// commitLoop gathers requests into groups and commits each group durably
// before answering it, in one of two ways.
//
// Overlapped (local store, SQLite catalog): the group's new blobs are
// appended to the pack (readable, not yet durable), then the pack's fsync
// and the catalog transaction run at the same time; the group is answered
// when both are done, and the next group starts after that. A crash can
// then leave the last group's catalog rows durable without their blobs;
// RecoverTail removes them at the next start (they were never answered).
//
// Pipelined (any other store or catalog): while one group's catalog
// transaction commits, the next group's blobs are written and synced.
// Pipelining is safe because store puts are idempotent and the catalog
// transaction decides which messages are new; a crash leaves at worst an
// unreferenced blob.
//
// Either way a failing step fails its whole group with a temporary error.
func (a *Archive) commitLoop() {
	if ap, ok := a.overlapped(); ok {
		defer close(a.done)
		for batch := range a.gather() {
			a.commitOverlapped(ap, batch)
		}
		return
	}
	stage2 := make(chan *group, 1)
	stage2Done := make(chan struct{})
	go func() {
		defer close(stage2Done)
		for g := range stage2 {
			a.commitCatalog(g, nil)
		}
	}()
	defer func() {
		close(stage2)
		<-stage2Done
		close(a.done)
	}()
	for batch := range a.gather() {
		if g := a.storeBlobs(batch); g != nil {
			stage2 <- g
		}
	}
}

// gather yields groups of queued requests: each waits for one request,
// then takes whatever else is queued, up to MaxBatch messages and
// MaxBatchBytes bytes. It ends when reqs is closed and drained.
func (a *Archive) gather() iter.Seq[[]*request] {
	return func(yield func([]*request) bool) {
		for first := range a.reqs {
			batch := []*request{first}
			size := int64(len(first.blob.Data))
		more:
			for len(batch) < a.opt.MaxBatch && size < a.opt.MaxBatchBytes {
				select {
				case r, ok := <-a.reqs:
					if !ok {
						break more
					}
					batch = append(batch, r)
					size += int64(len(r.blob.Data))
				default:
					break more
				}
			}
			if !yield(batch) {
				return
			}
		}
	}
}

// commitOverlapped commits one group: append its blobs, then sync them
// while the catalog commits (see commitLoop).
func (a *Archive) commitOverlapped(ap appender, batch []*request) {
	ctx := context.Background()
	if a.unsettled.Load() {
		// A sync failed after its group's rows were committed. Committing
		// more would move the catalog's record of the last commit past
		// those rows, so RecoverTail could no longer find them: refuse
		// until the node restarts (the store refuses writes until then too).
		a.failGroup(batch, errors.New("store: a sync failed; ingest is refused until the node restarts"))
		return
	}
	g, blobs := a.newGroup(batch)
	if g == nil {
		return
	}
	if len(blobs) > 0 {
		if err := ap.Append(ctx, blobs); err != nil {
			a.failGroup(g.reqs, fmt.Errorf("store: %w", err))
			return
		}
	}
	synced := make(chan error, 1)
	go func() { synced <- ap.Sync(ctx) }()
	a.commitCatalog(g, synced)
}

// group is a batch on its way through the commit: its metadata and the
// requests to answer once its blobs and catalog rows are both durable.
type group struct {
	start time.Time
	size  int
	metas []catalog.NewMessage
	reqs  []*request
}

func (a *Archive) failGroup(reqs []*request, err error) {
	a.log.Error("group commit failed", "messages", len(reqs), "err", err)
	a.m.commitErrors.Inc()
	for _, r := range reqs {
		// Both wrapped: callers test for ErrUnavailable and for the cause
		// (syscall.ENOSPC -> SMTP 452 4.3.1).
		r.resp <- response{err: fmt.Errorf("%w: %w", ErrUnavailable, err)}
	}
}

// storeBlobs is the pipeline's step one: answer purged ids, write new
// blobs with one sync.
func (a *Archive) storeBlobs(batch []*request) *group {
	g, blobs := a.newGroup(batch)
	if g == nil {
		return nil
	}
	if len(blobs) > 0 {
		if err := a.st.Put(context.Background(), blobs); err != nil {
			a.failGroup(g.reqs, fmt.Errorf("store: %w", err))
			return nil
		}
	}
	return g
}

// newGroup answers the requests for purged ids and returns the group of the
// others with the distinct blobs to store (the store skips those it holds);
// nil when nothing is left to commit.
func (a *Archive) newGroup(batch []*request) (*group, []store.Blob) {
	g := &group{start: a.opt.Now(), size: len(batch)}
	ids := make([]string, 0, len(batch))
	for _, r := range batch {
		ids = append(ids, r.blob.ID)
	}
	purged, err := a.cat.IsTombstoned(context.Background(), ids)
	if err != nil {
		a.failGroup(batch, err)
		return nil, nil
	}
	var blobs []store.Blob
	seen := map[string]bool{}
	for _, r := range batch {
		if purged[r.blob.ID] {
			r.resp <- response{res: Result{ID: r.blob.ID, Duplicate: true, Purged: true}}
			continue
		}
		// Every blob goes to Put, which skips the ones it already holds
		// (an in-memory lookup): that also repairs a blob lost with a
		// crash, whatever the catalog says.
		if !seen[r.blob.ID] {
			seen[r.blob.ID] = true
			blobs = append(blobs, r.blob)
		}
		if r.report != nil && !seen[r.report.ID] {
			seen[r.report.ID] = true
			blobs = append(blobs, *r.report)
		}
		g.metas = append(g.metas, r.meta)
		g.reqs = append(g.reqs, r)
	}
	if len(g.reqs) == 0 {
		return nil, nil
	}
	return g, blobs
}

// commitCatalog commits the group's catalog transaction and answers it.
// With synced set (overlapped commits) it also waits for the store's sync
// of the group's blobs, and answers only when both are durable.
func (a *Archive) commitCatalog(g *group, synced <-chan error) {
	res, err := a.cat.Commit(context.Background(), g.metas)
	if synced != nil {
		if serr := <-synced; serr != nil && err == nil {
			// The rows are committed, their blobs maybe not durable: the
			// store now refuses writes until reopened, and RecoverTail
			// removes the rows at the next start if the blobs are lost.
			a.unsettled.Store(true)
			err = fmt.Errorf("store: %w", serr)
		}
	}
	if err != nil {
		a.failGroup(g.reqs, err)
		return
	}
	a.m.commitSeconds.Observe(a.opt.Now().Sub(g.start).Seconds())
	a.m.batchSize.Observe(float64(g.size))
	var purged []string
	for i := range res {
		if res[i].Purged {
			purged = append(purged, g.reqs[i].blob.ID)
		}
	}
	if len(purged) > 0 {
		// Purged while this group was in flight: drop the blob just written
		// so the purge's compaction (or the next one) removes the bytes.
		if err := a.st.Delete(context.Background(), purged); err != nil {
			a.log.Error("dropping blobs of purged messages", "count", len(purged), "err", err)
		}
	}
	now := a.opt.Now()
	a.lastCommit.Store(now.UnixNano())
	a.load.add(now, len(g.reqs))
	if fs := a.onCommit.Load(); fs != nil {
		for _, f := range *fs {
			f()
		}
	}
	for i, r := range g.reqs {
		out := Result{ID: r.blob.ID, Duplicate: res[i].Duplicate || res[i].Purged, Seq: res[i].Seq, Purged: res[i].Purged}
		if out.Duplicate {
			a.m.duplicates.Inc()
		} else {
			a.m.ingested.Inc()
			a.ingested.Add(1)
			a.m.bytes.Add(float64(len(r.blob.Data)))
		}
		r.resp <- response{res: out}
	}
}

// RecoverTail repairs what a crash during an overlapped group commit (see
// commitLoop) can leave behind: catalog rows of the last group whose blob,
// or journal report blob, did not reach the disk. Those messages were never
// acknowledged. Their rows are removed without a tombstone, so a sender's
// retry (or a mirror peer's anti-entropy) stores them again, and their ids
// are returned so the caller can drop them from the index. Call it once
// after New, before any Ingest; it does nothing when commits are pipelined.
// Close clears the catalog's record of the last commit
// (catalog.SettleCommits) only once RecoverTail has run and no sync failed
// since, so a start that fails before it leaves the record for the next.
// After a failed sync, ingest is refused until the node restarts.
func (a *Archive) RecoverTail(ctx context.Context) ([]string, error) {
	if _, ok := a.overlapped(); !ok {
		a.recovered.Store(true)
		return nil, nil
	}
	ms, err := a.cat.LastInserted(ctx)
	if err != nil {
		return nil, fmt.Errorf("archive: recover: %w", err)
	}
	var lost []string
	for _, m := range ms {
		for _, id := range append([]string{m.ID}, m.Reports...) {
			ok, err := a.st.Has(ctx, id)
			if err != nil {
				return nil, fmt.Errorf("archive: recover: %w", err)
			}
			if !ok {
				lost = append(lost, m.ID)
				break
			}
		}
	}
	if len(lost) == 0 {
		a.recovered.Store(true)
		return nil, nil
	}
	if err := a.cat.Forget(ctx, lost); err != nil {
		return nil, fmt.Errorf("archive: recover: %w", err)
	}
	a.recovered.Store(true)
	a.log.Warn("removed the catalog entries of messages whose bytes did not reach the disk before the node stopped; "+
		"they were never acknowledged, so their senders retry them", "messages", len(lost))
	return lost, nil
}

// OnCommit adds f to the callbacks run after every successful group commit
// (the indexer's and the mirror's wake-ups). f must not block.
func (a *Archive) OnCommit(f func()) {
	a.onCommitMu.Lock()
	defer a.onCommitMu.Unlock()
	var fs []func()
	if old := a.onCommit.Load(); old != nil {
		fs = append(fs, *old...)
	}
	fs = append(fs, f)
	a.onCommit.Store(&fs)
}

// busyRate is the commit rate (messages per second) above which ingest
// counts as busy and the indexer yields (IndexerOptions.Busy: one worker,
// a rest after each batch, indexing a few hundred messages a second). A
// steady site rate below it keeps the index within a second or so (the
// mirroring benchmark's 200 msgs/s stream); a burst above it builds a
// backlog that is caught up with afterwards.
const busyRate = 500

// busyInflight is the number of Ingest calls in progress at which ingest
// counts as busy at once, before the commit rate shows it: with a rate
// alone, the first few hundred messages of a burst (the quarter second the
// estimate takes to pass busyRate) were compressed and raced the indexer.
const busyInflight = 8

// Busy reports whether ingest is bursting: busyInflight or more messages
// are being ingested at this moment, or the commit rate, estimated over
// about the last half second (loadMeter), is above busyRate. The indexer
// stands aside then, and blobs are stored uncompressed (store.Deferred)
// for the node to compress once ingest is quiet.
func (a *Archive) Busy() bool {
	return a.inflight.Load() >= busyInflight || a.load.perSecond(a.opt.Now()) > busyRate
}

// Ingested returns how many messages were newly stored (duplicates
// excluded) since New. A group is counted after its OnCommit callbacks
// have run.
func (a *Archive) Ingested() int64 { return a.ingested.Load() }

// Get returns a message's catalog record.
func (a *Archive) Get(ctx context.Context, id string) (*catalog.Message, error) {
	m, err := a.cat.Get(ctx, id)
	if errors.Is(err, catalog.ErrNotFound) {
		return nil, ErrNotFound
	}
	return m, err
}

// Raw returns a message's exact stored bytes.
func (a *Archive) Raw(ctx context.Context, id string) ([]byte, error) {
	b, err := a.st.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("archive: read %s: %w", id, err)
	}
	return b, nil
}

// Catalog returns the catalog (for readers such as the indexer and API).
func (a *Archive) Catalog() *catalog.Catalog { return a.cat }

// Store returns the blob store.
func (a *Archive) Store() store.Store { return a.st }

func firstAddr(as []message.Address) string {
	if len(as) == 0 {
		return ""
	}
	return as[0].String()
}

func addrs(as []message.Address) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

func atts(as []message.Attachment) []catalog.Attachment {
	out := make([]catalog.Attachment, 0, len(as))
	for _, a := range as {
		out = append(out, catalog.Attachment{Filename: a.Filename, ContentType: a.ContentType, Size: a.Size})
	}
	return out
}

// normAddr lowercases and trims an envelope address ("<a@b>" -> "a@b").
func normAddr(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "<")
	s = strings.TrimSuffix(s, ">")
	return strings.ToLower(s)
}
