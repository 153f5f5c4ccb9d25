package mirror

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadSecrets: one secret per line, in file order (the first is the
// one used); comments, blank lines and surrounding space are ignored; a
// short secret names its line; a file without a secret or missing is an
// error.
func TestLoadSecrets(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	got, err := LoadSecrets(write("ok", "# rotated 2025-01-01\n\n  new-secret-0123456789abcdef  \r\n# old one, remove after step 3\nold-secret-0123456789abcdef\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || string(got[0]) != "new-secret-0123456789abcdef" || string(got[1]) != "old-secret-0123456789abcdef" {
		t.Fatalf("secrets %q, want [new old] in file order, trimmed", got)
	}
	for _, c := range []struct{ name, content, want string }{
		{"short", "# comment\ngood-secret-0123456789\n\nshort\n", "line 4: secret too short"},
		{"only comments", "# nothing here\n\n   \n#another\n", "no secret in the file"},
		{"empty", "", "no secret in the file"},
	} {
		_, err := LoadSecrets(write(strings.ReplaceAll(c.name, " ", "-"), c.content))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want one containing %q", c.name, err, c.want)
		}
	}
	if _, err := LoadSecrets(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "shared_secret_file") {
		t.Errorf("missing file: err %v", err)
	}
}
