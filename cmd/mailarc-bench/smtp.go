package main

// The smtp benchmark: `mailarc serve` on a fresh data directory per run,
// loaded over SMTP by Postfix's smtp-source (the tool piler's published
// numbers use) and by a Go client, reporting msgs/s, MB/s, acceptance
// latency and the server's CPU time.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

const benchPassword = "bench-password"

func benchSMTP(bin, corpus string, args []string) error {
	fs := flag.NewFlagSet("smtp", flag.ContinueOnError)
	source := fs.String("smtp-source", "/usr/sbin/smtp-source", "Postfix's smtp-source (package postfix); skipped when absent")
	messages := fs.Int("messages", 10000, "messages per synthetic run")
	size := fs.Int("size", 102400, "payload bytes per synthetic message")
	sessions := fs.Int("sessions", 20, "concurrent SMTP sessions")
	if err := fs.Parse(args); err != nil {
		return err
	}
	fmt.Printf("mailarc SMTP ingest: %d CPUs, load average before: %s\n\n", runtime.NumCPU(), loadAvg())
	fmt.Println("| run | messages | stored (unique) | seconds | msgs/s | MB/s | accept p50 / p99 ms (server) | transaction p50 / p99 ms (client) | mailarc CPU s (% of one core) |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")

	if _, err := os.Stat(*source); err == nil {
		name := fmt.Sprintf("smtp-source -s %d -m %d -l %d (new connection per message; unique headers, same payload)", *sessions, *messages, *size)
		if err := smtpRun(bin, name, func(addr string) (runStats, error) {
			return runSMTPSource(*source, addr, *messages, *size, *sessions)
		}); err != nil {
			return err
		}
	} else {
		fmt.Printf("| smtp-source not found at %s (apt-get install postfix) | | | | | | | | |\n", *source)
	}

	name := fmt.Sprintf("Go client, %d sessions, %d unique %d kB messages (connection reuse)", *sessions, *messages, *size/1024)
	if err := smtpRun(bin, name, func(addr string) (runStats, error) {
		body := syntheticBody(*size)
		return runGoClient(addr, *sessions, *messages, func(i int) []byte {
			return append([]byte(fmt.Sprintf("From: bench@example.com\r\nTo: journal@example.com\r\nSubject: bench %d\r\nMessage-ID: <bench.%d@example.com>\r\n\r\n", i, i)), body...)
		})
	}); err != nil {
		return err
	}

	msgs, total, err := loadCorpus(corpus)
	if err != nil {
		return err
	}
	if len(msgs) > 0 {
		name = fmt.Sprintf("Go client, %d sessions, corpus %s (%d msgs, %.0f MB)", *sessions, filepath.Base(corpus), len(msgs), float64(total)/1e6)
		if err := smtpRun(bin, name, func(addr string) (runStats, error) {
			return runGoClient(addr, *sessions, len(msgs), func(i int) []byte { return msgs[i] })
		}); err != nil {
			return err
		}
	}
	fmt.Printf("\nload average after: %s. Server-side accept latency is end of DATA to the 250 reply\n"+
		"(mailarc_smtp_accept_seconds, bucket-interpolated); client transaction latency is MAIL FROM to 250.\n"+
		"The indexer runs concurrently in the same process and its CPU time is included.\n", loadAvg())
	return nil
}

// runStats is what one load run measured on the client side.
type runStats struct {
	messages int     // acknowledged with 250
	bytes    int64   // message bytes acknowledged
	seconds  float64 // wall time of the load
	latency  []time.Duration
}

// smtpRun starts a server on a fresh data dir, runs load against it and
// prints one table row.
func smtpRun(bin, name string, load func(addr string) (runStats, error)) error {
	tmp, err := os.MkdirTemp("", "mailarc-bench-smtp")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	s, err := startServer(bin, tmp)
	if err != nil {
		return err
	}
	defer s.stop()
	cpu0, err := s.cpuSeconds()
	if err != nil {
		return err
	}
	h0, err := s.histogram()
	if err != nil {
		return err
	}
	st, err := load(s.smtp)
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", name, err, s.log.String())
	}
	cpu1, err := s.cpuSeconds()
	if err != nil {
		return err
	}
	h1, err := s.histogram()
	if err != nil {
		return err
	}
	archived, err := s.archived()
	if err != nil {
		return err
	}
	d := h1.sub(h0)
	client := "n/a"
	if len(st.latency) > 0 {
		sort.Slice(st.latency, func(a, b int) bool { return st.latency[a] < st.latency[b] })
		client = fmt.Sprintf("%.1f / %.1f", ms(st.latency[len(st.latency)/2]), ms(st.latency[len(st.latency)*99/100]))
	}
	cpu := cpu1 - cpu0
	fmt.Printf("| %s | %d | %d | %.2f | %.0f | %.1f | %s / %s | %s | %.1f (%.0f%%) |\n",
		name, st.messages, archived, st.seconds, float64(st.messages)/st.seconds, float64(st.bytes)/1e6/st.seconds,
		d.quantile(0.5), d.quantile(0.99), client, cpu, 100*cpu/st.seconds)
	return nil
}

// runSMTPSource runs Postfix's smtp-source as piler's benchmark does.
func runSMTPSource(source, addr string, messages, size, sessions int) (runStats, error) {
	cmd := exec.Command(source, "-c", "-l", strconv.Itoa(size), "-m", strconv.Itoa(messages), "-s", strconv.Itoa(sessions),
		"-f", "bench@example.com", "-t", "journal@example.com", addr)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.Discard, &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return runStats{}, fmt.Errorf("smtp-source: %w\n%s", err, out.String())
	}
	el := time.Since(start).Seconds()
	// smtp-source aborts on any reply other than the expected one, so a
	// clean exit means every message got its 250.
	return runStats{messages: messages, bytes: int64(messages) * int64(size), seconds: el}, nil
}

// runGoClient sends n messages (msg(i)) over sessions concurrent
// connections, each reused for many messages.
func runGoClient(addr string, sessions, n int, msg func(i int) []byte) (runStats, error) {
	var next atomic.Int64
	var nbytes atomic.Int64
	lat := make([]time.Duration, n)
	errs := make(chan error, sessions)
	var wg sync.WaitGroup
	start := time.Now()
	for c := 0; c < sessions; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl, err := gosmtp.Dial(addr)
			if err != nil {
				errs <- err
				return
			}
			defer cl.Close()
			if err := cl.Hello("bench.example.com"); err != nil {
				errs <- err
				return
			}
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					_ = cl.Quit()
					return
				}
				raw := msg(i)
				t0 := time.Now()
				if err := sendMessage(cl, raw); err != nil {
					errs <- fmt.Errorf("message %d: %w", i, err)
					return
				}
				lat[i] = time.Since(t0)
				nbytes.Add(int64(len(raw)))
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	close(errs)
	if err := <-errs; err != nil {
		return runStats{}, err
	}
	return runStats{messages: n, bytes: nbytes.Load(), seconds: el, latency: lat}, nil
}

func sendMessage(cl *gosmtp.Client, raw []byte) error {
	if err := cl.Mail("bench@example.com", nil); err != nil {
		return err
	}
	if err := cl.Rcpt("journal@example.com", nil); err != nil {
		return err
	}
	w, err := cl.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(raw); err != nil {
		return err
	}
	resp, err := w.CloseWithResponse()
	if err != nil {
		return err
	}
	if !strings.Contains(resp.StatusText, "archived ") {
		return fmt.Errorf("unexpected 250 text %q", resp.StatusText)
	}
	return nil
}

// syntheticBody is size bytes of CRLF-terminated lines of words (about as
// compressible as English text).
func syntheticBody(size int) []byte {
	words := strings.Fields("the archive keeps every message exactly as received and indexes " +
		"subject body attachment sender recipient journal report retention hold export search " +
		"quarterly numbers meeting budget contract invoice schedule review project customer")
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	line := 0
	for b.Len() < size {
		w := words[r.IntN(len(words))]
		if line+len(w)+1 > 76 {
			b.WriteString("\r\n")
			line = 0
		}
		b.WriteString(w)
		b.WriteByte(' ')
		line += len(w) + 1
	}
	b.Truncate(size - 2)
	b.WriteString("\r\n")
	return b.Bytes()
}

// benchServer is one `mailarc serve` process.
type benchServer struct {
	cmd        *exec.Cmd
	http, smtp string
	log        bytes.Buffer
}

func startServer(bin, dir string) (*benchServer, error) {
	hp, err := freePort()
	if err != nil {
		return nil, err
	}
	sp, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &benchServer{http: fmt.Sprintf("127.0.0.1:%d", hp), smtp: fmt.Sprintf("127.0.0.1:%d", sp)}
	s.cmd = exec.Command(bin, "serve", "--data", filepath.Join(dir, "data"))
	s.cmd.Env = append(os.Environ(), "MAILARC_ADMIN_PASSWORD="+benchPassword,
		"MAILARC_HTTP_LISTEN="+s.http, "MAILARC_SMTP_LISTEN="+s.smtp)
	s.cmd.Stdout, s.cmd.Stderr = &s.log, &s.log
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	if err := waitReady("http://" + s.http + "/readyz"); err != nil {
		s.stop()
		return nil, fmt.Errorf("%w\n%s", err, s.log.String())
	}
	return s, nil
}

func (s *benchServer) stop() {
	if s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = s.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		_ = s.cmd.Process.Kill()
		<-done
	}
}

// clockTicks is USER_HZ, the unit of utime/stime in /proc/PID/stat; it is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// cpuSeconds is the server process's user+system CPU time so far.
func (s *benchServer) cpuSeconds() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", s.cmd.Process.Pid))
	if err != nil {
		return 0, fmt.Errorf("cpu time: %w", err)
	}
	// Fields after the parenthesised command name; utime and stime are
	// fields 14 and 15 of the whole line, i.e. 11 and 12 after it.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("cpu time: unexpected /proc stat line %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("cpu time: unexpected /proc stat line %q", b)
	}
	u, err1 := strconv.ParseFloat(f[11], 64)
	st, err2 := strconv.ParseFloat(f[12], 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("cpu time: %w", err)
	}
	return (u + st) / clockTicks, nil
}

func (s *benchServer) get(path string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+s.http+path, nil)
	if err != nil {
		return nil, err
	}
	req.SetBasicAuth("admin", benchPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("GET %s: HTTP %d", path, resp.StatusCode)
	}
	return b, err
}

// archived is the number of distinct messages stored.
func (s *benchServer) archived() (int64, error) {
	b, err := s.get("/api/v1/status")
	if err != nil {
		return 0, err
	}
	var st struct {
		Counts struct{ Archived int64 }
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return 0, fmt.Errorf("status: %w", err)
	}
	return st.Counts.Archived, nil
}

// histogram is a cumulative Prometheus histogram: upper bounds and counts.
type histogram struct {
	le     []float64
	counts []float64
}

// histogram reads mailarc_smtp_accept_seconds from /metrics.
func (s *benchServer) histogram() (histogram, error) {
	b, err := s.get("/metrics")
	if err != nil {
		return histogram{}, err
	}
	var h histogram
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), `mailarc_smtp_accept_seconds_bucket{le="`)
		if !ok {
			continue
		}
		bound, val, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		le, err1 := strconv.ParseFloat(bound, 64) // "+Inf" parses as +Inf
		n, err2 := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err := errors.Join(err1, err2); err != nil {
			return histogram{}, fmt.Errorf("metrics: %w", err)
		}
		h.le = append(h.le, le)
		h.counts = append(h.counts, n)
	}
	return h, sc.Err()
}

func (h histogram) sub(o histogram) histogram {
	d := histogram{le: h.le, counts: append([]float64(nil), h.counts...)}
	if len(o.counts) == len(h.counts) {
		for i := range d.counts {
			d.counts[i] -= o.counts[i]
		}
	}
	return d
}

// quantile interpolates linearly inside the bucket holding quantile q, in
// milliseconds; ">X" when it falls in the +Inf bucket.
func (h histogram) quantile(q float64) string {
	if len(h.counts) == 0 || h.counts[len(h.counts)-1] == 0 {
		return "n/a"
	}
	rank := q * h.counts[len(h.counts)-1]
	lower, below := 0.0, 0.0
	for i, c := range h.counts {
		if c >= rank {
			if math.IsInf(h.le[i], 1) {
				return fmt.Sprintf(">%.0f", lower*1000)
			}
			frac := 0.0
			if c > below {
				frac = (rank - below) / (c - below)
			}
			return fmt.Sprintf("%.1f", (lower+frac*(h.le[i]-lower))*1000)
		}
		lower, below = h.le[i], c
	}
	return "n/a"
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
