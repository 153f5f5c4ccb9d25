package archive_test

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promtest "github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/store"
)

// countingStore wraps a store: it counts Put calls (one sync each) and can
// be told to fail them.
type countingStore struct {
	store.Store
	puts   atomic.Int64
	putErr atomic.Pointer[error]
}

func (s *countingStore) Put(ctx context.Context, blobs []store.Blob) error {
	s.puts.Add(1)
	if e := s.putErr.Load(); e != nil {
		return *e
	}
	return s.Store.Put(ctx, blobs)
}

// openWith opens an archive over a real catalog and a countingStore around
// a real local store.
func openWith(t *testing.T, opt archive.Options) (*archive.Archive, *countingStore, *catalog.Catalog) {
	t.Helper()
	dir := t.TempDir()
	ctx := context.Background()
	cat, err := catalog.Open(ctx, filepath.Join(dir, "catalog.db"))
	if err != nil {
		t.Fatal(err)
	}
	local, err := store.OpenLocal(filepath.Join(dir, "store"), store.LocalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cs := &countingStore{Store: local}
	a := archive.New(cat, cs, opt)
	t.Cleanup(func() {
		if err := a.Close(ctx); err != nil {
			t.Error(err)
		}
		_ = local.Close()
		_ = cat.Close()
	})
	return a, cs, cat
}

// TestStoreENOSPCKeepsCause: a store write failing with ENOSPC reaches the
// caller as ErrUnavailable *and* ENOSPC, the shape SMTP maps to 452 4.3.1.
func TestStoreENOSPCKeepsCause(t *testing.T) {
	a, cs, cat := openWith(t, archive.Options{})
	ctx := context.Background()
	var enospc error = fmt.Errorf("write pack: %w", &fs.PathError{Op: "write", Path: "packs/000001.pack", Err: syscall.ENOSPC})
	cs.putErr.Store(&enospc)
	_, err := a.Ingest(ctx, []byte("Subject: full\r\n\r\nno room\r\n"), archive.Origin{Source: "smtp"})
	if !errors.Is(err, archive.ErrUnavailable) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("ingest on a full disk: %v; want errors.Is ErrUnavailable and syscall.ENOSPC", err)
	}
	if s, err := cat.Stats(ctx); err != nil || s.Messages != 0 {
		t.Fatalf("catalog after a failed store write: %+v, %v; want 0 messages", s, err)
	}
	cs.putErr.Store(nil)
	if _, err := a.Ingest(ctx, []byte("Subject: full\r\n\r\nno room\r\n"), archive.Origin{Source: "smtp"}); err != nil {
		t.Fatalf("ingest after space came back: %v", err)
	}
}

// fakeSpace is an injectable statfs with a controllable clock.
type fakeSpace struct {
	free  atomic.Int64
	calls atomic.Int64
	now   atomic.Int64 // unix nanos
}

func (f *fakeSpace) FreeSpace(string) (int64, error) {
	f.calls.Add(1)
	return f.free.Load(), nil
}

func (f *fakeSpace) Now() time.Time { return time.Unix(0, f.now.Load()) }

func (f *fakeSpace) advance(d time.Duration) { f.now.Add(int64(d)) }

// TestMinFreeSpace: below the reserve Ingest refuses with a temporary
// error (ErrUnavailable + ErrLowSpace) and stores nothing; the free space
// is measured at most once a second, not per message; the gauges and
// Space() show the state; ingest resumes once space is back.
func TestMinFreeSpace(t *testing.T) {
	const gib = 1 << 30
	fk := &fakeSpace{}
	fk.now.Store(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	fk.free.Store(5 * gib)
	reg := prometheus.NewRegistry()
	a, _, cat := openWith(t, archive.Options{
		MinFreeSpace: gib, SpacePath: "/data", FreeSpace: fk.FreeSpace, Now: fk.Now, Registerer: reg,
	})
	ctx := context.Background()
	msg := func(i int) []byte { return []byte(fmt.Sprintf("Subject: m%d\r\n\r\nbody %d\r\n", i, i)) }

	for i := range 10 {
		if _, err := a.Ingest(ctx, msg(i), archive.Origin{Source: "api"}); err != nil {
			t.Fatalf("ingest %d with 5 GiB free: %v", i, err)
		}
	}
	if n := fk.calls.Load(); n != 1 {
		t.Fatalf("free space measured %d times for 10 messages within one second, want 1 (at start)", n)
	}

	fk.free.Store(gib - 1)
	// Within the same second the cached verdict stands.
	if _, err := a.Ingest(ctx, msg(10), archive.Origin{Source: "api"}); err != nil {
		t.Fatalf("ingest before the next measurement: %v", err)
	}
	fk.advance(time.Second)
	for i := 11; i < 20; i++ {
		_, err := a.Ingest(ctx, msg(i), archive.Origin{Source: "api"})
		if !errors.Is(err, archive.ErrUnavailable) || !errors.Is(err, archive.ErrLowSpace) {
			t.Fatalf("ingest below the reserve: %v; want ErrUnavailable and ErrLowSpace", err)
		}
	}
	if n := fk.calls.Load(); n != 2 {
		t.Fatalf("free space measured %d times, want 2", n)
	}
	if s, err := cat.Stats(ctx); err != nil || s.Messages != 11 {
		t.Fatalf("catalog holds %d messages (%v), want the 11 accepted ones", s.Messages, err)
	}
	sp, ok := a.Space()
	if !ok || !sp.Low || sp.FreeBytes != gib-1 || sp.MinFreeBytes != gib || sp.Path != "/data" {
		t.Fatalf("Space() = %+v, %v", sp, ok)
	}
	if v := gauge(t, reg, "mailarc_archive_low_space"); v != 1 {
		t.Fatalf("mailarc_archive_low_space = %v, want 1", v)
	}
	if v := gauge(t, reg, "mailarc_archive_free_bytes"); v != gib-1 {
		t.Fatalf("mailarc_archive_free_bytes = %v, want %d", v, gib-1)
	}

	fk.free.Store(2 * gib)
	fk.advance(time.Second)
	if _, err := a.Ingest(ctx, msg(20), archive.Origin{Source: "api"}); err != nil {
		t.Fatalf("ingest after space was freed: %v", err)
	}
	if v := gauge(t, reg, "mailarc_archive_low_space"); v != 0 {
		t.Fatalf("mailarc_archive_low_space = %v after space was freed, want 0", v)
	}
}

// TestNoReserveWithoutConfig: MinFreeSpace 0 never measures.
func TestNoReserveWithoutConfig(t *testing.T) {
	fk := &fakeSpace{}
	a, _, _ := openWith(t, archive.Options{SpacePath: "/data", FreeSpace: fk.FreeSpace})
	if _, err := a.Ingest(context.Background(), []byte("Subject: x\r\n\r\ny\r\n"), archive.Origin{}); err != nil {
		t.Fatal(err)
	}
	if _, ok := a.Space(); ok || fk.calls.Load() != 0 {
		t.Fatalf("reserve active without MinFreeSpace (%d measurements)", fk.calls.Load())
	}
}

func TestFreeSpaceStatfs(t *testing.T) {
	free, err := archive.FreeSpace(t.TempDir())
	if err != nil || free <= 0 {
		t.Fatalf("FreeSpace = %d, %v", free, err)
	}
	if _, err := archive.FreeSpace(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Fatal("FreeSpace of a missing directory: no error")
	}
}

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// TestGroupCommitShared: concurrent ingests share group commits, so the
// store syncs far less often than once per message, and the batch-size
// histogram shows it.
func TestGroupCommitShared(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, cs, _ := openWith(t, archive.Options{Registerer: reg})
	ctx := context.Background()
	const n = 200
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = a.Ingest(ctx, []byte(fmt.Sprintf("Subject: group %d\r\n\r\nbody %d\r\n", i, i)), archive.Origin{Source: "smtp"})
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	puts := cs.puts.Load()
	t.Logf("%d concurrent messages, %d store syncs", n, puts)
	if puts > n/4 {
		t.Fatalf("%d store syncs for %d concurrent messages: group commit not shared", puts, n)
	}
	if got := promtest.CollectAndCount(reg, "mailarc_archive_commit_batch_messages"); got != 1 {
		t.Fatalf("batch histogram: %d series", got)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "mailarc_archive_commit_batch_messages" {
			h := mf.GetMetric()[0].GetHistogram()
			if h.GetSampleSum() != n || float64(h.GetSampleCount()) != float64(puts) {
				t.Fatalf("batch histogram sum %v count %d, want sum %d over %d commits", h.GetSampleSum(), h.GetSampleCount(), n, puts)
			}
		}
	}
}

// TestSameOriginalTwoReports: one original journaled twice (two journal
// rules or servers, so two different reports) is stored once with both
// reports and the union of the reports' recipients (docs/smtp.md).
func TestSameOriginalTwoReports(t *testing.T) {
	a, _, cat := openWith(t, archive.Options{})
	ctx := context.Background()
	orig := "From: ceo@corp.example\r\nTo: cfo@corp.example\r\nSubject: numbers\r\nMessage-ID: <q2@corp.example>\r\n\r\nsecret numbers\r\n"
	report := func(server, bcc string) string {
		return "From: " + server + "\r\nTo: archive@corp.example\r\nSubject: journal report\r\n" +
			"X-MS-Journal-Report:\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
			"--b1\r\nContent-Type: text/plain\r\n\r\nSender: ceo@corp.example\r\nSubject: numbers\r\nMessage-Id: <q2@corp.example>\r\n" +
			"To: cfo@corp.example\r\nBcc: " + bcc + "\r\n\r\n" +
			"--b1\r\nContent-Type: message/rfc822\r\n\r\n" + orig + "\r\n--b1--\r\n"
	}
	r1 := report("journal@ex1.corp.example", "auditor@corp.example")
	r2 := report("journal@ex2.corp.example", "counsel@corp.example")
	res1, err := a.Ingest(ctx, []byte(r1), archive.Origin{Source: "smtp"})
	if err != nil {
		t.Fatal(err)
	}
	res2, err := a.Ingest(ctx, []byte(r2), archive.Origin{Source: "smtp"})
	if err != nil {
		t.Fatal(err)
	}
	if res1.ID != sha([]byte(orig)) || res2.ID != res1.ID || res1.Duplicate || !res2.Duplicate {
		t.Fatalf("results %+v / %+v; want both the original's id %s, the second a duplicate", res1, res2, sha([]byte(orig)))
	}
	if s, err := cat.Stats(ctx); err != nil || s.Messages != 1 {
		t.Fatalf("catalog holds %d messages (%v), want 1", s.Messages, err)
	}
	m, err := a.Get(ctx, res1.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{sha([]byte(r1)), sha([]byte(r2))}
	sort.Strings(want)
	if len(m.Reports) != 2 || m.Reports[0] != want[0] || m.Reports[1] != want[1] {
		t.Fatalf("reports %v, want both %v", m.Reports, want)
	}
	for _, r := range []string{"cfo@corp.example", "auditor@corp.example", "counsel@corp.example"} {
		if !contains(m.RcptTo, r) {
			t.Errorf("envelope recipients %v lack %s (want the union of both reports)", m.RcptTo, r)
		}
	}
	for i, r := range []string{r1, r2} {
		if b, err := a.Raw(ctx, m.Reports[sort.SearchStrings(m.Reports, sha([]byte(r)))]); err != nil || string(b) != r {
			t.Errorf("report %d not retrievable byte-exact: %v", i+1, err)
		}
	}
	rep, err := a.Verify(ctx, nil)
	if err != nil || len(rep.Problems) != 0 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
}
