package index

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailarc/mailarc/internal/extract"
	"github.com/mailarc/mailarc/internal/message"
)

// Change is one catalog change the indexer must (re)index: a message that
// was stored or whose metadata (envelope, origins) grew. MSeq is the
// catalog's metadata-change counter, which only grows.
type Change struct {
	MSeq     int64
	Seq      int64
	ID       string
	Date     time.Time
	Arrival  time.Time
	Size     int64
	Origins  []string
	MailFrom []string
	RcptTo   []string
}

// Feed is what the indexer reads; the server adapts the catalog and store.
type Feed interface {
	// ChangesAfter returns up to limit changes with MSeq > after, in MSeq order.
	ChangesAfter(ctx context.Context, after int64, limit int) ([]Change, error)
	// Raw returns a message's stored bytes.
	Raw(ctx context.Context, id string) ([]byte, error)
}

// IndexerOptions tune the Indexer.
type IndexerOptions struct {
	BatchSize  int            // messages per index transaction (default 1000)
	Workers    int            // goroutines parsing and extracting (default 2)
	Limits     extract.Limits // attachment extraction limits (default extract.DefaultLimits())
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// PollInterval is how often the feed is checked without a Notify (default 1 s).
	PollInterval time.Duration
	// Busy, if set, reports whether ingest is under load. When it starts
	// to, the indexer stands aside entirely for BusyHold; if the burst lasts
	// longer, it then uses one worker, takes batches of a tenth of
	// BatchSize and pauses after each for busyPause times as long as the
	// batch took, so ingest keeps most of the CPU: a backlog then only
	// delays freshness, as the design asks.
	Busy func() bool
	// BusyHold is how long the indexer waits when a burst begins (default
	// 30 s; negative: not at all).
	BusyHold time.Duration
}

// Indexer follows the catalog's change feed and keeps the index current.
// Its watermark (the highest MSeq indexed) is stored in the index in the
// same transaction as the documents, so after a crash it resumes exactly
// where the last committed batch ended: nothing is skipped, and a change
// indexed twice replaces itself.
type Indexer struct {
	idx  Index
	feed Feed
	opt  IndexerOptions
	log  *slog.Logger
	wake chan struct{}

	watermark atomic.Int64
	oldest    atomic.Int64 // arrival (unix nanos) of the oldest unindexed change, 0 if none known
	indexed   prometheus.Counter
	skipped   *prometheus.CounterVec
	skippedN  atomic.Int64
	batchSecs prometheus.Histogram
	lastBatch time.Duration // duration of the last step, reading and extracting included (Run's goroutine only)
	burst     time.Time     // when Busy was first seen true in the current burst (Run's goroutine only)
	calm      time.Time     // when Busy was last seen turning false (Run's goroutine only)
	ahead     chan prepared // the next batch being prepared, or nil (Run's or CatchUp's goroutine only)
}

// NewIndexer creates an Indexer; call Run to start it.
func NewIndexer(idx Index, feed Feed, opt IndexerOptions) *Indexer {
	if opt.BatchSize <= 0 {
		opt.BatchSize = 1000
	}
	if opt.Workers <= 0 {
		opt.Workers = 2
	}
	if opt.Limits == (extract.Limits{}) {
		opt.Limits = extract.DefaultLimits()
	}
	if opt.Limits.MaxText <= 0 {
		opt.Limits.MaxText = extract.DefaultLimits().MaxText // sizes the per-message budget
	}
	if opt.Logger == nil {
		opt.Logger = slog.Default()
	}
	if opt.BusyHold == 0 {
		opt.BusyHold = 30 * time.Second
	}
	if opt.PollInterval <= 0 {
		opt.PollInterval = time.Second
	}
	x := &Indexer{idx: idx, feed: feed, opt: opt, log: opt.Logger, wake: make(chan struct{}, 1)}
	x.indexed = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "mailarc_index_documents_total", Help: "Documents written to the full-text index (re-indexes included).",
	})
	x.skipped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "mailarc_index_attachments_skipped_total",
		Help: "Attachments whose text was not extracted, by reason: unsupported, error, timeout, limit.",
	}, []string{"reason"})
	x.batchSecs = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "mailarc_index_batch_seconds", Help: "Time to build and commit one index batch.",
		Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
	})
	if opt.Registerer != nil {
		opt.Registerer.MustRegister(x.indexed, x.skipped, x.batchSecs)
	}
	return x
}

// Notify wakes the indexer (called after each group commit). Never blocks.
func (x *Indexer) Notify() {
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// Watermark is the highest change counter indexed.
func (x *Indexer) Watermark() int64 { return x.watermark.Load() }

// OldestPending is the arrival time of the oldest change not yet indexed,
// or the zero time when the indexer has caught up (as far as it knows).
func (x *Indexer) OldestPending() time.Time {
	if v := x.oldest.Load(); v != 0 {
		return time.Unix(0, v)
	}
	return time.Time{}
}

// SkippedAttachments counts the attachments whose text could not be
// extracted, or only in part, since the Indexer was created; unsupported
// formats (images and the like) are not counted.
func (x *Indexer) SkippedAttachments() int64 { return x.skippedN.Load() }

// Run indexes until ctx is cancelled. Errors are logged and retried with
// backoff; Run returns only ctx's error.
func (x *Indexer) Run(ctx context.Context) error {
	sh, ok := x.idx.(Shared)
	if !ok {
		return x.run(ctx)
	}
	// A shared index: index only while leading; a lost lead restarts the
	// wait (and re-reads the watermark another node may have moved).
	for {
		release, lost, err := sh.LeadIndexing(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			x.log.Error("cannot take the indexing lead; retrying", "err", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Second):
			}
			continue
		}
		x.log.Info("leading indexing for the shared index")
		lctx, cancel := untilLost(ctx, lost)
		err = x.run(lctx)
		cancel()
		release()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		x.log.Warn("indexing lead lost; waiting to take it again", "err", err)
	}
}

// untilLost returns a context that ends with ctx or when lost is closed
// (the indexing lead of a shared index was lost).
func untilLost(ctx context.Context, lost <-chan struct{}) (context.Context, context.CancelFunc) {
	lctx, cancel := context.WithCancel(ctx)
	go func() {
		select {
		case <-lost:
			cancel()
		case <-lctx.Done():
		}
	}()
	return lctx, cancel
}

// busyPause is how many times a batch's duration the indexer rests after
// it while ingest is busy. A sharded index (Sharded) writes its shards in
// parallel, so a batch can keep both CPUs of a small machine busy: resting
// five times as long leaves ingest about five sixths of the time.
const busyPause = 5

// busyBatch is the batch size while ingest is busy: a tenth of the usual.
// The rest after a batch is capped (5 s, so a burst cannot stop indexing
// for long); a full batch of 1,000 large messages read by one worker takes
// seconds, so with full batches the cap, not busyPause, set the share, and
// indexing took 40% of the CPU during an SMTP burst (docs/benchmarks.md).
func busyBatch(size int) int { return max(1, size/10) }

// busyPoll is how often the indexer asks whether a burst is over while it
// stands aside (holdForBurst), and burstGap how long ingest must be quiet
// for a burst to count as over: an import pausing between two mbox files
// is still the same burst, and does not start a new hold.
const (
	busyPoll = 100 * time.Millisecond
	burstGap = 5 * time.Second
)

// holdForBurst waits while ingest is busy, for up to BusyHold from the
// moment the burst was first seen (a burst ends once ingest has been quiet
// for burstGap): a burst of a few seconds or minutes
// (an import, a queue flushed after an outage) then gets the CPU to
// itself, and its mail is indexed right after; a longer one is indexed
// meanwhile at the reduced share (see IndexerOptions.Busy).
func (x *Indexer) holdForBurst(ctx context.Context) error {
	if x.opt.Busy == nil || x.opt.BusyHold < 0 {
		return nil
	}
	for x.opt.Busy() {
		x.calm = time.Time{}
		if x.burst.IsZero() {
			x.burst = time.Now()
		}
		if time.Since(x.burst) >= x.opt.BusyHold {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(busyPoll):
		}
	}
	if x.calm.IsZero() {
		x.calm = time.Now()
	}
	if time.Since(x.calm) >= burstGap {
		x.burst = time.Time{}
	}
	return nil
}

// run indexes until ctx is cancelled (see Run).
func (x *Indexer) run(ctx context.Context) error {
	wm, err := x.idx.Watermark(ctx)
	for err != nil {
		x.log.Error("index watermark unreadable; retrying", "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Second):
		}
		wm, err = x.idx.Watermark(ctx)
	}
	x.watermark.Store(wm)
	defer x.waitAhead()
	backoff := time.Second
	for {
		if err := x.holdForBurst(ctx); err != nil {
			return err
		}
		n, err := x.step(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil {
			x.log.Error("indexing batch failed; retrying", "err", err, "backoff", backoff)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, time.Minute)
			continue
		}
		backoff = time.Second
		if n > 0 {
			if x.opt.Busy != nil && x.opt.Busy() {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(min(busyPause*x.lastBatch, 5*time.Second)):
				}
			}
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-x.wake:
		case <-time.After(x.opt.PollInterval):
		}
	}
}

// CatchUp indexes until the feed is exhausted (for `mailarc reindex` and tests).
func (x *Indexer) CatchUp(ctx context.Context, progress func(done int)) error {
	if sh, ok := x.idx.(Shared); ok {
		release, lost, err := sh.LeadIndexing(ctx)
		if err != nil {
			return fmt.Errorf("index: take the indexing lead: %w", err)
		}
		defer release()
		lctx, cancel := untilLost(ctx, lost)
		defer cancel()
		ctx = lctx
	}
	wm, err := x.idx.Watermark(ctx)
	if err != nil {
		return err
	}
	x.watermark.Store(wm)
	defer x.waitAhead()
	done := 0
	for {
		n, err := x.step(ctx)
		if err != nil {
			return err
		}
		if n == 0 {
			return nil
		}
		done += n
		if progress != nil {
			progress(done)
		}
	}
}

// prepared is a batch read from the feed and turned into documents.
type prepared struct {
	after   int64 // the watermark the batch was read after
	changes []Change
	docs    []Document
	err     error
}

// step indexes one batch and returns how many changes it covered.
//
// Batches are pipelined: while batch N is written to the index (one
// writer, the slowest stage), batch N+1 is read and built by the workers,
// unless ingest is busy (then indexing yields, see IndexerOptions.Busy) or
// batch N was not full (the feed is probably exhausted). A prefetched batch
// is used only if it was read after the current watermark and is not
// empty; otherwise it is read again, so a failed Add or a late change is
// never skipped.
func (x *Indexer) step(ctx context.Context) (int, error) {
	began := time.Now()
	wm := x.watermark.Load()
	var cur prepared
	if x.ahead != nil {
		cur = <-x.ahead
		x.ahead = nil
	}
	if cur.after != wm || cur.err != nil || len(cur.changes) == 0 {
		cur = x.prepare(ctx, wm)
	}
	if cur.err != nil {
		return 0, cur.err
	}
	if len(cur.changes) == 0 {
		x.oldest.Store(0)
		return 0, nil
	}
	start := time.Now()
	last := cur.changes[len(cur.changes)-1].MSeq
	if len(cur.changes) >= x.opt.BatchSize && (x.opt.Busy == nil || !x.opt.Busy()) {
		ahead := make(chan prepared, 1)
		x.ahead = ahead
		go func() { ahead <- x.prepare(ctx, last) }()
	}
	if err := x.idx.Add(ctx, cur.docs, last); err != nil {
		return 0, fmt.Errorf("index: add batch: %w", err)
	}
	x.watermark.Store(last)
	x.indexed.Add(float64(len(cur.docs)))
	x.batchSecs.Observe(time.Since(start).Seconds())
	// The rest while ingest is busy is measured against the whole step:
	// without a prefetch (busy), reading and extracting ran in it too.
	x.lastBatch = time.Since(began)
	return len(cur.changes), nil
}

// waitAhead waits for a prefetch still running (so nothing reads the
// store after Run or CatchUp returned) and drops its result.
func (x *Indexer) waitAhead() {
	if x.ahead != nil {
		<-x.ahead
		x.ahead = nil
	}
}

// prepare reads the changes after wm and builds their documents with the
// configured number of workers; while ingest is busy, one worker and a
// smaller batch (busyBatch).
func (x *Indexer) prepare(ctx context.Context, wm int64) prepared {
	b := prepared{after: wm}
	limit, workers := x.opt.BatchSize, x.opt.Workers
	if x.opt.Busy != nil && x.opt.Busy() {
		limit, workers = busyBatch(x.opt.BatchSize), 1
	}
	changes, err := x.feed.ChangesAfter(ctx, wm, limit)
	if err != nil {
		b.err = fmt.Errorf("index: read feed: %w", err)
		return b
	}
	if len(changes) == 0 {
		return b
	}
	x.oldest.Store(changes[0].Arrival.UnixNano())
	docs := make([]Document, len(changes))
	errs := make([]error, len(changes))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(changes) || ctx.Err() != nil {
					return
				}
				docs[i], errs[i] = x.build(ctx, changes[i])
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		b.err = err
		return b
	}
	for i, err := range errs {
		if err != nil {
			b.err = fmt.Errorf("index: build document %s: %w", changes[i].ID, err)
			return b
		}
	}
	b.changes, b.docs = changes, docs
	return b
}

// build turns one change into a Document: parse the stored bytes, convert
// HTML to text, extract attachment text (recursing into attached messages).
func (x *Indexer) build(ctx context.Context, c Change) (Document, error) {
	raw, err := x.feed.Raw(ctx, c.ID)
	if err != nil {
		return Document{}, err
	}
	p := message.Parse(raw, message.Options{Arrival: c.Arrival, KeepAttachmentData: true, SkipHeaderList: true})
	d := Document{
		Seq: c.Seq, ID: c.ID, Date: c.Date, Size: c.Size,
		From: addrList(p.From), Sender: addrList(p.Sender), To: addrList(p.To), Cc: addrList(p.Cc), Bcc: addrList(p.Bcc),
		Subject: p.Subject, Origins: c.Origins,
	}
	d.Envelope = append(append([]string{}, c.MailFrom...), c.RcptTo...)
	var body strings.Builder
	body.WriteString(p.Text)
	for _, h := range p.HTML {
		body.WriteString("\n")
		body.WriteString(extract.HTMLToText(h))
	}
	d.Body = body.String()
	var att strings.Builder
	x.attachments(ctx, p.Attachments, &d, &att, x.textBudget(), 0)
	d.AttachmentText = att.String()
	return d, nil
}

// maxNestedMessages is how deep attached messages (a message attached to
// a message attached to ...) are followed for their text.
const maxNestedMessages = 3

// textBudget is the attachment text indexed per message: twice the
// per-attachment text limit (8 MiB with the default limits). Attachments
// met once it is used up are skipped with reason "limit"; the one that
// reaches it is truncated.
func (x *Indexer) textBudget() int { return 2 * x.opt.Limits.MaxText }

// attachments appends the text of as to att (attached messages
// recursively), never past budget bytes, recording each attachment whose
// text could not be extracted.
func (x *Indexer) attachments(ctx context.Context, as []message.Attachment, d *Document, att *strings.Builder, budget, depth int) {
	for _, a := range as {
		if a.Filename != "" {
			d.AttachmentNames = append(d.AttachmentNames, a.Filename)
		}
		if a.ContentType != "" {
			d.AttachmentTypes = append(d.AttachmentTypes, a.ContentType)
		}
		if att.Len() >= budget {
			x.skip(ctx, d.ID, a, "limit", "the message's attachment text budget is used up", false)
			continue
		}
		if a.Nested != nil {
			if depth >= maxNestedMessages {
				x.skip(ctx, d.ID, a, "limit", "attached messages nested too deep", false)
				continue
			}
			n := a.Nested
			for _, s := range [][]message.Address{n.From, n.To, n.Cc} {
				for _, ad := range s {
					writeCapped(att, ad.String(), budget)
					writeCapped(att, "\n", budget)
				}
			}
			for _, s := range []string{n.Subject, n.Text} {
				writeCapped(att, s, budget)
				writeCapped(att, "\n", budget)
			}
			for _, h := range n.HTML {
				writeCapped(att, extract.HTMLToText(h), budget)
				writeCapped(att, "\n", budget)
			}
			x.attachments(ctx, n.Attachments, d, att, budget, depth+1)
			continue
		}
		if len(a.Data) == 0 {
			continue
		}
		lim := x.opt.Limits
		lim.MaxText = min(lim.MaxText, budget-att.Len())
		text, err := extract.Text(ctx, a.Filename, a.ContentType, a.Data, lim)
		if err != nil && ctx.Err() != nil {
			return // stopping: the batch is abandoned, nothing to record
		}
		if err != nil {
			reason, cause := skipCause(err)
			x.skip(ctx, d.ID, a, reason, cause, text != "")
		}
		if text != "" {
			writeCapped(att, text, budget)
			writeCapped(att, "\n", budget)
		}
	}
}

// skipCause classifies an extraction error into the metric's reason label
// and a cause fit for the log. The cause is fixed text on purpose: parser
// errors can quote the document, and attachment content is never logged.
func skipCause(err error) (reason, cause string) {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout", "extraction took longer than the time limit"
	case errors.Is(err, extract.ErrTooLarge):
		return "limit", "attachment larger than the input size limit"
	case errors.Is(err, extract.ErrLimit):
		return "limit", "archive expansion, member or nesting limit"
	case errors.Is(err, extract.ErrCorrupt):
		return "error", "corrupt or unreadable"
	case errors.Is(err, extract.ErrUnsupported):
		return "unsupported", "no text extractor for this format"
	}
	return "error", "extraction failed"
}

// skip records an attachment whose text was not (or only partly, when
// partial is set) indexed: in the metric by reason, in the skipped count
// (except for unsupported formats such as images, which are expected) and
// in the log with the message id and file name, never the content.
// Unsupported formats are logged at debug level only: nearly every message
// with a logo or a photo has one.
func (x *Indexer) skip(ctx context.Context, id string, a message.Attachment, reason, cause string, partial bool) {
	x.skipped.WithLabelValues(reason).Inc()
	level := slog.LevelDebug
	if reason != "unsupported" {
		x.skippedN.Add(1)
		level = slog.LevelInfo
	}
	x.log.Log(ctx, level, "attachment text skipped",
		"id", id, "filename", a.Filename, "type", a.ContentType, "size", a.Size,
		"reason", reason, "cause", cause, "partial", partial)
}

// writeCapped appends s to b without taking b past budget bytes, cutting
// at a UTF-8 boundary.
func writeCapped(b *strings.Builder, s string, budget int) {
	room := budget - b.Len()
	if room <= 0 {
		return
	}
	if len(s) > room {
		for room > 0 && !utf8.RuneStart(s[room]) {
			room--
		}
		s = s[:room]
	}
	b.WriteString(s)
}

func addrList(as []message.Address) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}
