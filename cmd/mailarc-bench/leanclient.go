package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The API benchmark's clients run on the same two vCPUs as the server they
// load, so the CPU a client spends per request is taken from the server.
// Two kinds of client post the messages:
//
//   - clientNetHTTP is Go's net/http client, as a Go program calling the API
//     would use it (0.12-0.16 ms of CPU per message here).
//   - clientLean is leanPoster: one keep-alive HTTP/1.1 connection per client,
//     the request written with one writev and the response read with a
//     bufio.Reader, like a load generator such as wrk (0.05-0.06 ms).
//
// benchIngest reports both, side by side, against the same server build.
const (
	clientNetHTTP = "net/http"
	clientLean    = "lean"
)

// poster posts one raw message to the API and returns the HTTP status.
type poster interface {
	post(ctx context.Context, msg []byte) (int, error)
	close()
}

// newPoster returns a poster of kind for addr, authenticating as admin
// with password. hc is shared by every net/http poster of one run.
func newPoster(kind, addr, password string, hc *http.Client) (poster, error) {
	switch kind {
	case clientNetHTTP:
		return &netHTTPPoster{hc: hc, url: "http://" + addr + "/api/v1/messages", password: password}, nil
	case clientLean:
		return newLeanPoster(addr, "admin", password), nil
	}
	return nil, fmt.Errorf("unknown client %q (want %s or %s)", kind, clientLean, clientNetHTTP)
}

// netHTTPPoster posts through net/http's client.
type netHTTPPoster struct {
	hc       *http.Client
	url      string
	password string
}

func (p *netHTTPPoster) post(ctx context.Context, msg []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.url, bytes.NewReader(msg))
	if err != nil {
		return 0, err
	}
	req.SetBasicAuth("admin", p.password)
	req.Header.Set("Content-Type", "message/rfc822")
	resp, err := p.hc.Do(req)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, err
}

func (p *netHTTPPoster) close() {}

// leanTimeout bounds one request of a leanPoster.
const leanTimeout = 60 * time.Second

// leanPoster is a minimal HTTP/1.1 client for one keep-alive connection:
// it writes a POST with a Content-Length and reads a response framed by
// Content-Length (what the API answers) or by the connection's close. It
// redials after a "Connection: close" or any error, and refuses a chunked
// response rather than misread it.
type leanPoster struct {
	addr string
	head string // the request line and headers up to Content-Length's name
	conn net.Conn
	br   *bufio.Reader
	hdr  []byte
}

func newLeanPoster(addr, user, password string) *leanPoster {
	auth := base64.StdEncoding.EncodeToString([]byte(user + ":" + password))
	return &leanPoster{addr: addr, head: "POST /api/v1/messages HTTP/1.1\r\nHost: " + addr +
		"\r\nAuthorization: Basic " + auth + "\r\nContent-Type: message/rfc822\r\nContent-Length: "}
}

func (p *leanPoster) post(ctx context.Context, msg []byte) (int, error) {
	status, keep, err := p.roundTrip(ctx, msg)
	if err != nil || !keep {
		p.close()
	}
	return status, err
}

func (p *leanPoster) roundTrip(ctx context.Context, msg []byte) (status int, keep bool, err error) {
	if p.conn == nil {
		var d net.Dialer
		if p.conn, err = d.DialContext(ctx, "tcp", p.addr); err != nil {
			return 0, false, err
		}
		p.br = bufio.NewReader(p.conn)
	}
	if err := p.conn.SetDeadline(time.Now().Add(leanTimeout)); err != nil {
		return 0, false, err
	}
	p.hdr = append(strconv.AppendInt(append(p.hdr[:0], p.head...), int64(len(msg)), 10), "\r\n\r\n"...)
	bufs := net.Buffers{p.hdr, msg}
	if _, err := bufs.WriteTo(p.conn); err != nil {
		return 0, false, fmt.Errorf("lean client: write: %w", err)
	}
	line, err := p.br.ReadSlice('\n')
	if err != nil {
		return 0, false, fmt.Errorf("lean client: read status: %w", err)
	}
	proto, rest, _ := strings.Cut(string(line), " ")
	if !strings.HasPrefix(proto, "HTTP/1.") || len(rest) < 3 {
		return 0, false, fmt.Errorf("lean client: bad status line %q", line)
	}
	if status, err = strconv.Atoi(rest[:3]); err != nil {
		return 0, false, fmt.Errorf("lean client: bad status line %q", line)
	}
	length := int64(-1)
	keep = proto == "HTTP/1.1"
	for {
		h, err := p.br.ReadSlice('\n')
		if err != nil {
			return status, false, fmt.Errorf("lean client: read headers: %w", err)
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.ParseInt(string(value), 10, 64); err != nil || length < 0 {
				return status, false, fmt.Errorf("lean client: bad Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			return status, false, fmt.Errorf("lean client: Transfer-Encoding %q not supported", value)
		case bytes.EqualFold(name, []byte("Connection")):
			if bytes.EqualFold(value, []byte("close")) {
				keep = false
			}
		}
	}
	if length < 0 {
		// Framed by the connection's close.
		_, err := io.Copy(io.Discard, p.br)
		return status, false, err
	}
	if _, err := p.br.Discard(int(length)); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return status, false, fmt.Errorf("lean client: read body: %w", err)
	}
	return status, keep, nil
}

func (p *leanPoster) close() {
	if p.conn != nil {
		p.conn.Close()
		p.conn, p.br = nil, nil
	}
}
