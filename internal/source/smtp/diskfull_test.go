package smtp

import (
	"context"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/store"
)

// fullStore is a real local store whose writes can be made to fail with
// ENOSPC, as a full file system does.
type fullStore struct {
	store.Store
	full atomic.Bool
}

func (s *fullStore) Put(ctx context.Context, blobs []store.Blob) error {
	if s.full.Load() {
		return &fs.PathError{Op: "write", Path: "packs/000001.pack", Err: syscall.ENOSPC}
	}
	return s.Store.Put(ctx, blobs)
}

// TestDiskFullReplies drives a real archive.Archive: a store write failing
// with ENOSPC and free space below min_free_space both answer 452 4.3.1
// (the sender keeps the message), nothing is stored, and mail is accepted
// again once there is room.
func TestDiskFullReplies(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cat.Close() })
	local, err := store.OpenLocal(filepath.Join(dir, "store"), store.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = local.Close() })
	st := &fullStore{Store: local}
	var free, clock atomic.Int64
	free.Store(10 << 30)
	clock.Store(time.Now().UnixNano())
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	a := archive.New(cat, st, archive.Options{
		Logger: quiet, MinFreeSpace: 1 << 30, SpacePath: dir,
		FreeSpace: func(string) (int64, error) { return free.Load(), nil },
		Now:       func() time.Time { return time.Unix(0, clock.Load()) },
	})
	t.Cleanup(func() { _ = a.Close(ctx) })
	s, err := New(Config{Listen: []string{"127.0.0.1:0"}, Hostname: "mx.test"}, a, quiet, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = s.Shutdown(sctx)
	})
	c := dial(t, s.Addrs()[0].String())
	rcpt := []string{"j@archive.test"}

	st.full.Store(true)
	_, err = send(c, "a@example.com", rcpt, msg("enospc", "store full"))
	wantCode(t, err, 452, gosmtp.EnhancedCode{4, 3, 1})
	st.full.Store(false)

	free.Store(1<<30 - 1)
	clock.Add(int64(time.Second)) // the next measurement is due
	_, err = send(c, "a@example.com", rcpt, msg("reserve", "below min_free_space"))
	wantCode(t, err, 452, gosmtp.EnhancedCode{4, 3, 1})
	if cs, err := cat.Stats(ctx); err != nil || cs.Messages != 0 {
		t.Fatalf("catalog holds %d messages (%v) after 452s, want 0", cs.Messages, err)
	}

	free.Store(2 << 30)
	clock.Add(int64(time.Second))
	if _, err := send(c, "a@example.com", rcpt, msg("ok", "room again")); err != nil {
		t.Fatalf("after space came back: %v", err)
	}
	if cs, err := cat.Stats(ctx); err != nil || cs.Messages != 1 {
		t.Fatalf("catalog holds %d messages (%v), want 1", cs.Messages, err)
	}
}
