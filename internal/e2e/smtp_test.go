package e2e

// SMTP ingest end to end: a real `mailarc serve` process driven by real
// SMTP clients (go-smtp's client, raw sockets for byte-exact input, swaks)
// and by a private Postfix instance relaying to it.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailarc/mailarc/internal/certs"
	"github.com/mailarc/mailarc/internal/testutil"
)

// ---- helpers -------------------------------------------------------------

// setSMTPOption appends key = value lines to the [smtp] table of p's config.
// newProc writes [smtp] as the last table, which this checks.
func setSMTPOption(t *testing.T, p *proc, lines ...string) {
	t.Helper()
	b, err := os.ReadFile(p.config)
	if err != nil {
		t.Fatal(err)
	}
	if i := strings.LastIndex(string(b), "\n["); i < 0 || !strings.HasPrefix(string(b[i+1:]), "[smtp]") {
		t.Fatalf("setSMTPOption: [smtp] is not the last table of %s:\n%s", p.config, b)
	}
	b = append(b, []byte(strings.Join(lines, "\n")+"\n")...)
	if err := os.WriteFile(p.config, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// archivedID extracts the id from a "250 2.0.0 Ok: archived <id>" reply text.
func archivedID(text string) (string, error) {
	_, id, ok := strings.Cut(text, "archived ")
	id = strings.TrimSpace(id)
	if !ok || len(id) != 64 {
		return "", fmt.Errorf("250 reply without an archive id: %q", text)
	}
	return id, nil
}

// dialSMTP opens a go-smtp client session (EHLO done).
func dialSMTP(addr string) (*gosmtp.Client, error) {
	c, err := gosmtp.Dial(addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	if err := c.Hello("e2e-client.mailarc.test"); err != nil {
		c.Close()
		return nil, fmt.Errorf("EHLO: %w", err)
	}
	return c, nil
}

// sendOn sends one message on an open session and returns the archive id
// from the 250 reply. go-smtp's client dot-stuffs and turns bare LF into
// CRLF, so raw should use CRLF line endings to be stored as given.
func sendOn(c *gosmtp.Client, from string, rcpts []string, raw []byte) (string, error) {
	if err := c.Mail(from, nil); err != nil {
		return "", fmt.Errorf("MAIL FROM: %w", err)
	}
	for _, r := range rcpts {
		if err := c.Rcpt(r, nil); err != nil {
			return "", fmt.Errorf("RCPT TO %s: %w", r, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return "", fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(raw); err != nil {
		return "", fmt.Errorf("message data: %w", err)
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return "", fmt.Errorf("end of data: %w", err)
	}
	return archivedID(resp.StatusText)
}

// sendOne sends one message on a fresh session.
func sendOne(t *testing.T, addr, from string, rcpts []string, raw []byte) string {
	t.Helper()
	c, err := dialSMTP(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	id, err := sendOn(c, from, rcpts, raw)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.Quit()
	return id
}

// uniqueMessage is message i of client c: CRLF line endings, a line that
// needs dot-stuffing, 1-5 KB.
func uniqueMessage(run string, c, i int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: client%d@sender.example\r\nTo: journal@archive.example\r\n", c)
	fmt.Fprintf(&b, "Subject: smtp load %s %d/%d\r\nMessage-ID: <%s.%d.%d@e2e.mailarc.test>\r\n", run, c, i, run, c, i)
	fmt.Fprintf(&b, "Date: Mon, 2 Jun 2025 10:%02d:%02d +0000\r\n\r\n", i/60%60, i%60)
	b.WriteString("..a line that starts with a dot\r\n")
	for j := 0; j < 10+(c*31+i*17)%60; j++ {
		fmt.Fprintf(&b, "line %d of message %d from client %d in run %s, padding padding padding\r\n", j, i, c, run)
	}
	return b.Bytes()
}

// loadResult is what a set of concurrent SMTP clients saw.
type loadResult struct {
	mu     sync.Mutex
	acked  map[string][]byte // id from the 250 reply -> sent bytes
	errs   []error
	nacked atomic.Int64
}

func newLoad() *loadResult { return &loadResult{acked: map[string][]byte{}} }

// run runs clients sessions, each sending perClient unique messages on one
// connection, recording every acknowledged message. A client stops at its
// first error (the server died under it) or when stop is closed.
func (res *loadResult) run(addr, run string, clients, perClient int, stop <-chan struct{}) {
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(err error) {
				res.mu.Lock()
				res.errs = append(res.errs, err)
				res.mu.Unlock()
			}
			cl, err := dialSMTP(addr)
			if err != nil {
				fail(err)
				return
			}
			defer func() { _ = cl.Close() }()
			for i := 0; i < perClient; i++ {
				select {
				case <-stop:
					return
				default:
				}
				raw := uniqueMessage(run, c, i)
				id, err := sendOn(cl, "client@sender.example", []string{"journal@archive.example"}, raw)
				if err != nil {
					fail(fmt.Errorf("client %d message %d: %w", c, i, err))
					return
				}
				res.mu.Lock()
				res.acked[id] = raw
				res.mu.Unlock()
				res.nacked.Add(1)
			}
			_ = cl.Quit()
		}()
	}
	wg.Wait()
}

// checkArchived fetches every acknowledged message and compares it byte for
// byte with what was sent (4 parallel readers).
func checkArchived(t *testing.T, p *proc, acked map[string][]byte) {
	t.Helper()
	ids := make(chan string)
	var bad atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range ids {
				code, got, err := p.do("GET", "/api/v1/messages/"+id+"/raw", nil)
				if err != nil || code != 200 || !bytes.Equal(got, acked[id]) {
					if bad.Add(1) <= 5 {
						t.Errorf("acknowledged message %s: HTTP %d, err %v, %d bytes stored vs %d sent", id, code, err, len(got), len(acked[id]))
					}
				}
			}
		}()
	}
	for id := range acked {
		ids <- id
	}
	close(ids)
	wg.Wait()
	if n := bad.Load(); n > 0 {
		t.Fatalf("%d of %d acknowledged messages missing or different", n, len(acked))
	}
}

// status returns the node's archived and indexed counts.
func status(t *testing.T, p *proc) (archived, indexed int64) {
	t.Helper()
	code, body, err := p.do("GET", "/api/v1/status", nil)
	if err != nil || code != 200 {
		t.Fatalf("status: %d %v %s", code, err, body)
	}
	var s struct {
		Counts struct{ Archived, Indexed int64 }
	}
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("status: %v\n%s", err, body)
	}
	return s.Counts.Archived, s.Counts.Indexed
}

// metric returns the value of one Prometheus sample (name with labels
// exactly as exposed, e.g. `x_total{reason="aborted"}`), 0 when absent.
func metric(t *testing.T, p *proc, sample string) float64 {
	t.Helper()
	code, body, err := p.do("GET", "/metrics", nil)
	if err != nil || code != 200 {
		t.Fatalf("/metrics: %d %v", code, err)
	}
	for _, l := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(l, sample+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", l, err)
			}
			return f
		}
	}
	return 0
}

type searchHit struct {
	ID      string `json:"id"`
	Subject string `json:"subject"`
}

// search runs an API search and returns the total and the hits.
func search(t *testing.T, p *proc, q string, limit int) (int, []searchHit) {
	t.Helper()
	v := "/api/v1/search?limit=" + strconv.Itoa(limit) + "&q=" + urlQuery(q)
	code, body, err := p.do("GET", v, nil)
	if err != nil || code != 200 {
		t.Fatalf("search %q: %d %v %s", q, code, err, body)
	}
	var r struct {
		Total    int
		Messages []searchHit
	}
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("search %q: %v\n%s", q, err, body)
	}
	return r.Total, r.Messages
}

func urlQuery(q string) string {
	var b strings.Builder
	for _, c := range []byte(q) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == '_':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// waitSearch polls until q finds exactly id (the indexer is asynchronous).
func waitSearch(t *testing.T, p *proc, q, id string) {
	t.Helper()
	testutil.Eventually(t, 60*time.Second, fmt.Sprintf("search %q to find %s", q, id), func() bool {
		_, hits := search(t, p, q, 10)
		return len(hits) == 1 && hits[0].ID == id
	})
}

type messageDoc struct {
	ID        string   `json:"id"`
	MessageID string   `json:"message_id"`
	Bcc       []string `json:"bcc"`
	Origins   []string `json:"origins"`
	Envelope  struct {
		MailFrom []string `json:"mail_from"`
		RcptTo   []string `json:"rcpt_to"`
	} `json:"envelope"`
	Reports []string `json:"journal_reports"`
}

func getMessage(t *testing.T, p *proc, id string) messageDoc {
	t.Helper()
	code, body, err := p.do("GET", "/api/v1/messages/"+id, nil)
	if err != nil || code != 200 {
		t.Fatalf("GET message %s: %d %v %s", id, code, err, body)
	}
	var m messageDoc
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("message %s: %v\n%s", id, err, body)
	}
	return m
}

// rawSMTP is a byte-exact SMTP client on a plain socket, for input that
// go-smtp's client would normalise (bare LF, NUL, unterminated data).
type rawSMTP struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawSMTP {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetDeadline(time.Now().Add(2 * time.Minute))
	rc := &rawSMTP{t: t, c: c, r: bufio.NewReader(c)}
	t.Cleanup(func() { _ = c.Close() })
	if code, text := rc.reply(); code != 220 {
		t.Fatalf("greeting: %d %s", code, text)
	}
	if code, text := rc.cmd("EHLO raw.mailarc.test"); code != 250 {
		t.Fatalf("EHLO: %d %s", code, text)
	}
	return rc
}

// reply reads one (possibly multi-line) reply: its code and last line's text.
func (rc *rawSMTP) reply() (int, string) {
	rc.t.Helper()
	for {
		line, err := rc.r.ReadString('\n')
		if err != nil {
			return 0, "read error: " + err.Error()
		}
		line = strings.TrimRight(line, "\r\n")
		if len(line) < 4 {
			rc.t.Fatalf("short reply line %q", line)
		}
		if line[3] == '-' {
			continue
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			rc.t.Fatalf("bad reply line %q", line)
		}
		return code, line[4:]
	}
}

func (rc *rawSMTP) write(b []byte) {
	rc.t.Helper()
	if _, err := rc.c.Write(b); err != nil {
		rc.t.Fatalf("write: %v", err)
	}
}

func (rc *rawSMTP) cmd(line string) (int, string) {
	rc.t.Helper()
	rc.write([]byte(line + "\r\n"))
	return rc.reply()
}

// transaction sends MAIL, RCPT and DATA and returns after the 354.
func (rc *rawSMTP) transaction(from string, rcpts ...string) {
	rc.t.Helper()
	if code, text := rc.cmd("MAIL FROM:<" + from + ">"); code != 250 {
		rc.t.Fatalf("MAIL: %d %s", code, text)
	}
	for _, r := range rcpts {
		if code, text := rc.cmd("RCPT TO:<" + r + ">"); code != 250 {
			rc.t.Fatalf("RCPT %s: %d %s", r, code, text)
		}
	}
	if code, text := rc.cmd("DATA"); code != 354 {
		rc.t.Fatalf("DATA: %d %s", code, text)
	}
}

// normalise is the archive's stored form: bare LF -> CRLF.
func normalise(b []byte) []byte {
	var out bytes.Buffer
	for i, c := range b {
		if c == '\n' && (i == 0 || b[i-1] != '\r') {
			out.WriteByte('\r')
		}
		out.WriteByte(c)
	}
	return out.Bytes()
}

// ---- 1. concurrency, exactness, kill -9 -----------------------------------

const (
	loadClients   = 10
	loadPerClient = 500
)

// TestSMTPConcurrentClients: 10 concurrent sessions x 500 unique messages;
// every 250 carries the sha256 of the sent bytes, every acknowledged
// message is stored exactly once and byte-identical.
func TestSMTPConcurrentClients(t *testing.T) {
	p := newProc(t, t.TempDir(), "")
	p.start()
	start := time.Now()
	res := newLoad()
	res.run(p.smtpAddr, "ok", loadClients, loadPerClient, nil)
	t.Logf("%d messages over %d sessions in %v", res.nacked.Load(), loadClients, time.Since(start))
	if len(res.errs) > 0 {
		t.Fatalf("%d client errors, first: %v", len(res.errs), res.errs[0])
	}
	want := loadClients * loadPerClient
	if len(res.acked) != want || res.nacked.Load() != int64(want) {
		t.Fatalf("%d distinct ids from %d acknowledgements, want %d", len(res.acked), res.nacked.Load(), want)
	}
	for id, raw := range res.acked {
		if sha(raw) != id {
			t.Fatalf("250 reply id %s is not the sha256 of the sent bytes (%s)", id, sha(raw))
		}
	}
	checkArchived(t, p, res.acked)
	if a, _ := status(t, p); a != int64(want) {
		t.Fatalf("status archived %d, want exactly %d", a, want)
	}
	if n := metric(t, p, "mailarc_smtp_messages_accepted_total"); n != float64(want) {
		t.Fatalf("mailarc_smtp_messages_accepted_total %v, want %d", n, want)
	}
	if n := metric(t, p, "mailarc_smtp_accept_seconds_count"); n != float64(want) {
		t.Fatalf("mailarc_smtp_accept_seconds_count %v, want %d", n, want)
	}
	// Concurrent sessions share group commits: on average a commit (one
	// store sync, one catalog transaction) carries several messages.
	sum := metric(t, p, "mailarc_archive_commit_batch_messages_sum")
	commits := metric(t, p, "mailarc_archive_commit_batch_messages_count")
	t.Logf("%v messages in %v group commits (%.1f per commit)", sum, commits, sum/max(commits, 1))
	if sum != float64(want) || commits <= 0 || sum/commits < 1.5 {
		t.Fatalf("group commits: %v messages in %v commits; want all %d messages at 1.5 or more per commit on average", sum, commits, want)
	}
	p.stop()
	out, code := cli(t, nil, "verify", "--config", p.config)
	if code != 0 || !strings.Contains(out, " 0 problems,") {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
}

// TestSMTPKill9 runs the same load and kills the server with SIGKILL in the
// middle: every message acknowledged with 250 before the kill is there
// after the restart and `mailarc verify` passes.
func TestSMTPKill9(t *testing.T) {
	p := newProc(t, t.TempDir(), "")
	p.start()
	res := newLoad()
	done := make(chan struct{})
	stop := make(chan struct{})
	go func() {
		defer close(done)
		res.run(p.smtpAddr, "kill", loadClients, loadPerClient, stop)
	}()
	testutil.Eventually(t, 120*time.Second, "1,000 acknowledged messages", func() bool {
		return res.nacked.Load() >= 1000
	})
	p.kill()
	close(stop)
	<-done
	if res.nacked.Load() >= loadClients*loadPerClient {
		t.Fatalf("the load finished before the kill; nothing was tested")
	}
	t.Logf("%d messages acknowledged before kill -9; %d client errors after it (expected), first: %v",
		len(res.acked), len(res.errs), firstErr(res.errs))
	for id, raw := range res.acked {
		if sha(raw) != id {
			t.Fatalf("250 reply id %s is not the sha256 of the sent bytes", id)
		}
	}

	p.start()
	checkArchived(t, p, res.acked)
	if a, _ := status(t, p); a < int64(len(res.acked)) {
		t.Fatalf("status archived %d < %d acknowledged", a, len(res.acked))
	}
	// The server takes mail again after the restart.
	id := sendOne(t, p.smtpAddr, "after@sender.example", []string{"journal@archive.example"}, uniqueMessage("after", 0, 0))
	if id != sha(uniqueMessage("after", 0, 0)) {
		t.Fatalf("after restart: id %s", id)
	}
	p.stop()
	out, code := cli(t, nil, "verify", "--config", p.config)
	if code != 0 || !strings.Contains(out, " 0 problems,") {
		t.Fatalf("verify after kill -9: exit %d\n%s", code, out)
	}
}

func firstErr(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	return errs[0]
}

// ---- 2. journal reports ----------------------------------------------------

// TestSMTPJournalReport sends an Exchange envelope journal report
// ([MS-OXJRNL]) whose envelope names a Bcc recipient: the original is
// archived (its id is the sha256 of the original), found by bcc:, and
// lists the report, whose bytes are kept too.
func TestSMTPJournalReport(t *testing.T) {
	p := newProc(t, t.TempDir(), "")
	p.start()
	original := strings.Join([]string{
		"From: Alice Example <alice@corp.example>",
		"To: Bob Example <bob@corp.example>",
		"Cc: carol@corp.example",
		"Subject: Quarterly numbers kumquat",
		"Message-ID: <q3-numbers-1@corp.example>",
		"Date: Tue, 3 Jun 2025 09:00:00 +0000",
		"MIME-Version: 1.0",
		"Content-Type: text/plain; charset=us-ascii",
		"",
		"The numbers are attached in spirit.",
		"",
	}, "\r\n")
	report := strings.Join([]string{
		"From: Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@corp.example>",
		"To: journal@archive.example",
		"Subject: Quarterly numbers kumquat",
		"Message-ID: <report-1@corp.example>",
		"Date: Tue, 3 Jun 2025 09:00:01 +0000",
		"X-MS-Journal-Report:",
		"MIME-Version: 1.0",
		`Content-Type: multipart/mixed; boundary="journal-boundary"`,
		"",
		"--journal-boundary",
		"Content-Type: text/plain; charset=us-ascii",
		"",
		"Sender: alice@corp.example",
		"Subject: Quarterly numbers kumquat",
		"Message-Id: <q3-numbers-1@corp.example>",
		"To: bob@corp.example",
		"Cc: carol@corp.example",
		"Bcc: hidden@corp.example",
		"",
		"--journal-boundary",
		"Content-Type: message/rfc822",
		"",
		original,
		"--journal-boundary--",
		"",
	}, "\r\n")
	id := sendOne(t, p.smtpAddr, "MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@corp.example",
		[]string{"journal@archive.example"}, []byte(report))
	if id != sha([]byte(original)) {
		t.Fatalf("250 id %s, want the original's %s (report is %s)", id, sha([]byte(original)), sha([]byte(report)))
	}
	waitSearch(t, p, "bcc:hidden@corp.example", id)
	waitSearch(t, p, "kumquat", id) // the report is not archived as a message of its own
	m := getMessage(t, p, id)
	if len(m.Reports) != 1 || m.Reports[0] != sha([]byte(report)) {
		t.Fatalf("journal_reports %v, want [%s]", m.Reports, sha([]byte(report)))
	}
	if !contains(m.Envelope.RcptTo, "hidden@corp.example") || !contains(m.Envelope.MailFrom, "alice@corp.example") {
		t.Fatalf("envelope %+v: want the report's sender and Bcc recipient", m.Envelope)
	}
	code, raw, err := p.do("GET", "/api/v1/messages/"+id+"/raw", nil)
	if err != nil || code != 200 || string(raw) != original {
		t.Fatalf("original raw: %d %v %q", code, err, raw)
	}
	// The report itself is retrievable through the API from the original's metadata.
	code, raw, err = p.do("GET", "/api/v1/messages/"+m.Reports[0]+"/raw", nil)
	if err != nil || code != 200 || string(raw) != report {
		t.Fatalf("report raw over the API: %d %v (%d bytes)", code, err, len(raw))
	}
	// The report's bytes are kept (and verified) alongside the original.
	p.stop()
	out, code := cli(t, nil, "get", "--config", p.config, m.Reports[0])
	if code != 0 || out != report {
		t.Fatalf("mailarc get REPORT_ID: exit %d, %d bytes, want the report's %d", code, len(out), len(report))
	}
	out, code = cli(t, nil, "verify", "--config", p.config)
	if code != 0 || !strings.Contains(out, " 0 problems,") {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(strings.Trim(v, "<>"), s) {
			return true
		}
	}
	return false
}

// ---- 3. envelope capture ---------------------------------------------------

// TestSMTPEnvelopeBcc: an RCPT TO recipient that no header names is
// searchable with bcc: and to:.
func TestSMTPEnvelopeBcc(t *testing.T) {
	p := newProc(t, t.TempDir(), "")
	p.start()
	raw := []byte("From: boss@corp.example\r\nTo: team@corp.example\r\nSubject: envelope only\r\nMessage-ID: <env-1@corp.example>\r\n\r\nsee who else got this\r\n")
	id := sendOne(t, p.smtpAddr, "boss@corp.example", []string{"team@corp.example", "blind.copy@corp.example"}, raw)
	if id != sha(raw) {
		t.Fatalf("id %s, want %s", id, sha(raw))
	}
	waitSearch(t, p, "bcc:blind.copy@corp.example", id)
	waitSearch(t, p, "to:blind.copy@corp.example", id)
	if n, _ := search(t, p, "cc:blind.copy@corp.example", 10); n != 0 {
		t.Fatalf("cc: matched an envelope-only recipient (%d hits)", n)
	}
	m := getMessage(t, p, id)
	if !contains(m.Envelope.RcptTo, "blind.copy@corp.example") || !contains(m.Envelope.MailFrom, "boss@corp.example") || !contains(m.Origins, "smtp") {
		t.Fatalf("message %s: envelope %+v origins %v", id, m.Envelope, m.Origins)
	}
}

// ---- 5. bad input ------------------------------------------------------------

// TestSMTPBadInput drives hostile and broken input through the real server.
func TestSMTPBadInput(t *testing.T) {
	p := newProc(t, t.TempDir(), "")
	setSMTPOption(t, p, `max_message_size = "1MB"`)
	p.start()

	t.Run("10000 recipients", func(t *testing.T) {
		rc := dialRaw(t, p.smtpAddr)
		if code, text := rc.cmd("MAIL FROM:<list@sender.example>"); code != 250 {
			t.Fatalf("MAIL: %d %s", code, text)
		}
		// Pipelined: write every RCPT while reading the replies.
		const n = 10000
		go func() {
			var b bytes.Buffer
			for i := 0; i <= n; i++ { // one more than max_recipients
				fmt.Fprintf(&b, "RCPT TO:<member%05d@list.example>\r\n", i)
			}
			_, _ = rc.c.Write(b.Bytes())
		}()
		for i := 0; i < n; i++ {
			if code, text := rc.reply(); code != 250 {
				t.Fatalf("RCPT %d: %d %s", i, code, text)
			}
		}
		if code, text := rc.reply(); code != 452 {
			t.Fatalf("RCPT %d (over max_recipients): %d %s, want 452", n+1, code, text)
		}
		if code, text := rc.cmd("DATA"); code != 354 {
			t.Fatalf("DATA: %d %s", code, text)
		}
		msg := []byte("From: list@sender.example\r\nTo: undisclosed-recipients:;\r\nSubject: ten thousand\r\n\r\nhello all\r\n")
		rc.write(append(append([]byte{}, msg...), ".\r\n"...))
		code, text := rc.reply()
		if code != 250 {
			t.Fatalf("end of data: %d %s", code, text)
		}
		if id, err := archivedID(text); err != nil || id != sha(msg) {
			t.Fatalf("reply %q, want archived %s", text, sha(msg))
		}
		m := getMessage(t, p, sha(msg))
		if len(m.Envelope.RcptTo) != n || !contains(m.Envelope.RcptTo, "member09999@list.example") {
			t.Fatalf("envelope has %d recipients, want %d", len(m.Envelope.RcptTo), n)
		}
	})

	t.Run("long lines", func(t *testing.T) {
		var b bytes.Buffer
		b.WriteString("From: a@sender.example\r\nSubject: long lines\r\nX-Long: " + strings.Repeat("h", 1000) + "\r\n\r\n")
		for _, n := range []int{998, 999, 1000, 1001, 5000, 100000} {
			b.WriteString(strings.Repeat(string(rune('a'+n%26)), n) + "\r\n")
		}
		msg := b.Bytes()
		rc := dialRaw(t, p.smtpAddr)
		rc.transaction("a@sender.example", "journal@archive.example")
		rc.write(append(append([]byte{}, msg...), ".\r\n"...))
		code, text := rc.reply()
		if id, err := archivedID(text); code != 250 || err != nil || id != sha(msg) {
			t.Fatalf("end of data: %d %s (want archived %s)", code, text, sha(msg))
		}
		expectRaw(t, p, sha(msg), msg)
	})

	t.Run("bare LF, lone CR, NUL and dot-stuffing", func(t *testing.T) {
		// On the wire: bare LF line ends, NULs in a header and the body, a
		// lone CR, and dot-stuffed lines (only lines after CRLF start a
		// line for the SMTP data reader).
		wire := []byte("Subject: bare\nX-Nul: a\x00b\n\nline one\nline\x00two\rthree\r\n..dot-stuffed\r\n...two dots\r\n.\r\n")
		stored := normalise([]byte("Subject: bare\nX-Nul: a\x00b\n\nline one\nline\x00two\rthree\r\n.dot-stuffed\r\n..two dots\r\n"))
		rc := dialRaw(t, p.smtpAddr)
		rc.transaction("a@sender.example", "journal@archive.example")
		rc.write(wire)
		code, text := rc.reply()
		if id, err := archivedID(text); code != 250 || err != nil || id != sha(stored) {
			t.Fatalf("end of data: %d %s (want archived %s)", code, text, sha(stored))
		}
		expectRaw(t, p, sha(stored), stored)
	})

	t.Run("disconnect before the final dot", func(t *testing.T) {
		before, _ := status(t, p)
		aborted := metric(t, p, `mailarc_smtp_messages_refused_total{reason="aborted"}`)
		partial := []byte("From: a@sender.example\r\nSubject: cut short\r\n\r\nhalf a message\r\n")
		rc := dialRaw(t, p.smtpAddr)
		rc.transaction("a@sender.example", "journal@archive.example")
		rc.write(partial)
		_ = rc.c.Close()
		testutil.Eventually(t, 30*time.Second, "the aborted transfer to be counted", func() bool {
			return metric(t, p, `mailarc_smtp_messages_refused_total{reason="aborted"}`) > aborted
		})
		if after, _ := status(t, p); after != before {
			t.Fatalf("archived count went from %d to %d after an interrupted transfer", before, after)
		}
		if code, _, _ := p.do("GET", "/api/v1/messages/"+sha(partial)+"/raw", nil); code != 404 {
			t.Fatalf("partial message: HTTP %d, want 404", code)
		}
	})

	t.Run("oversize", func(t *testing.T) {
		before, _ := status(t, p)
		big := append([]byte("From: a@sender.example\r\nSubject: too big\r\n\r\n"), bytes.Repeat([]byte(strings.Repeat("x", 78)+"\r\n"), 2<<20/80)...)
		// Declared with SIZE=: refused at MAIL FROM.
		rc := dialRaw(t, p.smtpAddr)
		if code, text := rc.cmd(fmt.Sprintf("MAIL FROM:<a@sender.example> SIZE=%d", len(big))); code != 552 {
			t.Fatalf("MAIL SIZE=%d: %d %s, want 552", len(big), code, text)
		}
		// Not declared: refused after the data.
		rc.transaction("a@sender.example", "journal@archive.example")
		done := make(chan struct{})
		go func() { // the server may stop reading early; never block the test on it
			defer close(done)
			_, _ = rc.c.Write(append(big, ".\r\n"...))
		}()
		code, text := rc.reply()
		if code != 552 {
			t.Fatalf("oversize DATA: %d %s, want 552", code, text)
		}
		_ = rc.c.Close()
		<-done
		// go-smtp's own client too (dot-stuffing writer, SIZE not sent by it
		// unless asked).
		c, err := dialSMTP(p.smtpAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = sendOn(c, "a@sender.example", []string{"journal@archive.example"}, big)
		var se *gosmtp.SMTPError
		if !errors.As(err, &se) || se.Code != 552 {
			t.Fatalf("oversize via go-smtp client: %v, want 552", err)
		}
		if after, _ := status(t, p); after != before {
			t.Fatalf("archived count went from %d to %d after oversize messages", before, after)
		}
		if code, _, _ := p.do("GET", "/api/v1/messages/"+sha(big)+"/raw", nil); code != 404 {
			t.Fatalf("oversize message: HTTP %d, want 404", code)
		}
	})

	t.Run("swaks", func(t *testing.T) {
		swaks, err := exec.LookPath("swaks")
		if err != nil {
			testutil.Require(t, false, "swaks not installed (apt-get install swaks)")
		}
		// STARTTLS needs the Perl module Net::SSLeay: report its absence as
		// such, not as a TLS failure of the server.
		sup, err := exec.Command(swaks, "--support").CombinedOutput()
		testutil.Require(t, err == nil && strings.Contains(string(sup), "TLS supported"),
			fmt.Sprintf("swaks cannot do STARTTLS (install Net::SSLeay: apt-get install libnet-ssleay-perl); `swaks --support`: %v\n%s", err, sup))
		msg := []byte("From: swaks@sender.example\r\nTo: journal@archive.example\r\nSubject: via swaks\r\nMessage-ID: <swaks-1@e2e>\r\n\r\n" +
			strings.Repeat("w", 1000) + "\r\n.leading dot\r\n")
		// swaks ends the data with CRLF itself, so the file has no final one.
		f := filepath.Join(t.TempDir(), "msg.eml")
		if err := os.WriteFile(f, bytes.TrimSuffix(msg, []byte("\r\n")), 0o600); err != nil {
			t.Fatal(err)
		}
		host, port, _ := net.SplitHostPort(p.smtpAddr)
		out, err := exec.Command(swaks, "--server", host, "--port", port, "--from", "swaks@sender.example",
			"--to", "journal@archive.example", "--data", "@"+f, "--tls", "--suppress-data").CombinedOutput()
		if err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
		if !strings.Contains(string(out), "archived "+sha(msg)) || !strings.Contains(string(out), "TLS started") {
			t.Fatalf("swaks over STARTTLS: no 'archived %s' in\n%s", sha(msg), out)
		}
		expectRaw(t, p, sha(msg), msg)
	})

	p.stop()
	out, code := cli(t, nil, "verify", "--config", p.config)
	if code != 0 || !strings.Contains(out, " 0 problems,") {
		t.Fatalf("verify: exit %d\n%s", code, out)
	}
}

func expectRaw(t *testing.T, p *proc, id string, want []byte) {
	t.Helper()
	code, got, err := p.do("GET", "/api/v1/messages/"+id+"/raw", nil)
	if err != nil || code != 200 || !bytes.Equal(got, want) {
		t.Fatalf("raw %s: HTTP %d, %v, got %d bytes (%q...), want %d", id, code, err, len(got), trunc(got, 80), len(want))
	}
}

func trunc(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// ---- 4. Postfix relaying to mailarc -----------------------------------------

// postfixInstance is a private Postfix (its own config, queue and data
// directories, its own smtpd port on 127.0.0.1, no port 25) relaying all
// mail to mailarc with relayhost. It does not touch a system Postfix: the
// queue directory holds the master's pid file and every socket, so both
// run side by side. `postfix -c DIR` is allowed for root without listing
// DIR in the default main.cf's alternate_config_directories (that list is
// only consulted by the set-gid postdrop/postqueue for other users); mail
// is submitted over SMTP, so no set-gid program runs.
type postfixInstance struct {
	dir  string
	port int
}

func startPostfix(t *testing.T, relayTo string) *postfixInstance {
	t.Helper()
	bin, err := exec.LookPath("postfix")
	if err != nil {
		bin = "/usr/sbin/postfix"
		if _, err := os.Stat(bin); err != nil {
			testutil.Require(t, false, "postfix is not installed (apt-get install postfix)")
		}
	}
	if os.Geteuid() != 0 {
		testutil.Require(t, false, "a private Postfix instance must be started as root")
	}
	postconf := func(name string) string {
		out, err := exec.Command(filepath.Join(filepath.Dir(bin), "postconf"), "-d", "-h", name).Output()
		if err != nil {
			t.Fatalf("postconf -d %s: %v", name, err)
		}
		return strings.TrimSpace(string(out))
	}
	// Not t.TempDir(): Postfix daemons run as the postfix user and must be
	// able to reach the queue directory, so every path component needs
	// o+x; t.TempDir's parents are 0700.
	dir, err := os.MkdirTemp("", "mailarc-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	pf := &postfixInstance{dir: dir, port: freePort(t)}
	// Stopping an instance that never started is harmless.
	t.Cleanup(func() {
		_ = exec.Command(bin, "-c", dir, "stop").Run()
		pidFile := filepath.Join(dir, "queue", "pid", "master.pid")
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			b, err := os.ReadFile(pidFile)
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			if err != nil || pid <= 0 {
				break
			}
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
				break
			}
			time.Sleep(100 * time.Millisecond) // waiting for an external process to exit
		}
		_ = os.RemoveAll(dir)
	})
	mainCf := fmt.Sprintf(`# private Postfix instance for mailarc's e2e tests
compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
meta_directory = %[2]s
command_directory = %[3]s
daemon_directory = %[4]s
shlib_directory = %[5]s
mail_owner = postfix
setgid_group = postdrop
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
myhostname = postfix-e2e.mailarc.test
mydomain = mailarc.test
myorigin = $myhostname
mydestination =
local_recipient_maps =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject
relayhost = [%[6]s]:%[7]s
# Relay the bytes as received: no header rewriting for SMTP clients, no
# MIME conversion, no line splitting.
local_header_rewrite_clients =
disable_mime_output_conversion = yes
smtp_line_length_limit = 0
# STARTTLS to mailarc's self-signed certificate (not verified).
smtp_tls_security_level = may
smtp_tls_loglevel = 1
message_size_limit = 52428800
biff = no
`, dir, postconf("meta_directory"), postconf("command_directory"), postconf("daemon_directory"),
		postconf("shlib_directory"), strings.Split(relayTo, ":")[0], strings.Split(relayTo, ":")[1])
	masterCf := fmt.Sprintf(`# service type private unpriv chroot wakeup maxproc command
127.0.0.1:%d inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
tlsmgr    unix  - - n 1000? 1 tlsmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
proxywrite unix - - n - 1 proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`, pf.port)
	for name, body := range map[string]string{"main.cf": mainCf, "master.cf": masterCf} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(bin, append([]string{"-c", dir}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("postfix -c %s %s: %v\n%s\nmaillog:\n%s", dir, strings.Join(args, " "), err, out, pf.log())
		}
	}
	// check creates the queue's subdirectories and the data directory with
	// their owners; the queue directory itself must exist. (Postfix writes
	// its errors to stderr only on a terminal; see maillog otherwise.)
	if err := os.Mkdir(filepath.Join(dir, "queue"), 0o755); err != nil {
		t.Fatal(err)
	}
	run("check")
	run("start")
	testutil.Eventually(t, 30*time.Second, "postfix smtpd to listen", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", pf.port))
		if err != nil {
			return false
		}
		_ = c.Close()
		return true
	})
	return pf
}

func (pf *postfixInstance) log() string {
	b, _ := os.ReadFile(filepath.Join(pf.dir, "maillog"))
	return string(b)
}

// postfixSend submits raw to Postfix over SMTP; Postfix answers 250 queued.
func postfixSend(c *gosmtp.Client, from, to string, raw []byte) error {
	if err := c.Mail(from, nil); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	if err := c.Rcpt(to, nil); err != nil {
		return fmt.Errorf("RCPT: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(raw); err != nil {
		return err
	}
	return w.Close()
}

// TestSMTPPostfixRelay: a private Postfix instance relays ~200 real
// corpus messages to mailarc (relayhost, STARTTLS); all of them arrive,
// each with its body exactly as submitted and Postfix's Received header.
func TestSMTPPostfixRelay(t *testing.T) {
	corpus := testutil.Corpus(t)
	files, err := filepath.Glob(filepath.Join(corpus, "real", "btrfs", "000", "*.eml"))
	if err != nil || len(files) == 0 {
		testutil.Require(t, false, "no .eml files under "+filepath.Join(corpus, "real", "btrfs", "000"))
	}
	sort.Strings(files)
	if len(files) > 200 {
		files = files[:200]
	}
	p := newProc(t, t.TempDir(), "")
	p.start()
	pf := startPostfix(t, p.smtpAddr)

	const sender = "postfix-e2e-sender@mailarc.test"
	sent := map[string][]byte{} // Message-ID -> CRLF bytes as submitted
	var mu sync.Mutex
	work := make(chan string)
	var wg sync.WaitGroup
	var sendErr atomic.Pointer[error]
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dialSMTP(fmt.Sprintf("127.0.0.1:%d", pf.port))
			if err != nil {
				sendErr.Store(&err)
				for range work {
				}
				return
			}
			defer c.Close()
			for f := range work {
				raw, err := os.ReadFile(f)
				if err == nil {
					raw = normalise(raw)
					err = postfixSend(c, sender, "journal@archive.example", raw)
				}
				if err != nil {
					err = fmt.Errorf("%s: %w", f, err)
					sendErr.Store(&err)
					continue
				}
				mu.Lock()
				sent[headerMessageID(raw)] = raw
				mu.Unlock()
			}
			_ = c.Quit()
		}()
	}
	for _, f := range files {
		work <- f
	}
	close(work)
	wg.Wait()
	if e := sendErr.Load(); e != nil {
		t.Fatalf("submitting to postfix: %v\n%s", *e, pf.log())
	}
	if len(sent) != len(files) {
		t.Fatalf("%d distinct Message-IDs among %d corpus files", len(sent), len(files))
	}
	testutil.Eventually(t, 180*time.Second, fmt.Sprintf("%d messages relayed by postfix to be indexed", len(files)), func() bool {
		n, _ := search(t, p, "", 1)
		return n >= len(files)
	})
	_, hits := search(t, p, "", 1000)
	if len(hits) != len(files) {
		t.Fatalf("mailarc holds %d messages, postfix was given %d\n%s", len(hits), len(files), pf.log())
	}
	for _, h := range hits {
		m := getMessage(t, p, h.ID)
		want, ok := sent[strings.Trim(m.MessageID, "<>")]
		if !ok {
			t.Fatalf("archived %s has Message-ID %q, not one that was sent", h.ID, m.MessageID)
		}
		delete(sent, strings.Trim(m.MessageID, "<>"))
		if !contains(m.Envelope.MailFrom, sender) || !contains(m.Envelope.RcptTo, "journal@archive.example") || !contains(m.Origins, "smtp") {
			t.Fatalf("%s: envelope %+v origins %v", h.ID, m.Envelope, m.Origins)
		}
		code, raw, err := p.do("GET", "/api/v1/messages/"+h.ID+"/raw", nil)
		if err != nil || code != 200 {
			t.Fatalf("raw %s: %d %v", h.ID, code, err)
		}
		// Postfix prepends its Received header and (its cleanup daemon always
		// does this) drops Return-Path; everything else is what was submitted.
		if !bytes.HasPrefix(raw, []byte("Received: from ")) || !bytes.Contains(raw[:min(len(raw), 1024)], []byte("by postfix-e2e.mailarc.test")) {
			t.Fatalf("%s does not start with Postfix's Received header: %q", h.ID, trunc(raw, 300))
		}
		if want = withoutReturnPath(want); !bytes.HasSuffix(raw, want) {
			t.Fatalf("%s (Message-ID %s): stored bytes do not end with the submitted message (%d vs %d bytes)", h.ID, m.MessageID, len(raw), len(want))
		}
	}
	if len(sent) != 0 {
		t.Fatalf("%d messages never arrived", len(sent))
	}
	if lg := pf.log(); !strings.Contains(lg, "relay=127.0.0.1[127.0.0.1]") || !strings.Contains(lg, "status=sent (250 2.0.0 Ok: archived ") {
		t.Fatalf("postfix log lacks relay deliveries with mailarc's reply:\n%s", lg)
	}
	if lg := pf.log(); !strings.Contains(lg, "TLS connection established to 127.0.0.1") {
		t.Errorf("postfix did not use STARTTLS to mailarc:\n%s", lg)
	}
}

// withoutReturnPath removes Return-Path fields (with continuation lines)
// from the header of a CRLF message.
func withoutReturnPath(raw []byte) []byte {
	hdr, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		return raw
	}
	var out bytes.Buffer
	skip := false
	for _, l := range bytes.SplitAfter(append(hdr, '\r', '\n'), []byte("\r\n")) {
		if len(l) == 0 {
			continue
		}
		if l[0] != ' ' && l[0] != '\t' {
			skip = len(l) >= 12 && strings.EqualFold(string(l[:12]), "Return-Path:")
		}
		if !skip {
			out.Write(l)
		}
	}
	out.WriteString("\r\n")
	out.Write(body)
	return out.Bytes()
}

// headerMessageID returns the Message-ID of raw without angle brackets.
func headerMessageID(raw []byte) string {
	hdr, _, _ := bytes.Cut(raw, []byte("\r\n\r\n"))
	for _, l := range strings.Split(string(hdr), "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(k, "Message-ID") {
			return strings.Trim(strings.TrimSpace(v), "<>")
		}
	}
	return ""
}

// ---- 6. configuration wiring ---------------------------------------------------

// serveFails runs `mailarc serve` on p's config, expects it to exit with
// an error within a minute and returns its output.
func serveFails(t *testing.T, p *proc) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "serve", "--config", p.config)
	cmd.Env = append(os.Environ(), "MAILARC_ADMIN_PASSWORD="+adminPass)
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("mailarc serve did not fail (err %v, ctx %v):\n%s", err, ctx.Err(), out)
	}
	return string(out)
}

// TestSMTPConfigWiring checks that the [smtp] keys reach the server: a
// configured tls_cert/tls_key is the certificate clients see, auth_file
// (comments allowed, a malformed line stops the start naming the line) and
// auth_required/require_tls govern AUTH and MAIL, and lmtp_listen delivers.
func TestSMTPConfigWiring(t *testing.T) {
	dir := t.TempDir()
	const host = "configured.e2e.test"
	certFile, keyFile := filepath.Join(dir, "smtp.crt"), filepath.Join(dir, "smtp.key")
	cert, err := certs.LoadOrCreate(certFile, keyFile, certs.Spec{CommonName: host, Organization: "e2e", Hosts: []string{host}, Years: 1})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AddCert(leaf)
	authFile := filepath.Join(dir, "smtp-users")
	writeAuth := func(s string) {
		if err := os.WriteFile(authFile, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}

	nodeDir := filepath.Join(dir, "node")
	if err := os.Mkdir(nodeDir, 0o700); err != nil {
		t.Fatal(err)
	}
	p := newProc(t, nodeDir, "")
	setSMTPOption(t, p,
		fmt.Sprintf("tls_cert = %q", certFile), fmt.Sprintf("tls_key = %q", keyFile),
		fmt.Sprintf("auth_file = %q", authFile), "auth_required = true", "require_tls = true")

	// A malformed line stops the start, naming file and line.
	writeAuth("# journaling MTAs\njournal:s3cret:with:colons\nno-colon-here\n")
	if out := serveFails(t, p); !strings.Contains(out, "smtp.auth_file "+authFile+" line 3: want user:password") {
		t.Fatalf("bad auth_file line: error does not name the line:\n%s", out)
	}
	// Comments and blank lines are fine; the password is everything after
	// the first colon.
	writeAuth("# journaling MTAs\n\njournal:s3cret:with:colons\n   # indented comment\n")
	p.start()

	c, err := dialSMTP(p.smtpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if ok, _ := c.Extension("AUTH"); ok {
		t.Fatal("AUTH offered before STARTTLS with require_tls = true")
	}
	var se *gosmtp.SMTPError
	if err := c.Mail("mta@sender.example", nil); !errors.As(err, &se) || se.Code != 530 {
		t.Fatalf("MAIL without AUTH: %v, want 530 (auth_required)", err)
	}
	_ = c.Quit()
	c, err = gosmtp.DialStartTLS(p.smtpAddr, &tls.Config{ServerName: host, RootCAs: roots, MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatalf("STARTTLS verified against the configured certificate: %v", err)
	}
	defer c.Close()
	// The handshake runs on the first command after STARTTLS: EHLO.
	if err := c.Hello("e2e-client.mailarc.test"); err != nil {
		t.Fatalf("EHLO over TLS verified against the configured certificate: %v", err)
	}
	st, ok := c.TLSConnectionState()
	if !ok || len(st.PeerCertificates) == 0 || !bytes.Equal(st.PeerCertificates[0].Raw, leaf.Raw) {
		t.Fatal("the server did not present the tls_cert certificate")
	}
	if !c.SupportsAuth("PLAIN") || !c.SupportsAuth("LOGIN") {
		t.Fatal("AUTH PLAIN/LOGIN not offered after STARTTLS with auth_file set")
	}
	if err := c.Mail("mta@sender.example", nil); !errors.As(err, &se) || se.Code != 530 {
		t.Fatalf("MAIL over TLS without AUTH: %v, want 530", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "journal", "s3cret:with")); !errors.As(err, &se) || se.Code != 535 {
		t.Fatalf("AUTH with a wrong password: %v, want 535", err)
	}
	if err := c.Auth(sasl.NewPlainClient("", "journal", "s3cret:with:colons")); err != nil {
		t.Fatalf("AUTH PLAIN with the auth_file credentials: %v", err)
	}
	msg := []byte("From: a@sender.example\r\nTo: journal@archive.example\r\nSubject: authenticated\r\nMessage-ID: <auth-1@e2e>\r\n\r\nafter AUTH\r\n")
	id, err := sendOn(c, "mta@sender.example", []string{"journal@archive.example"}, msg)
	if err != nil {
		t.Fatalf("send after AUTH: %v", err)
	}
	_ = c.Quit()
	expectRaw(t, p, id, msg)
	p.stop()

	// LMTP: one delivery with two recipients, one reply each.
	lp := newProc(t, nodeDir, "") // same data directory, new ports
	lmtpAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	setSMTPOption(t, lp, fmt.Sprintf("lmtp_listen = [%q]", lmtpAddr))
	lp.start()
	conn, err := net.DialTimeout("tcp", lmtpAddr, 10*time.Second)
	if err != nil {
		t.Fatalf("lmtp_listen %s not listening: %v", lmtpAddr, err)
	}
	lc := gosmtp.NewClientLMTP(conn)
	defer lc.Close()
	if err := lc.Hello("lmtp-client.e2e"); err != nil {
		t.Fatalf("LHLO: %v", err)
	}
	rcpts := []string{"alice@corp.example", "bob@corp.example"}
	if err := lc.Mail("mta@sender.example", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range rcpts {
		if err := lc.Rcpt(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	w, err := lc.Data()
	if err != nil {
		t.Fatal(err)
	}
	lmsg := []byte("From: a@sender.example\r\nTo: alice@corp.example\r\nSubject: over lmtp\r\nMessage-ID: <lmtp-1@e2e>\r\n\r\nlmtp body\r\n")
	if _, err := w.Write(lmsg); err != nil {
		t.Fatal(err)
	}
	resps, err := w.CloseWithLMTPResponse()
	if err != nil {
		t.Fatalf("LMTP data: %v", err)
	}
	if len(resps) != len(rcpts) {
		t.Fatalf("LMTP: %d replies, want one per recipient (%d)", len(resps), len(rcpts))
	}
	for _, r := range rcpts {
		if resps[r] == nil || !strings.Contains(resps[r].StatusText, "archived "+sha(lmsg)) {
			t.Fatalf("LMTP reply for %s: %+v, want 'Ok: archived %s'", r, resps[r], sha(lmsg))
		}
	}
	_ = lc.Quit()
	expectRaw(t, lp, sha(lmsg), lmsg)
	m := getMessage(t, lp, sha(lmsg))
	for _, r := range rcpts {
		if !contains(m.Envelope.RcptTo, r) {
			t.Errorf("envelope recipients %v lack %s", m.Envelope.RcptTo, r)
		}
	}
	if !contains(m.Origins, "lmtp") {
		t.Errorf("origins %v lack lmtp", m.Origins)
	}
	// The message sent over SMTP before the restart is still there.
	expectRaw(t, lp, id, msg)
}
