package index

import (
	"strings"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"

	"github.com/mailarc/mailarc/internal/index/tokens"
	"github.com/mailarc/mailarc/internal/query"
)

// DefaultSnippetLen is the snippet length used when maxLen <= 0.
const DefaultSnippetLen = 200

type span struct{ start, end int } // rune offsets, end exclusive

type snipTok struct {
	span
	folded string
}

// folder folds case and removes diacritics, like unicode61 with
// remove_diacritics 2.
type folder struct{ t transform.Transformer }

func newFolder() *folder {
	return &folder{t: transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)}
}

func (f *folder) fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			ascii = false
			break
		}
	}
	if ascii { // nothing to decompose: lowercasing is the whole fold
		return strings.ToLower(s)
	}
	out, _, err := transform.String(f.t, strings.ToLower(s))
	if err != nil {
		return strings.ToLower(s)
	}
	return out
}

// tokenize splits rs into tokens the way the index sees them: runs of
// letters and digits, with each CJK character a token of its own.
func tokenize(rs []rune, f *folder) []snipTok {
	l := &lazyToks{rs: rs, f: f}
	for i := 0; ; i++ {
		if _, ok := l.get(i); !ok {
			return l.toks
		}
	}
}

// lazyToks tokenizes rs on demand, so that Snippet stops folding once the
// rest of a long text can no longer reach the snippet window.
type lazyToks struct {
	rs   []rune
	f    *folder
	pos  int // next rune to scan
	toks []snipTok
}

// get returns token i, tokenizing up to it; false when rs has fewer tokens.
func (l *lazyToks) get(i int) (snipTok, bool) {
	for len(l.toks) <= i {
		rs := l.rs
		for l.pos < len(rs) && !tokens.IsCJK(rs[l.pos]) && !isTokenRune(rs[l.pos]) {
			l.pos++
		}
		if l.pos >= len(rs) {
			return snipTok{}, false
		}
		s := l.pos
		if tokens.IsCJK(rs[s]) {
			l.toks = append(l.toks, snipTok{span{s, s + 1}, string(rs[s])})
			l.pos++
			continue
		}
		j := s
		for j < len(rs) && isTokenRune(rs[j]) && !tokens.IsCJK(rs[j]) {
			j++
		}
		l.toks = append(l.toks, snipTok{span{s, j}, l.f.fold(string(rs[s:j]))})
		l.pos = j
	}
	return l.toks[i], true
}

// Snippet returns up to maxLen runes (DefaultSnippetLen when maxLen <= 0)
// of text around the first hits of q's positive terms (see
// query.Query.Terms), with each hit wrapped as mark[0]+hit+mark[1]. Runs of
// white space are collapsed to one space. Matching is case- and
// diacritic-insensitive and follows the index's tokenization (whole words,
// phrases as consecutive words, prefix terms, CJK substrings). The text is
// returned as given, not escaped, and the marks are inserted verbatim: to
// produce HTML, HTML-escape text first and pass mark strings such as
// "<mark>" and "</mark>". Without hits the start of the text is returned.
func Snippet(text string, q *query.Query, maxLen int, mark [2]string) string {
	if maxLen <= 0 {
		maxLen = DefaultSnippetLen
	}
	rs := []rune(strings.Join(strings.Fields(sanitize(text)), " "))
	f := newFolder()
	var terms [][]string
	var prefix []bool
	for _, t := range q.PositiveTerms() {
		var words []string
		for _, tok := range tokenize([]rune(t.Text), f) {
			words = append(words, tok.folded)
		}
		if len(words) > 0 {
			terms = append(terms, words)
			prefix = append(prefix, t.Prefix)
		}
	}
	var hits []span
	if len(terms) > 0 {
		toks := &lazyToks{rs: rs, f: f}
		for i := 0; ; {
			first, ok := toks.get(i)
			// Hits that start a window length after the first one cannot
			// be in the snippet: stop there.
			if !ok || len(hits) > 0 && first.start >= hits[0].start+maxLen {
				break
			}
			best := 0
			for k, words := range terms {
				if len(words) <= best {
					continue
				}
				ok := true
				for j, w := range words {
					t, has := toks.get(i + j)
					if !has {
						ok = false
						break
					}
					got := t.folded
					if got != w && !(prefix[k] && j == len(words)-1 && strings.HasPrefix(got, w)) {
						ok = false
						break
					}
				}
				if ok {
					best = len(words)
				}
			}
			if best == 0 {
				i++
				continue
			}
			hits = append(hits, span{first.start, toks.toks[i+best-1].end})
			i += best
		}
	}
	start, end := 0, min(len(rs), maxLen)
	if len(hits) > 0 && hits[0].end > end {
		// Put the first hit about a fifth into the window, at a word start.
		start = max(0, hits[0].start-maxLen/5)
		if sp := indexRune(rs[start:hits[0].start], ' '); start > 0 && sp >= 0 {
			start += sp + 1
		}
		end = min(len(rs), start+maxLen)
		if end-start < maxLen {
			start = max(0, end-maxLen)
		}
	}
	// End at a word boundary when one is near.
	if end < len(rs) && !unicode.IsSpace(rs[end]) {
		for i := end - 1; i > start && i >= end-15; i-- {
			if rs[i] == ' ' {
				if len(hits) == 0 || i > hits[0].end {
					end = i
				}
				break
			}
		}
	}
	var b strings.Builder
	pos := start
	for _, h := range hits {
		if h.end <= start || h.start >= end {
			continue
		}
		hs, he := max(h.start, start), min(h.end, end)
		b.WriteString(string(rs[pos:hs]))
		b.WriteString(mark[0])
		b.WriteString(string(rs[hs:he]))
		b.WriteString(mark[1])
		pos = he
	}
	b.WriteString(string(rs[pos:end]))
	return b.String()
}

func indexRune(rs []rune, r rune) int {
	for i, x := range rs {
		if x == r {
			return i
		}
	}
	return -1
}
