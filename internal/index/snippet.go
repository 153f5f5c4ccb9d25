package index

import (
	"strings"
	"unicode"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"

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
	out, _, err := transform.String(f.t, strings.ToLower(s))
	if err != nil {
		return strings.ToLower(s)
	}
	return out
}

// tokenize splits rs into tokens the way the index sees them: runs of
// letters and digits, with each CJK character a token of its own.
func tokenize(rs []rune, f *folder) []snipTok {
	var toks []snipTok
	for i := 0; i < len(rs); {
		r := rs[i]
		switch {
		case isCJK(r):
			toks = append(toks, snipTok{span{i, i + 1}, string(r)})
			i++
		case isTokenRune(r):
			j := i
			for j < len(rs) && isTokenRune(rs[j]) && !isCJK(rs[j]) {
				j++
			}
			toks = append(toks, snipTok{span{i, j}, f.fold(string(rs[i:j]))})
			i = j
		default:
			i++
		}
	}
	return toks
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
		toks := tokenize(rs, f)
		for i := 0; i < len(toks); {
			best := 0
			for k, words := range terms {
				if len(words) <= best || i+len(words) > len(toks) {
					continue
				}
				ok := true
				for j, w := range words {
					got := toks[i+j].folded
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
			hits = append(hits, span{toks[i].start, toks[i+best-1].end})
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
