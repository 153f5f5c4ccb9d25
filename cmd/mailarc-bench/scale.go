package main

// `mailarc-bench scale` measures mailarc at one or more archive sizes in a
// single command (issue #10). For each N in -n it
//
//  1. amplifies the real corpus to N messages under -work (reused when a
//     complete maildir of that size is already there; kept with -keep);
//  2. times `mailarc import` and `mailarc reindex` on a fresh data
//     directory, with each process's peak RSS (getrusage ru_maxrss);
//  3. measures the data directory: store, catalog and index bytes per raw
//     corpus byte;
//  4. measures search latency for the fixed query mix of `index`, cold
//     (page cache dropped and a freshly started `mailarc serve` or freshly
//     opened index for every single query) and warm, over HTTP (with and
//     without snippets) and in-process, and the serve process's VmHWM;
//  5. runs notmuch on the same maildir up to -nm-max messages;
//
// and prints all of it as Markdown, with the targets next to the
// numbers. Search and target evaluation live in scale_search.go and
// scale_report.go.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailarc/mailarc/internal/index"
)

// scaleBench holds the settings of `mailarc-bench scale`; the embedded
// indexBench supplies the load waiting, notmuch and query-picking helpers.
type scaleBench struct {
	*indexBench
	ns       []int
	keep     bool
	keepData bool
	nmMax    int
	cold     int
	coldErr  error         // why cold runs are not measurable, nil if they are
	phases   []phase       // of the current N, in order
	waited   time.Duration // of the current N, waiting for a low load
}

// phase is a named start time; a phase ends where the next one starts.
type phase struct {
	name  string
	start time.Time
}

// mark starts phase name ("" ends the last one).
func (s *scaleBench) mark(name string) {
	s.phases = append(s.phases, phase{name, time.Now()})
}

// begin waits for a low load, starts phase name and returns the load at
// its start.
func (s *scaleBench) begin(name string) string {
	s.mark("")
	t0 := time.Now()
	ld := s.waitLoad(name)
	s.waited += time.Since(t0)
	s.mark(name)
	return ld
}

// printPhases prints the wall-clock time of each phase of the current N.
func (s *scaleBench) printPhases() {
	s.mark("")
	fmt.Println("Wall-clock per phase:")
	fmt.Println()
	fmt.Println("| phase | seconds |")
	fmt.Println("|---|---|")
	for i, p := range s.phases[:len(s.phases)-1] {
		if p.name != "" {
			fmt.Printf("| %s | %.0f |\n", p.name, s.phases[i+1].start.Sub(p.start).Seconds())
		}
	}
	fmt.Printf("| waiting for a low load (all phases) | %.0f |\n", s.waited.Seconds())
	fmt.Printf("| **total** | %.0f |\n\n", s.phases[len(s.phases)-1].start.Sub(s.phases[0].start).Seconds())
}

// scaleResult collects what one N produced, for the targets and the summary.
type scaleResult struct {
	n                    int
	rawBytes             int64
	importRate, reindexR float64 // msgs/s
	importRSS, reindRSS  int64   // KiB
	nmRate               float64 // msgs/s, 0 when notmuch did not run
	nmRSS                int64
	disk                 diskUsage
	warmHTTP, coldHTTP   map[string]lat3 // by query name
	serveHWM             int64           // KiB, warm serve after the search runs
	queries              []benchQuery
}

// runScale implements `mailarc-bench scale -n 100000,1000000 ...`.
func runScale(bin, corpus string, args []string) error {
	s := &scaleBench{indexBench: &indexBench{bin: bin, corpus: corpus}}
	fs := flag.NewFlagSet("scale", flag.ContinueOnError)
	nList := fs.String("n", "100000,1000000", "comma-separated archive sizes (messages)")
	fs.StringVar(&s.work, "work", filepath.Join(os.TempDir(), "mailarc-bench-scale"), "work directory for the amplified maildirs, data directories and notmuch databases")
	fs.BoolVar(&s.keep, "keep", false, "keep the amplified maildirs under -work for the next run (1M messages is ~13.5 GB)")
	fs.BoolVar(&s.keepData, "keep-data", false, "keep each N's mailarc data directory and notmuch database after it is measured")
	fs.IntVar(&s.nmMax, "nm-max", 100000, "run notmuch only for N up to this (notmuch new takes hours at 1M)")
	fs.IntVar(&s.cold, "cold", 5, "cold samples per query and path (each one drops the page cache and starts a fresh process)")
	fs.IntVar(&s.iters, "iters", 200, "timed warm iterations per query and path (after 3 warm-up calls)")
	fs.IntVar(&s.nmIters, "nm-iters", 20, "timed warm iterations per query for notmuch (process spawns)")
	fs.Float64Var(&s.maxLoad, "max-load", 3, "wait before each phase until the 1-min load average is below this")
	fs.DurationVar(&s.loadWait, "load-wait", 5*time.Minute, "give up waiting for a low load after this long")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, f := range strings.Split(*nList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("scale: bad -n entry %q", f)
		}
		s.ns = append(s.ns, n)
	}
	if _, err := exec.LookPath("notmuch"); err == nil {
		s.notmuch = true
	}
	if err := os.MkdirAll(s.work, 0o755); err != nil {
		return fmt.Errorf("scale: work dir: %w", err)
	}
	// Fail now, not after amplifying and importing, when this binary was
	// built without -tags sqlite_fts5 (the in-process searches need it).
	probe := filepath.Join(s.work, "fts5-probe.db")
	ix, err := index.OpenSQLite(probe)
	if err != nil {
		return fmt.Errorf("scale: in-process index (build mailarc-bench with -tags sqlite_fts5): %w", err)
	}
	_ = ix.Close()
	removeLogged(probe, probe+"-wal", probe+"-shm")
	ctx := context.Background()
	s.coldErr = dropCaches(ctx)
	printMachine(ctx, s)
	var results []*scaleResult
	for _, n := range s.ns {
		r, err := s.one(ctx, n)
		if err != nil {
			return fmt.Errorf("scale at %d messages: %w", n, err)
		}
		results = append(results, r)
	}
	printSummary(s, results)
	return nil
}

// one runs every phase at n messages.
func (s *scaleBench) one(ctx context.Context, n int) (*scaleResult, error) {
	r := &scaleResult{n: n}
	s.phases, s.waited = nil, 0
	fmt.Printf("## %d messages\n\n", n)
	s.mark("amplified corpus (write or check)")
	maildir, err := s.corpusAt(n, r)
	if err != nil {
		return nil, err
	}
	if !s.keep {
		defer removeLogged(maildir, maildir+".done")
	}
	data := filepath.Join(s.work, fmt.Sprintf("data-%d", n))
	nmDB := filepath.Join(s.work, fmt.Sprintf("nm-%d", n))
	if err := os.RemoveAll(data); err != nil {
		return nil, err
	}
	if !s.keepData {
		defer removeLogged(data, nmDB, nmDB+".config")
	}
	nm := s.notmuch && n <= s.nmMax
	if err := s.build(ctx, maildir, data, nmDB, nm, r); err != nil {
		return nil, err
	}
	s.mark("disk usage")
	if err := s.diskTable(data, nmDB, nm, r); err != nil {
		return nil, err
	}
	nmCfg := ""
	if nm {
		nmCfg = nmDB + ".config"
	}
	if err := s.search(ctx, data, nmCfg, r); err != nil {
		return nil, err
	}
	printTargets(s, r)
	s.printPhases()
	return r, nil
}

// corpusAt returns the amplified maildir of n messages, writing it unless a
// complete one (marker file maildir.done with the count) already exists.
func (s *scaleBench) corpusAt(n int, r *scaleResult) (string, error) {
	maildir := filepath.Join(s.work, fmt.Sprintf("maildir-%d", n))
	marker := maildir + ".done"
	reused := "yes"
	var secs float64
	if raw, ok := completeMaildir(maildir, marker, n); ok {
		r.rawBytes = raw
	} else {
		reused = "no"
		files, size, err := corpusFiles(s.corpus)
		if err != nil {
			return "", err
		}
		_ = os.Remove(marker)
		if err := os.RemoveAll(maildir); err != nil {
			return "", err
		}
		if err := checkSpace(s.work, 2*size/int64(len(files))*int64(n)); err != nil {
			return "", err
		}
		fmt.Fprintf(os.Stderr, "amplifying %s to %d messages in %s\n", s.corpus, n, maildir)
		t0 := time.Now()
		written, err := amplify(files, n, maildir, 1)
		if err != nil {
			return "", err
		}
		secs = time.Since(t0).Seconds()
		r.rawBytes = written
		if err := os.WriteFile(marker, fmt.Appendf(nil, "%d %d\n", n, written), 0o644); err != nil {
			return "", fmt.Errorf("amplify marker: %w", err)
		}
	}
	fmt.Println("| corpus | messages | raw MB | reused from an earlier run | seconds to write |")
	fmt.Println("|---|---|---|---|---|")
	fmt.Printf("| `%s` (amplified from %s) | %d | %.0f | %s | %.0f |\n\n", maildir, s.corpus, n, float64(r.rawBytes)/1e6, reused, secs)
	return maildir, nil
}

// completeMaildir reports whether maildir holds exactly n messages and its
// marker says so, and returns the raw bytes the marker recorded.
func completeMaildir(maildir, marker string, n int) (int64, bool) {
	b, err := os.ReadFile(marker)
	if err != nil {
		return 0, false
	}
	var mn int
	var raw int64
	if _, err := fmt.Sscanf(string(b), "%d %d", &mn, &raw); err != nil || mn != n {
		return 0, false
	}
	ents, err := os.ReadDir(filepath.Join(maildir, "cur"))
	if err != nil || len(ents) != n {
		return 0, false
	}
	return raw, true
}

// checkSpace fails when the file system of dir has less than need bytes free.
func checkSpace(dir string, need int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return fmt.Errorf("statfs %s: %w", dir, err)
	}
	if free := int64(st.Bavail) * st.Bsize; free < need {
		return fmt.Errorf("%s has %.1f GB free, the amplified corpus and its archive need about %.1f GB", dir, float64(free)/1e9, float64(need)/1e9)
	}
	return nil
}

func removeLogged(paths ...string) {
	for _, p := range paths {
		if err := os.RemoveAll(p); err != nil {
			fmt.Fprintf(os.Stderr, "remove %s: %v\n", p, err)
		}
	}
}

// build times import, reindex and (when nm) notmuch new.
func (s *scaleBench) build(ctx context.Context, maildir, data, nmDB string, nm bool, r *scaleResult) error {
	fmt.Println("| step | messages | seconds | msgs/s | MB raw/s | peak RSS MiB | load (1 min) at start |")
	fmt.Println("|---|---|---|---|---|---|---|")
	row := func(step string, msgs int, secs float64, rss int64, load string) float64 {
		rate := float64(msgs) / secs
		fmt.Printf("| %s | %d | %.1f | %.0f | %.1f | %.0f | %s |\n", step, msgs, secs, rate, float64(r.rawBytes)/1e6/secs, float64(rss)/1024, load)
		return rate
	}
	ld := s.begin("mailarc import")
	secs, rss, out, err := runMeasured(ctx, s.bin, "import", "--data", data, maildir)
	if err != nil {
		return err
	}
	got := matchInt(out, `imported (\d+)`)
	if got != r.n {
		return fmt.Errorf("import stored %d of %d messages:\n%s", got, r.n, tail(out))
	}
	r.importRate, r.importRSS = row("`mailarc import` (archive only, 16 workers)", got, secs, rss, ld), rss
	ld = s.begin("mailarc reindex")
	secs, rss, out, err = runMeasured(ctx, s.bin, "reindex", "--data", data)
	if err != nil {
		return err
	}
	got = matchInt(out, `reindexed (\d+) messages`)
	r.reindexR, r.reindRSS = row("`mailarc reindex` (full-text index, attachments extracted)", got, secs, rss, ld), rss
	if nm {
		ld = s.begin("notmuch new")
		secs, nmN, rss, err := s.notmuchNewMeasured(ctx, maildir, nmDB)
		if err != nil {
			return err
		}
		r.nmRate, r.nmRSS = row("`notmuch new` (Xapian, 1 thread)", nmN, secs, rss, ld), rss
	}
	fmt.Println()
	if !nm {
		fmt.Printf("notmuch not run at %d messages (", r.n)
		if s.notmuch {
			fmt.Printf("N > -nm-max %d: `notmuch new` would take hours at this size", s.nmMax)
		} else {
			fmt.Print("notmuch not in PATH; apt-get install notmuch")
		}
		fmt.Print(").\n\n")
	}
	return nil
}

// notmuchNewMeasured is notmuchNew plus the peak RSS of `notmuch new`.
func (s *scaleBench) notmuchNewMeasured(ctx context.Context, maildir, dbDir string) (float64, int, int64, error) {
	var rss int64
	prev := s.nmHook
	s.nmHook = func(ps *os.ProcessState) { rss = max(rss, maxRSS(ps)) }
	defer func() { s.nmHook = prev }()
	secs, n, err := s.notmuchNew(ctx, maildir, dbDir)
	return secs, n, rss, err
}

// runMeasured runs bin with args and returns the wall-clock seconds, the
// process's peak RSS in KiB and its combined output.
func runMeasured(ctx context.Context, bin string, args ...string) (float64, int64, []byte, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := cmd.Run()
	secs := time.Since(t0).Seconds()
	if err != nil {
		return 0, 0, nil, fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args, " "), err, tail(out.Bytes()))
	}
	return secs, maxRSS(cmd.ProcessState), out.Bytes(), nil
}

// maxRSS returns ru_maxrss of a finished process (KiB on Linux).
func maxRSS(ps *os.ProcessState) int64 {
	if ps == nil {
		return 0
	}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		return ru.Maxrss
	}
	return 0
}

func matchInt(out []byte, re string) int {
	m := regexp.MustCompile(re).FindSubmatch(out)
	if m == nil {
		return -1
	}
	n, _ := strconv.Atoi(string(m[1]))
	return n
}

// tail returns the last 2 kB of a command's output for error messages.
func tail(b []byte) string {
	if len(b) > 2048 {
		b = b[len(b)-2048:]
	}
	return string(b)
}

// diskUsage is the size of the parts of a data directory, apparent bytes
// (sum of file sizes) and allocated bytes (st_blocks).
type diskUsage struct {
	parts        []string // stable order
	size, alloc  map[string]int64
	totalSize    int64
	totalAlloc   int64
	nmSize, nmAl int64
}

// diskTable measures the data directory of a finished reindex.
func (s *scaleBench) diskTable(data, nmDB string, nm bool, r *scaleResult) error {
	d := diskUsage{parts: []string{"store", "catalog", "index", "other"}, size: map[string]int64{}, alloc: map[string]int64{}}
	part := func(rel string) string {
		switch {
		case rel == "store" || strings.HasPrefix(rel, "store"+string(filepath.Separator)):
			return "store"
		case strings.HasPrefix(rel, "catalog.db"):
			return "catalog"
		case strings.HasPrefix(rel, "index.db"), strings.HasPrefix(rel, "index-"):
			return "index"
		}
		return "other"
	}
	err := walkSizes(data, func(rel string, size, alloc int64) {
		p := part(rel)
		d.size[p] += size
		d.alloc[p] += alloc
		d.totalSize += size
		d.totalAlloc += alloc
	})
	if err != nil {
		return err
	}
	if nm {
		if err := walkSizes(nmDB, func(_ string, size, alloc int64) { d.nmSize += size; d.nmAl += alloc }); err != nil {
			return err
		}
	}
	r.disk = d
	raw := float64(r.rawBytes)
	fmt.Printf("Bytes on disk after import + reindex (raw corpus: %d bytes):\n\n", r.rawBytes)
	fmt.Println("| part | files | MB | per raw byte | MB allocated (du) |")
	fmt.Println("|---|---|---|---|---|")
	what := map[string]string{
		"store": "`store/` (compressed packs)", "catalog": "`catalog.db` + `-wal` + `-shm`",
		"index": "`index.db`, `index-1.db` + `-wal` + `-shm`", "other": "everything else in the data directory",
	}
	for _, p := range d.parts {
		fmt.Printf("| %s | %s | %.1f | %.3f | %.1f |\n", p, what[p], float64(d.size[p])/1e6, float64(d.size[p])/raw, float64(d.alloc[p])/1e6)
	}
	fmt.Printf("| **total mailarc** | data directory | %.1f | **%.3f** | %.1f |\n", float64(d.totalSize)/1e6, float64(d.totalSize)/raw, float64(d.totalAlloc)/1e6)
	if nm {
		fmt.Printf("| notmuch (for comparison) | Xapian database only; the maildir itself stays | %.1f | %.3f | %.1f |\n", float64(d.nmSize)/1e6, float64(d.nmSize)/raw, float64(d.nmAl)/1e6)
	}
	fmt.Println()
	return nil
}

// walkSizes calls f for every regular file under dir with its path
// relative to dir, apparent size and allocated bytes.
func walkSizes(dir string, f func(rel string, size, alloc int64)) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		alloc := fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			alloc = st.Blocks * 512
		}
		rel, _ := filepath.Rel(dir, p)
		f(rel, fi.Size(), alloc)
		return nil
	})
}
