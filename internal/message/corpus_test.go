package message

import (
	"io/fs"
	"net/mail"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/mailarc/mailarc/internal/testutil"
)

// corpusDir returns <repo root>/../shared/corpus/<sub>, skipping the test when
// it is absent (failing instead when MAILARC_INTEGRATION=1).
func corpusDir(tb testing.TB, sub string) string {
	tb.Helper()
	dir := testutil.FindCorpus(sub)
	testutil.Require(tb, dir != "", "the shared corpus folder "+sub+" is not present")
	return dir
}

// corpusFiles lists the regular files under dir, sorted.
func corpusFiles(tb testing.TB, dir string) []string {
	tb.Helper()
	var files []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() && d.Name() != "MANIFEST.tsv" {
			files = append(files, path)
		}
		return nil
	})
	if err != nil {
		tb.Fatalf("walk %s: %v", dir, err)
	}
	sort.Strings(files)
	return files
}

// checkParsed asserts the invariants every Parse result must hold.
func checkParsed(tb testing.TB, name string, p *Parsed, depth int) {
	tb.Helper()
	if p == nil {
		tb.Fatalf("%s: Parse returned nil", name)
	}
	for _, pr := range p.Problems {
		if pr == internalErrorProblem {
			tb.Fatalf("%s: parser panicked (recovered)", name)
		}
	}
	if !utf8.ValidString(p.Text) || !utf8.ValidString(p.Subject) {
		tb.Errorf("%s: invalid UTF-8 in text or subject", name)
	}
	for _, h := range p.HTML {
		if !utf8.ValidString(h) {
			tb.Errorf("%s: invalid UTF-8 in HTML", name)
		}
	}
	for _, f := range p.Header {
		if !utf8.ValidString(f.Key) || !utf8.ValidString(f.Value) || strings.IndexByte(f.Value, 0) >= 0 {
			tb.Errorf("%s: bad header field %q", name, f.Key)
		}
	}
	switch p.DateSource {
	case DateFromHeader, DateFromReceived, DateFromArrival:
	default:
		tb.Errorf("%s: DateSource %q", name, p.DateSource)
	}
	if p.DateSource != DateFromArrival && (p.Date.Location() != time.UTC || p.Date.Year() < 1900 || p.Date.Year() > 9999) {
		tb.Errorf("%s: implausible date %v", name, p.Date)
	}
	for i, a := range p.Attachments {
		if a.Index != i || a.Size < 0 || !utf8.ValidString(a.Filename) {
			tb.Errorf("%s: attachment %d: bad %+v", name, i, a)
		}
		if a.Nested != nil {
			if depth > DefaultMaxDepth {
				tb.Errorf("%s: nesting beyond the depth limit", name)
			}
			checkParsed(tb, name+"/nested", a.Nested, depth+1)
		}
	}
}

// TestCorpus parses every file of the corpus (real mail and MIME edge
// cases) in parallel, checks the result invariants and bounds per-file time.
func TestCorpus(t *testing.T) {
	var files []string
	for _, sub := range []string{"real", "mime-edge"} {
		files = append(files, corpusFiles(t, corpusDir(t, sub))...)
	}
	if len(files) < 1000 {
		t.Fatalf("corpus has only %d files", len(files))
	}
	type timing struct {
		name string
		d    time.Duration
	}
	var (
		mu      sync.Mutex
		slowest []timing
		wg      sync.WaitGroup
		next    = make(chan string)
		limit   = 2 * time.Second * timeScale
	)
	workers := runtime.GOMAXPROCS(0)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for path := range next {
				raw, err := os.ReadFile(path)
				if err != nil {
					t.Errorf("read %s: %v", path, err)
					continue
				}
				raw = Normalize(raw)
				start := time.Now()
				p := Parse(raw, Options{Arrival: time.Unix(1e9, 0)})
				_, _, _ = UnwrapJournal(raw)
				d := time.Since(start)
				checkParsed(t, path, p, 0)
				checkSkipHeaderList(t, path, raw, p)
				if len(p.Attachments) > 0 {
					// Attachment numbering must agree between Parse and AttachmentData.
					last := len(p.Attachments) - 1
					att, data, err := AttachmentData(raw, last)
					if err != nil || att.Size != int64(len(data)) || att.Size != p.Attachments[last].Size || att.Filename != p.Attachments[last].Filename {
						t.Errorf("%s: AttachmentData(%d) = %+v, %d bytes, %v; Parse says %+v", path, last, att, len(data), err, p.Attachments[last])
					}
				}
				if d > limit {
					t.Errorf("%s: parse took %v (limit %v)", path, d, limit)
				}
				mu.Lock()
				slowest = append(slowest, timing{path, d})
				mu.Unlock()
			}
		}()
	}
	step := 1
	if raceEnabled {
		step = 7 // a sample keeps the race-detector run within minutes
	}
	for i := 0; i < len(files); i += step {
		next <- files[i]
	}
	close(next)
	wg.Wait()
	sort.Slice(slowest, func(i, j int) bool { return slowest[i].d > slowest[j].d })
	for _, s := range slowest[:min(5, len(slowest))] {
		t.Logf("slow: %v %s", s.d, s.name)
	}
	t.Logf("parsed %d files", len(files))
}

// BenchmarkParseCorpus parses the real/ messages and reports msgs/s.
func BenchmarkParseCorpus(b *testing.B) { benchParseCorpus(b, Options{}) }

// BenchmarkParseCorpusIngest parses them as the archive does at ingest:
// metadata only, no text and no header list.
func BenchmarkParseCorpusIngest(b *testing.B) {
	benchParseCorpus(b, Options{SkipText: true, SkipHeaderList: true})
}

// BenchmarkUnwrapJournalCorpus is ingest's journal check on the real
// corpus, none of whose messages is a journal report.
func BenchmarkUnwrapJournalCorpus(b *testing.B) {
	msgs := corpusMessages(b, true)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, ok := UnwrapJournal(msgs[i%len(msgs)]); ok {
			b.Fatal("a corpus message taken for a journal report")
		}
	}
}

// corpusMessages reads the real/ messages (normalised if normalize) for a
// benchmark, and sets its bytes per operation to their mean size.
func corpusMessages(b *testing.B, normalize bool) [][]byte {
	b.Helper()
	files := corpusFiles(b, corpusDir(b, "real"))
	msgs := make([][]byte, 0, len(files))
	var total int64
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			b.Fatalf("read %s: %v", f, err)
		}
		if normalize {
			raw = Normalize(raw)
		}
		msgs = append(msgs, raw)
		total += int64(len(raw))
	}
	b.SetBytes(total / int64(len(msgs)))
	b.ReportAllocs()
	return msgs
}

func benchParseCorpus(b *testing.B, opt Options) {
	msgs := corpusMessages(b, true)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Parse(msgs[i%len(msgs)], opt)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

// checkSkipHeaderList parses raw again with SkipHeaderList and requires
// the same result as full (the first parse) except for the header lists.
func checkSkipHeaderList(t *testing.T, path string, raw []byte, full *Parsed) {
	t.Helper()
	lean := Parse(raw, Options{Arrival: time.Unix(1e9, 0), SkipHeaderList: true})
	if lean.Header != nil {
		t.Errorf("%s: SkipHeaderList kept %d header fields", path, len(lean.Header))
	}
	if !reflect.DeepEqual(withoutHeaders(lean), withoutHeaders(full)) {
		t.Errorf("%s: SkipHeaderList changed more than the header list", path)
	}
}

// withoutHeaders returns a copy of p with every Header list (nested
// messages included) cleared.
func withoutHeaders(p *Parsed) *Parsed {
	c := *p
	c.Header = nil
	c.Attachments = append([]Attachment(nil), p.Attachments...)
	for i := range c.Attachments {
		if n := c.Attachments[i].Nested; n != nil {
			c.Attachments[i].Nested = withoutHeaders(n)
		}
	}
	return &c
}

// TestCorpusDatesFastPath: for the Date header of every real/ message, the
// preferred-form fast path gives what net/mail.ParseDate gives, and it is
// taken for most of them (else it buys nothing).
func TestCorpusDatesFastPath(t *testing.T) {
	dates, fast := 0, 0
	for _, fv := range corpusFieldValues(t, "date") {
		v := fv.value
		dates++
		if _, err := time.Parse(preferredDate, v); err == nil {
			fast++
		}
		got, gerr := parseRFC5322Date(v)
		want, werr := mail.ParseDate(v)
		gn, go_ := got.Zone()
		wn, wo := want.Zone()
		if (gerr == nil) != (werr == nil) || !got.Equal(want) || gn != wn || go_ != wo {
			t.Errorf("%s: Date %q: %v %v, net/mail %v %v", fv.file, v, got, gerr, want, werr)
		}
	}
	t.Logf("%d Date headers, %d in the preferred form", dates, fast)
	if dates > 0 && fast*2 < dates {
		t.Errorf("only %d of %d dates take the fast path", fast, dates)
	}
}

// fieldValue is one header field's value (unfolded, trimmed) and the
// corpus file it came from.
type fieldValue struct{ file, value string }

// corpusFieldValues returns the values of the real/ messages' header
// fields named one of keys (lowercase), in file order.
func corpusFieldValues(t *testing.T, keys ...string) []fieldValue {
	t.Helper()
	var out []fieldValue
	for _, f := range corpusFiles(t, corpusDir(t, "real")) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range Parse(Normalize(raw), Options{SkipText: true}).Header {
			if slices.Contains(keys, strings.ToLower(h.Key)) {
				out = append(out, fieldValue{f, strings.TrimSpace(unfold([]byte(h.Value)))})
			}
		}
	}
	return out
}

// TestCorpusAddressesFastPath: for every address field of every real/
// message, the fast path agrees with net/mail where it applies, and it
// applies to most of them (else it buys nothing).
func TestCorpusAddressesFastPath(t *testing.T) {
	fields, fast := 0, 0
	for _, fv := range corpusFieldValues(t, "from", "sender", "to", "cc", "bcc", "reply-to") {
		fields++
		if checkFastAddressList(t, fv.value) {
			fast++
		}
	}
	t.Logf("%d address fields, %d take the fast path", fields, fast)
	if fields > 0 && fast*2 < fields {
		t.Errorf("only %d of %d address fields take the fast path", fast, fields)
	}
}
