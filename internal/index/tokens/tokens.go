// Package tokens holds the text rules that every full-text index of
// mailarc applies identically, so that the SQLite index (package index) and
// the PostgreSQL index (package pgindex) find the same messages for every
// query. Each index encodes the results its own way (FTS5 text and tokens,
// tsvector lexemes); the rules live here once.
//
// # Words
//
// Words are runs of letters and digits, case-folded and with diacritics
// removed (café = CAFE). Runs of CJK characters (Han, Hiragana, Katakana,
// Hangul), which a tokenizer would keep as one word, are rewritten before
// indexing into overlapping bigrams plus the run's final character (see
// CJKPrep); query words get the same treatment, so any substring of a CJK
// run is found.
//
// # Exact-match tokens
//
// Addresses are indexed as words (display name and address split at
// punctuation) and additionally as opaque exact-match tokens for the
// forms returned by AddrForms: the full address, "local@" and "@domain"
// for the domain and each of its dot suffixes. So from:alice@corp.example
// matches exactly that address, from:@corp.example the domain and its
// subdomains, from:alice and from:corp.example match as words/phrases, and
// from:"Alice Smith" matches the display name. Origins (and each
// colon-segment prefix) and has:attachment are exact-match tokens too,
// which bare words do not search. An exact-match token is identified by
// its kind (KindAddr, KindOrigin, KindTag) and Digest(kind, value); the
// indexes wrap the digest so that no word can ever equal it.
package tokens

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
	"unicode/utf8"
)

// IsCJK reports whether r belongs to a script written without spaces
// between words (Han, Hiragana, Katakana, Hangul). Such runs are indexed as
// overlapping character bigrams, see CJKPrep.
func IsCJK(r rune) bool {
	if r < 0x1100 {
		return false
	}
	return r == 0x30FC || unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana, unicode.Hangul)
}

// FirstNonASCII returns the index of the first byte of s that is not
// ASCII, or len(s). Decoding s from there yields the same runes as
// decoding all of s, so rune searches for non-ASCII characters may start
// there (most mail is mostly ASCII).
func FirstNonASCII(s string) int {
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

// CJKPrep rewrites every run of CJK characters in s into its overlapping
// bigrams followed by the run's last character as a unigram, each as its
// own token: "東京都" -> " 東京 京都 都 ". A tokenizer would otherwise keep
// the whole run as one token, making words inside it unsearchable. Text
// without CJK characters is returned unchanged.
//
// For query text (query=true) a run that ends the text (no token character,
// as isToken tells, follows it) is written as bigrams only, so that it may
// match the start of a longer run in the document; a single-character final
// run is written as a unigram and open reports that the caller must make it
// a prefix query (it then matches any bigram starting with it, or the final
// unigram).
func CJKPrep(s string, query bool, isToken func(rune) bool) (out string, open bool) {
	if !strings.ContainsFunc(s[FirstNonASCII(s):], IsCJK) {
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
		if !last || len(run) == 1 {
			b.WriteRune(run[len(run)-1])
			b.WriteByte(' ')
			open = last
		}
		run = run[:0]
	}
	for i, r := range s {
		if IsCJK(r) {
			run = append(run, r)
			continue
		}
		if len(run) > 0 {
			flush(query && !strings.ContainsFunc(s[i:], isToken))
		}
		b.WriteRune(r)
	}
	flush(query)
	return b.String(), open
}

// Kinds of exact-match tokens.
const (
	KindAddr   = 'a' // full address, "local@", "@domain" and each "@domain suffix"
	KindOrigin = 'o' // origin and each of its colon-segment prefixes
	KindTag    = 't' // "attachment" for has:attachment
)

// Digest identifies the exact-match token of kind for value v: 20 hex
// digits of SHA-256(kind + lowercase v).
func Digest(kind byte, v string) string {
	h := sha256.Sum256(append([]byte{kind}, strings.ToLower(v)...))
	return hex.EncodeToString(h[:10])
}

// AddrOf extracts the address from a "Name <addr>" or "addr" entry,
// lowercased; "" when there is none.
func AddrOf(entry string) string {
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

// AddrForms returns the values indexed as KindAddr tokens for one address:
// the full address, "local@", and "@d" for the domain and each of its dot
// suffixes.
func AddrForms(addr string) []string {
	forms := []string{addr}
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return forms
	}
	forms = append(forms, addr[:at+1])
	dom := addr[at+1:]
	for dom != "" {
		forms = append(forms, "@"+dom)
		dot := strings.IndexByte(dom, '.')
		if dot < 0 {
			break
		}
		dom = dom[dot+1:]
	}
	return forms
}

// VisibleAddrs returns the addresses of a per-user visibility restriction
// (index.Options.Addresses) as they are matched against KindAddr tokens:
// trimmed, lowercased, and only whole addresses (local@domain). A domain
// ("@corp.example") or local part ("user@") is dropped: the address tokens
// include those forms for from:@domain searches, but visibility, like the
// API's check of single messages, matches whole addresses only.
func VisibleAddrs(addrs []string) []string {
	var out []string
	for _, a := range addrs {
		a = strings.ToLower(strings.TrimSpace(a))
		if at := strings.LastIndexByte(a, '@'); at > 0 && at < len(a)-1 {
			out = append(out, a)
		}
	}
	return out
}
