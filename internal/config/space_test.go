package config

import (
	"strings"
	"testing"
)

// TestMinFreeSpace: the free-space reserve defaults to 1 GiB, can be
// disabled in the file and set from the environment.
func TestMinFreeSpace(t *testing.T) {
	if c := Default(); c.MinFreeSpace != 1<<30 {
		t.Fatalf("default min_free_space = %d, want 1 GiB", c.MinFreeSpace)
	}
	c := Default()
	if err := Parse(strings.NewReader("min_free_space = \"0\"\n"), &c); err != nil || c.MinFreeSpace != 0 {
		t.Fatalf("min_free_space = \"0\": %d, %v", c.MinFreeSpace, err)
	}
	if err := ApplyEnv(&c, []string{"MAILARC_MIN_FREE_SPACE=5GB"}); err != nil || c.MinFreeSpace != 5<<30 {
		t.Fatalf("MAILARC_MIN_FREE_SPACE=5GB: %d, %v", c.MinFreeSpace, err)
	}
	if err := Parse(strings.NewReader("min_free_space = \"lots\"\n"), &c); err == nil {
		t.Fatal("min_free_space = \"lots\" accepted")
	}
}
