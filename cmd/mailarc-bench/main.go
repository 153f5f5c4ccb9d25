// Command mailarc-bench measures a built mailarc binary on a corpus and
// prints Markdown rows for docs/benchmarks.md. It drives real processes:
// `mailarc import` on a fresh data directory, and `mailarc serve` loaded by
// concurrent HTTP API clients.
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
	"io"
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

	// 2. HTTP API, concurrent clients, against `mailarc serve`.
	port, err := freePort()
	if err != nil {
		return err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	srv := exec.Command(bin, "serve", "--data", filepath.Join(tmp, "api"))
	srv.Env = append(os.Environ(), "MAILARC_ADMIN_PASSWORD=bench-password", "MAILARC_HTTP_LISTEN="+addr, "MAILARC_SMTP_LISTEN=")
	var slog bytes.Buffer
	srv.Stdout, srv.Stderr = &slog, &slog
	if err := srv.Start(); err != nil {
		return err
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	if err := waitReady("http://" + addr + "/readyz"); err != nil {
		return fmt.Errorf("%v\n%s", err, slog.String())
	}
	serveCPU0, clientCPU0 := processCPU(srv.Process.Pid), processCPU(os.Getpid())
	lat, el, err := postAll(addr, "bench-password", msgs, clients)
	if err != nil {
		return err
	}
	serveCPU, clientCPU := processCPU(srv.Process.Pid)-serveCPU0, processCPU(os.Getpid())-clientCPU0
	fmt.Printf("| HTTP API, %d clients (`mailarc serve`, indexer running) | %d | %.2f | %.0f | %.1f |\n", clients, len(msgs), el, float64(len(msgs))/el, float64(total)/1e6/el)
	fmt.Printf("\nAPI acknowledgement latency: p50 %.1f ms, p99 %.1f ms\n", ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100]))
	// CPU per message is steadier than throughput on a shared machine: it
	// moves with the work done, less with what else runs.
	perMsg := func(sec float64) float64 { return sec * 1000 / float64(len(msgs)) }
	fmt.Printf("CPU per message: import %.3f ms; serve %.3f ms while posting (the %d clients: %.3f ms)\n",
		perMsg(importCPU.Seconds()), perMsg(serveCPU), clients, perMsg(clientCPU))
	return nil
}

// postAll posts every message to addr's API with clients concurrent
// clients, as admin with password, and returns the sorted acknowledgement
// latencies and the elapsed seconds. Any refused or failed post is an error.
func postAll(addr, password string, msgs [][]byte, clients int) ([]time.Duration, float64, error) {
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	var next, failed atomic.Int64
	lat := make([]time.Duration, len(msgs))
	var wg sync.WaitGroup
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= len(msgs) {
					return
				}
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(context.Background(), "POST", "http://"+addr+"/api/v1/messages", bytes.NewReader(msgs[i]))
				req.SetBasicAuth("admin", password)
				resp, err := hc.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 201 && resp.StatusCode != 200 {
					failed.Add(1)
				}
				lat[i] = time.Since(t0)
			}
		}()
	}
	wg.Wait()
	el := time.Since(start).Seconds()
	if n := failed.Load(); n > 0 {
		return nil, el, fmt.Errorf("%d API ingests failed", n)
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
