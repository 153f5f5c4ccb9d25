package catalog

import (
	"database/sql/driver"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestRebind(t *testing.T) {
	for in, want := range map[string]string{
		`SELECT 1`: `SELECT 1`,
		`SELECT a FROM t WHERE x=? AND y IN (?,?)`:        `SELECT a FROM t WHERE x=$1 AND y IN ($2,$3)`,
		`SELECT '?', 'it''s ?', ? FROM "we?ird"`:          `SELECT '?', 'it''s ?', $1 FROM "we?ird"`,
		`SELECT E'\'?', ?`:                                `SELECT E'\'?', $1`,
		`SELECT 'a\', ?`:                                  `SELECT 'a\', $1`, // standard strings: \ is not an escape
		"SELECT ? -- why?\n, ?":                           "SELECT $1 -- why?\n, $2",
		`SELECT /* a /* nested? */ still? */ ?`:           `SELECT /* a /* nested? */ still? */ $1`,
		`DO $$ BEGIN RAISE '?'; END $$; SELECT ?`:         `DO $$ BEGIN RAISE '?'; END $$; SELECT $1`,
		`SELECT $tag$ ? $x$ ? $tag$, ?`:                   `SELECT $tag$ ? $x$ ? $tag$, $1`,
		`SELECT $1, ?`:                                    `SELECT $1, $1`, // mixing styles is the caller's bug
		`SELECT a$b, ?`:                                   `SELECT a$b, $1`,
		`SELECT 'unterminated ?`:                          `SELECT 'unterminated ?`,
		`INSERT INTO t VALUES (?) ON CONFLICT DO NOTHING`: `INSERT INTO t VALUES ($1) ON CONFLICT DO NOTHING`,
	} {
		if got := rebind(in); got != want {
			t.Errorf("rebind(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzRebind(f *testing.F) {
	for _, s := range []string{`SELECT ? FROM t WHERE a='?' AND "b?"=?`, "-- ?\n?", `$$?$$?`, `E'\\'?'`, `/*/*?*/?*/?`, `$a$?$a`, "'"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, q string) {
		if len(q) > 1<<16 {
			return
		}
		out := rebind(q)
		if !strings.Contains(q, "?") && out != q {
			t.Fatalf("query without placeholders changed: %q -> %q", q, out)
		}
		n := strings.Count(q, "?") - strings.Count(out, "?")
		if n < 0 {
			t.Fatalf("placeholders appeared: %q -> %q", q, out)
		}
		if n > 0 && !strings.Contains(out, "$"+strconv.Itoa(n)) {
			t.Fatalf("%d placeholders rewritten but no $%d in %q", n, n, out)
		}
		// Every rewritten "?" is outside quotes: replacing the same
		// positions in a query of placeholders only is the identity.
		plain := strings.Repeat("?,", n)
		if got := rebind(plain); strings.Count(got, "$") != n {
			t.Fatalf("plain %q -> %q", plain, got)
		}
	})
}

func TestPgText(t *testing.T) {
	for in, want := range map[string]string{
		"plain":        "plain",
		"":             "",
		"a\x00b":       "a\uFFFDb",
		"bad\xff\xfe!": "bad\uFFFD!",
		"ü":            "ü",
	} {
		if got := pgText(in); got != want || !utf8.ValidString(got) {
			t.Errorf("pgText(%q) = %q, want %q", in, got, want)
		}
	}
	args := []driver.NamedValue{{Ordinal: 1, Value: int64(1)}, {Ordinal: 2, Value: "ok"}}
	if got := pgArgs(args); &got[0] != &args[0] {
		t.Error("clean arguments were copied")
	}
	bad := []driver.NamedValue{{Ordinal: 1, Value: "a\x00"}}
	if got := pgArgs(bad); got[0].Value != "a\uFFFD" || bad[0].Value != "a\x00" {
		t.Errorf("pgArgs: %v (input %v)", got, bad)
	}
}

func TestReadDSNFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "dsn")
	if err := os.WriteFile(p, []byte("  host=/run/pg dbname=mailarc password=s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if dsn, err := ReadDSNFile(p); err != nil || dsn != "host=/run/pg dbname=mailarc password=s3cret" {
		t.Fatalf("%q %v", dsn, err)
	}
	if err := os.WriteFile(p, []byte(" \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadDSNFile(p); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty file: %v", err)
	}
	if _, err := ReadDSNFile(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("missing file accepted")
	}
}

func TestOpenPostgresBadDSNHidesPassword(t *testing.T) {
	_, err := OpenPostgres(t.Context(), "postgres://u:s3cret@[::1/x?sslmode=bogus")
	if err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Fatalf("want an error without the password, got %v", err)
	}
}
