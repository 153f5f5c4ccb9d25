package smtp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailarc/mailarc/internal/archive"
)

func TestPlainSend(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	c := dial(t, ts.addr)
	body := msg("hello", "plain body")
	status, err := send(c, "sender@example.com", []string{"journal@archive.test", "second@archive.test"}, body)
	if err != nil {
		t.Fatalf("send: %v", err)
	}
	calls := ts.ing.snapshot()
	if len(calls) != 1 {
		t.Fatalf("ingested %d messages, want 1", len(calls))
	}
	if string(calls[0].raw) != body {
		t.Fatalf("stored %q, want %q", calls[0].raw, body)
	}
	o := calls[0].origin
	if o.Source != "smtp" || o.MailFrom != "sender@example.com" ||
		strings.Join(o.RcptTo, ",") != "journal@archive.test,second@archive.test" || o.Arrival.IsZero() {
		t.Fatalf("origin = %+v", o)
	}
	if !strings.Contains(status, "archived ") {
		t.Fatalf("reply %q does not name the archive id", status)
	}
	if got := testutil.ToFloat64(ts.m.accepted); got != 1 {
		t.Fatalf("accepted metric = %v", got)
	}
	if got := testutil.ToFloat64(ts.m.bytes); got != float64(len(body)) {
		t.Fatalf("bytes metric = %v, want %d", got, len(body))
	}
	if n := testutil.CollectAndCount(ts.m.acceptSeconds); n != 1 {
		t.Fatalf("accept_seconds collected %d series", n)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
	if strings.Contains(ts.logs.String(), "plain body") {
		t.Fatal("message body was logged")
	}
}

func TestExtensions(t *testing.T) {
	t.Parallel()
	tlsCfg, err := SelfSignedTLS(t.TempDir(), "mx.test")
	if err != nil {
		t.Fatal(err)
	}
	ts := startServer(t, Config{MaxMessageSize: 12345, TLSConfig: tlsCfg, Auth: map[string]string{"u": "p"}})
	c := dial(t, ts.addr)
	for _, ext := range []string{"PIPELINING", "8BITMIME", "SMTPUTF8", "CHUNKING", "BINARYMIME", "ENHANCEDSTATUSCODES", "STARTTLS", "AUTH"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("extension %s not advertised", ext)
		}
	}
	if ok, v := c.Extension("SIZE"); !ok || v != "12345" {
		t.Errorf("SIZE = %v %q", ok, v)
	}
	if !c.SupportsAuth("PLAIN") || !c.SupportsAuth("LOGIN") {
		t.Error("AUTH PLAIN LOGIN not advertised")
	}
}

func TestPipelining(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	r := dialRaw(t, "tcp", ts.addr)
	r.expect(220, "")
	r.cmd("EHLO client.test", 250, "PIPELINING")
	m1 := "Subject: one\r\n\r\nfirst\r\n"
	m2 := "Subject: two\r\n\r\nsecond\r\n"
	// Two whole transactions in one write.
	r.write("MAIL FROM:<a@example.com>\r\nRCPT TO:<x@archive.test>\r\nRCPT TO:<y@archive.test>\r\nDATA\r\n" +
		m1 + ".\r\n" +
		"MAIL FROM:<b@example.com>\r\nRCPT TO:<z@archive.test>\r\nDATA\r\n" + m2 + ".\r\nQUIT\r\n")
	for _, want := range []int{250, 250, 250, 354, 250, 250, 250, 354, 250, 221} {
		r.expect(want, "")
	}
	calls := ts.ing.snapshot()
	if len(calls) != 2 || string(calls[0].raw) != m1 || string(calls[1].raw) != m2 {
		t.Fatalf("ingested %q", calls)
	}
	if calls[1].origin.MailFrom != "b@example.com" || len(calls[1].origin.RcptTo) != 1 {
		t.Fatalf("second envelope leaked state: %+v", calls[1].origin)
	}
}

func TestBDAT(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	r := dialRaw(t, "tcp", ts.addr)
	r.expect(220, "")
	r.cmd("EHLO client.test", 250, "CHUNKING")
	r.cmd("MAIL FROM:<a@example.com> BODY=BINARYMIME", 250, "")
	r.cmd("RCPT TO:<journal@archive.test>", 250, "")
	// BDAT carries bytes unchanged: a lone dot line, bare LF, NUL, CR.
	chunks := []string{"Subject: chunked\r\n\r\nline\r\n.\r\n", "..dots\nbare LF\x00NUL\r", "\nend\r\n"}
	for i, ch := range chunks {
		last := ""
		if i == len(chunks)-1 {
			last = " LAST"
		}
		r.write(fmt.Sprintf("BDAT %d%s\r\n%s", len(ch), last, ch))
		r.expect(250, "")
	}
	calls := ts.ing.snapshot()
	if want := strings.Join(chunks, ""); len(calls) != 1 || string(calls[0].raw) != want {
		t.Fatalf("ingested %q, want %q", calls, want)
	}
	// RSET in the middle of a chunked transfer ingests nothing.
	r.cmd("MAIL FROM:<a@example.com>", 250, "")
	r.cmd("RCPT TO:<journal@archive.test>", 250, "")
	r.write("BDAT 5\r\nabcde")
	r.expect(250, "")
	r.cmd("RSET", 250, "")
	r.cmd("NOOP", 250, "")
	if n := ts.ing.n(); n != 1 {
		t.Fatalf("ingested %d messages after an abandoned BDAT, want 1", n)
	}
}

func TestSMTPUTF8(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{Recipients: []string{"@bücher.example"}})
	c := dial(t, ts.addr)
	if err := c.Mail("jörg@absender.example", &gosmtp.MailOptions{UTF8: true}); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	if err := c.Rcpt("Ärchiv@BÜCHER.example", nil); err != nil {
		t.Fatalf("RCPT: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	body := "Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\nFrom: jörg@absender.example\r\n\r\nGrüße\r\n"
	if _, err := w.Write([]byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	calls := ts.ing.snapshot()
	if len(calls) != 1 || string(calls[0].raw) != body || calls[0].origin.MailFrom != "jörg@absender.example" ||
		calls[0].origin.RcptTo[0] != "Ärchiv@BÜCHER.example" {
		t.Fatalf("ingested %+v", calls)
	}
}

func TestRecipients(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{Recipients: []string{"journal@archive.test", "@corp.example"}})
	c := dial(t, ts.addr)
	if err := c.Mail("a@example.com", nil); err != nil {
		t.Fatal(err)
	}
	for _, ok := range []string{"JOURNAL@Archive.Test", "anyone@CORP.example"} {
		if err := c.Rcpt(ok, nil); err != nil {
			t.Fatalf("RCPT %s: %v", ok, err)
		}
	}
	for _, bad := range []string{"other@archive.test", "journal@archive.test.evil", "x@sub.corp.example"} {
		wantCode(t, c.Rcpt(bad, nil), 550, gosmtp.EnhancedCode{5, 1, 1})
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte(msg("r", "x")))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	calls := ts.ing.snapshot()
	if len(calls) != 1 || strings.Join(calls[0].origin.RcptTo, ",") != "JOURNAL@Archive.Test,anyone@CORP.example" {
		t.Fatalf("ingested %+v", calls)
	}
	if got := testutil.ToFloat64(ts.m.refused.WithLabelValues(reasonRecipient)); got != 3 {
		t.Fatalf("refused{recipient} = %v", got)
	}
	// A transaction whose only recipients were refused has no DATA.
	if err := c.Mail("a@example.com", nil); err != nil {
		t.Fatal(err)
	}
	wantCode(t, c.Rcpt("nobody@else.example", nil), 550, gosmtp.EnhancedCode{5, 1, 1})
	if _, err := c.Data(); smtpCode(err) != 502 {
		t.Fatalf("DATA without recipients: %v", err)
	}
	if n := ts.ing.n(); n != 1 {
		t.Fatalf("ingested %d", n)
	}
}

func TestAllowedNetworks(t *testing.T) {
	t.Parallel()
	denied := startServer(t, Config{AllowedNetworks: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	r := dialRaw(t, "tcp", denied.addr)
	r.expect(554, "5.7.1")
	if _, err := r.tp.ReadLine(); err == nil {
		t.Fatal("connection stayed open after 554")
	}
	waitFor(t, 5*time.Second, "refusal counted", func() bool {
		return testutil.ToFloat64(denied.m.connsRefused.WithLabelValues(reasonConnNetwork)) == 1
	})
	if got := testutil.ToFloat64(denied.m.connections); got != 0 {
		t.Fatalf("connections_total = %v for a refused connection", got)
	}

	allowed := startServer(t, Config{AllowedNetworks: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.0/8")}})
	c := dial(t, allowed.addr)
	if _, err := send(c, "a@example.com", []string{"j@archive.test"}, msg("ok", "x")); err != nil {
		t.Fatalf("allowed network: %v", err)
	}
}

func TestSizeLimits(t *testing.T) {
	t.Parallel()
	const limit = 2000
	ts := startServer(t, Config{MaxMessageSize: limit})
	c := dial(t, ts.addr)

	// Declared too large at MAIL FROM.
	wantCode(t, c.Mail("a@example.com", &gosmtp.MailOptions{Size: limit + 1}), 552, gosmtp.EnhancedCode{5, 3, 4})
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}

	// Undeclared but too large while streaming.
	big := msg("big", strings.Repeat("0123456789abcdef\r\n", 500))
	_, err := send(c, "a@example.com", []string{"j@archive.test"}, big)
	wantCode(t, err, 552, gosmtp.EnhancedCode{5, 3, 4})

	// Declared small but actually large.
	if err := c.Mail("a@example.com", &gosmtp.MailOptions{Size: 100}); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("j@archive.test", nil); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	_, _ = w.Write([]byte(big))
	wantCode(t, w.Close(), 552, gosmtp.EnhancedCode{5, 3, 4})

	// BDAT beyond the limit.
	r := dialRaw(t, "tcp", ts.addr)
	r.expect(220, "")
	r.cmd("EHLO client.test", 250, "")
	r.cmd("MAIL FROM:<a@example.com>", 250, "")
	r.cmd("RCPT TO:<j@archive.test>", 250, "")
	chunk := strings.Repeat("x", 1500)
	r.write("BDAT 1500\r\n" + chunk)
	r.expect(250, "")
	r.write("BDAT 1500 LAST\r\n" + chunk)
	r.expect(552, "5.3.4")

	if n := ts.ing.n(); n != 0 {
		t.Fatalf("ingested %d oversize messages", n)
	}
	// The session is still usable and a message within the limit is kept.
	if _, err := send(c, "a@example.com", []string{"j@archive.test"}, msg("small", "ok")); err != nil {
		t.Fatalf("small message after refusals: %v", err)
	}
	if n := ts.ing.n(); n != 1 {
		t.Fatalf("ingested %d, want 1", n)
	}
	// go-smtp refuses SIZE= itself, so only the streamed refusals are counted.
	if got := testutil.ToFloat64(ts.m.refused.WithLabelValues(reasonTooLarge)); got != 2 {
		t.Fatalf("refused{too_large} = %v", got)
	}

	// The boundary, with DATA and BDAT: exactly max_message_size bytes
	// (after dot-unstuffing) are accepted, one more byte is refused.
	sized := func(n int, tag string) string {
		head := "Subject: " + tag + "\r\n\r\n..dot-stuffed\r\n"
		body := strings.Repeat("b", n-(len(head)-1)-2) + "\r\n" // -1: one '.' is unstuffed
		return head + body
	}
	for _, tc := range []struct {
		size int
		ok   bool
	}{{limit, true}, {limit + 1, false}} {
		wire := sized(tc.size, fmt.Sprintf("data %d", tc.size))
		before := ts.ing.n()
		r.cmd("MAIL FROM:<a@example.com>", 250, "")
		r.cmd("RCPT TO:<j@archive.test>", 250, "")
		r.cmd("DATA", 354, "")
		r.write(wire + ".\r\n")
		if tc.ok {
			r.expect(250, "archived")
			calls := ts.ing.snapshot()
			if len(calls) != before+1 || len(calls[before].raw) != limit {
				t.Fatalf("DATA of exactly max_message_size: %d ingests, want %d", len(calls), before+1)
			}
		} else {
			r.expect(552, "5.3.4")
			if ts.ing.n() != before {
				t.Fatalf("DATA of max_message_size+1 was ingested")
			}
		}
		bdat := strings.Replace(wire, "..dot", ".dot", 1) // BDAT is not dot-stuffed
		r.cmd("MAIL FROM:<a@example.com>", 250, "")
		r.cmd("RCPT TO:<j@archive.test>", 250, "")
		r.write(fmt.Sprintf("BDAT %d LAST\r\n%s", len(bdat), bdat))
		if tc.ok {
			r.expect(250, "archived")
		} else {
			r.expect(552, "5.3.4")
		}
	}
	if n := ts.ing.n(); n != 3 {
		t.Fatalf("ingested %d, want 3 (the small one and the two of exactly max_message_size)", n)
	}
}

func TestDisconnectBeforeFinalDot(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	r := dialRaw(t, "tcp", ts.addr)
	r.expect(220, "")
	r.cmd("EHLO client.test", 250, "")
	r.cmd("MAIL FROM:<a@example.com>", 250, "")
	r.cmd("RCPT TO:<j@archive.test>", 250, "")
	r.cmd("DATA", 354, "")
	r.write("Subject: cut\r\n\r\nhalf a message\r\n")
	waitFor(t, 5*time.Second, "session to be open", func() bool { return ts.activeConns() == 1 })
	_ = r.conn.Close()
	waitFor(t, 5*time.Second, "connection to be closed", func() bool { return ts.activeConns() == 0 })
	if n := ts.ing.n(); n != 0 {
		t.Fatalf("ingested %d messages from a cut connection", n)
	}
	if got := testutil.ToFloat64(ts.m.refused.WithLabelValues(reasonAborted)); got != 1 {
		t.Fatalf("refused{aborted} = %v", got)
	}

	// A BDAT chunk cut short by the client closing the connection.
	for _, last := range []string{" LAST", ""} {
		r := dialRaw(t, "tcp", ts.addr)
		r.expect(220, "")
		r.cmd("EHLO client.test", 250, "")
		r.cmd("MAIL FROM:<a@example.com>", 250, "")
		r.cmd("RCPT TO:<j@archive.test>", 250, "")
		r.write("BDAT 1000" + last + "\r\nSubject: cut\r\n\r\nshort")
		waitFor(t, 5*time.Second, "session to be open", func() bool { return ts.activeConns() == 1 })
		_ = r.conn.Close()
		waitFor(t, 5*time.Second, "connection to be closed", func() bool { return ts.activeConns() == 0 })
		if n := ts.ing.n(); n != 0 {
			t.Fatalf("ingested a truncated BDAT message (%q)", last)
		}
	}
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	// Long enough that a loaded machine does not time out the client between
	// its commands; the subtests run in parallel, so the test waits it once.
	ts := startServer(t, Config{CommandTimeout: 2 * time.Second, DataTimeout: 2 * time.Second})

	t.Run("command", func(t *testing.T) {
		t.Parallel()
		r := dialRaw(t, "tcp", ts.addr)
		r.expect(220, "")
		r.cmd("EHLO slow.test", 250, "")
		start := time.Now()
		r.expect(421, "4.4.2") // nothing sent: idle timeout
		if d := time.Since(start); d > 10*time.Second {
			t.Fatalf("idle timeout took %v", d)
		}
		if _, err := r.tp.ReadLine(); err == nil {
			t.Fatal("connection still open after idle timeout")
		}
	})
	t.Run("data", func(t *testing.T) {
		t.Parallel()
		r := dialRaw(t, "tcp", ts.addr)
		r.expect(220, "")
		r.cmd("EHLO slow.test", 250, "")
		r.cmd("MAIL FROM:<a@example.com>", 250, "")
		r.cmd("RCPT TO:<j@archive.test>", 250, "")
		r.cmd("DATA", 354, "")
		r.write("Subject: slow\r\n\r\nand then nothing")
		r.expect(421, "4.4.2")
	})
	t.Run("bdat", func(t *testing.T) {
		t.Parallel()
		r := dialRaw(t, "tcp", ts.addr)
		r.expect(220, "")
		r.cmd("EHLO slow.test", 250, "")
		r.cmd("MAIL FROM:<a@example.com>", 250, "")
		r.cmd("RCPT TO:<j@archive.test>", 250, "")
		r.write("BDAT 100 LAST\r\nonly a few bytes")
		code, _ := r.reply()
		if code != 421 {
			t.Fatalf("slow BDAT got %d, want 421", code)
		}
	})
	t.Cleanup(func() {
		if n := ts.ing.n(); n != 0 {
			t.Errorf("ingested %d messages from timed-out sessions", n)
		}
	})
}

func TestIngestErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		err      error
		code     int
		enhanced gosmtp.EnhancedCode
	}{
		{archive.ErrUnavailable, 451, gosmtp.EnhancedCode{4, 3, 0}},
		{fmt.Errorf("write pack: %w", errors.New("disk on fire")), 451, gosmtp.EnhancedCode{4, 3, 0}},
		// The shapes archive returns: a store write failing with ENOSPC
		// (failGroup wraps both), and the free-space reserve.
		{fmt.Errorf("%w: %w", archive.ErrUnavailable, fmt.Errorf("store: %w",
			&fs.PathError{Op: "write", Path: "packs/000001.pack", Err: syscall.ENOSPC})), 452, gosmtp.EnhancedCode{4, 3, 1}},
		{fmt.Errorf("%w: %w (12 bytes free in /data, min_free_space 1024)", archive.ErrUnavailable, archive.ErrLowSpace), 452, gosmtp.EnhancedCode{4, 3, 1}},
		{archive.ErrShuttingDown, 421, gosmtp.EnhancedCode{4, 3, 2}},
		{archive.ErrEmpty, 554, gosmtp.EnhancedCode{5, 6, 0}},
		{fmt.Errorf("ingest: %w", archive.ErrTooLarge), 552, gosmtp.EnhancedCode{5, 3, 4}},
	}
	ts := startServer(t, Config{})
	for _, tc := range cases {
		t.Run(tc.err.Error(), func(t *testing.T) {
			// Sequential: the ingester's failure mode is shared.
			ts.ing.setFail(tc.err)
			c := dial(t, ts.addr)
			_, err := send(c, "a@example.com", []string{"j@archive.test"}, msg("e", tc.err.Error()))
			wantCode(t, err, tc.code, tc.enhanced)
		})
	}
	ts.ing.setFail(nil)
	if n := ts.ing.n(); n != 0 {
		t.Fatalf("recorded %d successful ingests", n)
	}
	if got := testutil.ToFloat64(ts.m.refused.WithLabelValues(reasonNoSpace)); got != 2 {
		t.Fatalf("refused{no_space} = %v, want 2", got)
	}
	// Empty DATA never reaches Ingest.
	r := dialRaw(t, "tcp", ts.addr)
	r.expect(220, "")
	r.cmd("EHLO client.test", 250, "")
	r.cmd("MAIL FROM:<a@example.com>", 250, "")
	r.cmd("RCPT TO:<j@archive.test>", 250, "")
	r.cmd("DATA", 354, "")
	r.cmd(".", 554, "5.6.0")
	if n := ts.ing.n(); n != 0 {
		t.Fatalf("ingested an empty message")
	}
}

func TestMaxConnections(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{MaxConnections: 2})
	a := dialRaw(t, "tcp", ts.addr)
	a.expect(220, "")
	b := dialRaw(t, "tcp", ts.addr)
	b.expect(220, "")
	c := dialRaw(t, "tcp", ts.addr)
	c.expect(421, "4.7.0")
	if _, err := c.tp.ReadLine(); err == nil {
		t.Fatal("refused connection stayed open")
	}
	a.cmd("QUIT", 221, "")
	waitFor(t, 5*time.Second, "a slot to free up", func() bool { return ts.activeConns() == 1 })
	d := dialRaw(t, "tcp", ts.addr)
	d.expect(220, "")
	if got := testutil.ToFloat64(ts.m.connsRefused.WithLabelValues(reasonConnBusy)); got != 1 {
		t.Fatalf("connections_refused{busy} = %v", got)
	}
	if got := testutil.ToFloat64(ts.m.connsActive); got != 2 {
		t.Fatalf("connections_active = %v", got)
	}
}

func TestManyRecipients(t *testing.T) {
	t.Parallel()
	const n = 10000
	ts := startServer(t, Config{})
	r := dialRaw(t, "tcp", ts.addr)
	r.expect(220, "")
	r.cmd("EHLO client.test", 250, "")
	r.cmd("MAIL FROM:<journal-sender@exchange.example>", 250, "")
	var b strings.Builder
	for i := range n + 1 {
		fmt.Fprintf(&b, "RCPT TO:<user%05d@corp.example>\r\n", i)
	}
	r.write(b.String()) // pipelined
	for range n {
		r.expect(250, "")
	}
	r.expect(452, "4.5.3") // one over the limit
	r.cmd("DATA", 354, "")
	r.write(msg("journal", "many recipients") + ".\r\n")
	r.expect(250, "")
	calls := ts.ing.snapshot()
	if len(calls) != 1 || len(calls[0].origin.RcptTo) != n ||
		calls[0].origin.RcptTo[n-1] != fmt.Sprintf("user%05d@corp.example", n-1) {
		t.Fatalf("ingested %d calls, rcpts %d", len(calls), len(calls[0].origin.RcptTo))
	}
}

func TestExactBytes(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	r := dialRaw(t, "tcp", ts.addr)
	r.expect(220, "")
	r.cmd("EHLO client.test", 250, "")
	long := strings.Repeat("L", 1000)
	// As sent on the wire (dot-stuffed) and as it must be stored.
	wire := "Subject: exact\r\n\r\n" + long + "\r\nbare\nLF\nlines\n" + "nul\x00byte\r\n" +
		"..leading dot\r\n...two\r\n.\n" + "8bit: \xff\xfe caf\xc3\xa9\r\nlone CR\rhere\r\n.\r\n"
	want := "Subject: exact\r\n\r\n" + long + "\r\nbare\nLF\nlines\n" + "nul\x00byte\r\n" +
		".leading dot\r\n..two\r\n\n" + "8bit: \xff\xfe caf\xc3\xa9\r\nlone CR\rhere\r\n"
	r.cmd("MAIL FROM:<a@example.com> BODY=8BITMIME", 250, "")
	r.cmd("RCPT TO:<j@archive.test>", 250, "")
	r.cmd("DATA", 354, "")
	r.write(wire)
	r.expect(250, "")
	calls := ts.ing.snapshot()
	if len(calls) != 1 || !bytes.Equal(calls[0].raw, []byte(want)) {
		t.Fatalf("stored %q\nwant   %q", calls[0].raw, want)
	}
}

func TestEnvelopeHeaders(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	c := dial(t, ts.addr)
	body := "Delivered-To: Journal@archive.test\r\nX-Original-To: alice@corp.example,\r\n bob@corp.example\r\n" +
		"Delivered-To: <carol@corp.example>\r\nSubject: env\r\n\r\nDelivered-To: not-a-header@body.example\r\n"
	if _, err := send(c, "a@example.com", []string{"journal@archive.test"}, body); err != nil {
		t.Fatal(err)
	}
	calls := ts.ing.snapshot()
	if got := strings.Join(calls[0].origin.RcptTo, ","); got != "journal@archive.test,alice@corp.example,bob@corp.example,carol@corp.example" {
		t.Fatalf("RcptTo = %s", got)
	}
}

func TestLMTP(t *testing.T) {
	t.Parallel()
	sock := filepath.Join(shortTempDir(t), "lmtp.sock")
	ts := startServer(t, Config{
		LMTPListen: []string{"127.0.0.1:0", "unix:" + sock},
		Recipients: []string{"@archive.test"},
	})
	addrs := ts.Addrs()
	if len(addrs) != 3 || addrs[2].Network() != "unix" {
		t.Fatalf("addrs = %v", addrs)
	}
	for _, a := range addrs[1:] {
		t.Run(a.Network(), func(t *testing.T) {
			conn, err := net.Dial(a.Network(), a.String())
			if err != nil {
				t.Fatal(err)
			}
			c := gosmtp.NewClientLMTP(conn)
			defer func() { _ = c.Close() }()
			if err := c.Hello("mta.test"); err != nil {
				t.Fatal(err)
			}
			if err := c.Mail("a@example.com", nil); err != nil {
				t.Fatal(err)
			}
			for _, rc := range []string{"one@archive.test", "two@archive.test"} {
				if err := c.Rcpt(rc, nil); err != nil {
					t.Fatal(err)
				}
			}
			wantCode(t, c.Rcpt("x@elsewhere.example", nil), 550, gosmtp.EnhancedCode{5, 1, 1})
			w, err := c.Data()
			if err != nil {
				t.Fatal(err)
			}
			body := msg("lmtp "+a.Network(), "x")
			_, _ = w.Write([]byte(body))
			resp, err := w.CloseWithLMTPResponse()
			if err != nil {
				t.Fatalf("LMTP DATA: %v", err)
			}
			if len(resp) != 2 || !strings.Contains(resp["one@archive.test"].StatusText, "archived") ||
				!strings.Contains(resp["two@archive.test"].StatusText, "archived") {
				t.Fatalf("per-recipient replies = %+v", resp)
			}
		})
	}
	calls := ts.ing.snapshot()
	if len(calls) != 2 || calls[0].origin.Source != "lmtp" || len(calls[0].origin.RcptTo) != 2 {
		t.Fatalf("ingested %+v", calls)
	}

	t.Run("failure per recipient", func(t *testing.T) {
		r := dialRaw(t, "tcp", addrs[1].String())
		r.expect(220, "LMTP")
		r.cmd("EHLO mta.test", 500, "") // LMTP wants LHLO
		r.cmd("LHLO mta.test", 250, "")
		ts.ing.setFail(archive.ErrUnavailable)
		defer ts.ing.setFail(nil)
		r.write("MAIL FROM:<a@example.com>\r\nRCPT TO:<one@archive.test>\r\nRCPT TO:<two@archive.test>\r\nDATA\r\n")
		r.expect(250, "")
		r.expect(250, "")
		r.expect(250, "")
		r.expect(354, "")
		r.write(msg("fail", "x") + ".\r\n")
		if m := r.expect(451, "4.3.0"); !strings.Contains(m, "<one@archive.test>") {
			t.Fatalf("first reply %q", m)
		}
		if m := r.expect(451, "4.3.0"); !strings.Contains(m, "<two@archive.test>") {
			t.Fatalf("second reply %q", m)
		}
	})
}

// shortTempDir returns a temporary directory with a path short enough for
// a Unix socket.
func shortTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "lmtp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func TestShutdownIdle(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	r := dialRaw(t, "tcp", ts.addr)
	r.expect(220, "")
	r.cmd("EHLO client.test", 250, "")
	r.cmd("MAIL FROM:<a@example.com>", 250, "") // mid-transaction but not in DATA
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ts.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	r.expect(421, "")
	if _, err := net.Dial("tcp", ts.addr); err == nil {
		t.Fatal("still accepting after Shutdown")
	}
}

func TestShutdownFinishesInFlight(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	release := make(chan struct{})
	ts.ing.setBlock(release)
	c := dial(t, ts.addr)
	idle := dialRaw(t, "tcp", ts.addr)
	idle.expect(220, "")

	sent := make(chan error, 1)
	go func() {
		_, err := send(c, "a@example.com", []string{"j@archive.test"}, msg("inflight", "x"))
		sent <- err
	}()
	<-ts.ing.entered // the message is being ingested

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		shut <- ts.Shutdown(ctx)
	}()
	idle.expect(421, "") // idle sessions are told to go away at once
	waitFor(t, 5*time.Second, "listener to close", func() bool {
		conn, err := net.Dial("tcp", ts.addr)
		if err == nil {
			_ = conn.Close()
		}
		return err != nil
	})
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v while a message was in flight", err)
	default:
	}
	close(release)
	if err := <-sent; err != nil {
		t.Fatalf("in-flight message: %v", err)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := ts.ing.n(); n != 1 {
		t.Fatalf("ingested %d", n)
	}
}

func TestShutdownDeadline(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{})
	ts.ing.setBlock(make(chan struct{})) // never released: only ctx ends it
	c := dial(t, ts.addr)
	sent := make(chan error, 1)
	go func() {
		_, err := send(c, "a@example.com", []string{"j@archive.test"}, msg("stuck", "x"))
		sent <- err
	}()
	<-ts.ing.entered

	// A second client stuck in the middle of DATA.
	r := dialRaw(t, "tcp", ts.addr)
	r.expect(220, "")
	r.cmd("EHLO client.test", 250, "")
	r.cmd("MAIL FROM:<a@example.com>", 250, "")
	r.cmd("RCPT TO:<j@archive.test>", 250, "")
	r.cmd("DATA", 354, "")
	r.write("Subject: partial\r\n")

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := ts.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v, want deadline exceeded", err)
	}
	wantCode(t, <-sent, 421, gosmtp.EnhancedCode{4, 3, 2})
	r.expect(421, "4.3.2")
	if n := ts.ing.n(); n != 0 {
		t.Fatalf("ingested %d", n)
	}
	if a := ts.activeConns(); a != 0 {
		t.Fatalf("%d connections left open", a)
	}
}

func TestConcurrentClients(t *testing.T) {
	t.Parallel()
	clients, perClient := 10, 500
	if testing.Short() {
		perClient = 50
	}
	ts := startServer(t, Config{})
	var wg sync.WaitGroup
	acked := make([][]string, clients)
	errs := make(chan error, clients)
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := gosmtp.Dial(ts.addr)
			if err != nil {
				errs <- err
				return
			}
			defer func() { _ = c.Close() }()
			for j := range perClient {
				body := msg(fmt.Sprintf("c%d m%d", i, j), strings.Repeat(strconv.Itoa(j), j%200))
				if _, err := send(c, "a@example.com", []string{"j@archive.test"}, body); err != nil {
					errs <- fmt.Errorf("client %d msg %d: %w", i, j, err)
					return
				}
				acked[i] = append(acked[i], body)
			}
			errs <- c.Quit()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	ts.ing.mu.Lock()
	defer ts.ing.mu.Unlock()
	if len(ts.ing.calls) != clients*perClient {
		t.Fatalf("ingested %d, want %d", len(ts.ing.calls), clients*perClient)
	}
	seen := map[string]bool{}
	for _, call := range ts.ing.calls {
		seen[string(call.raw)] = true
	}
	for _, list := range acked {
		for _, body := range list {
			if !seen[body] {
				t.Fatalf("acknowledged message missing or altered: %.60q", body)
			}
		}
	}
	for id, n := range ts.ing.count {
		if n != 1 {
			t.Fatalf("message %s ingested %d times", id, n)
		}
	}
}

func TestNewValidation(t *testing.T) {
	t.Parallel()
	ing := newMemIngester()
	bad := []Config{
		{},
		{Listen: []string{"unix:/tmp/x"}},
		{Listen: []string{"127.0.0.1:0"}, RequireTLS: true},
		{Listen: []string{"127.0.0.1:0"}, AuthRequired: true},
		{Listen: []string{"127.0.0.1:0"}, Recipients: []string{"nodomain"}},
		{Listen: []string{"127.0.0.1:0"}, MaxMessageSize: -1},
	}
	for i, cfg := range bad {
		if _, err := New(cfg, ing, nil, nil); err == nil {
			t.Errorf("config %d accepted: %+v", i, cfg)
		}
	}
	if _, err := New(Config{Listen: []string{"127.0.0.1:0"}}, nil, nil, nil); err == nil {
		t.Error("nil Ingester accepted")
	}
	// Two servers may share one registry.
	ts := startServer(t, Config{})
	if _, err := New(Config{Listen: []string{"127.0.0.1:0"}}, ing, nil, ts.reg); err != nil {
		t.Errorf("second server on the same registry: %v", err)
	}
	// Start fails cleanly on a busy port and leaves nothing listening.
	s, err := New(Config{Listen: []string{"127.0.0.1:0", ts.addr}}, ing, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(context.Background()); err == nil {
		t.Fatal("Start on a busy port succeeded")
	}
	if len(s.Addrs()) != 0 {
		t.Fatalf("addrs after failed start: %v", s.Addrs())
	}
}

func TestMetricsRegistered(t *testing.T) {
	t.Parallel()
	ts := startServer(t, Config{Recipients: []string{"j@archive.test"}})
	c := dial(t, ts.addr)
	if _, err := send(c, "a@example.com", []string{"j@archive.test"}, msg("m", "x")); err != nil {
		t.Fatal(err)
	}
	if err := c.Mail("a@example.com", nil); err != nil {
		t.Fatal(err)
	}
	_ = c.Rcpt("other@archive.test", nil)
	families, err := ts.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, f := range families {
		got[f.GetName()] = true
	}
	for _, name := range []string{
		"mailarc_smtp_connections_total", "mailarc_smtp_connections_active",
		"mailarc_smtp_messages_accepted_total", "mailarc_smtp_messages_refused_total",
		"mailarc_smtp_bytes_total", "mailarc_smtp_accept_seconds",
	} {
		if !got[name] {
			t.Errorf("metric %s not registered", name)
		}
	}
}
