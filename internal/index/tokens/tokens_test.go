package tokens

import (
	"slices"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

func isWord(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }

func TestFirstNonASCII(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		s    string
		want int
	}{
		{"", 0}, {"abc", 3}, {"abcdefgh", 8}, {"abcdefghé", 8}, {"é", 0},
		{"abcdefg\x80", 7}, {"0123456789abcdef\xff", 16}, {"abcdefghijk\u4e2d", 11},
	} {
		if got := FirstNonASCII(c.s); got != c.want {
			t.Errorf("FirstNonASCII(%q) = %d, want %d", c.s, got, c.want)
		}
	}
}

func TestCJKPrep(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in    string
		query bool
		want  string
		open  bool
	}{
		{"plain text", true, "plain text", false},
		{"東京都", false, " 東京 京都 都 ", false},
		{"東京都", true, " 東京 京都 ", false},
		{"庁", true, " 庁 ", true},
		{"東京都 x", true, " 東京 京都 都  x", false},
		{"a東京b", false, "a 東京 京 b", false},
	} {
		got, open := CJKPrep(c.in, c.query, isWord)
		if got != c.want || open != c.open {
			t.Errorf("CJKPrep(%q, %v) = %q, %v; want %q, %v", c.in, c.query, got, open, c.want, c.open)
		}
	}
	// Whether a token follows a final run is the caller's notion of token.
	mark := func(r rune) bool { return isWord(r) || unicode.Is(unicode.Mn, r) }
	if got, _ := CJKPrep("東京\u0301", true, mark); got != " 東京 京 \u0301" {
		t.Errorf("run before a mark counted as a token: %q", got)
	}
	if got, _ := CJKPrep("東京\u0301", true, isWord); got != " 東京 \u0301" {
		t.Errorf("run before a mark not counted as a token: %q", got)
	}
}

func TestAddrs(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Alice <Alice@Corp.Example>": "alice@corp.example", " bob@x.example ": "bob@x.example",
		"Alice Smith": "", "a b@c": "", "<>": "",
	} {
		if got := AddrOf(in); got != want {
			t.Errorf("AddrOf(%q) = %q, want %q", in, got, want)
		}
	}
	if got, want := AddrForms("a@mail.corp.example"), []string{"a@mail.corp.example", "a@", "@mail.corp.example", "@corp.example", "@example"}; !slices.Equal(got, want) {
		t.Errorf("AddrForms = %q, want %q", got, want)
	}
	if got := AddrForms("local"); !slices.Equal(got, []string{"local"}) {
		t.Errorf("AddrForms(local) = %q", got)
	}
	if got := VisibleAddrs([]string{" A@B ", "", "  "}); !slices.Equal(got, []string{"a@b"}) {
		t.Errorf("VisibleAddrs = %q", got)
	}
	if Digest(KindAddr, "A@B") != Digest(KindAddr, "a@b") || Digest(KindAddr, "x") == Digest(KindOrigin, "x") || len(Digest(KindTag, "")) != 20 {
		t.Error("Digest: case must not matter, kind must, and it has 20 hex digits")
	}
}

// FuzzCJKPrep: document text keeps its non-CJK characters in order, every
// CJK token is at most two characters long, and text without CJK is
// returned unchanged.
func FuzzCJKPrep(f *testing.F) {
	for _, s := range []string{"東京都庁で会議", "x 한국어 y", "カタカナー", "\xff東", "plain"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, query := range []bool{false, true} {
			out, open := CJKPrep(s, query, isWord)
			if !strings.ContainsFunc(s, IsCJK) {
				if out != s || open {
					t.Fatalf("CJKPrep(%q) changed text without CJK: %q", s, out)
				}
				continue
			}
			if utf8.ValidString(s) && !utf8.ValidString(out) {
				t.Fatalf("CJKPrep(%q) = invalid UTF-8", s)
			}
			strip := func(x string) string {
				return strings.Map(func(r rune) rune {
					if IsCJK(r) || r == ' ' {
						return -1
					}
					return r
				}, x)
			}
			if strip(out) != strip(s) {
				t.Fatalf("CJKPrep(%q) = %q lost or added characters", s, out)
			}
			for _, f := range strings.Fields(out) {
				n := 0
				for _, r := range f {
					if IsCJK(r) {
						n++
					} else {
						n = 0
					}
					if n > 2 {
						t.Fatalf("CJKPrep(%q) = %q has a CJK run %q", s, out, f)
					}
				}
			}
		}
	})
}

// TestVisibleAddrsWholeOnly: a domain or a bare local part never becomes a
// visibility address (it would match every address of that form).
func TestVisibleAddrsWholeOnly(t *testing.T) {
	got := VisibleAddrs([]string{"@corp.example", "user@", "@", "nobody", " Boss@Corp.Example ", "a@b@c.example"})
	if want := []string{"boss@corp.example", "a@b@c.example"}; !slices.Equal(got, want) {
		t.Errorf("VisibleAddrs = %q, want %q", got, want)
	}
}
