package smtp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/testutil"
)

// ingestCall is one recorded Ingest call.
type ingestCall struct {
	raw    []byte
	origin archive.Origin
}

// memIngester is an in-memory Ingester: it keeps every message by its
// SHA-256 and can be told to fail or to block.
type memIngester struct {
	mu      sync.Mutex
	calls   []ingestCall
	byID    map[string][]byte
	count   map[string]int
	fail    error
	block   chan struct{} // when non-nil Ingest waits for it to close (or ctx)
	entered chan struct{} // receives a value each time Ingest is entered
}

func newMemIngester() *memIngester {
	return &memIngester{byID: map[string][]byte{}, count: map[string]int{}, entered: make(chan struct{}, 1024)}
}

func (m *memIngester) Ingest(ctx context.Context, raw []byte, o archive.Origin) (archive.Result, error) {
	select {
	case m.entered <- struct{}{}:
	default:
	}
	m.mu.Lock()
	block, fail := m.block, m.fail
	m.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return archive.Result{}, ctx.Err()
		}
	}
	if fail != nil {
		return archive.Result{}, fail
	}
	sum := sha256.Sum256(raw)
	id := hex.EncodeToString(sum[:])
	m.mu.Lock()
	defer m.mu.Unlock()
	_, dup := m.byID[id]
	m.byID[id] = bytes.Clone(raw)
	m.count[id]++
	m.calls = append(m.calls, ingestCall{raw: bytes.Clone(raw), origin: o})
	return archive.Result{ID: id, Duplicate: dup, Seq: int64(len(m.calls))}, nil
}

func (m *memIngester) setFail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fail = err
}

func (m *memIngester) setBlock(ch chan struct{}) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.block = ch
}

func (m *memIngester) snapshot() []ingestCall {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]ingestCall(nil), m.calls...)
}

func (m *memIngester) n() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.calls)
}

// testServer is a started Server with its ingester and captured log.
type testServer struct {
	*Server
	ing  *memIngester
	logs *testutil.SyncBuffer
	reg  *prometheus.Registry
	addr string // first SMTP address
}

// startServer starts a Server on 127.0.0.1:0 (unless cfg.Listen is set)
// and shuts it down when the test ends.
func startServer(t testing.TB, cfg Config) *testServer {
	t.Helper()
	if cfg.Listen == nil {
		cfg.Listen = []string{"127.0.0.1:0"}
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "mx.test"
	}
	ts := &testServer{ing: newMemIngester(), logs: &testutil.SyncBuffer{}, reg: prometheus.NewRegistry()}
	log := slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	s, err := New(cfg, ts.ing, log, ts.reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if err := s.Start(context.Background()); err != nil {
		t.Fatalf("Start: %v", err)
	}
	ts.Server = s
	if len(cfg.Listen) > 0 {
		ts.addr = s.Addrs()[0].String()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil && !strings.Contains(err.Error(), "already") {
			t.Errorf("Shutdown: %v", err)
		}
		if strings.Contains(ts.logs.String(), "panic") {
			t.Errorf("panic logged:\n%s", ts.logs.String())
		}
	})
	return ts
}

func (ts *testServer) activeConns() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return len(ts.conns)
}

// dial opens a go-smtp client to addr and says EHLO.
func dial(t testing.TB, addr string) *gosmtp.Client {
	t.Helper()
	c, err := gosmtp.Dial(addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	if err := c.Hello("client.test"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	return c
}

// send runs MAIL/RCPT/DATA and returns the final reply text or error.
func send(c *gosmtp.Client, from string, to []string, body string) (string, error) {
	if err := c.Mail(from, nil); err != nil {
		return "", err
	}
	for _, r := range to {
		if err := c.Rcpt(r, nil); err != nil {
			return "", err
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", err
	}
	if _, err := w.Write([]byte(body)); err != nil {
		return "", err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", err
	}
	return resp.StatusText, nil
}

// smtpCode returns the reply code of an *SMTPError (0 if err is another
// kind of error, -1 for nil).
func smtpCode(err error) int {
	if err == nil {
		return -1
	}
	var se *gosmtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func wantCode(t testing.TB, err error, code int, enhanced gosmtp.EnhancedCode) {
	t.Helper()
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want SMTP error %d", err, code)
	}
	if se.Code != code || se.EnhancedCode != enhanced {
		t.Fatalf("got %d %v %q, want %d %v", se.Code, se.EnhancedCode, se.Message, code, enhanced)
	}
}

// rawConn is a hand-driven SMTP connection for pipelining, BDAT and exact
// byte tests.
type rawConn struct {
	t    testing.TB
	conn net.Conn
	tp   *textproto.Conn
}

func dialRaw(t testing.TB, network, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial(network, addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return &rawConn{t: t, conn: c, tp: textproto.NewConn(c)}
}

// write sends s verbatim.
func (r *rawConn) write(s string) {
	r.t.Helper()
	if _, err := r.conn.Write([]byte(s)); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// reply reads one (possibly multi-line) reply.
func (r *rawConn) reply() (int, string) {
	r.t.Helper()
	code, msg, err := r.tp.ReadResponse(0)
	if err != nil && code == 0 {
		r.t.Fatalf("read reply: %v", err)
	}
	return code, msg
}

// expect reads one reply and checks its code (and enhanced-code prefix of
// the last line when want is non-empty).
func (r *rawConn) expect(code int, want string) string {
	r.t.Helper()
	got, msg := r.reply()
	if got != code || (want != "" && !strings.Contains(msg, want)) {
		r.t.Fatalf("got %d %q, want %d %q", got, msg, code, want)
	}
	return msg
}

// cmd sends a command line and checks the reply.
func (r *rawConn) cmd(line string, code int, want string) string {
	r.t.Helper()
	r.write(line + "\r\n")
	return r.expect(code, want)
}

// waitFor polls cond until it is true or the deadline passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// integration reports whether missing external tools must fail the test.
func integration() bool { return os.Getenv("MAILARC_INTEGRATION") == "1" }

// corpusDir returns <repo root>/../shared/corpus, or "" when absent.
func corpusDir(t testing.TB) string { return testutil.FindCorpus() }

func msg(subject, body string) string {
	return "From: a@example.com\r\nTo: journal@archive.test\r\nSubject: " + subject + "\r\n\r\n" + body + "\r\n"
}
