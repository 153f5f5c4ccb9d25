package pull

import (
	"bytes"
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// scriptConn replays canned server bytes and swallows what the client sends.
type scriptConn struct {
	r io.Reader
}

func (c *scriptConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *scriptConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzPOP3Client feeds arbitrary server responses to a whole client
// session: nothing may panic, and RETR never returns more than the cap.
func FuzzPOP3Client(f *testing.F) {
	f.Add([]byte("+OK hi\r\n+OK\r\nSASL PLAIN\r\n.\r\n+OK\r\n+OK 2 10\r\n+OK\r\n1 a\r\n2 b\r\n.\r\n+OK\r\n1 5\r\n2 5\r\n.\r\n+OK\r\nSubject: x\r\n..dot\r\n.\r\n+OK\r\n+OK bye\r\n"))
	f.Add([]byte("+OK\r\n-ERR no capa\r\n+ eyJ9\r\n-ERR bad\r\n"))
	f.Add([]byte("+OK\r\n+OK\r\n.\r\n+OK\r\n+OK 1 1\r\n+OK\r\n1 " + string(bytes.Repeat([]byte("u"), 100)) + "\r\n.\r\n"))
	f.Add(append([]byte("+OK\r\n+OK\r\n.\r\n+OK\r\n+OK\r\n+OK\r\n.\r\n+OK\r\n.\r\n+OK\r\n"), bytes.Repeat([]byte("x"), 70000)...))
	f.Fuzz(func(t *testing.T, data []byte) {
		c := newPOP3Client(&scriptConn{r: bytes.NewReader(data)})
		ctx := context.Background()
		_ = c.greeting()
		_ = c.capa()
		_ = c.hasSASL("PLAIN")
		_ = c.auth("XOAUTH2", xoauth2String("u", "t"))
		_, _, _ = c.stat()
		msgs, _ := c.list()
		for i := 0; i < 3; i++ {
			n := 1
			if i < len(msgs) {
				n = msgs[i].num
			}
			b, err := c.retr(ctx, n, 64)
			if err == nil && len(b) > 64 {
				t.Fatalf("retr returned %d bytes over the cap", len(b))
			}
		}
		_ = c.dele(1)
		_ = c.quit()
		_, _ = decodeUIDLs(string(data))
		_, _ = parseUIDSet(string(data))
		_, _, _ = parseCursor(string(data))
	})
}

// FuzzHeartbeat feeds arbitrary payloads to the heartbeat decoder: it must
// never panic and must enforce its limits.
func FuzzHeartbeat(f *testing.F) {
	f.Add([]byte(`{"node":"arc-a","sources":[{"name":"j","epoch":3,"holder":"arc-b","state":{"imap.cursor.INBOX":"1:4"}}]}`))
	f.Add([]byte(`{"node":"arc-a","sources":[{"name":"j","state":{"lease.epoch":"9"}}]}`))
	f.Add([]byte(`{"node":""}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		hb, err := decodeHeartbeat(data)
		if err != nil {
			return
		}
		if !validName(hb.Node) || len(hb.Sources) > maxHeartbeatSources {
			t.Fatalf("accepted %+v", hb)
		}
		for _, s := range hb.Sources {
			for k := range s.State {
				if len(k) >= len(leaseKeyPrefix) && k[:len(leaseKeyPrefix)] == leaseKeyPrefix {
					t.Fatal("lease key accepted in shared state")
				}
			}
		}
	})
}
