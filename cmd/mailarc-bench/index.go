package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/message"
	"github.com/mailarc/mailarc/internal/query"
)

// indexBench holds the settings of `mailarc-bench index`.
type indexBench struct {
	bin, corpus, work, maildir string
	n, runs, iters, nmIters    int
	maxLoad                    float64
	loadWait                   time.Duration
	notmuch                    bool
	skipCorpus                 bool
	// nmHook, when set, sees every finished notmuch process (peak RSS).
	nmHook func(*os.ProcessState)
}

// benchIndex runs the `index` or `amplify` subcommand.
func benchIndex(what, bin, corpus string, args []string) error {
	if what == "amplify" {
		return runAmplify(corpus, args)
	}
	return runIndexBench(bin, corpus, args)
}

// runIndexBench implements `mailarc-bench index [-n N] ...`.
func runIndexBench(bin, corpus string, args []string) error {
	b := &indexBench{bin: bin, corpus: corpus}
	fs := flag.NewFlagSet("index", flag.ContinueOnError)
	fs.IntVar(&b.n, "n", 100000, "messages in the amplified corpus for the search latencies")
	fs.StringVar(&b.work, "work", "", "work directory (default: a new temp dir, removed at the end)")
	fs.StringVar(&b.maildir, "maildir", "", "reuse this amplified maildir instead of creating one")
	fs.IntVar(&b.runs, "runs", 3, "repetitions of each measurement (medians are reported)")
	fs.IntVar(&b.iters, "iters", 200, "timed iterations per query and run (in-process and HTTP)")
	fs.IntVar(&b.nmIters, "nm-iters", 20, "timed iterations per query and run for notmuch (process spawns)")
	fs.Float64Var(&b.maxLoad, "max-load", 3, "wait before each measurement until the 1-min load average is below this")
	fs.DurationVar(&b.loadWait, "load-wait", 10*time.Minute, "give up waiting for a low load after this long")
	fs.BoolVar(&b.skipCorpus, "skip-corpus", false, "skip the indexing-rate runs on the real corpus")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if _, err := exec.LookPath("notmuch"); err == nil {
		b.notmuch = true
	} else {
		fmt.Fprintln(os.Stderr, "notmuch not found in PATH; its columns are skipped (apt-get install notmuch)")
	}
	if b.work == "" {
		tmp, err := os.MkdirTemp("", "mailarc-bench-index")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		b.work = tmp
	}
	ctx := context.Background()
	fmt.Printf("load average now: %s; %d runs each, medians reported\n\n", idxLoadAvg(), b.runs)
	if !b.skipCorpus {
		if err := b.corpusRate(ctx); err != nil {
			return err
		}
	}
	return b.latency(ctx)
}

// corpusRate measures `mailarc reindex` and `notmuch new` on the real corpus.
func (b *indexBench) corpusRate(ctx context.Context) error {
	files, size, err := corpusFiles(b.corpus)
	if err != nil {
		return err
	}
	data := filepath.Join(b.work, "real-data")
	if _, err := os.Stat(filepath.Join(data, "catalog.db")); err != nil {
		if out, err := exec.CommandContext(ctx, b.bin, "import", "--data", data, b.corpus).CombinedOutput(); err != nil {
			return fmt.Errorf("import: %v\n%s", err, out)
		}
	}
	fmt.Printf("## Indexing rate on %s (%d files, %.1f MB)\n\n", b.corpus, len(files), float64(size)/1e6)
	fmt.Println("| indexer | messages | run times (s) | load (1 min) at start | median s | msgs/s | MB raw/s |")
	fmt.Println("|---|---|---|---|---|---|---|")
	var msgs int
	ma, err := b.repeat("mailarc reindex", func() (float64, error) {
		t0 := time.Now()
		out, err := exec.CommandContext(ctx, b.bin, "reindex", "--data", data).CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("reindex: %v\n%s", err, out)
		}
		el := time.Since(t0).Seconds()
		if m := regexp.MustCompile(`reindexed (\d+) messages`).FindSubmatch(out); m != nil {
			msgs, _ = strconv.Atoi(string(m[1]))
		}
		return el, nil
	})
	if err != nil {
		return err
	}
	ma.row("`mailarc reindex` (2 workers, attachments extracted)", msgs, size)
	if !b.notmuch {
		return nil
	}
	var nmMsgs int
	nm, err := b.repeat("notmuch new", func() (float64, error) {
		el, n, err := b.notmuchNew(ctx, b.corpus, filepath.Join(b.work, "nm-real"))
		nmMsgs = n
		return el, err
	})
	if err != nil {
		return err
	}
	nm.row("`notmuch new` (1 thread, Xapian)", nmMsgs, size)
	fmt.Printf("\nmailarc / notmuch indexing rate: %.1fx (msgs/s, medians)\n\n", (float64(msgs)/ma.median())/(float64(nmMsgs)/nm.median()))
	return nil
}

// runSet is the timings of one repeated measurement.
type runSet struct {
	secs  []float64
	loads []string
}

func (r runSet) median() float64 { return median(r.secs) }

func (r runSet) row(name string, msgs int, size int64) {
	ts := make([]string, len(r.secs))
	for i, s := range r.secs {
		ts[i] = fmt.Sprintf("%.2f", s)
	}
	m := r.median()
	fmt.Printf("| %s | %d | %s | %s | %.2f | %.0f | %.1f |\n", name, msgs, strings.Join(ts, ", "), strings.Join(r.loads, ", "), m, float64(msgs)/m, float64(size)/1e6/m)
}

// repeat runs f b.runs times, each after waiting for a low load.
func (b *indexBench) repeat(what string, f func() (float64, error)) (runSet, error) {
	var r runSet
	for i := 0; i < b.runs; i++ {
		r.loads = append(r.loads, b.waitLoad(what))
		s, err := f()
		if err != nil {
			return r, err
		}
		fmt.Fprintf(os.Stderr, "%s run %d: %.2f s (load %s)\n", what, i+1, s, r.loads[i])
		r.secs = append(r.secs, s)
	}
	return r, nil
}

// notmuchNew indexes maildir into a fresh notmuch database under dbDir with
// a private config and returns the seconds and message count.
func (b *indexBench) notmuchNew(ctx context.Context, maildir, dbDir string) (float64, int, error) {
	if err := os.RemoveAll(dbDir); err != nil {
		return 0, 0, err
	}
	if err := os.MkdirAll(dbDir, 0o755); err != nil {
		return 0, 0, err
	}
	abs, err := filepath.Abs(maildir)
	if err != nil {
		return 0, 0, err
	}
	cfg := dbDir + ".config"
	conf := fmt.Sprintf("[database]\npath=%s\nmail_root=%s\n[new]\ntags=\nignore=\n[search]\nexclude_tags=\n[maildir]\nsynchronize_flags=false\n", dbDir, abs)
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return 0, 0, err
	}
	t0 := time.Now()
	if out, err := b.nm(ctx, cfg, "new", "--quiet"); err != nil {
		return 0, 0, fmt.Errorf("notmuch new: %v\n%s", err, out)
	}
	el := time.Since(t0).Seconds()
	out, err := b.nm(ctx, cfg, "count", "*")
	if err != nil {
		return 0, 0, fmt.Errorf("notmuch count: %v\n%s", err, out)
	}
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return el, n, nil
}

func (b *indexBench) nm(ctx context.Context, cfg string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "notmuch", args...)
	cmd.Env = append(os.Environ(), "NOTMUCH_CONFIG="+cfg)
	out, err := cmd.CombinedOutput()
	if b.nmHook != nil {
		b.nmHook(cmd.ProcessState)
	}
	return out, err
}

// benchQuery is one query of the latency mix in both languages.
type benchQuery struct{ name, mailarc, notmuch string }

// latency builds the amplified archive and measures search latencies.
func (b *indexBench) latency(ctx context.Context) error {
	maildir := b.maildir
	if maildir == "" {
		maildir = filepath.Join(b.work, fmt.Sprintf("maildir-%d", b.n))
		if _, err := os.Stat(filepath.Join(maildir, "cur")); err != nil {
			files, _, err := corpusFiles(b.corpus)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "amplifying to %d messages in %s\n", b.n, maildir)
			if _, err := amplify(files, b.n, maildir, 1); err != nil {
				return err
			}
		}
	}
	ents, err := os.ReadDir(filepath.Join(maildir, "cur"))
	if err != nil {
		return err
	}
	var size int64
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			size += fi.Size()
		}
	}
	fmt.Printf("## Search latency at %d messages (amplified, %.0f MB, maildir %s)\n\n", len(ents), float64(size)/1e6, maildir)
	data := filepath.Join(b.work, fmt.Sprintf("amp-data-%d", b.n))
	fmt.Println("Building (one run each):")
	fmt.Println()
	fmt.Println("| step | messages | seconds | msgs/s | MB raw/s | load (1 min) at start |")
	fmt.Println("|---|---|---|---|---|---|")
	if _, err := os.Stat(filepath.Join(data, "index.db")); err != nil {
		ld := b.waitLoad("mailarc import")
		t0 := time.Now()
		if out, err := exec.CommandContext(ctx, b.bin, "import", "--data", data, maildir).CombinedOutput(); err != nil {
			return fmt.Errorf("import: %v\n%s", err, out)
		}
		el := time.Since(t0).Seconds()
		fmt.Printf("| `mailarc import` (archive only) | %d | %.1f | %.0f | %.1f | %s |\n", len(ents), el, float64(len(ents))/el, float64(size)/1e6/el, ld)
		ld = b.waitLoad("mailarc reindex")
		t0 = time.Now()
		if out, err := exec.CommandContext(ctx, b.bin, "reindex", "--data", data).CombinedOutput(); err != nil {
			return fmt.Errorf("reindex: %v\n%s", err, out)
		}
		el = time.Since(t0).Seconds()
		fmt.Printf("| `mailarc reindex` | %d | %.1f | %.0f | %.1f | %s |\n", len(ents), el, float64(len(ents))/el, float64(size)/1e6/el, ld)
	}
	nmCfg := filepath.Join(b.work, fmt.Sprintf("nm-amp-%d", b.n)) + ".config"
	if b.notmuch {
		if _, err := os.Stat(nmCfg); err != nil {
			ld := b.waitLoad("notmuch new")
			el, n, err := b.notmuchNew(ctx, maildir, strings.TrimSuffix(nmCfg, ".config"))
			if err != nil {
				return err
			}
			fmt.Printf("| `notmuch new` | %d | %.1f | %.0f | %.1f | %s |\n", n, el, float64(n)/el, float64(size)/1e6/el, ld)
		}
	}
	fmt.Println()

	qs, err := b.pickQueries(ctx, filepath.Join(data, "index.db"))
	if err != nil {
		return err
	}
	fmt.Println("Query mix (words chosen from the index vocabulary by document frequency):")
	fmt.Println()
	fmt.Println("| query | mailarc | notmuch |")
	fmt.Println("|---|---|---|")
	for _, q := range qs {
		fmt.Printf("| %s | `%s` | `%s` |\n", q.name, q.mailarc, q.notmuch)
	}
	fmt.Println()

	ix, err := index.OpenSQLiteDir(data)
	if err != nil {
		return err
	}
	defer ix.Close()
	type cell struct{ p50, p99 []float64 }
	inproc := map[string]*[2]cell{}
	httpLat := map[string]*cell{}
	nmLat := map[string]*[2]cell{}
	totals := map[string]int{}
	var nmFloor cell
	var loads []string
	srv, base, err := b.startServe(ctx, data)
	if err != nil {
		return err
	}
	defer srv()
	for run := 0; run < b.runs; run++ {
		loads = append(loads, b.waitLoad("search latency"))
		for _, q := range qs {
			pq, err := query.Parse(q.mailarc)
			if err != nil {
				return fmt.Errorf("%s: %w", q.mailarc, err)
			}
			if inproc[q.name] == nil {
				inproc[q.name], httpLat[q.name], nmLat[q.name] = &[2]cell{}, &cell{}, &[2]cell{}
			}
			for ci, count := range []bool{true, false} {
				opt := index.Options{Limit: 50, CountTotal: count}
				lat, err := timeN(b.iters, func() error {
					res, err := ix.Search(ctx, pq, opt)
					if count {
						totals[q.name] = res.Total
					}
					return err
				})
				if err != nil {
					return err
				}
				c := &inproc[q.name][ci]
				c.p50, c.p99 = append(c.p50, pct(lat, 50)), append(c.p99, pct(lat, 99))
			}
			u := base + "/api/v1/search?limit=50&q=" + url.QueryEscape(q.mailarc)
			lat, err := timeN(b.iters, func() error { return httpGet(u) })
			if err != nil {
				return err
			}
			httpLat[q.name].p50, httpLat[q.name].p99 = append(httpLat[q.name].p50, pct(lat, 50)), append(httpLat[q.name].p99, pct(lat, 99))
			if !b.notmuch {
				continue
			}
			for ci, args := range [][]string{
				{"search", "--output=messages", "--sort=newest-first", "--limit=50", q.notmuch},
				{"count", q.notmuch},
			} {
				lat, err := timeN(b.nmIters, func() error {
					out, err := b.nm(ctx, nmCfg, args...)
					if err != nil {
						return fmt.Errorf("notmuch %v: %v: %s", args, err, out)
					}
					return nil
				})
				if err != nil {
					return err
				}
				c := &nmLat[q.name][ci]
				c.p50, c.p99 = append(c.p50, pct(lat, 50)), append(c.p99, pct(lat, 99))
			}
		}
		if b.notmuch {
			lat, err := timeN(b.nmIters, func() error {
				_, err := b.nm(ctx, nmCfg, "count", "id:no-such-message")
				return err
			})
			if err != nil {
				return err
			}
			nmFloor.p50, nmFloor.p99 = append(nmFloor.p50, pct(lat, 50)), append(nmFloor.p99, pct(lat, 99))
		}
	}
	fmt.Printf("Latency in ms, p50 / p99 (medians over %d runs of %d sequential searches per query, %d for notmuch; load (1 min) at the start of each run: %s).\n\n",
		b.runs, b.iters, b.nmIters, strings.Join(loads, ", "))
	fmt.Println("| query | matches | in-process, total counted | in-process, no count | HTTP API (warm) | notmuch search --limit=50 | notmuch count |")
	fmt.Println("|---|---|---|---|---|---|---|")
	f := func(c cell) string { return fmt.Sprintf("%.2f / %.2f", median(c.p50), median(c.p99)) }
	for _, q := range qs {
		nmCols := "- | -"
		if b.notmuch {
			nmCols = f(nmLat[q.name][0]) + " | " + f(nmLat[q.name][1])
		}
		fmt.Printf("| %s | %d | %s | %s | %s | %s |\n", q.name, totals[q.name], f(inproc[q.name][0]), f(inproc[q.name][1]), f(*httpLat[q.name]), nmCols)
	}
	if b.notmuch {
		fmt.Printf("\nnotmuch process floor (`notmuch count id:no-such-message`: spawn + open the database): %s ms\n", f(nmFloor))
	}
	return nil
}

// timeN runs f n times after 3 warm-up calls and returns the durations.
func timeN(n int, f func() error) ([]time.Duration, error) {
	for i := 0; i < 3; i++ {
		if err := f(); err != nil {
			return nil, err
		}
	}
	lat := make([]time.Duration, n)
	for i := range lat {
		t0 := time.Now()
		if err := f(); err != nil {
			return nil, err
		}
		lat[i] = time.Since(t0)
	}
	return lat, nil
}

// pct returns the p-th percentile of lat in milliseconds (nearest rank).
func pct(lat []time.Duration, p int) float64 {
	s := slices.Clone(lat)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return ms(s[min(max(i-1, 0), len(s)-1)])
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// httpGet GETs u with the bench credentials and fails unless it answers
// 200 with JSON.
func httpGet(u string) error {
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		return err
	}
	req.SetBasicAuth("admin", "bench-password")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != 200 {
		return fmt.Errorf("GET %s: %s: %s", u, resp.Status, tail(body))
	}
	if !json.Valid(body) {
		return fmt.Errorf("GET %s: the answer is not JSON: %s", u, tail(body))
	}
	return nil
}

// startServe runs `mailarc serve` on data and returns a stop function and
// the base URL once it answers.
func (b *indexBench) startServe(ctx context.Context, data string) (func(), string, error) {
	port, err := freePort()
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	srv := exec.CommandContext(ctx, b.bin, "serve", "--data", data)
	srv.Env = append(os.Environ(), "MAILARC_ADMIN_PASSWORD=bench-password", "MAILARC_HTTP_LISTEN="+addr, "MAILARC_SMTP_LISTEN=")
	var log bytes.Buffer
	srv.Stdout, srv.Stderr = &log, &log
	if err := srv.Start(); err != nil {
		return nil, "", err
	}
	stop := func() { _ = srv.Process.Kill(); _ = srv.Wait() }
	if err := waitReady("http://" + addr + "/readyz"); err != nil {
		stop()
		return nil, "", fmt.Errorf("%v\n%s", err, log.String())
	}
	return stop, "http://" + addr, nil
}

// pickQueries chooses the query words from the index vocabulary (FTS5
// vocab table: documents per term) and the real corpus (sender, phrase).
// indexDB is the index's first shard file, a random half of the messages:
// enough to choose words by how many documents have them.
func (b *indexBench) pickQueries(ctx context.Context, indexDB string) ([]benchQuery, error) {
	db, err := sql.Open("sqlite3", "file:"+indexDB+"?mode=ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var total int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM meta`).Scan(&total); err != nil {
		return nil, fmt.Errorf("count: %w", err)
	}
	if _, err := conn.ExecContext(ctx, `CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, 'fts', 'row')`); err != nil {
		return nil, fmt.Errorf("fts5vocab: %w", err)
	}
	rows, err := conn.QueryContext(ctx, `SELECT term, doc FROM temp.vocab`)
	if err != nil {
		return nil, err
	}
	df := map[string]int{}
	var rare []string
	for rows.Next() {
		var t string
		var d int
		if err := rows.Scan(&t, &d); err != nil {
			return nil, err
		}
		if !plainWord(t) {
			continue
		}
		df[t] = d
		if d >= 1 && d <= 5 && len(t) >= 7 && len(t) <= 14 && !strings.HasPrefix(t, "ampx") {
			rare = append(rare, t)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	sort.Strings(rare)
	textWords, err := b.textVocabulary()
	if err != nil {
		return nil, err
	}
	// Keep rare words that are real words of the corpus text or a typo of
	// one (two adjacent letters swapped), not hashes or base64 debris.
	rare = slices.DeleteFunc(rare, func(t string) bool {
		if textWords[t] {
			return false
		}
		w := []byte(t)
		for i := 0; i+1 < len(w); i++ {
			w[i], w[i+1] = w[i+1], w[i]
			ok := textWords[string(w)]
			w[i], w[i+1] = w[i+1], w[i]
			if ok {
				return false
			}
		}
		return true
	})
	// closest returns the word whose share of documents is closest to f.
	closest := func(f float64, exclude ...string) string {
		best, bd := "", 2.0
		for t, d := range df {
			if len(t) < 4 || slices.Contains(exclude, t) {
				continue
			}
			if dd := abs(float64(d)/float64(total) - f); dd < bd || dd == bd && t < best {
				best, bd = t, dd
			}
		}
		return best
	}
	if len(rare) == 0 {
		return nil, fmt.Errorf("no rare word (2-5 documents) in the vocabulary")
	}
	rareW := rare[len(rare)/2]
	common := closest(0.30)
	a1 := closest(0.08, common)
	a2 := closest(0.06, common, a1)
	from, phrase, err := b.corpusPicks(total, df)
	if err != nil {
		return nil, err
	}
	// The month of the median message date.
	var mid int64
	if err := conn.QueryRowContext(ctx, `SELECT date FROM meta ORDER BY date LIMIT 1 OFFSET ?`, total/2).Scan(&mid); err != nil {
		return nil, fmt.Errorf("median date: %w", err)
	}
	m0 := time.Unix(mid, 0).UTC()
	m0 = time.Date(m0.Year(), m0.Month(), 1, 0, 0, 0, 0, time.UTC)
	m1 := m0.AddDate(0, 1, 0)
	date := fmt.Sprintf("after:%s before:%s", m0.Format(time.DateOnly), m1.Format(time.DateOnly))
	nmDate := fmt.Sprintf("date:%s..%s", m0.Format(time.DateOnly), m1.AddDate(0, 0, -1).Format(time.DateOnly))
	return []benchQuery{
		{fmt.Sprintf("rare word (%d msgs)", df[rareW]), rareW, rareW},
		{fmt.Sprintf("common word (%.0f%%)", 100*float64(df[common])/float64(total)), common, common},
		{fmt.Sprintf("two-word AND (%.0f%%, %.0f%%)", 100*float64(df[a1])/float64(total), 100*float64(df[a2])/float64(total)), a1 + " " + a2, a1 + " and " + a2},
		{"phrase", `"` + phrase + `"`, `"` + phrase + `"`},
		{"from: (top sender)", "from:" + from, "from:" + from},
		{"date range (1 month) + common word", date + " " + common, nmDate + " and " + common},
		{"newest 50 (all messages)", "", "*"},
	}, nil
}

func abs(f float64) float64 {
	if f < 0 {
		return -f
	}
	return f
}

// plainWord reports whether t is a lowercase ASCII word (no digits).
func plainWord(t string) bool {
	if t == "" {
		return false
	}
	for _, r := range t {
		if r < 'a' || r > 'z' {
			return false
		}
	}
	return true
}

// textVocabulary returns the lowercase words of the real corpus's
// text/plain bodies that occur in at least two of its messages.
func (b *indexBench) textVocabulary() (map[string]bool, error) {
	files, _, err := corpusFiles(b.corpus)
	if err != nil {
		return nil, err
	}
	n := map[string]int{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for _, w := range strings.FieldsFunc(strings.ToLower(message.Parse(raw, message.Options{}).Text), func(r rune) bool { return r < 'a' || r > 'z' }) {
			if !seen[w] {
				seen[w] = true
				n[w]++
			}
		}
	}
	out := map[string]bool{}
	for w, c := range n {
		if c >= 2 {
			out[w] = true
		}
	}
	return out, nil
}

// corpusPicks parses the real corpus for the most frequent From address and
// an adjacent word pair in ~2% of the messages (per the index vocabulary,
// both words in at least 3% of documents).
func (b *indexBench) corpusPicks(total int, df map[string]int) (string, string, error) {
	files, _, err := corpusFiles(b.corpus)
	if err != nil {
		return "", "", err
	}
	senders := map[string]int{}
	pairs := map[string]int{}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return "", "", err
		}
		p := message.Parse(raw, message.Options{})
		if len(p.From) > 0 && p.From[0].Addr != "" {
			senders[strings.ToLower(p.From[0].Addr)]++
		}
		words := strings.FieldsFunc(strings.ToLower(p.Text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
		seen := map[string]bool{}
		for i := 1; i < len(words); i++ {
			k := words[i-1] + " " + words[i]
			if !seen[k] {
				seen[k] = true
				pairs[k]++
			}
		}
	}
	best := func(m map[string]int, ok func(string) bool, target float64) string {
		b, bd := "", 1e18
		for k, v := range m {
			if !ok(k) {
				continue
			}
			if d := abs(float64(v) - target); d < bd || d == bd && k < b {
				b, bd = k, d
			}
		}
		return b
	}
	from := best(senders, func(string) bool { return true }, 1e12)
	phrase := best(pairs, func(k string) bool {
		w1, w2, _ := strings.Cut(k, " ")
		return len(w1) >= 4 && len(w2) >= 4 && plainWord(w1) && plainWord(w2) &&
			float64(df[w1]) >= 0.03*float64(total) && float64(df[w2]) >= 0.03*float64(total)
	}, 0.02*float64(len(files)))
	if from == "" || phrase == "" {
		return "", "", fmt.Errorf("corpus yields no sender or phrase")
	}
	return from, phrase, nil
}

// idxLoadAvg returns the 1-minute load average as text.
func idxLoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// waitLoad polls the load average every 20 s until it is below b.maxLoad
// or b.loadWait has passed, and returns the load it starts with.
func (b *indexBench) waitLoad(what string) string {
	deadline := time.Now().Add(b.loadWait)
	for {
		l := idxLoadAvg()
		v, err := strconv.ParseFloat(l, 64)
		if err != nil || v < b.maxLoad {
			return l
		}
		if time.Now().After(deadline) {
			fmt.Fprintf(os.Stderr, "load %s still >= %.1f after %s; measuring %s anyway\n", l, b.maxLoad, b.loadWait, what)
			return l + " (!)"
		}
		fmt.Fprintf(os.Stderr, "load %s >= %.1f, waiting before %s\n", l, b.maxLoad, what)
		time.Sleep(20 * time.Second)
	}
}
