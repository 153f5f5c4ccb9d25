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
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fileFeed serves message files as raw bytes; a Change's ID is the path.
type fileFeed struct{}

func (fileFeed) ChangesAfter(context.Context, int64, int) ([]Change, error) { return nil, nil }
func (fileFeed) Raw(_ context.Context, path string) ([]byte, error)         { return os.ReadFile(path) }

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

// buildAll builds the documents of files with two workers, as the indexer does.
func buildAll(b *testing.B, files []string) []Document {
	x := NewIndexer(nil, fileFeed{}, IndexerOptions{})
	docs := make([]Document, len(files))
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Value
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(files) {
					return
				}
				d, err := x.build(context.Background(), Change{MSeq: int64(i + 1), Seq: int64(i + 1), ID: files[i]})
				if err != nil {
					failed.Store(err)
					return
				}
				h := sha256.Sum256([]byte(files[i]))
				d.ID = hex.EncodeToString(h[:])
				docs[i] = d
			}
		}()
	}
	wg.Wait()
	if err, ok := failed.Load().(error); ok {
		b.Fatal(err)
	}
	return docs
}
