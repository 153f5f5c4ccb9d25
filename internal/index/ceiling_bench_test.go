package index

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

// fileFeed is a Feed over message files: change n (MSeq n) is files[n-1],
// with the file's path as its id.
type fileFeed struct{ files []string }

func (f fileFeed) ChangesAfter(_ context.Context, after int64, limit int) ([]Change, error) {
	var out []Change
	for n := after + 1; n <= int64(len(f.files)) && len(out) < limit; n++ {
		out = append(out, Change{MSeq: n, Seq: n, ID: f.files[n-1]})
	}
	return out, nil
}

func (fileFeed) Raw(_ context.Context, path string) ([]byte, error) { return os.ReadFile(path) }

// BenchmarkAddMaildir measures the index writers alone: the messages under
// $MAILARC_BENCH_MAILDIR (e.g. an amplified maildir from `mailarc-bench
// amplify`) are built into documents once, outside the timer, then each
// iteration writes all of them into a fresh two-shard index in batches.
// Dates either follow the feed (ascending) or come in no order, as in a
// real import. Reports docs/s. For docs/benchmarks.md:
//
//	MAILARC_BENCH_MAILDIR=/tmp/md100k go test -tags sqlite_fts5 -run '^$' \
//	    -bench AddMaildir -benchtime 1x ./internal/index/
func BenchmarkAddMaildir(b *testing.B) {
	dir := os.Getenv("MAILARC_BENCH_MAILDIR")
	if dir == "" {
		b.Skip("set MAILARC_BENCH_MAILDIR to a directory of messages")
	}
	if !fts5Compiled {
		b.Skip("built without -tags sqlite_fts5")
	}
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	sort.Strings(files)
	docs := buildAll(b, files)
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	shuffled := rand.New(rand.NewPCG(1, 2)).Perm(len(docs))
	for _, order := range []string{"ascending", "shuffled"} {
		for i := range docs {
			n := i
			if order == "shuffled" {
				n = shuffled[i]
			}
			docs[i].Date = base.Add(time.Duration(n) * time.Minute)
		}
		for _, batch := range []int{1000, 5000} {
			b.Run(fmt.Sprintf("dates=%s/batch=%d", order, batch), func(b *testing.B) {
				for range b.N {
					ix, err := OpenSQLiteDir(b.TempDir())
					if err != nil {
						b.Fatal(err)
					}
					start := time.Now()
					for i := 0; i < len(docs); i += batch {
						j := min(i+batch, len(docs))
						if err := ix.Add(context.Background(), docs[i:j], int64(j)); err != nil {
							b.Fatal(err)
						}
					}
					b.ReportMetric(float64(len(docs))/time.Since(start).Seconds(), "docs/s")
					if err := ix.Close(); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// buildAll builds the documents of files as the indexer does (its own
// prepare step, two workers), each with the hash of its path as id.
func buildAll(b *testing.B, files []string) []Document {
	x := NewIndexer(nil, fileFeed{files}, IndexerOptions{BatchSize: len(files)})
	p := x.prepare(context.Background(), 0)
	if p.err != nil {
		b.Fatal(p.err)
	}
	for i := range p.docs {
		h := sha256.Sum256([]byte(p.docs[i].ID))
		p.docs[i].ID = hex.EncodeToString(h[:])
	}
	return p.docs
}
