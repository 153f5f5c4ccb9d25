package extract_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/extract"
	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/query"
	"github.com/mailarc/mailarc/internal/testutil"
	"github.com/mailarc/mailarc/internal/testutil/mailtest"
)

// sliceFeed is an index.Feed over fixed messages.
type sliceFeed struct {
	mu  sync.Mutex
	ids []string
	raw map[string][]byte
}

func (f *sliceFeed) ChangesAfter(_ context.Context, after int64, limit int) ([]index.Change, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []index.Change
	for i := after; i < int64(len(f.ids)) && len(out) < limit; i++ {
		out = append(out, index.Change{MSeq: i + 1, Seq: i + 1, ID: f.ids[i], Date: time.Unix(1_600_000_000+i, 0), Size: int64(len(f.raw[f.ids[i]]))})
	}
	return out, nil
}

func (f *sliceFeed) Raw(_ context.Context, id string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.raw[id], nil
}

// withAttachment wraps a document as the base64 attachment of a message.
func withAttachment(i int, filename, ct string, data []byte) []byte {
	return []byte(mailtest.Multipart(fmt.Sprintf("From: corpus@test.example\r\nSubject: corpus document %d\r\n", i),
		"Content-Type: text/plain\r\n\r\nsee attached\r\n",
		mailtest.AttachmentPart(filename, ct, data)))
}

// TestCorpusSearchable indexes a fixed sample of the corpus documents of
// TestCorpusNonEmpty, each as the attachment of its own message, through
// the indexer, and searches for the word TestCorpusNonEmpty found in each:
// as attachment:WORD and as a bare word, the message must be among the hits.
func TestCorpusSearchable(t *testing.T) {
	testutil.Require(t, index.FTS5Compiled(), "built without -tags sqlite_fts5")
	docs := extract.CorpusSample(t, 30)
	ix, err := index.OpenSQLite(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer ix.Close()
	f := &sliceFeed{raw: map[string][]byte{}}
	for i, d := range docs {
		data, err := os.ReadFile(d.Path)
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("%064x", i+1)
		f.ids = append(f.ids, id)
		f.raw[id] = withAttachment(i, filepath.Base(d.Path), d.ContentType, data)
	}
	x := index.NewIndexer(ix, f, index.IndexerOptions{BatchSize: 10})
	if err := x.CatchUp(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	for i, d := range docs {
		id := f.ids[i]
		for _, q := range []string{"attachment:" + d.Word, d.Word} {
			pq, err := query.Parse(q)
			if err != nil {
				t.Errorf("%s: query %q: %v", d.Path, q, err)
				continue
			}
			r, err := ix.Search(context.Background(), pq, index.Options{Limit: len(docs), Sort: index.SortDateAsc})
			if err != nil {
				t.Fatal(err)
			}
			if !slices.ContainsFunc(r.Hits, func(h index.Hit) bool { return h.ID == id }) {
				t.Errorf("%s: %q does not find its message", filepath.Base(d.Path), q)
			}
		}
	}
	for _, d := range docs {
		t.Logf("%s: %q", filepath.Base(d.Path), d.Word)
	}
}
