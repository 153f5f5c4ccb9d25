package server_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/store"
	"github.com/mailarc/mailarc/internal/testutil"
)

// TestServeCompressesBurstRecords: records a burst left uncompressed
// (store.Deferred) are compressed by the serving node once ingest has been
// quiet for a few seconds, and read back exactly.
func TestServeCompressesBurstRecords(t *testing.T) {
	nd := start(t, t.TempDir())
	st, ok := nd.n.Archive.Store().(*store.Local)
	if !ok {
		t.Fatalf("the node's store is a %T, want *store.Local", nd.n.Archive.Store())
	}
	ctx := context.Background()
	var blobs []store.Blob
	for i := range 5 {
		b := store.Blob{Data: []byte(fmt.Sprintf("Subject: %d\r\n\r\n%s", i, strings.Repeat("burst body line\r\n", 1000)))}
		if err := st.Encode(&b, store.Deferred); err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, b)
	}
	if err := st.Put(ctx, blobs); err != nil {
		t.Fatal(err)
	}
	if st.PendingRecompress() == 0 {
		t.Fatal("deferred records are not pending")
	}
	testutil.Eventually(t, 30*time.Second, "burst records compressed", func() bool { return st.PendingRecompress() == 0 })
	s, err := st.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if s.StoredBytes*4 > s.RawBytes {
		t.Errorf("%d bytes stored for %d raw after the node compressed them", s.StoredBytes, s.RawBytes)
	}
	for _, b := range blobs {
		got, err := st.Get(ctx, b.ID)
		if err != nil || !bytes.Equal(got, b.Data) {
			t.Fatalf("Get %s after compression: %d bytes, %v", b.ID, len(got), err)
		}
	}
}
