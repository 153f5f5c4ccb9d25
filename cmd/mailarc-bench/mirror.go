package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// benchMirror measures mirroring between two local nodes: the drain rate of
// a backlog built while the peer was down, and the lag from acknowledgement
// on A to searchable on B at a steady ingest rate.
func benchMirror(bin, corpus string, args []string) error {
	fs := flag.NewFlagSet("mirror", flag.ContinueOnError)
	backlog := fs.Int("backlog", 20000, "messages ingested on A while B is down")
	rate := fs.Int("rate", 200, "steady ingest rate on A for the lag measurement (msgs/s)")
	dur := fs.Duration("duration", 30*time.Second, "length of the steady-rate phase")
	if err := fs.Parse(args); err != nil {
		return err
	}
	msgs, _, err := loadCorpus(corpus)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mailarc-bench-mirror")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	secret := filepath.Join(tmp, "secret")
	if err := os.WriteFile(secret, []byte("bench-shared-secret-0123456789\n"), 0o600); err != nil {
		return err
	}
	type node struct {
		name, dir, http string
		mirror          int
		cmd             *exec.Cmd
		log             bytes.Buffer
	}
	mk := func(name string) (*node, error) {
		hp, err := freePort()
		if err != nil {
			return nil, err
		}
		mp, err := freePort()
		if err != nil {
			return nil, err
		}
		return &node{name: name, dir: filepath.Join(tmp, name), http: fmt.Sprintf("127.0.0.1:%d", hp), mirror: mp}, nil
	}
	a, err := mk("arc-a")
	if err != nil {
		return err
	}
	b, err := mk("arc-b")
	if err != nil {
		return err
	}
	writeCfg := func(n, peer *node) (string, error) {
		cfg := fmt.Sprintf("node_name = %q\ndata_dir = %q\n[http]\nlisten = %q\n[smtp]\nlisten = []\n[mirror]\nlisten = \"127.0.0.1:%d\"\nshared_secret_file = %q\n[[mirror.peers]]\nname = %q\nurl = \"https://127.0.0.1:%d\"\n",
			n.name, n.dir, n.http, n.mirror, secret, peer.name, peer.mirror)
		p := filepath.Join(tmp, n.name+".toml")
		return p, os.WriteFile(p, []byte(cfg), 0o600)
	}
	start := func(n, peer *node) error {
		cfgPath, err := writeCfg(n, peer)
		if err != nil {
			return err
		}
		n.log.Reset()
		n.cmd = exec.Command(bin, "serve", "--config", cfgPath)
		n.cmd.Env = append(os.Environ(), "MAILARC_ADMIN_PASSWORD=bench-password")
		n.cmd.Stdout, n.cmd.Stderr = &n.log, &n.log
		if err := n.cmd.Start(); err != nil {
			return err
		}
		if err := waitReady("http://" + n.http + "/readyz"); err != nil {
			return fmt.Errorf("%s: %v\n%s", n.name, err, n.log.String())
		}
		return nil
	}
	stop := func(n *node) {
		if n.cmd != nil && n.cmd.Process != nil {
			_ = n.cmd.Process.Kill()
			_ = n.cmd.Wait()
		}
	}
	defer stop(a)
	defer stop(b)
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	call := func(method, url string, body []byte, out any) error {
		req, err := http.NewRequestWithContext(context.Background(), method, url, bytes.NewReader(body))
		if err != nil {
			return err
		}
		req.SetBasicAuth("admin", "bench-password")
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode >= 300 {
			b, _ := io.ReadAll(resp.Body)
			return fmt.Errorf("%s %s: %d %s", method, url, resp.StatusCode, b)
		}
		if out != nil {
			return json.NewDecoder(resp.Body).Decode(out)
		}
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	// unique makes message i distinct (a header line), keeping real sizes.
	unique := func(tag string, i int) []byte {
		m := msgs[i%len(msgs)]
		return append([]byte(fmt.Sprintf("X-Bench: %s-%d\r\n", tag, i)), m...)
	}
	if err := start(a, b); err != nil {
		return err
	}

	// Phase 1: backlog on A while B is down (also the single-node ingest
	// rate of the same run, 16 API clients, for the ratio).
	t00 := time.Now()
	var next atomic.Int64
	var bytesTotal atomic.Int64
	var wg sync.WaitGroup
	var firstErr atomic.Value
	for c := 0; c < 16; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= *backlog {
					return
				}
				m := unique("backlog", i)
				if err := call("POST", "http://"+a.http+"/api/v1/messages", m, nil); err != nil {
					firstErr.CompareAndSwap(nil, err)
					return
				}
				bytesTotal.Add(int64(len(m)))
			}
		}()
	}
	wg.Wait()
	if e := firstErr.Load(); e != nil {
		return e.(error)
	}
	ingestRate := float64(*backlog) / time.Since(t00).Seconds()
	fmt.Printf("mirror benchmark: corpus %s, backlog %d messages (%.1f MB) on arc-a\n\n", corpus, *backlog, float64(bytesTotal.Load())/1e6)

	type status struct {
		Counts struct{ Archived int64 }
		Peers  []struct {
			Name   string
			State  string
			Queued int64
		}
	}
	queued := func(n *node, peer string) (int64, string) {
		var st status
		if err := call("GET", "http://"+n.http+"/api/v1/status", nil, &st); err != nil {
			return -1, err.Error()
		}
		for _, p := range st.Peers {
			if p.Name == peer {
				return p.Queued, p.State
			}
		}
		return -1, "no such peer"
	}
	t0 := time.Now()
	if err := start(b, a); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Minute)
	for {
		q, state := queued(a, b.name)
		var st status
		_ = call("GET", "http://"+b.http+"/api/v1/status", nil, &st)
		if q == 0 && st.Counts.Archived >= int64(*backlog) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("backlog did not drain: queued %d (%s), arc-b holds %d", q, state, st.Counts.Archived)
		}
		time.Sleep(100 * time.Millisecond)
	}
	el := time.Since(t0).Seconds()
	fmt.Println("| measurement | result |")
	fmt.Println("|---|---|")
	fmt.Printf("| single-node ingest on arc-a building the backlog (16 API clients, B down) | **%.0f msgs/s** |\n", ingestRate)
	fmt.Printf("| drain of a %d-message backlog (B started → A's queue for B is 0 and B holds all; includes B's start) | %.1f s, **%.0f msgs/s**, %.1f MB/s |\n",
		*backlog, el, float64(*backlog)/el, float64(bytesTotal.Load())/1e6/el)
	fmt.Printf("| drain rate / single-node ingest rate | **%.0f%%** |\n", 100*float64(*backlog)/el/ingestRate)

	// B indexes the backlog after storing it; the steady-state lag is
	// measured once that is done.
	t1 := time.Now()
	for {
		var st struct {
			Index struct {
				LagMessages int64 `json:"lag_messages"`
			}
		}
		if err := call("GET", "http://"+b.http+"/api/v1/status", nil, &st); err == nil && st.Index.LagMessages == 0 {
			break
		}
		if time.Since(t1) > 20*time.Minute {
			return fmt.Errorf("arc-b did not finish indexing the backlog")
		}
		time.Sleep(100 * time.Millisecond)
	}
	fmt.Printf("| arc-b indexing the drained backlog after it was stored | %.1f s more |\n", time.Since(t1).Seconds())

	// Phase 2: steady rate on A; time from A's acknowledgement until the
	// message is found by search on B.
	type sample struct {
		acked time.Time
		found time.Time
	}
	var mu sync.Mutex
	samples := map[string]*sample{}
	token := fmt.Sprintf("lagrun%d", time.Now().UnixNano()%1e9)
	done := make(chan struct{})
	var pw sync.WaitGroup
	pw.Add(1)
	go func() { // poller on B
		defer pw.Done()
		for {
			var res struct {
				Messages []struct{ ID string }
			}
			err := call("GET", "http://"+b.http+"/api/v1/search?snippets=false&limit=1000&q="+token, nil, &res)
			now := time.Now()
			if err == nil {
				mu.Lock()
				for _, m := range res.Messages {
					if s := samples[m.ID]; s != nil && s.found.IsZero() {
						s.found = now
					}
				}
				pending := 0
				for _, s := range samples {
					if s.found.IsZero() {
						pending++
					}
				}
				mu.Unlock()
				select {
				case <-done:
					if pending == 0 {
						return
					}
				default:
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	n := int(dur.Seconds() * float64(*rate))
	tick := time.NewTicker(time.Second / time.Duration(*rate))
	var sw sync.WaitGroup
	for i := 0; i < n; i++ {
		<-tick.C
		sw.Add(1)
		go func() {
			defer sw.Done()
			// A current Date first (the parser takes the first), so the
			// newest-first search on B lists the run's newest messages.
			m := append([]byte(fmt.Sprintf("Date: %s\r\nX-Lag: %s\r\nSubject: %s %d\r\n",
				time.Now().UTC().Format(time.RFC1123Z), token, token, i)), msgs[i%len(msgs)]...)
			var out struct{ ID string }
			if err := call("POST", "http://"+a.http+"/api/v1/messages", m, &out); err != nil {
				firstErr.CompareAndSwap(nil, err)
				return
			}
			mu.Lock()
			samples[out.ID] = &sample{acked: time.Now()}
			mu.Unlock()
		}()
	}
	tick.Stop()
	sw.Wait()
	close(done)
	waitDone := make(chan struct{})
	go func() { pw.Wait(); close(waitDone) }()
	select {
	case <-waitDone:
	case <-time.After(5 * time.Minute):
		return fmt.Errorf("not every message became searchable on arc-b within 5 minutes")
	}
	if e := firstErr.Load(); e != nil {
		return e.(error)
	}
	var lags []time.Duration
	for _, s := range samples {
		l := s.found.Sub(s.acked)
		if l < 0 {
			l = 0 // found by a poll that started before the ack was recorded
		}
		lags = append(lags, l)
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	fmt.Printf("| lag from ack on A to searchable on B at a steady %d msgs/s for %s (%d messages; 20 ms polling) | p50 **%.0f ms**, p99 **%.0f ms**, max %.0f ms |\n",
		*rate, *dur, len(lags), ms(lags[len(lags)/2]), ms(lags[len(lags)*99/100]), ms(lags[len(lags)-1]))
	return nil
}
