package smtp

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/testutil"
)

// pipeListener hands out the server ends of net.Pipe connections.
type pipeListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newPipeListener() *pipeListener {
	return &pipeListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (l *pipeListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *pipeListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

func (l *pipeListener) Addr() net.Addr { return pipeAddr{} }

type pipeAddr struct{}

func (pipeAddr) Network() string { return "pipe" }
func (pipeAddr) String() string  { return "pipe" }

const fuzzMaxSize = 4096

// scriptConn is the server end of a session: it reads the client's bytes
// from a fixed script (then EOF, like a client that sent everything and
// half-closed) and writes replies into a net.Pipe read by the test.
type scriptConn struct {
	net.Conn // server end of net.Pipe: writes, addresses, deadlines, Close
	r        *bytes.Reader
}

func (c *scriptConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// runRawSession feeds input to a fresh server as one client session and
// returns everything the server wrote plus its ingester.
func runRawSession(t testing.TB, input []byte) (string, *memIngester) {
	ing := newMemIngester()
	logs := &testutil.SyncBuffer{}
	s, err := New(Config{
		Listen:         []string{"127.0.0.1:0"}, // never bound: Start is not called
		Hostname:       "fuzz.test",
		MaxMessageSize: fuzzMaxSize,
		MaxRecipients:  20,
		MaxLineLength:  2000,
		CommandTimeout: 5 * time.Second,
		DataTimeout:    5 * time.Second,
		Auth:           map[string]string{"u": "p"},
		Recipients:     []string{"@archive.test", "j@x.test"},
	}, ing, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := newPipeListener()
	s.mu.Lock()
	s.started = true
	s.serveLocked(l, s.servers[0], false)
	s.mu.Unlock()

	client, server := net.Pipe()
	var out bytes.Buffer
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		_, _ = io.Copy(&out, client)
	}()
	l.ch <- &scriptConn{Conn: server, r: bytes.NewReader(input)}
	select {
	case <-readDone: // the server closed the session
	case <-time.After(30 * time.Second):
		t.Fatalf("session did not end; output so far:\n%s", out.String())
	}
	_ = client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if strings.Contains(logs.String(), "panic") {
		t.Fatalf("panic in session:\n%s", logs.String())
	}
	return out.String(), ing
}

// FuzzSession feeds arbitrary bytes to the server as a raw SMTP session:
// it must never panic, and every Ingest must be matched by a 250
// "archived" reply (nothing is kept that was not acknowledged, nothing
// acknowledged that was not kept).
func FuzzSession(f *testing.F) {
	seeds := []string{
		"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<j@archive.test>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\nQUIT\r\n",
		"EHLO c\r\nMAIL FROM:<a@b> SIZE=10\r\nRCPT TO:<j@x.test>\r\nBDAT 5\r\nhello\r\nBDAT 3 LAST\r\nabcQUIT\r\n",
		"EHLO c\r\nAUTH PLAIN AHUAcA==\r\nMAIL FROM:<a@b>\r\nRCPT TO:<j@archive.test>\r\nDATA\r\n..\r\n.\r\n",
		"EHLO c\r\nAUTH LOGIN\r\ndQ==\r\ncA==\r\nMAIL FROM:<> BODY=BINARYMIME\r\nRCPT TO:<x@archive.test>\r\nBDAT 0 LAST\r\n",
		"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<nobody@else>\r\nDATA\r\n.\r\n",
		"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<j@archive.test>\r\nDATA\r\nDelivered-To: q@r\r\n\r\nhalf",
		"EHLO c\r\nSTARTTLS\r\nRSET\r\nNOOP\r\nVRFY x\r\nMAIL FROM:<a@b> SMTPUTF8\r\nRCPT TO:<ü@archive.test>\r\nDATA\r\n\x00\n.\n\r\n.\r\n",
		"EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<j@archive.test>\r\nBDAT 99999999\r\n",
		"\r\n\r\n\x00garbage\xff\r\nQUIT\r\n",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	if dir := corpusDir(f); dir != "" {
		// A few real messages wrapped in a session.
		files, _ := filepath.Glob(filepath.Join(dir, "real", "btrfs", "000", "*.eml"))
		for i, p := range files {
			if i >= 3 {
				break
			}
			b, err := os.ReadFile(p)
			if err != nil || len(b) > fuzzMaxSize {
				continue
			}
			f.Add([]byte("EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<j@archive.test>\r\nDATA\r\n" + string(b) + "\r\n.\r\n"))
		}
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		if len(input) > 64<<10 {
			return
		}
		out, ing := runRawSession(t, input)
		acks := 0
		for _, line := range strings.Split(out, "\r\n") {
			if strings.HasPrefix(line, "250 2.0.0 Ok: archived ") {
				acks++
			}
		}
		calls := ing.snapshot()
		if len(calls) != acks {
			t.Fatalf("%d messages ingested but %d acknowledged\noutput:\n%s", len(calls), acks, out)
		}
		for _, c := range calls {
			if len(c.raw) == 0 || len(c.raw) > fuzzMaxSize || len(c.origin.RcptTo) == 0 {
				t.Fatalf("ingested out-of-bounds message: %d bytes, origin %+v", len(c.raw), c.origin)
			}
		}
	})
}

// FuzzHeaderAddrs checks the envelope header scan never panics and stays
// within its bounds.
func FuzzHeaderAddrs(f *testing.F) {
	f.Add([]byte("Delivered-To: a@b\r\nX-Original-To: c@d,\r\n e@f\r\n\r\nbody"), 10)
	f.Add([]byte("X-Original-To: \"Q, R\" <q@r>; junk <<>>\n\n"), 3)
	f.Add([]byte("delivered-to:\r\n\t\r\n"), 1)
	if dir := corpusDir(f); dir != "" {
		for _, sub := range []string{"real/btrfs/000", "real/usrp/000"} {
			files, _ := filepath.Glob(filepath.Join(dir, sub, "*.eml"))
			for i, p := range files {
				if i >= 5 {
					break
				}
				if b, err := os.ReadFile(p); err == nil {
					f.Add(b, 100)
				}
			}
		}
	}
	f.Fuzz(func(t *testing.T, raw []byte, limit int) {
		limit %= 1000
		got := headerAddrs(raw, limit)
		if limit <= 0 && len(got) != 0 {
			t.Fatalf("limit %d, got %d", limit, len(got))
		}
		if limit > 0 && len(got) > limit {
			t.Fatalf("limit %d, got %d", limit, len(got))
		}
		for _, a := range got {
			if a == "" || len(a) > maxHeaderAddr {
				t.Fatalf("bad address %q", a)
			}
		}
		merged := mergeAddrs([]string{"x@y"}, got)
		if len(merged) == 0 || merged[0] != "x@y" {
			t.Fatalf("merge lost the envelope: %v", merged)
		}
	})
}

func TestHeaderAddrsCorpus(t *testing.T) {
	t.Parallel()
	dir := corpusDir(t)
	if dir == "" {
		if integration() {
			t.Fatal("corpus ../shared/corpus missing but MAILARC_INTEGRATION=1")
		}
		t.Skip("corpus ../shared/corpus not found; skipping")
	}
	files, err := filepath.Glob(filepath.Join(dir, "real", "*", "00*", "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no corpus messages found")
	}
	withDelivered := 0
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		got := headerAddrs(b, 100)
		hasHeader := bytes.Contains(headerBlock(b), []byte("\nDelivered-To:")) || bytes.HasPrefix(b, []byte("Delivered-To:"))
		if hasHeader && len(got) == 0 {
			t.Fatalf("%s: Delivered-To present but no address found", p)
		}
		if len(got) > 0 {
			withDelivered++
		}
	}
	t.Logf("%d of %d corpus messages carry Delivered-To/X-Original-To addresses", withDelivered, len(files))
}

// headerBlock returns raw up to the first empty line.
func headerBlock(raw []byte) []byte {
	for _, sep := range []string{"\r\n\r\n", "\n\n"} {
		if i := bytes.Index(raw, []byte(sep)); i >= 0 {
			return raw[:i]
		}
	}
	return raw
}

func TestRawSessionHarness(t *testing.T) {
	t.Parallel()
	// The fuzz harness itself must observe acknowledged messages.
	out, ing := runRawSession(t, []byte("EHLO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<j@archive.test>\r\nDATA\r\nSubject: x\r\n\r\nbody\r\n.\r\n"+
		"MAIL FROM:<a@b>\r\nRCPT TO:<j@archive.test>\r\nDATA\r\nunfinished"))
	if n := ing.n(); n != 1 || strings.Count(out, "250 2.0.0 Ok: archived ") != 1 {
		t.Fatalf("ingested %d\n%s", n, out)
	}
	if !strings.Contains(out, "421 4.4.0") {
		t.Fatalf("half-sent message not answered with 421:\n%s", out)
	}
}

func TestKnownBDATRace(t *testing.T) {
	t.Parallel()
	upstream := "panic serving pipe: runtime error: invalid memory address or nil pointer dereference\n" +
		"github.com/emersion/go-smtp.(*Conn).handleBdat.func1()\n\t/go-smtp@v0.25.1/conn.go:1059"
	if !knownBDATRace(upstream) {
		t.Fatal("upstream BDAT race not recognised")
	}
	ours := upstream + "\ngithub.com/mailarc/mailarc/internal/source/smtp.(*session).deliver(...)"
	if knownBDATRace(ours) {
		t.Fatal("a panic in our own code was classified as the upstream race")
	}
}
