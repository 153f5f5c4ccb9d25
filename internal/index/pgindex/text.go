package pgindex

import (
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/index/tokens"
	"github.com/mailarc/mailarc/internal/query"
)

// Field codes: the first byte of every lexeme.
const (
	codeFrom    = 'f' // From and Sender
	codeTo      = 't' // To and envelope recipients
	codeCc      = 'c' // Cc
	codeBcc     = 'b' // Bcc and envelope recipients
	codeSubject = 's'
	codeBody    = 'y'
	codeAttach  = 'a' // attachment text
	codeFname   = 'n' // attachment names and media types
	codeTags    = 'g' // origins and has:attachment (special lexemes only)
)

var (
	addrCodes = []byte{codeFrom, codeTo, codeCc, codeBcc}
	textCodes = []byte{codeSubject, codeBody, codeAttach, codeFname}
	allCodes  = []byte{codeFrom, codeTo, codeCc, codeBcc, codeSubject, codeBody, codeAttach, codeFname}
)

// fieldCode returns the code of a query field (0 for FieldAny).
func fieldCode(f query.Field) byte {
	switch f {
	case query.FieldFrom:
		return codeFrom
	case query.FieldTo:
		return codeTo
	case query.FieldCc:
		return codeCc
	case query.FieldBcc:
		return codeBcc
	case query.FieldSubject:
		return codeSubject
	case query.FieldBody:
		return codeBody
	case query.FieldAttachment:
		return codeAttach
	case query.FieldFilename:
		return codeFname
	}
	return 0
}

// weight is the tsvector weight label of a field, used by ts_rank (see
// rankWeights): subject A, from B, file names C, the rest D.
func weight(code byte) byte {
	switch code {
	case codeSubject:
		return 'A'
	case codeFrom:
		return 'B'
	case codeFname:
		return 'C'
	}
	return 'D'
}

// rankWeights are the ts_rank weights of labels {D, C, B, A}; they follow
// the SQLite index's BM25 column weights (1, 1.5, 2, 3) scaled to
// PostgreSQL's range 0..1.
const rankWeights = "{0.3333, 0.5, 0.6667, 1.0}"

// Limits of PostgreSQL's tsvector.
const (
	maxPos       = 16383   // highest position; later positions are clamped to it
	maxPositions = 256     // positions kept per lexeme
	maxTokenLen  = 255     // bytes of a token kept (PostgreSQL allows 2047 per lexeme)
	maxVecBytes  = 1 << 19 // target size of a tsvector (PostgreSQL's hard limit is 1 MiB)
)

// isMark reports whether r is a combining diacritical mark, which SQLite's
// unicode61 tokenizer keeps inside a token and then removes.
func isMark(r rune) bool { return r >= 0x300 && r <= 0x36F }

// isTokenRune reports whether r belongs to a token: letters and numbers
// (like unicode61 minus private-use characters, which the SQLite index
// turns into spaces) and combining diacritical marks. tokens.CJKPrep is
// given it to tell whether a token follows a CJK run.
func isTokenRune(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) || isMark(r) }

// specialLexeme is the lexeme of an exact-match token (see package tokens)
// in the field with the given code: code, '!', kind and
// tokens.Digest(kind, v). Word lexemes never contain '!', so no word,
// phrase or prefix query can match a special lexeme.
func specialLexeme(code, kind byte, v string) string {
	return string([]byte{code, '!', kind}) + tokens.Digest(kind, v)
}

// foldRune lowercases r and removes its diacritics (é -> e), except in CJK
// scripts (NFD would split Hangul syllables into jamo).
func foldRune(r rune) rune {
	r = unicode.ToLower(r)
	if r < 0xC0 || tokens.IsCJK(r) {
		return r
	}
	var buf [16]byte
	d := norm.NFD.AppendString(buf[:0], string(r))
	base, n := utf8.DecodeRune(d)
	if n == len(d) {
		return r
	}
	for _, m := range string(d[n:]) {
		if !unicode.Is(unicode.Mn, m) {
			return r
		}
	}
	return unicode.ToLower(base)
}

// foldTokens splits s into folded tokens: runs of token characters,
// lowercased, diacritics removed, cut to maxTokenLen bytes. CJK runs must
// have been rewritten by tokens.CJKPrep first.
func foldTokens(s string) []string {
	var out []string
	var b strings.Builder
	flush := func() {
		if b.Len() > 0 {
			out = append(out, b.String())
			b.Reset()
		}
	}
	for _, r := range s {
		if !isTokenRune(r) {
			flush()
			continue
		}
		if isMark(r) {
			continue
		}
		f := foldRune(r)
		if b.Len()+utf8.RuneLen(f) <= maxTokenLen {
			b.WriteRune(f)
		}
	}
	flush()
	return out
}

// queryTokens returns the tokens of query text and whether the last one
// must be matched as a prefix because of an open CJK run.
func queryTokens(text string) (toks []string, open bool) {
	p, open := tokens.CJKPrep(text, true, isTokenRune)
	return foldTokens(p), open
}

// vecBuilder collects the lexemes of one document.
type vecBuilder struct {
	pos   map[string][]uint16 // lexeme -> positions (nil for special lexemes)
	order []string            // lexemes in order of first occurrence
	next  map[byte]int        // next position per field code
}

func newVecBuilder() *vecBuilder {
	return &vecBuilder{pos: map[string][]uint16{}, next: map[byte]int{}}
}

// words adds the tokens of text to the field with the given code, at
// consecutive positions.
func (v *vecBuilder) words(code byte, text string) {
	p, _ := tokens.CJKPrep(text, false, isTokenRune)
	for _, tok := range foldTokens(p) {
		n := v.next[code] + 1
		v.next[code] = n
		lex := string(code) + tok
		ps, seen := v.pos[lex]
		if !seen {
			v.order = append(v.order, lex)
		}
		if len(ps) >= maxPositions {
			continue
		}
		q := uint16(min(n, maxPos))
		if len(ps) > 0 && ps[len(ps)-1] == q {
			continue
		}
		v.pos[lex] = append(ps, q)
	}
}

// gap leaves a position free in a field, so no phrase spans it.
func (v *vecBuilder) gap(code byte) { v.next[code]++ }

// special adds a position-less special lexeme.
func (v *vecBuilder) special(code, kind byte, value string) {
	lex := specialLexeme(code, kind, value)
	if _, ok := v.pos[lex]; !ok {
		v.pos[lex] = nil
		v.order = append(v.order, lex)
	}
}

// addresses adds address entries to a field: the words of each entry (name
// and address), its address forms as special lexemes, and a gap so that a
// phrase cannot run from one entry into the next.
func (v *vecBuilder) addresses(code byte, lists ...[]string) {
	for _, l := range lists {
		for _, e := range l {
			if e == "" {
				continue
			}
			v.words(code, e)
			if a := tokens.AddrOf(e); a != "" {
				for _, f := range tokens.AddrForms(a) {
					v.special(code, tokens.KindAddr, f)
				}
			}
			v.gap(code)
		}
	}
}

// docVector returns the tsvector literal of a document.
func docVector(d *index.Document) string {
	v := newVecBuilder()
	v.addresses(codeFrom, d.From, d.Sender)
	v.addresses(codeTo, d.To, d.Envelope)
	v.addresses(codeCc, d.Cc)
	v.addresses(codeBcc, d.Bcc, d.Envelope)
	v.words(codeSubject, d.Subject)
	v.words(codeBody, d.Body)
	v.words(codeAttach, d.AttachmentText)
	v.words(codeFname, strings.Join(append(slices.Clone(d.AttachmentNames), d.AttachmentTypes...), "\n"))
	for _, o := range d.Origins {
		for _, p := range query.OriginPrefixes(o) {
			v.special(codeTags, tokens.KindOrigin, p)
		}
	}
	if d.HasAttachment() {
		v.special(codeTags, tokens.KindTag, "attachment")
	}
	return v.literal()
}

// vecSize estimates the stored size of the lexemes and positions.
func (v *vecBuilder) vecSize() int {
	n := 0
	for lex, ps := range v.pos {
		n += 4 + len(lex) + 1 + 2 + 2*len(ps)
	}
	return n
}

// literal renders the tsvector in PostgreSQL's input syntax. A document
// whose vector would exceed maxVecBytes is cut down until it fits, so that
// it can always be stored: the word lexemes of one field at a time are
// dropped, those that first occur last first (like truncating the text),
// always from the field with the most distinct words left (in practice the
// body or the attachment text). Positions are kept: PostgreSQL never matches a phrase on
// position-less lexemes.
func (v *vecBuilder) literal() string {
	if size := v.vecSize(); size > maxVecBytes {
		byField := map[byte][]string{}
		for _, lex := range v.order {
			if lex[1] != '!' {
				byField[lex[0]] = append(byField[lex[0]], lex)
			}
		}
		for size > maxVecBytes {
			var c byte // the field with the most words left
			for k, ls := range byField {
				if len(ls) > len(byField[c]) || (len(ls) == len(byField[c]) && k > c) {
					c = k
				}
			}
			ls := byField[c]
			if len(ls) == 0 {
				break // only special lexemes left
			}
			lex := ls[len(ls)-1]
			byField[c] = ls[:len(ls)-1]
			size -= 4 + len(lex) + 3 + 2*len(v.pos[lex])
			delete(v.pos, lex)
		}
	}
	lexes := make([]string, 0, len(v.pos))
	for _, lex := range v.order {
		if _, ok := v.pos[lex]; ok {
			lexes = append(lexes, lex)
		}
	}
	var b strings.Builder
	for i, lex := range lexes {
		if i > 0 {
			b.WriteByte(' ')
		}
		writeQuoted(&b, lex)
		ps := v.pos[lex]
		w := weight(lex[0])
		for j, p := range ps {
			if j == 0 {
				b.WriteByte(':')
			} else {
				b.WriteByte(',')
			}
			b.WriteString(strconv.Itoa(int(p)))
			b.WriteByte(w)
		}
	}
	return b.String()
}

// writeQuoted writes a lexeme quoted for tsvector and tsquery input.
func writeQuoted(b *strings.Builder, lex string) {
	b.WriteByte('\'')
	for i := 0; i < len(lex); i++ {
		switch c := lex[i]; c {
		case '\'':
			b.WriteString("''")
		case '\\':
			b.WriteString(`\\`)
		default:
			b.WriteByte(c)
		}
	}
	b.WriteByte('\'')
}
