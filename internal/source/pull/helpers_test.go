package pull

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/config"
)

// memState is a map-backed StateStore.
type memState struct {
	mu sync.Mutex
	m  map[string]map[string]string
}

func newMemState() *memState { return &memState{m: map[string]map[string]string{}} }

func (s *memState) SourceState(_ context.Context, src string) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.m[src]), nil
}

func (s *memState) SetSourceState(_ context.Context, src string, kv map[string]string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m[src] == nil {
		s.m[src] = map[string]string{}
	}
	for k, v := range kv {
		if v == "" {
			delete(s.m[src], k)
		} else {
			s.m[src][k] = v
		}
	}
	return nil
}

// fakeArchive dedupes by sha256 and counts; fail, when set, may refuse.
type fakeArchive struct {
	mu     sync.Mutex
	ids    map[string]int // id -> times stored as new (must stay 1)
	calls  int
	dups   int
	fail   func(raw []byte) error
	origin string
}

func newFakeArchive() *fakeArchive { return &fakeArchive{ids: map[string]int{}} }

func (a *fakeArchive) Ingest(_ context.Context, raw []byte, o archive.Origin) (archive.Result, error) {
	a.mu.Lock()
	fail := a.fail
	a.calls++
	a.origin = o.Source
	a.mu.Unlock()
	if fail != nil {
		if err := fail(raw); err != nil {
			return archive.Result{}, err
		}
	}
	sum := sha256.Sum256(raw)
	id := hex.EncodeToString(sum[:])
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.ids[id]; ok {
		a.dups++
		return archive.Result{ID: id, Duplicate: true}, nil
	}
	a.ids[id] = 1
	return archive.Result{ID: id}, nil
}

func (a *fakeArchive) setFail(f func([]byte) error) {
	a.mu.Lock()
	a.fail = f
	a.mu.Unlock()
}

func (a *fakeArchive) callCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.calls
}

func (a *fakeArchive) dupCount() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.dups
}

func (s *memState) get(src, key string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[src][key]
}

func (a *fakeArchive) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.ids)
}

func (a *fakeArchive) has(raw []byte) bool {
	sum := sha256.Sum256(raw)
	a.mu.Lock()
	defer a.mu.Unlock()
	_, ok := a.ids[hex.EncodeToString(sum[:])]
	return ok
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func testMsg(i int) []byte {
	return fmt.Appendf(nil, "From: sender%d@example.com\r\nTo: journal@example.com\r\nSubject: message %d\r\nMessage-ID: <%d@test>\r\n\r\nbody of message %d\r\n", i, i, i, i)
}

// memIMAP is an in-memory IMAP server on 127.0.0.1.
type memIMAP struct {
	addr *net.TCPAddr
	user *imapmemserver.User
}

func startMemIMAP(t *testing.T, caps imap.CapSet) *memIMAP {
	t.Helper()
	mem := imapmemserver.New()
	u := imapmemserver.NewUser("journal", "secret")
	if err := u.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(u)
	addr := serveIMAP(t, caps, func() imapserver.Session { return mem.NewSession() })
	return &memIMAP{addr: addr, user: u}
}

// serveIMAP serves IMAP on 127.0.0.1 (plaintext logins allowed) with a
// session from newSession per connection, until the test ends. caps nil
// means IMAP4rev1 and IMAP4rev2.
func serveIMAP(t *testing.T, caps imap.CapSet, newSession func() imapserver.Session) *net.TCPAddr {
	t.Helper()
	if caps == nil {
		caps = imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}}
	}
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return newSession(), nil, nil
		},
		Caps:         caps,
		InsecureAuth: true,
		Logger:       discardLogger{},
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().(*net.TCPAddr)
}

type discardLogger struct{}

func (discardLogger) Printf(string, ...any) {}
func (discardLogger) Println(...any)        {}

func (s *memIMAP) append(t *testing.T, folder string, raw []byte) {
	t.Helper()
	if _, err := s.user.Append(folder, bytes.NewReader(raw), &imap.AppendOptions{}); err != nil {
		t.Fatal(err)
	}
}

func (s *memIMAP) count(t *testing.T, folder string) uint32 {
	t.Helper()
	sd, err := s.user.Status(folder, &imap.StatusOptions{NumMessages: true})
	if err != nil {
		t.Fatal(err)
	}
	return *sd.NumMessages
}

func writeSecret(t *testing.T, s string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(p, []byte(s+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func imapSource(t *testing.T, name string, addr *net.TCPAddr, pw string) config.Source {
	return config.Source{
		Name: name, Type: "imap", Host: "127.0.0.1", Port: addr.Port, TLS: "none",
		User: "journal", PasswordFile: writeSecret(t, pw), Poll: config.Duration(time.Hour),
	}
}

func testOptions() Options {
	return Options{BatchSize: 10, BackoffMin: 10 * time.Millisecond, BackoffMax: 50 * time.Millisecond, DialTimeout: 5 * time.Second}
}

// startManager runs a Manager until the returned cancel is called (and
// waits for Run to return).
func startManager(t *testing.T, srcs []config.Source, ing Ingester, st StateStore, opt Options) (*Manager, *prometheus.Registry, func()) {
	t.Helper()
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	m, err := NewManagerOptions("node-a", srcs, ing, st, log, reg, opt)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.Run(ctx)
	}()
	stop := func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("Manager.Run did not return after cancel")
		}
	}
	t.Cleanup(stop)
	return m, reg, stop
}

// pollOnce waits for the current poll of name to end, triggers one more
// and waits until it has ended too.
func pollOnce(t *testing.T, m *Manager, name string) {
	t.Helper()
	total := func() float64 {
		return testutil.ToFloat64(m.met.polls.WithLabelValues(name, "ok")) + testutil.ToFloat64(m.met.polls.WithLabelValues(name, "error"))
	}
	waitFor(t, "the poll of "+name+" in progress to end", 10*time.Second, func() bool { return statusOf(m, name).State != "polling" })
	before := total()
	if err := m.PollNow(name); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a poll of "+name, 10*time.Second, func() bool { return total() > before })
}

func statusOf(m *Manager, name string) SourceStatus {
	for _, s := range m.Status() {
		if s.Name == name {
			return s
		}
	}
	return SourceStatus{}
}
