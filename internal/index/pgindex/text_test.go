package pgindex

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/index/tokens"
)

func TestTokens(t *testing.T) {
	t.Parallel()
	for in, want := range map[string][]string{
		"Café NAÏVE e\u0301te\u0301 Straße": {"cafe", "naive", "ete", "straße"},
		"foo-bar, x1/2024":                  {"foo", "bar", "x1", "2024"},
		"alice@corp.example":                {"alice", "corp", "example"},
		"한국어":                               {"한국어"}, // Hangul is not decomposed into jamo
		"\uE000abc\xffdef":                  {"abc", "def"},
		"--- !!":                            nil,
	} {
		if got := foldTokens(in); !slices.Equal(got, want) {
			t.Errorf("foldTokens(%q) = %q, want %q", in, got, want)
		}
	}
	if got := foldTokens(strings.Repeat("é", 300)); len(got) != 1 || len(got[0]) != maxTokenLen {
		t.Errorf("long token: %d tokens, first %d bytes; want one of %d", len(got), len(got[0]), maxTokenLen)
	}
}

func TestQueryTokensCJK(t *testing.T) {
	t.Parallel()
	toks, open := queryTokens("東京都")
	if !slices.Equal(toks, []string{"東京", "京都"}) || open {
		t.Errorf("東京都 -> %q open=%v", toks, open)
	}
	toks, open = queryTokens("庁")
	if !slices.Equal(toks, []string{"庁"}) || !open {
		t.Errorf("庁 -> %q open=%v, want a prefix", toks, open)
	}
}

func TestDocVector(t *testing.T) {
	t.Parallel()
	d := index.Document{
		From:    []string{"Alice <alice@corp.example>", "bob@x.example"},
		Subject: "it's a \\ test", Origins: []string{"peer:arc-b"}, AttachmentTypes: []string{"image/png"},
	}
	v := docVector(&d)
	for _, want := range []string{"'falice':1B,2B", "'fcorp':3B", "'fbob':6B", "'sit':1A", "'ss':2A", "'stest':4A",
		"'" + specialLexeme(codeFrom, tokens.KindAddr, "@example") + "'",
		"'" + specialLexeme(codeTags, tokens.KindOrigin, "peer") + "'",
		"'" + specialLexeme(codeTags, tokens.KindTag, "attachment") + "'",
		"'nimage':1C"} {
		if !strings.Contains(v, want) {
			t.Errorf("vector %s\nlacks %s", v, want)
		}
	}
}

func TestVectorBudget(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	for i := 0; b.Len() < 2<<20; i++ {
		fmt.Fprintf(&b, "w%x ", i)
	}
	d := index.Document{Body: b.String(), Subject: "kept subject", AttachmentText: b.String()}
	vb := newVecBuilder()
	vb.words(codeSubject, d.Subject)
	vb.words(codeBody, d.Body)
	vb.words(codeAttach, d.AttachmentText)
	lit := vb.literal()
	if n := vb.vecSize(); n > maxVecBytes {
		t.Errorf("vector size %d > budget %d", n, maxVecBytes)
	}
	for _, want := range []string{"'skept':1A", "'yw0':1D", "'aw0':1D"} {
		if !strings.Contains(lit, want) {
			t.Errorf("trimmed vector lacks %s", want)
		}
	}
}

// FuzzTokens: foldTokens gives tokens that are non-empty, valid UTF-8,
// within maxTokenLen and made of token characters only, and folding is
// idempotent.
func FuzzTokens(f *testing.F) {
	for _, s := range []string{"Café NAÏVE", "東京都庁で会議", "ǅemal Ǆ ﬁ", "e\u0301\u0301", "\xff\xfe", "ΣΊΣΥΦΟΣ"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, _ := tokens.CJKPrep(s, false, isTokenRune)
		toks := foldTokens(p)
		for _, tok := range toks {
			if tok == "" || !utf8.ValidString(tok) || len(tok) > maxTokenLen || strings.ContainsFunc(tok, func(r rune) bool { return !isTokenRune(r) }) {
				t.Fatalf("bad token %q from %q", tok, s)
			}
		}
		if again := foldTokens(strings.Join(toks, " ")); !slices.Equal(again, toks) {
			t.Fatalf("folding not idempotent: %q -> %q -> %q", s, toks, again)
		}
	})
}
