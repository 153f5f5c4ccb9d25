package main

// `mailarc-bench backends`: ingest and search on the embedded default
// (local packs + SQLite) and on S3 + PostgreSQL, same corpus, same run
// (issue #11). It starts its own PostgreSQL 15 cluster (Debian's binaries,
// durable settings: fsync and synchronous_commit on, as in production) and
// its own versitygw (POSIX backend) on loopback, both on this machine's
// disk, and for each backend: starts `mailarc serve` on a fresh archive,
// loads the corpus through the HTTP API with concurrent clients, waits
// until everything is indexed, then runs a fixed query mix over HTTP.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

const (
	backendsPassword = "bench-password"
	benchS3Key       = "benchkey"
	benchS3Secret    = "bench-secret-0123456789"
)

func benchBackends(bin, corpus string, args []string) error {
	fs := flag.NewFlagSet("backends", flag.ContinueOnError)
	clients := fs.Int("clients", 16, "concurrent API clients")
	pgBin := fs.String("pgbin", "/usr/lib/postgresql/15/bin", "PostgreSQL server binaries")
	gw := fs.String("versitygw", "", "versitygw binary (default: PATH, then $(go env GOPATH)/bin)")
	iters := fs.Int("iters", 100, "timed searches per query")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *gw == "" {
		*gw = findVersitygw()
	}
	msgs, total, err := loadCorpus(corpus)
	if err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "mailarc-bench-backends")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o711); err != nil { // the postgres user must reach its directory
		return err
	}

	ctx := context.Background()
	pg, err := startPostgres(ctx, *pgBin, filepath.Join(tmp, "pg"))
	if err != nil {
		return err
	}
	defer pg.stop()
	s3url, stopGW, err := startVersitygw(ctx, *gw, filepath.Join(tmp, "s3"))
	if err != nil {
		return err
	}
	defer stopGW()

	fmt.Printf("Corpus %s: %d messages, %.1f MB. %d API clients, %d timed searches per query.\n",
		corpus, len(msgs), float64(total)/1e6, *clients, *iters)
	fmt.Printf("PostgreSQL: %s (fsync and synchronous_commit on), versitygw %s (POSIX backend), both on this machine's loopback and disk.\n\n", *pgBin, *gw)

	embedded := func(dir string) (string, error) { return "", nil }
	shared := func(dir string) (string, error) {
		db := "bench" + strconv.FormatInt(time.Now().UnixNano(), 36)
		if err := pg.createDB(ctx, db); err != nil {
			return "", err
		}
		dsnFile := filepath.Join(dir, "dsn")
		if err := os.WriteFile(dsnFile, []byte(pg.dsn(db)+"\n"), 0o600); err != nil {
			return "", err
		}
		credFile := filepath.Join(dir, "s3creds")
		if err := os.WriteFile(credFile, []byte(fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", benchS3Key, benchS3Secret)), 0o600); err != nil {
			return "", err
		}
		if err := createBucket(ctx, s3url, db); err != nil {
			return "", err
		}
		return fmt.Sprintf("[catalog]\nbackend = \"postgres\"\ndsn_file = %q\n[store]\nbackend = \"s3\"\nendpoint = %q\nbucket = %q\npath_style = true\ncredentials_file = %q\n",
			dsnFile, s3url, db, credFile), nil
	}
	type row struct {
		name string
		res  backendResult
	}
	var rows []row
	for _, b := range []struct {
		name string
		cfg  func(dir string) (string, error)
	}{
		{"embedded (local packs + SQLite)", embedded},
		{"S3 (versitygw) + PostgreSQL 15", shared},
		{"embedded (local packs + SQLite), again", embedded},
		{"S3 (versitygw) + PostgreSQL 15, again", shared},
	} {
		dir := filepath.Join(tmp, strconv.Itoa(len(rows)))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		extra, err := b.cfg(dir)
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		fmt.Fprintf(os.Stderr, "backends: %s (load %s)\n", b.name, idxLoadAvg())
		r, err := runBackend(bin, dir, extra, msgs, *clients, *iters)
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		rows = append(rows, row{b.name, r})
	}
	fmt.Println("| backend | load at start | API ingest msgs/s | ack p50 / p99 ms | indexed after (s) | mailarc CPU s |")
	fmt.Println("|---|---|---|---|---|---|")
	for _, r := range rows {
		fmt.Printf("| %s | %s | %.0f | %.1f / %.1f | %.1f | %.1f |\n", r.name, r.res.load, r.res.rate, r.res.ackP50, r.res.ackP99, r.res.indexedAfter, r.res.cpu)
	}
	fmt.Println()
	fmt.Println("Search over HTTP (snippets on, capped count), warm, ms p50 / p99:")
	fmt.Println()
	head := "| query |"
	sep := "|---|"
	for _, r := range rows {
		head += " " + r.name + " |"
		sep += "---|"
	}
	fmt.Println(head)
	fmt.Println(sep)
	for i, q := range backendQueries {
		line := "| `" + q + "` |"
		for _, r := range rows {
			line += fmt.Sprintf(" %.1f / %.1f |", r.res.search[i][0], r.res.search[i][1])
		}
		fmt.Println(line)
	}
	return nil
}

// backendQueries is the fixed mix: a rare-ish word, common words, a phrase,
// an address, a date range and the empty query (newest first).
var backendQueries = []string{"checksum", "device", "look second", `"csum type"`, "from:usrp-users@lists.ettus.com", "after:2019-01-01 before:2019-02-01 device", ""}

type backendResult struct {
	load                 string
	rate, ackP50, ackP99 float64
	indexedAfter, cpu    float64
	search               [][2]float64
}

func runBackend(bin, dir, extra string, msgs [][]byte, clients, iters int) (backendResult, error) {
	res := backendResult{load: idxLoadAvg()}
	port, err := freePort()
	if err != nil {
		return res, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := filepath.Join(dir, "mailarc.toml")
	body := fmt.Sprintf("node_name = \"bench\"\ndata_dir = %q\n%s[http]\nlisten = %q\n", filepath.Join(dir, "data"), extra, addr)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		return res, err
	}
	srv := exec.Command(bin, "serve", "--config", cfg)
	srv.Env = append(os.Environ(), "MAILARC_ADMIN_PASSWORD="+backendsPassword, "MAILARC_SMTP_LISTEN=")
	var log bytes.Buffer
	srv.Stdout, srv.Stderr = &log, &log
	if err := srv.Start(); err != nil {
		return res, err
	}
	defer func() { _ = srv.Process.Signal(syscall.SIGTERM); _ = srv.Wait() }()
	if err := waitReady("http://" + addr + "/readyz"); err != nil {
		return res, fmt.Errorf("%v\n%s", err, log.String())
	}
	start := time.Now()
	lat, el, err := postAll(addr, backendsPassword, msgs, clients, clientNetHTTP)
	if err != nil {
		return res, fmt.Errorf("%w\n%s", err, log.String())
	}
	hc := &http.Client{}
	res.rate = float64(len(msgs)) / el
	res.ackP50, res.ackP99 = ms(lat[len(lat)/2]), ms(lat[len(lat)*99/100])
	// Wait until the index holds every message.
	deadline := time.Now().Add(30 * time.Minute)
	for {
		var st struct {
			Counts struct {
				Archived int64 `json:"archived"`
				Indexed  int64 `json:"indexed"`
			} `json:"counts"`
		}
		if err := getJSON(hc, "http://"+addr+"/api/v1/status", &st); err == nil && st.Counts.Archived > 0 && st.Counts.Indexed >= st.Counts.Archived {
			break
		}
		if time.Now().After(deadline) {
			return res, errors.New("not indexed after 30 minutes")
		}
		time.Sleep(200 * time.Millisecond) // polling interval
	}
	res.indexedAfter = time.Since(start).Seconds()
	res.cpu = processCPU(srv.Process.Pid)
	for _, q := range backendQueries {
		u := "http://" + addr + "/api/v1/search?limit=50&q=" + url.QueryEscape(q)
		for range 3 { // warm-up
			if err := getJSON(hc, u, &struct{}{}); err != nil {
				return res, fmt.Errorf("search %q: %w", q, err)
			}
		}
		lats := make([]time.Duration, 0, iters)
		for range iters {
			t0 := time.Now()
			if err := getJSON(hc, u, &struct{}{}); err != nil {
				return res, fmt.Errorf("search %q: %w", q, err)
			}
			lats = append(lats, time.Since(t0))
		}
		res.search = append(res.search, [2]float64{pct(lats, 50), pct(lats, 99)})
	}
	return res, nil
}

func getJSON(hc *http.Client, u string, v any) error {
	req, _ := http.NewRequest("GET", u, nil)
	req.SetBasicAuth("admin", backendsPassword)
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: %d %s", u, resp.StatusCode, b)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

// processCPU is the user+system CPU seconds of a running process.
func processCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	k, _ := strconv.ParseFloat(f[12], 64)
	return (u + k) / 100
}

// benchPG is a PostgreSQL cluster started for the benchmark.
type benchPG struct {
	bin, dir, sock string
	port           int
	cmd            *exec.Cmd
	cred           *syscall.Credential
}

func startPostgres(ctx context.Context, bin, dir string) (*benchPG, error) {
	p := &benchPG{bin: bin, dir: filepath.Join(dir, "data"), sock: filepath.Join(dir, "sock")}
	for _, d := range []string{p.dir, p.sock} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	if os.Geteuid() == 0 { // PostgreSQL refuses to run as root
		u, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root needs a postgres system user: %w", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		for _, d := range []string{dir, p.dir, p.sock} {
			if err := os.Chown(d, uid, gid); err != nil {
				return nil, err
			}
		}
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	p.port = port
	initdb := exec.CommandContext(ctx, filepath.Join(bin, "initdb"), "-D", p.dir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C")
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	p.cmd = exec.Command(filepath.Join(bin, "postgres"), "-D", p.dir, "-k", p.sock, "-p", strconv.Itoa(port),
		"-c", "listen_addresses=", "-c", "shared_buffers=512MB", "-c", "max_connections=200")
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred, Pdeathsig: syscall.SIGQUIT}
	var log bytes.Buffer
	p.cmd.Stdout, p.cmd.Stderr = &log, &log
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(p.sock, fmt.Sprintf(".s.PGSQL.%d", port))); err == nil {
			if err := p.psql(ctx, "postgres", "SELECT 1"); err == nil {
				return p, nil
			}
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("postgres did not start:\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond) // polling interval
	}
}

func (p *benchPG) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@/%s?host=%s&port=%d&sslmode=disable", db, url.QueryEscape(p.sock), p.port)
}

func (p *benchPG) psql(ctx context.Context, db, sql string) error {
	cmd := exec.CommandContext(ctx, "psql", "-X", "-q", "-h", p.sock, "-p", strconv.Itoa(p.port), "-U", "postgres", "-d", db, "-c", sql)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("psql %q: %v: %s", sql, err, out)
	}
	return nil
}

func (p *benchPG) createDB(ctx context.Context, db string) error {
	return p.psql(ctx, "postgres", "CREATE DATABASE "+db)
}

func (p *benchPG) stop() {
	if p.cmd != nil && p.cmd.Process != nil {
		_ = p.cmd.Process.Signal(syscall.SIGQUIT)
		_ = p.cmd.Wait()
	}
}

func findVersitygw() string {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
		return filepath.Join(strings.TrimSpace(string(out)), "bin", "versitygw")
	}
	return "versitygw"
}

func startVersitygw(ctx context.Context, bin, dir string) (string, func(), error) {
	root, ver := filepath.Join(dir, "root"), filepath.Join(dir, "versions")
	for _, d := range []string{root, ver} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", nil, err
		}
	}
	port, err := freePort()
	if err != nil {
		return "", nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(bin, "--port", addr, "--quiet", "posix", "--versioning-dir", ver, root)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+benchS3Key, "ROOT_SECRET_KEY="+benchS3Secret)
	if err := cmd.Start(); err != nil {
		return "", nil, fmt.Errorf("versitygw: %w", err)
	}
	stop := func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }
	u := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(u + "/")
		if err == nil {
			resp.Body.Close()
			return u, stop, nil
		}
		if time.Now().After(deadline) {
			stop()
			return "", nil, fmt.Errorf("versitygw not answering on %s", addr)
		}
		time.Sleep(50 * time.Millisecond) // polling interval
	}
}

func createBucket(ctx context.Context, endpoint, name string) error {
	cli := s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(endpoint), UsePathStyle: true,
		Credentials: credentials.NewStaticCredentialsProvider(benchS3Key, benchS3Secret, ""),
	})
	_, err := cli.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name})
	return err
}
