// Command mailarc-bench measures a built mailarc binary on a corpus and
// prints Markdown rows for docs/benchmarks.md. It drives real processes:
// `mailarc import` on a fresh data directory, and `mailarc serve` loaded by
// concurrent HTTP API clients (ingest runs it twice: with net/http's client
// and with a lean HTTP/1.1 one, leanclient.go).
//
//	go run ./cmd/mailarc-bench -bin bin/mailarc -corpus ../shared/corpus/real ingest
//	go run ./cmd/mailarc-bench -bin bin/mailarc -corpus ../shared/corpus/real smtp [-messages 10000 -size 102400 -sessions 20]
//	go run ./cmd/mailarc-bench -bin bin/mailarc -corpus ../shared/corpus/real floor [-rounds 3]
//	go run -tags sqlite_fts5 ./cmd/mailarc-bench -bin bin/mailarc -corpus ../shared/corpus/real scale -n 100000,1000000 -work /var/tmp/scale -keep
//
// The index and scale benchmarks search the index in-process too, so build
// mailarc-bench with -tags sqlite_fts5. scale (scale.go) is the issue #10
// harness: import, reindex, disk per raw byte, cold and warm search latency
// and peak RSS at each archive size, notmuch side by side, targets marked.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

func main() {
	bin := flag.String("bin", "bin/mailarc", "mailarc binary to measure")
	corpus := flag.String("corpus", "../shared/corpus/real", "directory of .eml files")
	clients := flag.Int("clients", 16, "concurrent API clients")
	flag.Parse()
	what := flag.Arg(0)
	if what == "" {
		what = "ingest"
	}
	var err error
	switch what {
	case "ingest":
		err = benchIngest(*bin, *corpus, *clients)
	case "smtp":
		err = benchSMTP(*bin, *corpus, flag.Args()[1:])
	case "mirror":
		err = benchMirror(*bin, *corpus, flag.Args()[1:])
	case "backends":
		err = benchBackends(*bin, *corpus, flag.Args()[1:])
	case "index", "amplify":
		err = benchIndex(what, *bin, *corpus, flag.Args()[1:])
	case "scale":
		err = runScale(*bin, *corpus, flag.Args()[1:])
	case "floor":
		err = benchFloor(*bin, *corpus, *clients, flag.Args()[1:])
	default:
		err = fmt.Errorf("unknown benchmark %q (want ingest, smtp, mirror, index, amplify, scale, floor or backends)", what)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "mailarc-bench:", err)
		os.Exit(1)
	}
}

func loadCorpus(dir string) ([][]byte, int64, error) {
	var msgs [][]byte
	var total int64
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() || !strings.HasSuffix(p, ".eml") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil || len(b) == 0 {
			return err
		}
		msgs = append(msgs, b)
		total += int64(len(b))
		return nil
	})
	return msgs, total, err
}

func benchIngest(bin, corpus string, clients int) error {
	msgs, total, err := loadCorpus(corpus)
	if err != nil {
		return err
	}
	fmt.Printf("corpus %s: %d messages, %.1f MB; %d CPUs\n\n", corpus, len(msgs), float64(total)/1e6, runtime.NumCPU())
	fmt.Println("| path | messages | seconds | msgs/s | MB/s |")
	fmt.Println("|---|---|---|---|---|")

	// 1. mailarc import on a fresh data directory.
	tmp, err := os.MkdirTemp("", "mailarc-bench")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	start := time.Now()
	cmd := exec.Command(bin, "import", "--data", filepath.Join(tmp, "import"), corpus)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("import: %v\n%s", err, out)
	}
	el := time.Since(start).Seconds()
	importCPU := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	fmt.Printf("| `mailarc import` (files, 16 workers) | %d | %.2f | %.0f | %.1f |\n", len(msgs), el, float64(len(msgs))/el, float64(total)/1e6/el)

	// 2. HTTP API, concurrent clients, against `mailarc serve`: once with
	// each kind of client (leanclient.go), each on a fresh data directory.
	perMsg := func(sec float64) float64 { return sec * 1000 / float64(len(msgs)) }
	var cpu []string
	for _, kind := range []string{clientNetHTTP, clientLean} {
		r, err := benchAPI(bin, filepath.Join(tmp, "api-"+strings.ReplaceAll(kind, "/", "")), msgs, clients, kind)
		if err != nil {
			return fmt.Errorf("API with the %s client: %w", kind, err)
		}
		fmt.Printf("| HTTP API, %d %s clients (`mailarc serve`, indexer running) | %d | %.2f | %.0f | %.1f |\n",
			clients, kind, len(msgs), r.elapsed, float64(len(msgs))/r.elapsed, float64(total)/1e6/r.elapsed)
		cpu = append(cpu, fmt.Sprintf("%s clients: ack p50 %.1f ms, p99 %.1f ms; serve %.3f ms of CPU per message while posting, the clients %.3f ms",
			kind, ms(r.lat[len(r.lat)/2]), ms(r.lat[len(r.lat)*99/100]), perMsg(r.serveCPU), perMsg(r.clientCPU)))
	}
	// CPU per message is steadier than throughput on a shared machine: it
	// moves with the work done, less with what else runs.
	fmt.Printf("\nCPU per message: import %.3f ms\n", perMsg(importCPU.Seconds()))
	for _, line := range cpu {
		fmt.Println(line)
	}
	return nil
}

// apiRun is one API benchmark run: sorted acknowledgement latencies,
// elapsed seconds, and the CPU seconds `serve` and this process used
// while posting.
type apiRun struct {
	lat                 []time.Duration
	elapsed             float64
	serveCPU, clientCPU float64
}

// benchAPI starts `bin serve` on a fresh data directory dir and posts
// every message with clients concurrent clients of kind.
func benchAPI(bin, dir string, msgs [][]byte, clients int, kind string) (apiRun, error) {
	port, err := freePort()
	if err != nil {
		return apiRun{}, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	srv := exec.Command(bin, "serve", "--data", dir)
	srv.Env = append(os.Environ(), "MAILARC_ADMIN_PASSWORD=bench-password", "MAILARC_HTTP_LISTEN="+addr, "MAILARC_SMTP_LISTEN=")
	var slog bytes.Buffer
	srv.Stdout, srv.Stderr = &slog, &slog
	if err := srv.Start(); err != nil {
		return apiRun{}, err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	if err := waitReady("http://" + addr + "/readyz"); err != nil {
		return apiRun{}, fmt.Errorf("%v\n%s", err, slog.String())
	}
	serveCPU0, clientCPU0 := processCPU(srv.Process.Pid), processCPU(os.Getpid())
	lat, el, err := postAll(addr, "bench-password", msgs, clients, kind)
	if err != nil {
		return apiRun{}, err
	}
	return apiRun{lat: lat, elapsed: el,
		serveCPU:  processCPU(srv.Process.Pid) - serveCPU0,
		clientCPU: processCPU(os.Getpid()) - clientCPU0}, nil
}

// postAll posts every message to addr's API with clients concurrent
// clients of kind (clientLean or clientNetHTTP), as admin with password,
// and returns the sorted acknowledgement latencies and the elapsed seconds.
// Any refused or failed post is an error.
func postAll(addr, password string, msgs [][]byte, clients int, kind string) ([]time.Duration, float64, error) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer hc.CloseIdleConnections()
	posters := make([]poster, clients)
	for i := range posters {
		p, err := newPoster(kind, addr, password, hc)
		if err != nil {
			return nil, 0, err
		}
		posters[i] = p
		defer p.close()
	}
	var next, failed atomic.Int64
	// The first failure, reported with the count (errors of several
	// concrete types arrive, which atomic.Value cannot hold in turn).
	var firstErr error
	var recordErr sync.Once
	lat := make([]time.Duration, len(msgs))
	var wg sync.WaitGroup
	start := time.Now()
	for _, p := range posters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(msgs) {
					return
				}
				t0 := time.Now()
				status, err := p.post(context.Background(), msgs[i])
				if err == nil && status != http.StatusCreated && status != http.StatusOK {
					err = fmt.Errorf("message %d: HTTP status %d", i, status)
				}
				if err != nil {
					failed.Add(1)
					recordErr.Do(func() { firstErr = err })
					continue
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	if n := failed.Load(); n > 0 {
		return nil, el, fmt.Errorf("%d API ingests failed, the first: %v", n, firstErr)
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	return lat, el, nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func waitReady(url string) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("server not ready at %s", url)
}
