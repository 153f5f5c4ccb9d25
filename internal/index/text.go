package index

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
	"unicode/utf8"
)

// isCJK reports whether r belongs to a script written without spaces
// between words (Han, Hiragana, Katakana, Hangul). Such runs are indexed as
// overlapping character bigrams, see cjkPrep.
func isCJK(r rune) bool {
	if r < 0x1100 {
		return false
	}
	return r == 0x30FC || unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul)
}

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
	if strings.IndexByte(s, 0) < 0 && !strings.ContainsFunc(s[firstNonASCII(s):], isPrivateUse) {
		return s
	}
	return strings.Map(func(r rune) rune {
		if isPrivateUse(r) {
			return ' '
		}
		return r
	}, s)
}

// firstNonASCII returns the index of the first byte of s that is not
// ASCII, or len(s).
func firstNonASCII(s string) int {
	i := 0
	for ; i+8 <= len(s); i += 8 { // eight bytes per test; found in the loop below
		if (s[i]|s[i+1]|s[i+2]|s[i+3]|s[i+4]|s[i+5]|s[i+6]|s[i+7])&0x80 != 0 {
			break
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return i
		}
	}
	return len(s)
}

// hasToken reports whether s contains at least one token character.
func hasToken(s string) bool { return strings.ContainsFunc(s, isTokenRune) }

// cjkPrep rewrites every run of CJK characters in s into its overlapping
// bigrams followed by the run's last character as a unigram, each as its
// own token: "東京都" -> " 東京 京都 都 ". unicode61 would otherwise keep the
// whole run as one token, making words inside it unsearchable. Text without
// CJK characters is returned unchanged.
//
// For query text (query=true) a run that ends the text (no token follows
// it) is written as bigrams only, so that it may match the start of a
// longer run in the document; a single-character final run is written as a
// unigram and open reports that the caller must make it a prefix query
// (it then matches any bigram starting with it, or the final unigram).
func cjkPrep(s string, query bool) (out string, open bool) {
	if !strings.ContainsFunc(s[firstNonASCII(s):], isCJK) {
		return s, false
	}
	var b strings.Builder
	b.Grow(len(s) * 3)
	var run []rune
	flush := func(last bool) {
		if len(run) == 0 {
			return
		}
		b.WriteByte(' ')
		for i := 0; i+1 < len(run); i++ {
			b.WriteRune(run[i])
			b.WriteRune(run[i+1])
			b.WriteByte(' ')
		}
		switch {
		case !last || len(run) == 1:
			b.WriteRune(run[len(run)-1])
			b.WriteByte(' ')
			open = last
		}
		run = run[:0]
	}
	for i, r := range s {
		if isCJK(r) {
			run = append(run, r)
			continue
		}
		if len(run) > 0 {
			flush(query && !hasToken(s[i:]))
		}
		b.WriteRune(r)
	}
	flush(query)
	return b.String(), open
}

// Special tokens. Exact-match facets (addresses, origins, has:attachment)
// are indexed as single opaque tokens U+E000 + kind + 20 hex digits of
// SHA-256(kind + lowercase value). unicode61 treats private-use characters
// as token characters, while sanitize removes them from all document and
// query text, so no word, phrase or prefix query can match a special token
// and only the compiler's own exact tokens do. They also separate the
// entries of an address column, so a phrase cannot run from one address
// into the next.
const (
	kindAddr   = 'a' // full address, "local@", "@domain" and each "@domain suffix"
	kindOrigin = 'o' // origin and each of its colon-segment prefixes
	kindTag    = 't' // "attachment" for has:attachment
)

func specialToken(kind byte, v string) string {
	h := sha256.Sum256(append([]byte{kind}, strings.ToLower(v)...))
	return "\uE000" + string(kind) + hex.EncodeToString(h[:10])
}

// addrOf extracts the address from a "Name <addr>" or "addr" entry,
// lowercased; "" when there is none.
func addrOf(entry string) string {
	if i := strings.LastIndexByte(entry, '<'); i >= 0 {
		if j := strings.IndexByte(entry[i:], '>'); j > 0 {
			return strings.ToLower(strings.TrimSpace(entry[i+1 : i+j]))
		}
	}
	e := strings.TrimSpace(entry)
	if strings.Contains(e, "@") && !strings.ContainsFunc(e, unicode.IsSpace) {
		return strings.ToLower(e)
	}
	return ""
}

// addrTokens returns the special tokens indexed for one address: the full
// address, "local@", and "@d" for the domain and each of its dot suffixes.
func addrTokens(addr string) []string {
	toks := []string{specialToken(kindAddr, addr)}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return toks
	}
	toks = append(toks, specialToken(kindAddr, addr[:at+1]))
	dom := addr[at+1:]
	for dom != "" {
		toks = append(toks, specialToken(kindAddr, "@"+dom))
		dot := strings.IndexByte(dom, '.')
		if dot < 0 {
			break
		}
		dom = dom[dot+1:]
	}
	return toks
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
			t, _ := cjkPrep(sanitize(e), false)
			b.WriteString(t)
			if a := addrOf(e); a != "" {
				for _, tok := range addrTokens(a) {
					b.WriteByte(' ')
					b.WriteString(tok)
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
	out, _ := cjkPrep(s, false)
	return out
}
