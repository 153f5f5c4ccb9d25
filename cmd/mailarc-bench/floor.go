package main

// The floor benchmark: how fast can anything on this machine take the
// ingest benchmarks' load? It runs the same loads as `smtp` and `ingest`
// (Postfix smtp-source, 20 connections x 100 kB; 16 HTTP clients posting
// the corpus) against three receivers, alternating them round by round:
//
//   - receive: a server that reads each message into memory and answers
//     at once (go-smtp, the same fork mailarc uses; net/http);
//   - fsync: the same, plus one fsync'd append of a 32-byte record per
//     group of concurrent messages before answering (what gating replies
//     on fsync alone costs; keeps nothing useful);
//   - durable: the same, plus one fsync'd append of the raw bytes per group
//     of concurrent messages before answering (the least any server that
//     acknowledges durably must do);
//   - mailarc: `mailarc serve` on a fresh data directory.
//
// Each row gives msgs/s and the whole machine's CPU use over the run (from
// /proc/stat), so a reader can see whether a receiver is CPU-bound and how
// far mailarc's processing (hash, parse, compress, catalog, index) is from
// the floor.

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

func benchFloor(bin, corpus string, clients int, args []string) error {
	fs := flag.NewFlagSet("floor", flag.ContinueOnError)
	source := fs.String("smtp-source", "/usr/sbin/smtp-source", "Postfix's smtp-source (package postfix)")
	messages := fs.Int("messages", 10000, "smtp-source messages per run")
	size := fs.Int("size", 102400, "smtp-source payload bytes")
	sessions := fs.Int("sessions", 20, "smtp-source concurrent sessions")
	rounds := fs.Int("rounds", 3, "alternating rounds per receiver")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := os.Stat(*source); err != nil {
		return fmt.Errorf("floor needs smtp-source (apt-get install postfix): %w", err)
	}
	msgs, total, err := loadCorpus(corpus)
	if err != nil {
		return err
	}
	if len(msgs) == 0 {
		return fmt.Errorf("no .eml files under %s", corpus)
	}
	fmt.Printf("floor: %d CPUs, load average before: %s; corpus %s: %d messages, %.1f MB\n\n",
		runtime.NumCPU(), loadAvg(), corpus, len(msgs), float64(total)/1e6)

	type row struct {
		load, receiver string
		rates, busy    []float64
	}
	var rows []*row
	get := func(load, receiver string) *row {
		for _, r := range rows {
			if r.load == load && r.receiver == receiver {
				return r
			}
		}
		r := &row{load: load, receiver: receiver}
		rows = append(rows, r)
		return r
	}
	smtpLoad := fmt.Sprintf("SMTP: smtp-source -s %d -m %d -l %d", *sessions, *messages, *size)
	apiLoad := fmt.Sprintf("HTTP API: %d clients, corpus (%d msgs)", clients, len(msgs))
	for round := 0; round < *rounds; round++ {
		for _, receiver := range []string{"receive", "fsync", "durable", "mailarc"} {
			for _, load := range []string{smtpLoad, apiLoad} {
				rate, busy, err := floorRun(bin, receiver, load == smtpLoad, func(smtpAddr, httpAddr, password string) (int, float64, error) {
					if load == smtpLoad {
						st, err := runSMTPSource(*source, smtpAddr, *messages, *size, *sessions)
						return st.messages, st.seconds, err
					}
					_, el, err := postAll(httpAddr, password, msgs, clients, clientNetHTTP)
					return len(msgs), el, err
				})
				if err != nil {
					return fmt.Errorf("%s, %s: %w", load, receiver, err)
				}
				r := get(load, receiver)
				r.rates = append(r.rates, rate)
				r.busy = append(r.busy, busy)
				fmt.Fprintf(os.Stderr, "round %d %s %s: %.0f msgs/s, machine CPU %.0f%%\n", round+1, receiver, load, rate, busy)
			}
		}
	}
	fmt.Println("| load | receiver | msgs/s per round | median | machine CPU busy (median) |")
	fmt.Println("|---|---|---|---|---|")
	for _, r := range rows {
		var rs []string
		for _, v := range r.rates {
			rs = append(rs, strconv.FormatFloat(v, 'f', 0, 64))
		}
		fmt.Printf("| %s | %s | %s | **%.0f** | %.0f%% |\n", r.load, r.receiver, strings.Join(rs, ", "), median(r.rates), median(r.busy))
	}
	fmt.Printf("\nload average after: %s. receive: read the message, answer. fsync: also append 32 bytes\n"+
		"to one file and fsync once per group of concurrent messages before answering. durable: the same\n"+
		"with the message's raw bytes.\n"+
		"mailarc: `mailarc serve` on a fresh data directory (indexer included).\n", loadAvg())
	return nil
}

// floorRun starts one receiver, runs load against it and returns msgs/s
// and the machine's CPU busy percentage (of all CPUs) during the load.
func floorRun(bin, receiver string, smtpLoad bool, load func(smtpAddr, httpAddr, password string) (int, float64, error)) (float64, float64, error) {
	tmp, err := os.MkdirTemp("", "mailarc-bench-floor")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(tmp)
	var smtpAddr, httpAddr, password string
	switch receiver {
	case "mailarc":
		s, err := startServer(bin, tmp)
		if err != nil {
			return 0, 0, err
		}
		defer s.stop()
		smtpAddr, httpAddr, password = s.smtp, s.http, benchPassword
	default:
		f, err := newFloorServer(filepath.Join(tmp, "spool"), receiver)
		if err != nil {
			return 0, 0, err
		}
		defer f.close()
		smtpAddr, httpAddr = f.smtpAddr, f.httpAddr
	}
	busy0, total0, err := procStat()
	if err != nil {
		return 0, 0, err
	}
	n, secs, err := load(smtpAddr, httpAddr, password)
	if err != nil {
		return 0, 0, err
	}
	busy1, total1, err := procStat()
	if err != nil {
		return 0, 0, err
	}
	return float64(n) / secs, 100 * float64(busy1-busy0) / float64(total1-total0), nil
}

// procStat returns the busy and total jiffies of all CPUs.
func procStat() (busy, total int64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, 0, fmt.Errorf("unexpected /proc/stat line %q", line)
	}
	for i, s := range f[1:] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/stat: %w", err)
		}
		total += v
		if i != 3 && i != 4 { // idle, iowait
			busy += v
		}
	}
	return busy, total, nil
}

// floorServer is the receiver with nothing but reading (and, if durable,
// a group-committed append): go-smtp on one port, net/http on another.
type floorServer struct {
	smtpAddr, httpAddr string
	smtp               *gosmtp.Server
	http               *http.Server
	spool              *groupAppender // nil for receive
	tokenOnly          bool           // fsync: append 32 bytes, not the message
}

func newFloorServer(spoolPath, receiver string) (*floorServer, error) {
	f := &floorServer{tokenOnly: receiver == "fsync"}
	if receiver != "receive" {
		g, err := newGroupAppender(spoolPath)
		if err != nil {
			return nil, err
		}
		f.spool = g
	}
	sl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		sl.Close()
		return nil, err
	}
	f.smtpAddr, f.httpAddr = sl.Addr().String(), hl.Addr().String()
	f.smtp = gosmtp.NewServer(floorBackend{f})
	f.smtp.Domain = "floor.example"
	f.smtp.MaxMessageBytes = 100 << 20
	f.smtp.ReadTimeout = time.Minute
	f.smtp.WriteTimeout = time.Minute
	f.http = &http.Server{Handler: http.HandlerFunc(f.serveHTTP), ReadHeaderTimeout: time.Minute}
	go func() { _ = f.smtp.Serve(sl) }()
	go func() { _ = f.http.Serve(hl) }()
	return f, nil
}

func (f *floorServer) take(r io.Reader) error {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		return err
	}
	switch {
	case f.spool == nil:
		return nil
	case f.tokenOnly:
		return f.spool.append(bytes.Repeat([]byte{'.'}, 32))
	default:
		return f.spool.append(buf.Bytes())
	}
}

func (f *floorServer) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if err := f.take(r.Body); err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusCreated)
}

func (f *floorServer) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = f.smtp.Shutdown(ctx)
	_ = f.http.Shutdown(ctx)
	if f.spool != nil {
		f.spool.close()
	}
}

type floorBackend struct{ f *floorServer }

func (b floorBackend) NewSession(*gosmtp.Conn) (gosmtp.Session, error) {
	return floorSession(b), nil
}

type floorSession struct{ f *floorServer }

func (floorSession) Reset()                                 {}
func (floorSession) Logout() error                          { return nil }
func (floorSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (floorSession) Rcpt(string, *gosmtp.RcptOptions) error { return nil }
func (s floorSession) Data(r io.Reader) error               { return s.f.take(r) }

// groupAppender appends each message to one file; a single writer takes
// every message waiting, writes them and fsyncs once for the group.
type groupAppender struct {
	file *os.File
	reqs chan appendReq
	done chan struct{}
}

type appendReq struct {
	data []byte
	resp chan error
}

func newGroupAppender(path string) (*groupAppender, error) {
	file, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	g := &groupAppender{file: file, reqs: make(chan appendReq, 4096), done: make(chan struct{})}
	go g.loop()
	return g, nil
}

func (g *groupAppender) append(b []byte) error {
	r := appendReq{data: b, resp: make(chan error, 1)}
	g.reqs <- r
	return <-r.resp
}

func (g *groupAppender) loop() {
	defer close(g.done)
	for first := range g.reqs {
		group := []appendReq{first}
	gather:
		for len(group) < 512 {
			select {
			case r, ok := <-g.reqs:
				if !ok {
					break gather
				}
				group = append(group, r)
			default:
				break gather
			}
		}
		var err error
		for _, r := range group {
			if _, werr := g.file.Write(r.data); werr != nil {
				err = errors.Join(err, werr)
			}
		}
		if serr := g.file.Sync(); serr != nil {
			err = errors.Join(err, serr)
		}
		for _, r := range group {
			r.resp <- err
		}
	}
}

func (g *groupAppender) close() {
	close(g.reqs)
	<-g.done
	g.file.Close()
}
