package index_test

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/extract"
	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/query"
	"github.com/mailarc/mailarc/internal/testutil"
	"github.com/mailarc/mailarc/internal/testutil/mailtest"
)

// memFeed is an in-memory change feed.
type memFeed struct {
	mu      sync.Mutex
	changes []index.Change
	raw     map[string][]byte
	failAt  int64 // ChangesAfter fails when asked for changes after this mseq (until reset)
}

func (f *memFeed) add(id string, raw string, rcpt ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	mseq := int64(len(f.changes) + 1)
	f.raw[id] = []byte(raw)
	f.changes = append(f.changes, index.Change{MSeq: mseq, Seq: mseq, ID: id, Date: time.Unix(1_600_000_000+mseq, 0), Size: int64(len(raw)), RcptTo: rcpt})
}

func (f *memFeed) ChangesAfter(ctx context.Context, after int64, limit int) ([]index.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failAt != 0 && after >= f.failAt {
		return nil, fmt.Errorf("simulated feed failure")
	}
	var out []index.Change
	for _, c := range f.changes {
		if c.MSeq > after && len(out) < limit {
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *memFeed) Raw(ctx context.Context, id string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.raw[id], nil
}

func count(t *testing.T, ix index.Index, q string) int {
	t.Helper()
	pq, err := query.Parse(q)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ix.Search(context.Background(), pq, index.Options{Limit: 1000, CountTotal: true})
	if err != nil {
		t.Fatal(err)
	}
	return r.Total
}

func TestIndexerResumesWithoutSkipsOrDoubles(t *testing.T) {
	testutil.Require(t, index.FTS5Compiled(), "built without -tags sqlite_fts5")
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "index.db")
	ix, err := index.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	f := &memFeed{raw: map[string][]byte{}}
	for i := 0; i < 250; i++ {
		f.add(fmt.Sprintf("%064x", i), fmt.Sprintf("From: a%d@x.example\r\nSubject: wombat %d\r\n\r\nbody\r\n", i, i))
	}
	x := index.NewIndexer(ix, f, index.IndexerOptions{BatchSize: 100, Workers: 2})
	// First pass: only part of the feed (simulate a crash after 2 batches).
	f.failAt = 200
	if err := x.CatchUp(ctx, nil); err == nil {
		t.Fatal("expected the simulated failure")
	}
	if wm, _ := ix.Watermark(ctx); wm != 200 {
		t.Fatalf("watermark %d after two batches, want 200", wm)
	}
	if err := ix.Close(); err != nil {
		t.Fatal(err)
	}
	// "Restart": a new index handle and indexer resume from the watermark.
	f.mu.Lock()
	f.failAt = 0
	f.mu.Unlock()
	ix, err = index.OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	x = index.NewIndexer(ix, f, index.IndexerOptions{BatchSize: 100})
	if err := x.CatchUp(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := count(t, ix, "wombat"); n != 250 {
		t.Fatalf("wombat matches %d, want 250 (no skips, no doubles)", n)
	}
	if n, _ := ix.Count(ctx); n != 250 {
		t.Fatalf("index holds %d docs, want 250", n)
	}
	// A metadata change (new envelope recipient) re-indexes the document in place.
	f.mu.Lock()
	c := f.changes[0]
	c.MSeq = int64(len(f.changes) + 1)
	c.RcptTo = []string{"hidden@corp.example"}
	f.changes = append(f.changes, c)
	f.mu.Unlock()
	if err := x.CatchUp(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if n := count(t, ix, "bcc:hidden@corp.example"); n != 1 {
		t.Fatalf("bcc: after envelope merge matches %d, want 1", n)
	}
	if n, _ := ix.Count(ctx); n != 250 {
		t.Fatalf("index holds %d docs after re-index, want 250", n)
	}
}

func TestIndexerRunFollowsNotify(t *testing.T) {
	testutil.Require(t, index.FTS5Compiled(), "built without -tags sqlite_fts5")
	ix, err := index.OpenSQLite(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	f := &memFeed{raw: map[string][]byte{}}
	x := index.NewIndexer(ix, f, index.IndexerOptions{PollInterval: time.Hour})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = x.Run(ctx); close(done) }()
	f.add(fmt.Sprintf("%064x", 1), "Subject: quokka\r\n\r\nattachment-free\r\n")
	x.Notify()
	testutil.Eventually(t, 10*time.Second, "the notified change to be indexed", func() bool { return x.Watermark() == 1 })
	if n := count(t, ix, "quokka"); n != 1 {
		t.Fatalf("quokka matches %d", n)
	}
	cancel()
	<-done
}

// logRecords is a JSON slog handler's output, decoded.
type logRecords struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *logRecords) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *logRecords) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// skips returns the "attachment text skipped" records.
func (l *logRecords) skips(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.text()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if r["msg"] == "attachment text skipped" {
			out = append(out, r)
		}
	}
	return out
}

// hasSkip reports whether a skip was logged for the message, file name and
// reason, at info level or above.
func hasSkip(recs []map[string]any, id, filename, reason string) bool {
	for _, r := range recs {
		if r["id"] == id && r["filename"] == filename && r["reason"] == reason && (r["level"] == "INFO" || r["level"] == "WARN") {
			return true
		}
	}
	return false
}

// newLoggedIndexer returns an index, a feed and an indexer over them whose
// log (debug level, JSON) is captured.
func newLoggedIndexer(t *testing.T, opt index.IndexerOptions) (*index.SQLite, *memFeed, *index.Indexer, *logRecords) {
	t.Helper()
	testutil.Require(t, index.FTS5Compiled(), "built without -tags sqlite_fts5")
	ix, err := index.OpenSQLite(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := ix.Close(); err != nil {
			t.Error(err)
		}
	})
	logs := &logRecords{}
	opt.Logger = slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := &memFeed{raw: map[string][]byte{}}
	return ix, f, index.NewIndexer(ix, f, opt), logs
}

// ratioBomb is a zip whose one member inflates 2 MiB of zeros from a few
// KiB: over the 100:1 ratio limit.
func ratioBomb(t *testing.T) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	w, err := zw.Create("zeros.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(make([]byte, 2<<20)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestIndexerMessageFields sends real MIME messages through the indexer
// (parse, HTML to text, attachment extraction, nested messages) and
// searches every field the issue names; skipped attachments are counted
// and logged with the message id, file name and reason, never the content.
func TestIndexerMessageFields(t *testing.T) {
	ix, f, x, logs := newLoggedIndexer(t, index.IndexerOptions{})
	id := func(i int) string { return fmt.Sprintf("%064x", i) }

	// 1: HTML only, a Sender, envelope recipients.
	f.add(id(1), "From: a@x.example\r\nSender: Sekretaer <sec@corp.example>\r\nTo: b@x.example\r\nSubject: h\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n"+
		"<html><head><style>p { stylesecret: 1 }</style><script>scriptsecret()</script></head>"+
		"<body><p>htmlvisible</p></body></html>\r\n", "env@corp.example")

	// 2: a nested message (with its own attachment), a calendar and a
	// corrupt PDF.
	nested := "Content-Type: message/rfc822\r\n\r\n" + mailtest.Multipart(
		"From: Innerperson <inner@y.example>\r\nTo: c@y.example\r\nSubject: nestedsubj\r\n",
		"Content-Type: text/plain\r\n\r\nnestedbody\r\n",
		mailtest.AttachmentPart("deep.txt", "text/plain", []byte("deepword\r\n")))
	ics := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nSUMMARY:icsword planning\r\nLOCATION:roomword\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	f.add(id(2), mailtest.Multipart("From: a@x.example\r\nSubject: n\r\n",
		"Content-Type: text/plain\r\n\r\nouter\r\n",
		nested,
		mailtest.AttachmentPart("i.ics", "text/calendar", []byte(ics)),
		mailtest.AttachmentPart("bad.pdf", "application/pdf", []byte("%PDF-1.4 pdfsecretword garbage\r\n"))))

	// 3: a winmail.dat and a zip bomb: the message is still indexed.
	f.add(id(3), mailtest.Multipart("From: a@x.example\r\nSubject: outlookmail\r\n",
		"Content-Type: text/plain\r\n\r\nsee attached\r\n",
		mailtest.AttachmentPart("winmail.dat", "application/ms-tnef", mailtest.TNEF("tnefsubject", "tnefbody text", "notes.txt", "tnefinnerword")),
		mailtest.AttachmentPart("bomb.zip", "application/zip", ratioBomb(t))))

	if err := x.CatchUp(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]int{
		// HTML body: visible text indexed, script and style not.
		"htmlvisible": 1, "body:htmlvisible": 1, "scriptsecret": 0, "stylesecret": 0,
		// Sender is searched by from:; envelope recipients by to: and bcc:.
		"from:sec@corp.example": 1, "from:Sekretaer": 1, "from:corp.example": 1,
		"to:env@corp.example": 1, "bcc:env@corp.example": 1, "env@corp.example": 1, "to:b@x.example": 1,
		// The nested message: its body, subject, addresses and its own
		// attachment are attachment text (bare words match it too).
		"nestedbody": 1, "attachment:nestedbody": 1, "body:nestedbody": 0,
		"attachment:nestedsubj": 1, "subject:nestedsubj": 0, "nestedsubj": 1,
		"attachment:inner@y.example": 1, "attachment:Innerperson": 1, "from:inner@y.example": 0, "inner@y.example": 1,
		"attachment:deepword": 1, "filename:deep.txt": 1,
		// Calendar.
		"attachment:icsword": 1, "attachment:roomword": 1, "filename:i.ics": 1,
		// Corrupt PDF: the name is indexed, the message too.
		"filename:bad.pdf": 1, "outer": 1,
		// TNEF: subject, body and the attached file, and its name.
		"attachment:tnefsubject": 1, "attachment:tnefbody": 1, "attachment:tnefinnerword": 1, "filename:winmail.dat": 1,
		// The bomb: skipped, its message indexed.
		"outlookmail": 1, "filename:bomb.zip": 1, "has:attachment": 2,
	} {
		if n := count(t, ix, q); n != want {
			t.Errorf("%q: %d matches, want %d", q, n, want)
		}
	}
	if n := x.SkippedAttachments(); n != 2 {
		t.Errorf("skipped attachments: %d, want 2 (bad.pdf, bomb.zip)", n)
	}
	recs := logs.skips(t)
	if !hasSkip(recs, id(2), "bad.pdf", "error") {
		t.Errorf("no skip logged for bad.pdf (reason error): %v", recs)
	}
	if !hasSkip(recs, id(3), "bomb.zip", "limit") {
		t.Errorf("no skip logged for bomb.zip (reason limit): %v", recs)
	}
	if s := logs.text(); strings.Contains(s, "pdfsecretword") || strings.Contains(s, "garbage") {
		t.Errorf("the log quotes attachment content: %s", s)
	}
}

// TestIndexerTextLimits checks the per-message attachment text budget (two
// times Limits.MaxText): text past it is not indexed and the attachments
// it leaves out are recorded; and an extraction timeout is recorded too.
func TestIndexerTextLimits(t *testing.T) {
	ix, f, x, logs := newLoggedIndexer(t, index.IndexerOptions{Limits: extract.Limits{MaxText: 100}})
	filler := func(n int) string { return strings.Repeat("filler ", n) }
	f.add(fmt.Sprintf("%064x", 1), mailtest.Multipart("From: a@x.example\r\nSubject: budget\r\n",
		"Content-Type: text/plain\r\n\r\nbody\r\n",
		// 61 bytes (+1 for the separating newline).
		mailtest.AttachmentPart("a.txt", "text/plain", []byte("firstword "+filler(6)+"firsttail")),
		// Cut at MaxText: 100 bytes (+1), 163 in all.
		mailtest.AttachmentPart("b.txt", "text/plain", []byte("secondword "+filler(30)+"secondtail")),
		// 37 bytes left of the 200-byte budget: "thirdtail" starts at 31.
		mailtest.AttachmentPart("c.txt", "text/plain", []byte("thirdword "+filler(3)+"thirdtail "+filler(10))),
		// Nothing left.
		mailtest.AttachmentPart("d.txt", "text/plain", []byte("fourthword"))))
	if err := x.CatchUp(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	for q, want := range map[string]int{
		"attachment:firstword": 1, "attachment:firsttail": 1,
		"attachment:secondword": 1, "attachment:secondtail": 0, // cut at MaxText
		"attachment:thirdword": 1, "attachment:thirdtail": 0, // cut at the message's budget
		"attachment:fourthword": 0, // budget used up
		"filename:d.txt":        1, // names are indexed regardless
		"subject:budget":        1,
	} {
		if n := count(t, ix, q); n != want {
			t.Errorf("%q: %d matches, want %d", q, n, want)
		}
	}
	if n := x.SkippedAttachments(); n != 1 {
		t.Errorf("skipped attachments: %d, want 1 (d.txt)", n)
	}
	if recs := logs.skips(t); !hasSkip(recs, fmt.Sprintf("%064x", 1), "d.txt", "limit") {
		t.Errorf("no limit skip logged for d.txt: %v", recs)
	}

	// A timeout: a deadline that has passed before the extraction starts.
	ix2, f2, x2, logs2 := newLoggedIndexer(t, index.IndexerOptions{Limits: extract.Limits{Timeout: time.Nanosecond}})
	big := strings.Repeat("<p>slowword and more words</p>\n", 20000)
	f2.add(fmt.Sprintf("%064x", 1), mailtest.Multipart("From: a@x.example\r\nSubject: slow\r\n",
		"Content-Type: text/plain\r\n\r\nbody\r\n",
		mailtest.AttachmentPart("big.html", "text/html", []byte(big))))
	if err := x2.CatchUp(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if n := count(t, ix2, "subject:slow"); n != 1 {
		t.Errorf("message with a timed-out attachment: %d matches, want 1", n)
	}
	if n := x2.SkippedAttachments(); n != 1 {
		t.Errorf("skipped attachments: %d, want 1 (big.html)", n)
	}
	if recs := logs2.skips(t); !hasSkip(recs, fmt.Sprintf("%064x", 1), "big.html", "timeout") {
		t.Errorf("no timeout skip logged for big.html: %v", recs)
	}
	if strings.Contains(logs2.text(), "slowword") {
		t.Error("the log quotes attachment content")
	}
}

// slowFeed is a memFeed that records how many Raw calls overlap; each
// stays in flight a moment so that parallel workers, if any, overlap.
type slowFeed struct {
	*memFeed
	hold             time.Duration
	inflight, maxPar atomic.Int32
	maxLimit         atomic.Int32 // the largest batch asked of ChangesAfter
}

func (f *slowFeed) ChangesAfter(ctx context.Context, after int64, limit int) ([]index.Change, error) {
	for m := f.maxLimit.Load(); int32(limit) > m && !f.maxLimit.CompareAndSwap(m, int32(limit)); m = f.maxLimit.Load() {
	}
	return f.memFeed.ChangesAfter(ctx, after, limit)
}

func (f *slowFeed) Raw(ctx context.Context, id string) ([]byte, error) {
	n := f.inflight.Add(1)
	defer f.inflight.Add(-1)
	for m := f.maxPar.Load(); n > m && !f.maxPar.CompareAndSwap(m, n); m = f.maxPar.Load() {
	}
	select {
	case <-ctx.Done():
	case <-time.After(f.hold):
	}
	return f.memFeed.Raw(ctx, id)
}

// TestIndexerYieldsToBusyIngest: while ingest reports itself busy (past
// the hold at a burst's start, here none), the indexer parses with one
// worker, in batches of a tenth (and pauses between them) but still
// indexes everything; when ingest is idle it uses its workers and whole
// batches.
func TestIndexerYieldsToBusyIngest(t *testing.T) {
	testutil.Require(t, index.FTS5Compiled(), "built without -tags sqlite_fts5")
	for _, busy := range []bool{true, false} {
		t.Run(fmt.Sprintf("busy=%v", busy), func(t *testing.T) {
			ix, err := index.OpenSQLite(filepath.Join(t.TempDir(), "index.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer ix.Close()
			f := &slowFeed{memFeed: &memFeed{raw: map[string][]byte{}}, hold: 20 * time.Millisecond}
			const n = 30
			for i := 0; i < n; i++ {
				f.add(fmt.Sprintf("%064x", i), fmt.Sprintf("Subject: numbat %d\r\n\r\nbody\r\n", i))
			}
			var asked atomic.Int64
			x := index.NewIndexer(ix, f, index.IndexerOptions{
				BatchSize: 10, Workers: 4, PollInterval: time.Hour, BusyHold: -1,
				Busy: func() bool { asked.Add(1); return busy },
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = x.Run(ctx); close(done) }()
			testutil.Eventually(t, 30*time.Second, "every change to be indexed", func() bool { return x.Watermark() == n })
			cancel()
			<-done
			if c := count(t, ix, "numbat"); c != n {
				t.Errorf("numbat matches %d, want %d", c, n)
			}
			if asked.Load() == 0 {
				t.Error("the indexer never asked whether ingest is busy")
			}
			switch p := f.maxPar.Load(); {
			case busy && p != 1:
				t.Errorf("busy ingest: %d messages read in parallel, want 1", p)
			case !busy && p < 2:
				t.Errorf("idle ingest: messages read one at a time with 4 workers")
			}
			switch b := f.maxLimit.Load(); {
			case busy && b != 1:
				t.Errorf("busy ingest: batches of up to %d asked, want a tenth of BatchSize 10", b)
			case !busy && b != 10:
				t.Errorf("idle ingest: batches of up to %d asked, want BatchSize 10", b)
			}
		})
	}
}

// TestIndexerHoldsForBurst: when a burst begins the indexer indexes nothing
// for BusyHold, then indexes at the reduced share although the burst goes
// on; and once ingest is quiet it indexes at once.
func TestIndexerHoldsForBurst(t *testing.T) {
	testutil.Require(t, index.FTS5Compiled(), "built without -tags sqlite_fts5")
	for _, hold := range []time.Duration{time.Hour, 300 * time.Millisecond} {
		t.Run(fmt.Sprint("hold=", hold), func(t *testing.T) {
			ix, err := index.OpenSQLite(filepath.Join(t.TempDir(), "index.db"))
			if err != nil {
				t.Fatal(err)
			}
			defer ix.Close()
			f := &memFeed{raw: map[string][]byte{}}
			const n = 20
			for i := 0; i < n; i++ {
				f.add(fmt.Sprintf("%064x", i), fmt.Sprintf("Subject: quokka %d\r\n\r\nbody\r\n", i))
			}
			var busy atomic.Bool
			var asked atomic.Int64
			busy.Store(true)
			x := index.NewIndexer(ix, f, index.IndexerOptions{
				BatchSize: 10, PollInterval: 10 * time.Millisecond, BusyHold: hold,
				Busy: func() bool { asked.Add(1); return busy.Load() },
			})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			start := time.Now()
			go func() { _ = x.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			if hold < time.Hour {
				testutil.Eventually(t, 30*time.Second, "the first change to be indexed", func() bool { return x.Watermark() > 0 })
				if waited := time.Since(start); waited < hold {
					t.Errorf("indexing began %v into a burst, before the %v hold ended", waited, hold)
				}
			} else {
				testutil.Eventually(t, 30*time.Second, "the indexer asked 5 times whether the burst is over", func() bool { return asked.Load() >= 5 })
				if w := x.Watermark(); w != 0 {
					t.Fatalf("indexed up to %d during the hold at a burst's start, want nothing", w)
				}
				busy.Store(false)
			}
			testutil.Eventually(t, 30*time.Second, "every change to be indexed", func() bool { return x.Watermark() == n })
			if c := count(t, ix, "quokka"); c != n {
				t.Errorf("quokka matches %d, want %d", c, n)
			}
		})
	}
}
