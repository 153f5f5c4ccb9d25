package index

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/mailarc/mailarc/internal/index/tokens"
)

// isTokenRune mirrors the token characters of FTS5's unicode61 tokenizer
// (Unicode categories L*, N* and Co) minus private-use characters, which
// sanitize turns into spaces in all document and query text: they are
// reserved for special tokens (see specialToken).
func isTokenRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsNumber(r)
}

// isPrivateUse reports whether r is in a private-use area, or NUL (which
// would cut an FTS5 query string short).
func isPrivateUse(r rune) bool {
	return r == 0 || (r >= 0xE000 && r <= 0xF8FF) || r >= 0xF0000
}

// sanitize makes s valid UTF-8 and replaces NUL and private-use characters
// with spaces, so that no document or query text can produce or match a special
// token.
func sanitize(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	// NUL is the only ASCII character to replace; the rune-by-rune search
	// starts at the first non-ASCII byte (most mail is mostly ASCII).
	if strings.IndexByte(s, 0) < 0 && !strings.ContainsFunc(s[tokens.FirstNonASCII(s):], isPrivateUse) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isPrivateUse(r) {
			return ' '
		}
		return r
	}, s)
}

// hasToken reports whether s contains at least one token character.
func hasToken(s string) bool { return strings.ContainsFunc(s, isTokenRune) }

// specialToken renders the exact-match token of kind for v (see package
// tokens) as one opaque FTS5 token: U+E000 + kind + tokens.Digest(kind, v).
// unicode61 treats private-use characters as token characters, while
// sanitize removes them from all document and query text, so no word,
// phrase or prefix query can match a special token and only the compiler's
// own exact tokens do. They also separate the entries of an address
// column, so a phrase cannot run from one address into the next.
func specialToken(kind byte, v string) string {
	return "\uE000" + string(kind) + tokens.Digest(kind, v)
}

// addressColumn renders the FTS text of an address column: for each entry
// its words (display name and address) followed by its special tokens. The
// special tokens also keep a phrase from running from one entry into the
// next.
func addressColumn(lists ...[]string) string {
	var b strings.Builder
	for _, l := range lists {
		for _, e := range l {
			if e == "" {
				continue
			}
			t, _ := tokens.CJKPrep(sanitize(e), false, isTokenRune)
			b.WriteString(t)
			if a := tokens.AddrOf(e); a != "" {
				for _, f := range tokens.AddrForms(a) {
					b.WriteByte(' ')
					b.WriteString(specialToken(tokens.KindAddr, f))
				}
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// textColumn joins list entries and prepares CJK runs.
func textColumn(parts ...string) string {
	s := sanitize(strings.Join(parts, "\n"))
	out, _ := tokens.CJKPrep(s, false, isTokenRune)
	return out
}
