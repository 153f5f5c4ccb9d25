package index_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/query"
)

// synth generates documents with a Zipf-distributed vocabulary, so that
// there are very common and very rare words, like real mail.
type synth struct {
	r     *rand.Rand
	zipf  *rand.Zipf
	vocab []string
}

func newSynth(seed uint64) *synth {
	r := rand.New(rand.NewPCG(seed, 7))
	s := &synth{r: r, zipf: rand.NewZipf(r, 1.1, 2, 49999)}
	const letters = "abcdefghijklmnopqrstuvwxyz"
	for i := 0; i < 50000; i++ {
		n := 3 + r.IntN(8)
		b := make([]byte, n)
		for j := range b {
			b[j] = letters[r.IntN(len(letters))]
		}
		s.vocab = append(s.vocab, string(b)+strconv.Itoa(i%10))
	}
	return s
}

func (s *synth) text(bytes int) string {
	var b strings.Builder
	for b.Len() < bytes {
		b.WriteString(s.vocab[s.zipf.Uint64()])
		if s.r.IntN(12) == 0 {
			b.WriteString(".\n")
		} else {
			b.WriteByte(' ')
		}
	}
	return b.String()
}

func (s *synth) doc(seq int64, bodyBytes int) index.Document {
	user := func() string {
		return fmt.Sprintf("User %d <user%d@dept%d.corp.example>", s.r.IntN(500), s.r.IntN(500), s.r.IntN(20))
	}
	d := index.Document{
		Seq: seq, ID: fmt.Sprintf("%064x", seq),
		Date: time.Date(2015, 1, 1, 0, 0, 0, 0, time.UTC).Add(time.Duration(s.r.Int64N(10*365*24*3600)) * time.Second),
		Size: int64(bodyBytes + 2000 + s.r.IntN(5000)),
		From: []string{user()}, To: []string{user(), user()}, Envelope: []string{"journal@corp.example"},
		Subject: s.text(40), Body: s.text(bodyBytes), Origins: []string{"smtp"},
	}
	if s.r.IntN(10) == 0 {
		d.Cc = []string{user()}
	}
	if s.r.IntN(8) == 0 {
		d.AttachmentNames = []string{s.vocab[s.r.IntN(1000)] + ".pdf"}
		d.AttachmentTypes = []string{"application/pdf"}
		d.AttachmentText = s.text(bodyBytes / 2)
	}
	return d
}

func benchIndex(b *testing.B) *index.SQLite {
	requireFTS5(b)
	ix, err := index.OpenSQLite(filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { ix.Close() })
	return ix
}

// BenchmarkAdd measures indexing of ~10 kB documents in batches of 500.
func BenchmarkAdd(b *testing.B) {
	ix := benchIndex(b)
	s := newSynth(1)
	const batch = 500
	docs := make([]index.Document, 0, 2*batch)
	for i := 0; i < 2*batch; i++ {
		docs = append(docs, s.doc(int64(i+1), 10<<10))
	}
	ctx := context.Background()
	b.SetBytes(10 << 10)
	b.ResetTimer()
	start := time.Now()
	for n := 0; n < b.N; n += batch {
		m := min(batch, b.N-n)
		chunk := make([]index.Document, m)
		for i := range chunk {
			chunk[i] = docs[(n+i)%len(docs)]
			chunk[i].Seq = int64(n + i + 1)
			chunk[i].ID = fmt.Sprintf("%064x", n+i+1)
		}
		if err := ix.Add(ctx, chunk, int64(n+m)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "docs/s")
}

// BenchmarkSearch builds an index of MAILARC_BENCH_DOCS (default 100,000)
// synthetic documents and reports p50/p99 latency per query class for the
// newest 50 hits. The first run builds the index (several minutes at
// 100k); set MAILARC_BENCH_DOCS=5000 for a quick look.
func BenchmarkSearch(b *testing.B) {
	n := 100000
	if v, err := strconv.Atoi(os.Getenv("MAILARC_BENCH_DOCS")); err == nil && v > 0 {
		n = v
	}
	ix := benchIndex(b)
	s := newSynth(2)
	ctx := context.Background()
	for i := 0; i < n; i += 1000 {
		var docs []index.Document
		for j := i; j < min(i+1000, n); j++ {
			docs = append(docs, s.doc(int64(j+1), 2<<10))
		}
		if err := ix.Add(ctx, docs, int64(i+len(docs))); err != nil {
			b.Fatal(err)
		}
	}
	rare, common := s.vocab[20000], s.vocab[3]
	classes := []struct{ name, q string }{
		{"rare", rare},
		{"common", common},
		{"and2", common + " " + s.vocab[10]},
		{"phrase", `"` + s.vocab[2] + " " + s.vocab[3] + `"`},
		{"from", "from:user7@dept3.corp.example"},
		{"date+word", "after:2020-01-01 before:2020-03-01 " + s.vocab[30]},
		{"newest", ""},
		{"not", "-" + common},
		{"count-common", common},
	}
	for _, c := range classes {
		q, err := query.Parse(c.q)
		if err != nil {
			b.Fatal(err)
		}
		opt := index.Options{Limit: 50, CountTotal: c.name == "count-common"}
		b.Run(c.name, func(b *testing.B) {
			var lat []time.Duration
			for i := 0; i < b.N; i++ {
				t0 := time.Now()
				if _, err := ix.Search(ctx, q, opt); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}

// FuzzSearch checks that every query that parses also compiles to SQL and
// FTS5 syntax SQLite accepts.
func FuzzSearch(f *testing.F) {
	requireFTS5(f)
	ix, err := index.OpenSQLite(filepath.Join(f.TempDir(), "fuzz.db"))
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { ix.Close() })
	s := newSynth(3)
	var docs []index.Document
	for i := 0; i < 50; i++ {
		docs = append(docs, s.doc(int64(i+1), 300))
	}
	ctx := context.Background()
	if err := ix.Add(ctx, docs, 50); err != nil {
		f.Fatal(err)
	}
	for _, q := range []string{"", "a OR b", `"x y"* -z`, "from:a@b to:@c cc:d@ bcc:e", "東京*", "-(has:attachment OR size>1k)",
		`"" -"" NOT "-"`, `origin:"a""b"`, "after:2020-01-01 before:2019-01-01", "NEAR(a b)", `a" OR "b`, "{body}:x", "^x", "x:y:z"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, qs string) {
		q, err := query.Parse(qs)
		if err != nil {
			return
		}
		for _, opt := range []index.Options{{CountTotal: true}, {Sort: index.SortRelevance, Addresses: []string{"x@y"}}, {Sort: index.SortDateAsc, Offset: 3}} {
			if _, err := ix.Search(ctx, q, opt); err != nil {
				t.Fatalf("Search(%q): %v", qs, err)
			}
		}
		if _, err := ix.Matches(ctx, q, []string{docs[0].ID, docs[1].ID}); err != nil {
			t.Fatalf("Matches(%q): %v", qs, err)
		}
	})
}
