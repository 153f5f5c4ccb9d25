package s3store

import (
	"context"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/store"
)

// TestExtendRetention: ExtendRetention sets and extends a retain-until
// date but never shortens one already in force.
func TestExtendRetention(t *testing.T) {
	g := startGateway(t)
	ctx := context.Background()
	s := g.open(t, g.options(g.bucket(t, true, true), "worm"))
	if !s.ObjectLock() {
		t.Skip("versitygw did not report Object Lock on a bucket created with it; Object Lock tests skipped")
	}
	b := store.NewBlob([]byte("extend me"))
	if err := s.Put(ctx, []store.Blob{b}); err != nil {
		t.Fatal(err)
	}
	first := time.Now().Add(time.Hour).Truncate(time.Second)
	later := first.Add(time.Hour)
	for _, step := range []struct {
		ask, want time.Time
	}{{first, first}, {later, later}, {first, later}} {
		got, err := s.ExtendRetention(ctx, b.ID, step.ask)
		if err != nil {
			t.Fatalf("ExtendRetention(%v): %v", step.ask, err)
		}
		st, err := s.Lock(ctx, b.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !got.Equal(step.want) || !st.RetainUntil.Equal(step.want) {
			t.Fatalf("ExtendRetention(%v) = %v, in force %v; want %v", step.ask, got, st.RetainUntil, step.want)
		}
	}
}
