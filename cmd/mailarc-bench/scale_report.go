package main

// Report parts of `mailarc-bench scale`: machine facts, the issue #10
// targets next to the measured numbers, and a summary across sizes.

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// Targets from issue #10 (2-core, 24 GB machine).
const (
	targetIndexRate  = 2000 // msgs/s
	targetVsNotmuch  = 5.0  // indexing rate ratio
	targetP99ms      = 50.0 // every query, at 1M messages
	targetDiskRatio  = 0.5  // everything on disk / raw bytes
	targetServeBytes = 1e9  // serve RSS at 1M messages
	targetScaleN     = 1000000
)

// printMachine prints the run's header: command, commit and machine.
func printMachine(ctx context.Context, s *scaleBench) {
	fmt.Println("# mailarc at scale (`mailarc-bench scale`)")
	fmt.Println()
	fmt.Println("| fact | value |")
	fmt.Println("|---|---|")
	row := func(k, v string) { fmt.Printf("| %s | %s |\n", k, strings.ReplaceAll(v, "|", "\\|")) }
	row("started", time.Now().Format(time.RFC3339))
	row("command", "`"+shellJoin(os.Args)+"`")
	row("commit (`git describe --always --dirty` in the working directory)", cmdOut(ctx, "git", "describe", "--always", "--dirty"))
	row("mailarc binary", fmt.Sprintf("`%s`, `version`: %s", s.bin, cmdOut(ctx, s.bin, "version")))
	row("bench built with", runtime.Version())
	row("CPUs (nproc)", fmt.Sprint(runtime.NumCPU()))
	row("CPU model", procField("/proc/cpuinfo", "model name"))
	row("memory", procField("/proc/meminfo", "MemTotal")+", swap "+procField("/proc/meminfo", "SwapTotal"))
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		row("kernel", strings.TrimSpace(string(b)))
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(s.work, &st); err == nil {
		row("work directory", fmt.Sprintf("`%s`, %.0f GB free", s.work, float64(int64(st.Bavail)*st.Bsize)/1e9))
	}
	nm := "not installed (notmuch columns skipped)"
	if s.notmuch {
		nm = cmdOut(ctx, "notmuch", "--version") + fmt.Sprintf(", run up to %d messages (-nm-max)", s.nmMax)
	}
	row("notmuch", nm)
	cold := fmt.Sprintf("yes, %d samples per query and path", s.cold)
	if s.coldErr != nil {
		cold = "**not measurable**: " + s.coldErr.Error()
	}
	row("cold runs (drop_caches)", cold)
	row("warm iterations", fmt.Sprintf("%d per query and path, %d for notmuch", s.iters, s.nmIters))
	row("load wait", fmt.Sprintf("before each phase until the 1-min load average < %.1f, at most %s; \"(!)\" marks phases that started above it", s.maxLoad, s.loadWait))
	row("load average at start", idxLoadAvg())
	fmt.Println()
	fmt.Println("The machine may be shared: every table gives the 1-minute load average at the start of its phase.")
	fmt.Println()
}

// printTargets prints the targets next to the numbers of r.
func printTargets(s *scaleBench, r *scaleResult) {
	fmt.Printf("Targets (issue #10) at %d messages:\n\n", r.n)
	fmt.Println("| target | measured | met? |")
	fmt.Println("|---|---|---|")
	at1M := ""
	if r.n < targetScaleN {
		at1M = fmt.Sprintf(" (the target is stated at %d messages; shown here for reference)", targetScaleN)
	}
	fmt.Printf("| indexing ≥ %d msgs/s | `reindex` %.0f msgs/s | %s |\n", targetIndexRate, r.reindexR, met(r.reindexR >= targetIndexRate))
	if r.nmRate > 0 {
		x := r.reindexR / r.nmRate
		fmt.Printf("| indexing ≥ %.0f× notmuch | `reindex` / `notmuch new` = %.1f× (import + reindex together: %.1f×) | %s |\n",
			targetVsNotmuch, x, (1/(1/r.importRate+1/r.reindexR))/r.nmRate, met(x >= targetVsNotmuch))
	} else {
		fmt.Printf("| indexing ≥ %.0f× notmuch | notmuch not run at this size (-nm-max %d) | not measured |\n", targetVsNotmuch, s.nmMax)
	}
	q, worst := worstP99(r.queries, r.warmHTTP)
	fmt.Printf("| search p99 ≤ %.0f ms for every query, warm, HTTP%s | worst: %.1f ms (%s) | %s |\n", targetP99ms, at1M, worst, q, met(worst <= targetP99ms))
	if r.coldHTTP != nil {
		q, worst := worstP99(r.queries, r.coldHTTP)
		fmt.Printf("| search p99 ≤ %.0f ms for every query, cold, HTTP%s | worst: %.1f ms (%s) | %s |\n", targetP99ms, at1M, worst, q, met(worst <= targetP99ms))
	} else {
		fmt.Printf("| search p99 ≤ %.0f ms for every query, cold | cold not measurable | not measured |\n", targetP99ms)
	}
	ratio := float64(r.disk.totalSize) / float64(r.rawBytes)
	fmt.Printf("| everything on disk ≤ %.0f%% of raw | %.1f%% (store %.1f%%, catalog %.1f%%, index %.1f%%) | %s |\n", 100*targetDiskRatio, 100*ratio,
		100*float64(r.disk.size["store"])/float64(r.rawBytes), 100*float64(r.disk.size["catalog"])/float64(r.rawBytes),
		100*float64(r.disk.size["index"])/float64(r.rawBytes), met(ratio <= targetDiskRatio))
	fmt.Printf("| serve RSS ≤ 1 GB serving searches%s | VmHWM %.0f MB | %s |\n", at1M, float64(r.serveHWM)*1024/1e6, met(float64(r.serveHWM)*1024 <= targetServeBytes))
	fmt.Println()
}

// printSummary prints one row per size.
func printSummary(s *scaleBench, rs []*scaleResult) {
	fmt.Println("## Summary")
	fmt.Println()
	fmt.Println("| messages | raw MB | import msgs/s (peak RSS MiB) | reindex msgs/s (peak RSS MiB) | notmuch new msgs/s (peak RSS MiB) | disk / raw | worst warm HTTP p99 ms | worst cold HTTP p99 ms | serve VmHWM MiB |")
	fmt.Println("|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		nm := fmt.Sprintf("not run (N > %d)", s.nmMax)
		if r.nmRate > 0 {
			nm = fmt.Sprintf("%.0f (%.0f)", r.nmRate, float64(r.nmRSS)/1024)
		}
		wq, w := worstP99(r.queries, r.warmHTTP)
		cold := "not measurable"
		if r.coldHTTP != nil {
			cq, c := worstP99(r.queries, r.coldHTTP)
			cold = fmt.Sprintf("%.1f (%s)", c, cq)
		}
		fmt.Printf("| %d | %.0f | %.0f (%.0f) | %.0f (%.0f) | %s | %.3f | %.1f (%s) | %s | %.0f |\n",
			r.n, float64(r.rawBytes)/1e6, r.importRate, float64(r.importRSS)/1024, r.reindexR, float64(r.reindRSS)/1024, nm,
			float64(r.disk.totalSize)/float64(r.rawBytes), w, wq, cold, float64(r.serveHWM)/1024)
	}
	fmt.Println()
}

// worstP99 returns the query with the highest p99 and that p99.
func worstP99(qs []benchQuery, m map[string]lat3) (string, float64) {
	name, worst := "", -1.0
	for _, q := range qs {
		if l, ok := m[q.name]; ok && l.p99 > worst {
			name, worst = q.name, l.p99
		}
	}
	return name, worst
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "**not met**"
}

// cmdOut returns the trimmed first line of a command's output, or why not.
func cmdOut(ctx context.Context, name string, args ...string) string {
	out, err := exec.CommandContext(ctx, name, args...).Output()
	if err != nil {
		return fmt.Sprintf("unknown (%v)", err)
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// procField returns the value of the first "key: value" line of a /proc file.
func procField(file, key string) string {
	b, err := os.ReadFile(file)
	if err != nil {
		return "?"
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}

// shellJoin quotes args for a copy-pasteable command line.
func shellJoin(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=,:+", r))
		}) < 0 {
			q[i] = a
		} else {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(q, " ")
}
