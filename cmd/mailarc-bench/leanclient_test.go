package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// leanTestServer records the bodies it is posted and counts connections.
type leanTestServer struct {
	*httptest.Server
	conns  atomic.Int64
	mu     sync.Mutex
	bodies []string
}

func newLeanTestServer(t *testing.T, answer func(w http.ResponseWriter, n int)) *leanTestServer {
	t.Helper()
	s := &leanTestServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "pw" {
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodPost || r.URL.Path != "/api/v1/messages" || r.Header.Get("Content-Type") != "message/rfc822" {
			http.Error(w, "bad request line or type", http.StatusBadRequest)
			return
		}
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.bodies = append(s.bodies, string(b))
		n := len(s.bodies)
		s.mu.Unlock()
		answer(w, n)
	}))
	s.Config.ConnState = func(_ net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	return s
}

func created(w http.ResponseWriter, _ int) {
	w.WriteHeader(http.StatusCreated)
	io.WriteString(w, `{"id":"x","duplicate":false}`)
}

func TestLeanPosterKeepsOneConnection(t *testing.T) {
	s := newLeanTestServer(t, created)
	p := newLeanPoster(s.Listener.Addr().String(), "admin", "pw")
	defer p.close()
	msgs := []string{"Subject: a\r\n\r\nbody a\r\n", "Subject: b\r\n\r\n" + strings.Repeat("x", 100000), "\x00\xff"}
	for _, m := range msgs {
		status, err := p.post(context.Background(), []byte(m))
		if err != nil || status != http.StatusCreated {
			t.Fatalf("post: status %d, %v", status, err)
		}
	}
	if got := s.conns.Load(); got != 1 {
		t.Errorf("%d connections for 3 posts, want 1 (keep-alive)", got)
	}
	for i, m := range msgs {
		if s.bodies[i] != m {
			t.Errorf("body %d: server read %d bytes, want %d, exact", i, len(s.bodies[i]), len(m))
		}
	}
}

func TestLeanPosterRedialsAfterClose(t *testing.T) {
	s := newLeanTestServer(t, func(w http.ResponseWriter, n int) {
		if n == 2 {
			w.Header().Set("Connection", "close")
		}
		created(w, n)
	})
	p := newLeanPoster(s.Listener.Addr().String(), "admin", "pw")
	defer p.close()
	for range 3 {
		if status, err := p.post(context.Background(), []byte("m")); err != nil || status != http.StatusCreated {
			t.Fatalf("post: status %d, %v", status, err)
		}
	}
	if got := s.conns.Load(); got != 2 {
		t.Errorf("%d connections, want 2: a new one after the server's Connection: close", got)
	}
}

func TestLeanPosterStatusAndErrors(t *testing.T) {
	s := newLeanTestServer(t, func(w http.ResponseWriter, n int) {
		if n == 1 {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			io.WriteString(w, `{"error":"too_large"}`)
			return
		}
		if n == 2 {
			// A flushed answer is chunked: the lean client must refuse it.
			w.WriteHeader(http.StatusCreated)
			w.(http.Flusher).Flush()
			io.WriteString(w, "{}")
			return
		}
		created(w, n)
	})
	p := newLeanPoster(s.Listener.Addr().String(), "admin", "wrong")
	if status, err := p.post(context.Background(), []byte("m")); err != nil || status != http.StatusUnauthorized {
		t.Fatalf("wrong password: status %d, %v; want 401", status, err)
	}
	p.close()
	p = newLeanPoster(s.Listener.Addr().String(), "admin", "pw")
	defer p.close()
	if status, err := p.post(context.Background(), []byte("m")); err != nil || status != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, %v; want 413", status, err)
	}
	if _, err := p.post(context.Background(), []byte("m")); err == nil || !strings.Contains(err.Error(), "Transfer-Encoding") {
		t.Fatalf("chunked answer: err %v, want a Transfer-Encoding refusal", err)
	}
	// After the error it redials and goes on.
	if status, err := p.post(context.Background(), []byte("m")); err != nil || status != http.StatusCreated {
		t.Fatalf("after redial: status %d, %v", status, err)
	}
	if got := s.conns.Load(); got != 3 {
		t.Errorf("%d connections, want 3 (wrong password, then one redial after the refused answer)", got)
	}
}

func TestNewPosterKinds(t *testing.T) {
	s := newLeanTestServer(t, created)
	hc := &http.Client{}
	for _, kind := range []string{clientLean, clientNetHTTP} {
		p, err := newPoster(kind, s.Listener.Addr().String(), "pw", hc)
		if err != nil {
			t.Fatal(err)
		}
		if status, err := p.post(context.Background(), []byte("Subject: k\r\n\r\nx")); err != nil || status != http.StatusCreated {
			t.Errorf("%s: status %d, %v", kind, status, err)
		}
		p.close()
	}
	if _, err := newPoster("curl", "x", "pw", hc); err == nil {
		t.Error("unknown client kind accepted")
	}
}

// TestPostAllReportsFailures: refused posts and broken connections (errors
// of different types, from several clients at once) are counted and the
// first is reported; nothing is dropped silently.
func TestPostAllReportsFailures(t *testing.T) {
	s := newLeanTestServer(t, func(w http.ResponseWriter, n int) {
		switch n % 3 {
		case 0:
			w.WriteHeader(http.StatusInternalServerError)
		case 1:
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		default:
			created(w, n)
		}
	})
	msgs := make([][]byte, 30)
	for i := range msgs {
		msgs[i] = []byte("Subject: m\r\n\r\nbody")
	}
	for _, kind := range []string{clientLean, clientNetHTTP} {
		_, _, err := postAll(s.Listener.Addr().String(), "pw", msgs, 4, kind)
		if err == nil || !strings.Contains(err.Error(), "API ingests failed, the first:") {
			t.Errorf("%s: err %v, want the failures counted", kind, err)
		}
	}
}
