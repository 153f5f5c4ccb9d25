// Package testutil has helpers shared by tests: locating the shared corpus,
// honouring MAILARC_INTEGRATION, and polling with a deadline.
package testutil

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// Integration reports whether MAILARC_INTEGRATION=1 is set: then a missing
// dependency is a test failure instead of a skip.
func Integration() bool { return os.Getenv("MAILARC_INTEGRATION") == "1" }

// Require skips the test (or fails it under MAILARC_INTEGRATION=1) with
// reason when ok is false.
func Require(t testing.TB, ok bool, reason string) {
	t.Helper()
	if ok {
		return
	}
	if Integration() {
		t.Fatalf("MAILARC_INTEGRATION=1 but %s", reason)
	}
	t.Skipf("skipping: %s (set up by .ci/run; MAILARC_INTEGRATION=1 makes this a failure)", reason)
}

// RepoRoot returns the directory holding go.mod.
func RepoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// FindCorpus returns <repo root>/../shared/corpus joined with sub, or ""
// when it is absent (or the working directory is outside the module).
func FindCorpus(sub ...string) string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
	p := filepath.Join(append([]string{dir, "..", "shared", "corpus"}, sub...)...)
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// Corpus returns the path of ../shared/corpus (relative to the repository
// root), skipping the test when it is absent.
func Corpus(t testing.TB) string {
	t.Helper()
	p := filepath.Join(RepoRoot(t), "..", "shared", "corpus")
	_, err := os.Stat(p)
	Require(t, err == nil, "the shared corpus "+p+" is not present")
	return p
}

// Eventually polls cond every 20 ms until it returns true or timeout passes.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
