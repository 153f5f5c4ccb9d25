package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	got := summarize(d)
	if got.p50 != 50 || got.p95 != 95 || got.p99 != 99 || got.n != 100 {
		t.Errorf("summarize(1..100 ms) = %+v, want p50 50 p95 95 p99 99 n 100", got)
	}
	// Five samples: p95 and p99 are the maximum (nearest rank).
	got = summarize([]time.Duration{5 * time.Millisecond, time.Millisecond, 3 * time.Millisecond, 2 * time.Millisecond, 4 * time.Millisecond})
	if got.p50 != 3 || got.p95 != 5 || got.p99 != 5 {
		t.Errorf("summarize(5 samples) = %+v, want 3 / 5 / 5", got)
	}
	if s := summarize(nil).String(); s != "-" {
		t.Errorf("empty summary prints %q, want -", s)
	}
}

func TestCompleteMaildir(t *testing.T) {
	dir := t.TempDir()
	md := filepath.Join(dir, "maildir-3")
	marker := md + ".done"
	if _, ok := completeMaildir(md, marker, 3); ok {
		t.Fatal("missing maildir reported complete")
	}
	if err := os.MkdirAll(filepath.Join(md, "cur"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b", "c"} {
		if err := os.WriteFile(filepath.Join(md, "cur", n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := completeMaildir(md, marker, 3); ok {
		t.Fatal("maildir without marker reported complete (an interrupted amplify)")
	}
	if err := os.WriteFile(marker, []byte("3 1234\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if raw, ok := completeMaildir(md, marker, 3); !ok || raw != 1234 {
		t.Fatalf("complete maildir: raw %d ok %v, want 1234 true", raw, ok)
	}
	if _, ok := completeMaildir(md, marker, 4); ok {
		t.Fatal("maildir of 3 reported complete for n=4")
	}
}

func TestWorstP99(t *testing.T) {
	qs := []benchQuery{{name: "a"}, {name: "b"}, {name: "c"}}
	m := map[string]lat3{"a": {p99: 3, n: 1}, "b": {p99: 70, n: 1}, "c": {p99: 12, n: 1}}
	if q, v := worstP99(qs, m); q != "b" || v != 70 {
		t.Errorf("worstP99 = %s %.0f, want b 70", q, v)
	}
}

func TestShellJoin(t *testing.T) {
	got := shellJoin([]string{"bin/mailarc-bench", "-n", "100000,1000000", "it's", ""})
	want := `bin/mailarc-bench -n 100000,1000000 'it'\''s' ''`
	if got != want {
		t.Errorf("shellJoin = %s, want %s", got, want)
	}
}

func TestWalkSizes(t *testing.T) {
	dir := t.TempDir()
	for name, size := range map[string]int{"catalog.db": 10, "catalog.db-wal": 5, "index.db": 7, "store/p1": 100, "MAILARC": 1} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, make([]byte, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s := &scaleBench{indexBench: &indexBench{}}
	r := &scaleResult{rawBytes: 1000}
	if err := s.diskTable(dir, "", false, r); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"store": 100, "catalog": 15, "index": 7, "other": 1}
	for k, v := range want {
		if r.disk.size[k] != v {
			t.Errorf("%s = %d bytes, want %d", k, r.disk.size[k], v)
		}
	}
	if r.disk.totalSize != 123 {
		t.Errorf("total = %d, want 123", r.disk.totalSize)
	}
}
