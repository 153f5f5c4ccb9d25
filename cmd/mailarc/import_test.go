package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// writeMessages writes n small .eml files into a new directory.
func writeMessages(t *testing.T, n int) string {
	t.Helper()
	dir := t.TempDir()
	for i := 0; i < n; i++ {
		msg := fmt.Sprintf("Subject: message %d\r\n\r\nbody %d\r\n", i, i)
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%03d.eml", i)), []byte(msg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func writeAPIError(w http.ResponseWriter, status int, code string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%q,"message":"test"}}`, code)
}

// TestImportServerRetries: a node answering 503 (shutting down) and then 429
// (throttled) for every message still gets all of them: the import retries
// with backoff instead of failing those files, and tags them origin=import.
func TestImportServerRetries(t *testing.T) {
	const n = 6
	var mu sync.Mutex
	attempts := map[string]int{}
	stored := map[string]bool{}
	var badRequests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, _ := r.BasicAuth()
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/messages" || r.URL.Query().Get("origin") != "import" ||
			user != "admin" || pass != "pw" || r.Header.Get("Content-Type") != "message/rfc822" {
			badRequests.Add(1)
			writeAPIError(w, http.StatusBadRequest, "unexpected_request")
			return
		}
		raw, err := io.ReadAll(r.Body)
		if err != nil {
			writeAPIError(w, http.StatusBadRequest, "bad_body")
			return
		}
		sum := sha256.Sum256(raw)
		id := hex.EncodeToString(sum[:])
		mu.Lock()
		attempts[id]++
		k := attempts[id]
		mu.Unlock()
		switch k {
		case 1:
			w.Header().Set("Retry-After", "0")
			writeAPIError(w, http.StatusServiceUnavailable, "shutting_down")
		case 2:
			writeAPIError(w, http.StatusTooManyRequests, "throttled")
		default:
			mu.Lock()
			stored[id] = true
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"id":%q,"duplicate":false}`, id)
		}
	}))
	defer srv.Close()

	dir := writeMessages(t, n)
	err := runImport(context.Background(), []string{"--server", srv.URL, "--user", "admin", "--password", "pw", "--workers", "3", dir})
	if err != nil {
		t.Fatalf("import through 503 and 429 answers: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(stored) != n {
		t.Errorf("%d of %d messages stored", len(stored), n)
	}
	for id, k := range attempts {
		if k != 3 {
			t.Errorf("message %s sent %d times, want 3 (503, 429, 201)", id, k)
		}
	}
	if b := badRequests.Load(); b != 0 {
		t.Errorf("%d requests without origin=import, credentials or message/rfc822", b)
	}
}

// TestImportServerRetriesConnectionRefused: a node that is down (restarting)
// when a message is posted gets it once it listens again.
func TestImportServerRetriesConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil { // nothing listens there now
		t.Fatal(err)
	}
	var got atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		w.WriteHeader(http.StatusCreated)
		fmt.Fprint(w, `{"id":"abc","duplicate":false}`)
	}))
	defer srv.Close()

	var refused int
	rp := retryPolicy{first: 10 * time.Millisecond, max: 50 * time.Millisecond, giveUp: 30 * time.Second,
		onRetry: func(err error, wait time.Duration) {
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Errorf("retried after %v, want connection refused", err)
			}
			refused++
			if refused == 1 { // the node comes back
				l, err := net.Listen("tcp", addr)
				if err != nil {
					t.Fatalf("listening again on %s: %v", addr, err)
				}
				if err := srv.Listener.Close(); err != nil { // the unused one httptest made
					t.Fatal(err)
				}
				srv.Listener = l
				srv.Start()
			}
		}}
	c := &apiClient{base: "http://" + addr, user: "admin", pass: "pw"}
	res, err := remoteIngest(c, rp)(context.Background(), []byte("Subject: x\r\n\r\ny\r\n"))
	if err != nil || res.ID != "abc" {
		t.Fatalf("ingest across a restart: %+v, %v", res, err)
	}
	if refused != 1 || got.Load() != 1 {
		t.Errorf("%d refused attempts, %d delivered; want 1 and 1", refused, got.Load())
	}
}

// TestImportServerGivesUp: a node that stays unavailable stops the import
// with an error once the retry time is spent, instead of going on file by file.
func TestImportServerGivesUp(t *testing.T) {
	var mu sync.Mutex
	var requests int
	bodies := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		mu.Lock()
		requests++
		bodies[string(raw)] = true
		mu.Unlock()
		writeAPIError(w, http.StatusServiceUnavailable, "unavailable")
	}))
	defer srv.Close()
	dir := writeMessages(t, 20)
	err := runImport(context.Background(), []string{"--server", srv.URL, "--user", "admin", "--password", "pw", "--workers", "1", "--retry-for", "600ms", dir})
	if err == nil || !errors.Is(err, errGaveUp) || !strings.Contains(err.Error(), "import stopped") {
		t.Fatalf("import against a node that stays unavailable: %v", err)
	}
	// The first message is retried (after 250 ms; waiting 500 ms more
	// would pass 600 ms), then the import stops: no other message is sent.
	mu.Lock()
	defer mu.Unlock()
	if requests < 2 || len(bodies) != 1 {
		t.Errorf("%d requests with %d different messages, want the first message retried, then nothing", requests, len(bodies))
	}
}

// TestImportServerStopsAtAuthRefusal: wrong credentials (401) or a role that
// may not ingest (403) stop the import at once with a clear error, instead
// of failing every file.
func TestImportServerStopsAtAuthRefusal(t *testing.T) {
	for _, c := range []struct {
		status  int
		code    string
		workers int
		want    string
	}{
		{http.StatusUnauthorized, "unauthorized", 1, "MAILARC_PASSWORD"},
		{http.StatusUnauthorized, "unauthorized", 4, "MAILARC_PASSWORD"},
		{http.StatusForbidden, "forbidden", 1, "admin account"},
	} {
		t.Run(fmt.Sprintf("%d-workers%d", c.status, c.workers), func(t *testing.T) {
			var requests atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				writeAPIError(w, c.status, c.code)
			}))
			defer srv.Close()
			dir := writeMessages(t, 40)
			err := runImport(context.Background(), []string{"--server", srv.URL, "--user", "carol", "--password", "wrong", "--workers", fmt.Sprint(c.workers), dir})
			if err == nil || !strings.Contains(err.Error(), fmt.Sprint(c.status)) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "import stopped") {
				t.Fatalf("import refused with %d: %v", c.status, err)
			}
			// At most the messages already in flight when the first refusal
			// came back reach the node; never all 40.
			if k := requests.Load(); k < 1 || k > int64(c.workers) {
				t.Errorf("%d requests after a %d, want 1..%d", k, c.status, c.workers)
			}
		})
	}
}

// TestImportServerResendsOnClosedConnection: when the node closes a
// kept-alive connection under a POST it has read but not answered (a node
// shutting down closes its idle connections), the HTTP transport sends the
// message again on a fresh connection by itself: storing is idempotent, and
// the request says so. Without that, the import saw "server closed idle
// connection" and counted the file as failed.
func TestImportServerResendsOnClosedConnection(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var posts atomic.Int64
	answer := func(conn net.Conn, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		posts.Add(1)
		fmt.Fprintf(conn, "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 30\r\n\r\n{\"id\":\"abc\",\"duplicate\":false}")
	}
	go func() {
		// First connection: answer one request, read the next, then close
		// without answering it.
		conn, err := l.Accept()
		if err != nil {
			return
		}
		br := bufio.NewReader(conn)
		if r, err := http.ReadRequest(br); err == nil {
			answer(conn, r)
		}
		if r, err := http.ReadRequest(br); err == nil {
			_, _ = io.Copy(io.Discard, r.Body)
			posts.Add(1)
		}
		conn.Close()
		// Every later connection is answered.
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				br := bufio.NewReader(conn)
				for {
					r, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					answer(conn, r)
				}
			}()
		}
	}()
	rp := retryPolicy{first: 10 * time.Millisecond, max: 50 * time.Millisecond, giveUp: 30 * time.Second,
		onRetry: func(err error, wait time.Duration) {
			t.Errorf("the import retried after %v; want the transport to resend on its own", err)
		}}
	c := &apiClient{base: "http://" + l.Addr().String(), user: "admin", pass: "pw"}
	ingest := remoteIngest(c, rp)
	for i := range 2 {
		res, err := ingest(context.Background(), []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody\r\n", i)))
		if err != nil || res.ID != "abc" {
			t.Fatalf("message %d: %+v, %v", i, res, err)
		}
	}
	if n := posts.Load(); n != 3 {
		t.Errorf("the node received %d posts, want 3 (the second message twice)", n)
	}
}
