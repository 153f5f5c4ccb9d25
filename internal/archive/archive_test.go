package archive_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/store"
	"github.com/mailarc/mailarc/internal/testutil"
)

type fixture struct {
	a   *archive.Archive
	cat *catalog.Catalog
	st  *store.Local
	dir string
}

func open(t testing.TB, dir string, opt archive.Options) *fixture {
	t.Helper()
	ctx := context.Background()
	cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenLocal(filepath.Join(dir, "store"), store.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{a: archive.New(cat, st, opt), cat: cat, st: st, dir: dir}
	t.Cleanup(func() { f.close(t) })
	return f
}

func (f *fixture) close(t testing.TB) {
	if f.a == nil {
		return
	}
	if err := f.a.Close(context.Background()); err != nil {
		t.Error(err)
	}
	if err := f.st.Close(); err != nil {
		t.Error(err)
	}
	if err := f.cat.Close(); err != nil {
		t.Error(err)
	}
	f.a = nil
}

// normalize is the test's own implementation of DESIGN §3: bare LF -> CRLF.
func normalize(b []byte) []byte {
	var out bytes.Buffer
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out.WriteByte('\r')
		}
		out.WriteByte(c)
	}
	return out.Bytes()
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestIngestRoundTripAndDedupe(t *testing.T) {
	f := open(t, t.TempDir(), archive.Options{})
	ctx := context.Background()
	raw := []byte("From: Alice <alice@example.com>\nTo: bob@example.com\nSubject: hi\n\nhello\n")
	r1, err := f.a.Ingest(ctx, raw, archive.Origin{Source: "api"})
	if err != nil {
		t.Fatal(err)
	}
	want := normalize(raw)
	if r1.ID != sha(want) || r1.Duplicate {
		t.Fatalf("first ingest = %+v, want id %s not duplicate", r1, sha(want))
	}
	got, err := f.a.Raw(ctx, r1.ID)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("raw = %q, %v; want %q", got, err, want)
	}
	r2, err := f.a.Ingest(ctx, want, archive.Origin{Source: "smtp", MailFrom: "<x@y>", RcptTo: []string{"Journal@Example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	if r2.ID != r1.ID || !r2.Duplicate || r2.Seq != r1.Seq {
		t.Fatalf("second ingest = %+v, want duplicate of %+v", r2, r1)
	}
	m, err := f.a.Get(ctx, r1.ID)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m.Origins)
	if strings.Join(m.Origins, ",") != "api,smtp" {
		t.Errorf("origins = %v, want union api,smtp", m.Origins)
	}
	if len(m.RcptTo) != 1 || m.RcptTo[0] != "journal@example.com" || len(m.MailFrom) != 1 || m.MailFrom[0] != "x@y" {
		t.Errorf("envelope = %v / %v", m.MailFrom, m.RcptTo)
	}
	if m.Subject != "hi" || m.From != "Alice <alice@example.com>" {
		t.Errorf("metadata = %q %q", m.Subject, m.From)
	}
	if m.MSeq <= r1.Seq-1 {
		t.Errorf("mseq %d not bumped after metadata union", m.MSeq)
	}
}

func TestIngestRefusals(t *testing.T) {
	f := open(t, t.TempDir(), archive.Options{MaxMessageSize: 100})
	ctx := context.Background()
	if _, err := f.a.Ingest(ctx, nil, archive.Origin{}); !errors.Is(err, archive.ErrEmpty) {
		t.Errorf("empty: %v", err)
	}
	if _, err := f.a.Ingest(ctx, bytes.Repeat([]byte("x"), 101), archive.Origin{}); !errors.Is(err, archive.ErrTooLarge) {
		t.Errorf("too large: %v", err)
	}
	// Malformed is never refused: no headers, NUL bytes, 8-bit garbage.
	for _, raw := range [][]byte{[]byte("just a body"), {0, 0, 0xff, '\n', 0xfe}, []byte("Subject: \xff\xfe\n\n\x00")} {
		if _, err := f.a.Ingest(ctx, raw, archive.Origin{}); err != nil {
			t.Errorf("malformed %q refused: %v", raw, err)
		}
	}
}

func TestIngestAfterClose(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	cat, err := catalog.Open(ctx, filepath.Join(dir, "c.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer cat.Close()
	st, err := store.OpenLocal(filepath.Join(dir, "s"), store.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a := archive.New(cat, st, archive.Options{})
	if err := a.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Ingest(ctx, []byte("Subject: x\n\ny"), archive.Origin{}); !errors.Is(err, archive.ErrShuttingDown) {
		t.Fatalf("ingest after close: %v, want ErrShuttingDown", err)
	}
}

func TestConcurrentSameBytesKeepOneCopy(t *testing.T) {
	f := open(t, t.TempDir(), archive.Options{})
	ctx := context.Background()
	raw := []byte("Subject: same\r\n\r\nsame bytes\r\n")
	var wg sync.WaitGroup
	results := make([]archive.Result, 64)
	errs := make([]error, 64)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = f.a.Ingest(ctx, raw, archive.Origin{Source: fmt.Sprintf("api%d", i%4)})
		}()
	}
	wg.Wait()
	fresh := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if r.ID != sha(raw) {
			t.Fatalf("id %s", r.ID)
		}
		if !r.Duplicate {
			fresh++
		}
	}
	if fresh != 1 {
		t.Errorf("%d ingests reported new, want exactly 1", fresh)
	}
	s, err := f.st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := f.cat.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.Blobs != 1 || cs.Messages != 1 {
		t.Errorf("store has %d blobs, catalog %d messages; want 1 and 1", s.Blobs, cs.Messages)
	}
	m, err := f.a.Get(ctx, sha(raw))
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Origins) != 4 {
		t.Errorf("origins %v, want the union of 4", m.Origins)
	}
}

func TestJournalReportUnwrapped(t *testing.T) {
	f := open(t, t.TempDir(), archive.Options{})
	ctx := context.Background()
	orig := "From: ceo@corp.example\r\nTo: cfo@corp.example\r\nSubject: numbers\r\nMessage-ID: <q1@corp.example>\r\n\r\nsecret numbers\r\n"
	report := "From: journal@corp.example\r\nTo: archive@corp.example\r\nSubject: journal report\r\n" +
		"X-MS-Journal-Report:\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
		"--b1\r\nContent-Type: text/plain\r\n\r\nSender: ceo@corp.example\r\nSubject: numbers\r\nMessage-Id: <q1@corp.example>\r\n" +
		"To: cfo@corp.example\r\nBcc: auditor@corp.example\r\n\r\n" +
		"--b1\r\nContent-Type: message/rfc822\r\n\r\n" + orig + "\r\n--b1--\r\n"
	r, err := f.a.Ingest(ctx, []byte(report), archive.Origin{Source: "smtp", RcptTo: []string{"archive@corp.example"}})
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != sha([]byte(orig)) {
		t.Fatalf("id %s, want the original's %s", r.ID, sha([]byte(orig)))
	}
	m, err := f.a.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !contains(m.RcptTo, "auditor@corp.example") || !contains(m.RcptTo, "cfo@corp.example") {
		t.Errorf("envelope recipients %v lack the report's Bcc/To", m.RcptTo)
	}
	if len(m.Reports) != 1 || m.Reports[0] != sha([]byte(report)) {
		t.Fatalf("reports %v", m.Reports)
	}
	rb, err := f.a.Raw(ctx, m.Reports[0])
	if err != nil || string(rb) != report {
		t.Fatalf("report not retrievable: %v", err)
	}
	rep, err := f.a.Verify(ctx, nil)
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestCorpusRoundTrip archives every file of the shared corpus and reads
// each back byte-identical to its normalised form, recomputing the id here.
func TestCorpusRoundTrip(t *testing.T) {
	corpus := testutil.Corpus(t)
	if testing.Short() {
		t.Skip("corpus round trip skipped in -short mode")
	}
	f := open(t, t.TempDir(), archive.Options{})
	ctx := context.Background()
	var paths []string
	for _, sub := range []string{"real", "mime-edge"} {
		err := filepath.WalkDir(filepath.Join(corpus, sub), func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.Type().IsRegular() && !strings.HasSuffix(p, "MANIFEST.tsv") {
				paths = append(paths, p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	type res struct {
		path string
		id   string
	}
	work := make(chan string)
	out := make(chan res)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for p := range work {
				raw, err := os.ReadFile(p)
				if err != nil {
					t.Error(err)
					continue
				}
				if len(raw) == 0 {
					if _, err := f.a.Ingest(ctx, raw, archive.Origin{Source: "import"}); !errors.Is(err, archive.ErrEmpty) {
						t.Errorf("%s: empty file: %v", p, err)
					}
					continue
				}
				r, err := f.a.Ingest(ctx, raw, archive.Origin{Source: "import"})
				if err != nil {
					t.Errorf("%s: %v", p, err)
					continue
				}
				out <- res{p, r.ID}
			}
		}()
	}
	go func() {
		for _, p := range paths {
			work <- p
		}
		close(work)
		wg.Wait()
		close(out)
	}()
	checked := 0
	for r := range out {
		raw, _ := os.ReadFile(r.path)
		want := normalize(raw)
		// A journal report is archived as its attached original, so its
		// id differs; everything else must match exactly.
		if r.id != sha(want) {
			m, err := f.a.Get(ctx, r.id)
			if err != nil || len(m.Reports) == 0 {
				t.Errorf("%s: id %s, want %s", r.path, r.id, sha(want))
			}
			continue
		}
		got, err := f.a.Raw(ctx, r.id)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: read back differs (%v)", r.path, err)
		}
		checked++
	}
	t.Logf("%d corpus files archived and read back byte-identical", checked)
	if checked < 10000 {
		t.Errorf("only %d files checked; corpus incomplete?", checked)
	}
	rep, err := f.a.Verify(ctx, nil)
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify after corpus import: %v, %d problems: %v", err, len(rep.Problems), rep.Problems[:min(5, len(rep.Problems))])
	}
}

func BenchmarkIngest16(b *testing.B) {
	f := open(b, b.TempDir(), archive.Options{})
	ctx := context.Background()
	body := bytes.Repeat([]byte("lorem ipsum dolor sit amet consectetur "), 250)
	b.SetBytes(int64(len(body) + 100))
	b.SetParallelism(8) // 8 x GOMAXPROCS(2) = 16 concurrent ingesters
	var n sync.Mutex
	i := 0
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Lock()
			i++
			k := i
			n.Unlock()
			raw := append([]byte(fmt.Sprintf("Subject: bench %d\r\nMessage-ID: <%d@bench>\r\n\r\n", k, k)), body...)
			if _, err := f.a.Ingest(ctx, raw, archive.Origin{Source: "bench"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
