package main

// Search latency of `mailarc-bench scale`, cold and warm. The paths:
//
//   - "HTTP": GET /api/v1/search?limit=50&q=... against `mailarc serve`
//     (basic auth, snippets built, total counted, audit record written),
//     what a user of the API or web UI waits for;
//   - "HTTP, snippets=false": the same without snippets;
//   - "in-process": index.SQLite.Search (Limit 50, CountTotal) in this
//     process, the index alone;
//   - "notmuch": `notmuch search --output=messages --sort=newest-first
//     --limit=50` (a process spawn per query, as notmuch users run it).
//
// Cold: every sample of every query on every path is separate. HTTP: the
// page cache is dropped (sync; echo 3 > /proc/sys/vm/drop_caches), a fresh
// `mailarc serve` is started (its start-up time is reported), one
// authenticated GET /api/v1/tokens logs in (argon2id verification is tens
// of milliseconds by design and cached per password afterwards; it is not
// search latency), the page cache is dropped again, and the query's first
// execution is timed. In-process: the index is opened anew, the page cache
// dropped, the first search timed. notmuch: the page cache is dropped and
// one `notmuch search` process timed. Warm: one serve, 3 warm-up calls per
// query and path, then -iters timed calls.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/query"
)

// lat3 is a latency distribution summary in milliseconds.
type lat3 struct {
	p50, p95, p99 float64
	n             int
}

func summarize(d []time.Duration) lat3 {
	if len(d) == 0 {
		return lat3{}
	}
	return lat3{pct(d, 50), pct(d, 95), pct(d, 99), len(d)}
}

func (l lat3) String() string {
	if l.n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f / %.1f / %.1f", l.p50, l.p95, l.p99)
}

// Search paths, in column order.
const (
	pathHTTP    = "HTTP"
	pathHTTPNoS = "HTTP, snippets=false"
	pathInProc  = "in-process"
	pathNM      = "notmuch search"
)

// samples holds latencies by path and query name.
type samples map[string]map[string][]time.Duration

func (s samples) add(path, q string, d ...time.Duration) {
	if s[path] == nil {
		s[path] = map[string][]time.Duration{}
	}
	s[path][q] = append(s[path][q], d...)
}

// search picks the query mix from the index and measures it cold and warm.
// nmCfg is the notmuch config, "" when notmuch is not compared at this N.
func (s *scaleBench) search(ctx context.Context, data, nmCfg string, r *scaleResult) error {
	s.mark("query mix (index vocabulary, corpus parse)")
	qs, err := s.pickQueries(ctx, filepath.Join(data, "index.db"))
	if err != nil {
		return fmt.Errorf("query mix: %w", err)
	}
	r.queries = qs
	ix, err := index.OpenSQLiteDir(data)
	if err != nil {
		return err
	}
	defer ix.Close()
	parsed := map[string]*query.Query{}
	totals := map[string]int{}
	for _, q := range qs {
		pq, err := query.Parse(q.mailarc)
		if err != nil {
			return fmt.Errorf("%s: %w", q.mailarc, err)
		}
		parsed[q.name] = pq
		res, err := ix.Search(ctx, pq, index.Options{Limit: 50, CountTotal: true})
		if err != nil {
			return fmt.Errorf("search %s: %w", q.mailarc, err)
		}
		totals[q.name] = res.Total
	}
	fmt.Println("Query mix (words chosen from this index's vocabulary by document frequency):")
	fmt.Println()
	fmt.Println("| query | mailarc | notmuch | matches |")
	fmt.Println("|---|---|---|---|")
	for _, q := range qs {
		mq := "`" + q.mailarc + "`"
		if q.mailarc == "" {
			mq = "(empty query)"
		}
		fmt.Printf("| %s | %s | `%s` | %d |\n", q.name, mq, q.notmuch, totals[q.name])
	}
	fmt.Println()
	paths := []string{pathHTTP, pathHTTPNoS, pathInProc}
	if nmCfg != "" {
		paths = append(paths, pathNM)
	}

	cold := samples{}
	var startups []time.Duration
	var coldHWM int64
	if s.coldErr != nil {
		fmt.Printf("**Cold latency not measurable**: dropping the page cache failed (%v); run as root on a host that allows writing /proc/sys/vm/drop_caches.\n\n", s.coldErr)
	} else if s.cold > 0 {
		ld := s.begin("cold search")
		fmt.Fprintf(os.Stderr, "cold searches: %d samples x %d queries x %d paths\n", s.cold, len(qs), len(paths))
		for i := 0; i < s.cold; i++ {
			for _, q := range qs {
				for _, p := range paths {
					d, up, hwm, err := s.coldOne(ctx, p, data, nmCfg, q, parsed[q.name])
					if err != nil {
						return fmt.Errorf("cold %s %q: %w", p, q.mailarc, err)
					}
					cold.add(p, q.name, d)
					fmt.Fprintf(os.Stderr, "cold %d/%d %s %q: %.1f ms\n", i+1, s.cold, p, q.mailarc, ms(d))
					if up > 0 {
						startups = append(startups, up)
					}
					coldHWM = max(coldHWM, hwm)
				}
			}
		}
		r.coldHTTP = map[string]lat3{}
		for _, q := range qs {
			r.coldHTTP[q.name] = summarize(cold[pathHTTP][q.name])
		}
		fmt.Printf("Cold latency in ms, p50 / p95 / p99 (nearest rank over %d samples; with fewer than 20 samples p95 and p99 are the maximum). Every sample ran that one query once with the page cache just dropped, in a freshly started `mailarc serve` that had only answered one login request (HTTP), a freshly opened index (in-process) or a new notmuch process. Load (1 min) at the start: %s.\n\n", s.cold, ld)
		latTable(qs, paths, cold, totals)
		su := summarize(startups)
		fmt.Printf("`mailarc serve` start after dropping the page cache (exec to /readyz answering): p50 %.0f ms, max %.0f ms; peak RSS (VmHWM) of those serves: %.0f MiB.\n\n", su.p50, su.p99, float64(coldHWM)/1024)
	}

	ld := s.begin("warm search")
	warm := samples{}
	srv, err := startServeProc(ctx, s.bin, data)
	if err != nil {
		return err
	}
	defer srv.stop()
	for _, q := range qs {
		for _, p := range paths {
			lat, err := timeN(s.itersFor(p), s.searchFunc(ctx, p, srv.base, nmCfg, q, ix, parsed[q.name]))
			if err != nil {
				return fmt.Errorf("warm %s %q: %w", p, q.mailarc, err)
			}
			warm.add(p, q.name, lat...)
		}
	}
	hwm, rss := srv.memory()
	r.serveHWM = hwm
	if err := srv.stop(); err != nil {
		return err
	}
	r.warmHTTP = map[string]lat3{}
	for _, q := range qs {
		r.warmHTTP[q.name] = summarize(warm[pathHTTP][q.name])
	}
	fmt.Printf("Warm latency in ms, p50 / p95 / p99 (%d sequential searches per query and path after 3 warm-up calls; %d for notmuch). Load (1 min) at the start: %s.\n\n", s.iters, s.nmIters, ld)
	latTable(qs, paths, warm, totals)
	fmt.Printf("Peak RSS of `mailarc serve` after all warm searches: **VmHWM %.0f MiB** (VmRSS now %.0f MiB).\n\n", float64(hwm)/1024, float64(rss)/1024)
	return nil
}

func (s *scaleBench) itersFor(path string) int {
	if path == pathNM {
		return s.nmIters
	}
	return s.iters
}

func latTable(qs []benchQuery, paths []string, smp samples, totals map[string]int) {
	fmt.Printf("| query | matches | %s |\n", strings.Join(paths, " | "))
	fmt.Printf("|---|---|%s\n", strings.Repeat("---|", len(paths)))
	for _, q := range qs {
		cells := make([]string, len(paths))
		for i, p := range paths {
			cells[i] = summarize(smp[p][q.name]).String()
		}
		fmt.Printf("| %s | %d | %s |\n", q.name, totals[q.name], strings.Join(cells, " | "))
	}
	fmt.Println()
}

// searchFunc returns one execution of q on path p.
func (s *scaleBench) searchFunc(ctx context.Context, p, base, nmCfg string, q benchQuery, ix index.Index, pq *query.Query) func() error {
	switch p {
	case pathHTTP, pathHTTPNoS:
		u := base + "/api/v1/search?limit=50&q=" + url.QueryEscape(q.mailarc)
		if p == pathHTTPNoS {
			u += "&snippets=false"
		}
		return func() error { return httpGet(u) }
	case pathInProc:
		return func() error {
			_, err := ix.Search(ctx, pq, index.Options{Limit: 50, CountTotal: true})
			return err
		}
	default:
		return func() error {
			out, err := s.nm(ctx, nmCfg, "search", "--output=messages", "--sort=newest-first", "--limit=50", q.notmuch)
			if err != nil {
				return fmt.Errorf("notmuch search: %w: %s", err, tail(out))
			}
			return nil
		}
	}
}

// coldOne takes one cold sample of q on path p as described at the top of
// this file, and returns the query's latency, the serve start-up time after
// dropping the page cache and the serve's VmHWM (both 0 without a serve).
func (s *scaleBench) coldOne(ctx context.Context, p, data, nmCfg string, q benchQuery, pq *query.Query) (time.Duration, time.Duration, int64, error) {
	switch p {
	case pathHTTP, pathHTTPNoS:
		if err := dropCaches(ctx); err != nil {
			return 0, 0, 0, err
		}
		t0 := time.Now()
		srv, err := startServeProc(ctx, s.bin, data)
		if err != nil {
			return 0, 0, 0, err
		}
		up := time.Since(t0)
		defer srv.stop()
		if err := httpGet(srv.base + "/api/v1/tokens"); err != nil {
			return 0, 0, 0, fmt.Errorf("login: %w", err)
		}
		if err := dropCaches(ctx); err != nil {
			return 0, 0, 0, err
		}
		f := s.searchFunc(ctx, p, srv.base, nmCfg, q, nil, pq)
		t1 := time.Now()
		err = f()
		d := time.Since(t1)
		hwm, _ := srv.memory()
		if serr := srv.stop(); err == nil {
			err = serr
		}
		return d, up, hwm, err
	case pathInProc:
		ix, err := index.OpenSQLiteDir(data)
		if err != nil {
			return 0, 0, 0, err
		}
		defer ix.Close()
		if err := dropCaches(ctx); err != nil {
			return 0, 0, 0, err
		}
		t0 := time.Now()
		_, err = ix.Search(ctx, pq, index.Options{Limit: 50, CountTotal: true})
		return time.Since(t0), 0, 0, err
	default:
		if err := dropCaches(ctx); err != nil {
			return 0, 0, 0, err
		}
		t0 := time.Now()
		err := s.searchFunc(ctx, p, "", nmCfg, q, nil, pq)()
		return time.Since(t0), 0, 0, err
	}
}

// dropCaches writes back dirty pages and drops the page, dentry and inode
// caches (needs root).
func dropCaches(ctx context.Context) error {
	if err := exec.CommandContext(ctx, "sync").Run(); err != nil {
		return fmt.Errorf("sync: %w", err)
	}
	if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0); err != nil {
		return fmt.Errorf("drop caches: %w", err)
	}
	return nil
}

// serveProc is a running `mailarc serve`.
type serveProc struct {
	cmd  *exec.Cmd
	base string
	log  *bytes.Buffer
	done chan error
}

// startServeProc starts `mailarc serve` on data (HTTP on a free port, no
// SMTP) and returns once /readyz answers.
func startServeProc(ctx context.Context, bin, data string) (*serveProc, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.CommandContext(ctx, bin, "serve", "--data", data)
	cmd.Env = append(os.Environ(), "MAILARC_ADMIN_PASSWORD=bench-password", "MAILARC_HTTP_LISTEN="+addr, "MAILARC_SMTP_LISTEN=")
	p := &serveProc{cmd: cmd, base: "http://" + addr, log: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = p.log, p.log // one writer: exec copies both through one goroutine
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start serve: %w", err)
	}
	done := p.done
	go func() { done <- cmd.Wait() }()
	if err := waitReady(p.base + "/readyz"); err != nil {
		_ = p.stop()
		return nil, fmt.Errorf("%w\n%s", err, p.log.String())
	}
	return p, nil
}

// memory returns VmHWM and VmRSS of the process in KiB.
func (p *serveProc) memory() (hwm, rss int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmHWM":
			hwm = n
		case "VmRSS":
			rss = n
		}
	}
	return hwm, rss
}

// stop sends SIGTERM, waits up to 60 s for a clean exit, then kills.
// Calling it again is a no-op.
func (p *serveProc) stop() error {
	if p.done == nil {
		return nil
	}
	done := p.done
	p.done = nil
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-done:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			return fmt.Errorf("serve: %w", err)
		}
		return nil
	case <-time.After(60 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
		return fmt.Errorf("serve did not stop within 60 s of SIGTERM; killed")
	}
}
