// Package query implements mailarc's user query language (DESIGN §5): it
// parses a query string into an AST that the index compiles into its own
// query form.
//
// # Syntax
//
//	alice report          words, AND by default (the keyword AND is optional)
//	"quarterly report"    exact phrase (consecutive tokens)
//	alice OR bob          OR, uppercase only; lowercase "or" is an ordinary word,
//	                      likewise AND and NOT (quote them to search the word)
//	-draft, NOT draft     negation
//	(a OR b) c            parentheses
//	rep*                  prefix: the last token of the word or phrase is a prefix
//	from: to: cc: bcc: subject: body: attachment: filename:
//	                      fields; the value is a word, a "phrase" or a
//	                      parenthesised group: from:(alice OR bob)
//	has:attachment        the message has an attachment
//	after:2024-01-31      on or after that day, 00:00 UTC (inclusive)
//	before:2024-02-01     before that day, 00:00 UTC (exclusive)
//	size>10k size<=2m     stored size; > >= < <=, units k, m, g (optional b),
//	                      multiples of 1024; size:>10k is accepted too
//	origin:smtp origin:peer:arc-b
//	                      delivered by that origin (colon segments match as a prefix)
//
// Matching is case- and diacritic-insensitive. A bare word matches the
// address fields (names and addresses of From, Sender, To, Cc, Bcc and the
// envelope), the subject, the body, attachment text and attachment names.
// to: also matches envelope recipients; bcc: matches the Bcc header and every
// envelope recipient (the envelope cannot tell which were blind copies, so
// the simplest correct choice is used). Unknown "name:" prefixes are plain
// words ("re:" searches for "re"). A query of filters only, or the empty
// query, matches all messages (restricted by the filters).
//
// Parse never panics; invalid queries return *SyntaxError with the byte
// offset of the problem. Queries are limited to MaxLength bytes, MaxDepth
// nesting levels and MaxNodes nodes.
package query

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Limits on what Parse accepts.
const (
	MaxLength = 4096 // bytes
	MaxDepth  = 32   // nesting of parentheses and negations
	MaxNodes  = 512  // AST nodes
)

const dateLayout = "2006-01-02"

// SyntaxError is returned by Parse for a query it cannot parse.
type SyntaxError struct {
	Pos int    // byte offset in the query (0-based)
	Msg string // what is wrong, for the user
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("query syntax error at position %d: %s", e.Pos, e.Msg)
}

// Parse parses s. An empty (or all-whitespace) query yields a Query with a
// nil Root.
func Parse(s string) (*Query, error) {
	if len(s) > MaxLength {
		return nil, &SyntaxError{Pos: MaxLength, Msg: fmt.Sprintf("query longer than %d bytes", MaxLength)}
	}
	if !utf8.ValidString(s) {
		i := 0
		for i < len(s) {
			r, n := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && n == 1 {
				break
			}
			i += n
		}
		return nil, &SyntaxError{Pos: i, Msg: "invalid UTF-8"}
	}
	p := &parser{s: s}
	p.skipSpace()
	if p.pos == len(s) {
		return &Query{}, nil
	}
	n, err := p.parseOr(FieldAny, 0)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos < len(s) {
		if s[p.pos] == ')' {
			return nil, p.errf(p.pos, "unmatched ')'")
		}
		return nil, p.errf(p.pos, "unexpected %q", p.peekWord())
	}
	return &Query{Root: n}, nil
}

type parser struct {
	s     string
	pos   int
	nodes int
}

func (p *parser) errf(pos int, format string, args ...any) error {
	return &SyntaxError{Pos: pos, Msg: fmt.Sprintf(format, args...)}
}

func isSpace(r rune) bool { return unicode.IsSpace(r) }

func (p *parser) skipSpace() {
	for p.pos < len(p.s) {
		r, n := utf8.DecodeRuneInString(p.s[p.pos:])
		if !isSpace(r) {
			return
		}
		p.pos += n
	}
}

// wordEnd returns the end of the word starting at i: words end at space,
// parentheses and double quotes.
func (p *parser) wordEnd(i int) int {
	for i < len(p.s) {
		r, n := utf8.DecodeRuneInString(p.s[i:])
		if isSpace(r) || r == '(' || r == ')' || r == '"' {
			return i
		}
		i += n
	}
	return i
}

func (p *parser) peekWord() string {
	e := p.wordEnd(p.pos)
	if e == p.pos && p.pos < len(p.s) {
		return p.s[p.pos : p.pos+1]
	}
	return p.s[p.pos:e]
}

// keyword reports whether the next token is the given uppercase keyword.
func (p *parser) keyword(kw string) bool {
	return p.pos < len(p.s) && p.s[p.pos:p.wordEnd(p.pos)] == kw
}

func (p *parser) count(pos int) error {
	p.nodes++
	if p.nodes > MaxNodes {
		return p.errf(pos, "query has more than %d parts", MaxNodes)
	}
	return nil
}

// atTermStart reports whether a unary expression can start at the current
// position (not at end, ')' or the keyword OR).
func (p *parser) atTermStart() bool {
	return p.pos < len(p.s) && p.s[p.pos] != ')' && !p.keyword("OR")
}

func (p *parser) parseOr(field Field, depth int) (Node, error) {
	start := p.pos
	first, err := p.parseAnd(field, depth)
	if err != nil {
		return nil, err
	}
	nodes := []Node{first}
	for {
		p.skipSpace()
		if !p.keyword("OR") {
			break
		}
		orPos := p.pos
		p.pos += 2
		p.skipSpace()
		if !p.atTermStart() || p.keyword("AND") {
			return nil, p.errf(orPos, "OR needs a term on both sides")
		}
		n, err := p.parseAnd(field, depth)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	if len(nodes) == 1 {
		return first, nil
	}
	if err := p.count(start); err != nil {
		return nil, err
	}
	return &Or{Nodes: nodes}, nil
}

func (p *parser) parseAnd(field Field, depth int) (Node, error) {
	start := p.pos
	var nodes []Node
	for {
		p.skipSpace()
		if p.keyword("AND") {
			andPos := p.pos
			p.pos += 3
			p.skipSpace()
			if len(nodes) == 0 || !p.atTermStart() || p.keyword("AND") {
				return nil, p.errf(andPos, "AND needs a term on both sides")
			}
		}
		if !p.atTermStart() {
			break
		}
		n, err := p.parseUnary(field, depth)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, n)
	}
	switch len(nodes) {
	case 0:
		if p.pos >= len(p.s) {
			return nil, p.errf(p.pos, "missing term at end of query")
		}
		if p.keyword("OR") {
			return nil, p.errf(p.pos, "OR needs a term on both sides")
		}
		return nil, p.errf(p.pos, "missing term before ')'")
	case 1:
		return nodes[0], nil
	}
	if err := p.count(start); err != nil {
		return nil, err
	}
	return &And{Nodes: nodes}, nil
}

func (p *parser) parseUnary(field Field, depth int) (Node, error) {
	start := p.pos
	if depth >= MaxDepth {
		return nil, p.errf(start, "query nested more than %d levels deep", MaxDepth)
	}
	negate := false
	if p.s[p.pos] == '-' && p.pos+1 < len(p.s) {
		r, _ := utf8.DecodeRuneInString(p.s[p.pos+1:])
		if !isSpace(r) && r != ')' {
			negate = true
			p.pos++
		}
	} else if p.keyword("NOT") {
		p.pos += 3
		p.skipSpace()
		if !p.atTermStart() || p.keyword("AND") {
			return nil, p.errf(start, "NOT needs a term after it")
		}
		negate = true
	}
	if negate {
		n, err := p.parseUnary(field, depth+1)
		if err != nil {
			return nil, err
		}
		if err := p.count(start); err != nil {
			return nil, err
		}
		return &Not{Node: n}, nil
	}
	if err := p.count(start); err != nil {
		return nil, err
	}
	switch p.s[p.pos] {
	case '(':
		return p.parseGroup(field, depth)
	case '"':
		return p.parsePhrase(field)
	}
	return p.parseWord(field, depth)
}

func (p *parser) parseGroup(field Field, depth int) (Node, error) {
	open := p.pos
	p.pos++
	p.skipSpace()
	if p.pos < len(p.s) && p.s[p.pos] == ')' {
		return nil, p.errf(open, "empty parentheses")
	}
	n, err := p.parseOr(field, depth+1)
	if err != nil {
		return nil, err
	}
	p.skipSpace()
	if p.pos >= len(p.s) || p.s[p.pos] != ')' {
		return nil, p.errf(open, "missing ')' for this '('")
	}
	p.pos++
	return n, nil
}

// quoted reads a double-quoted string at p.pos and returns its content.
func (p *parser) quoted() (string, error) {
	open := p.pos
	end := strings.IndexByte(p.s[open+1:], '"')
	if end < 0 {
		return "", p.errf(open, "missing closing '\"'")
	}
	p.pos = open + 1 + end + 1
	return p.s[open+1 : open+1+end], nil
}

func (p *parser) parsePhrase(field Field) (Node, error) {
	text, err := p.quoted()
	if err != nil {
		return nil, err
	}
	t := &Term{Field: field, Text: text, Phrase: true}
	if p.pos < len(p.s) && p.s[p.pos] == '*' {
		t.Prefix = true
		p.pos++
	}
	return t, nil
}

func (p *parser) parseWord(field Field, depth int) (Node, error) {
	start := p.pos
	end := p.wordEnd(start)
	word := p.s[start:end]
	if colon := strings.IndexByte(word, ':'); colon > 0 {
		name := strings.ToLower(word[:colon])
		valPos := start + colon + 1
		if f, ok := textField(name); ok {
			if field != FieldAny {
				return nil, p.errf(start, "field %s: inside %s:(...)", name, field)
			}
			return p.parseFieldValue(f, valPos, depth)
		}
		switch name {
		case "has":
			p.pos = end
			v := strings.ToLower(word[colon+1:])
			if v == "attachment" || v == "attachments" {
				return &HasAttachment{}, nil
			}
			if v == "" {
				return nil, p.errf(valPos, "missing value after has: (use has:attachment)")
			}
			return nil, p.errf(valPos, "unknown has: value %q (use has:attachment)", word[colon+1:])
		case "after", "before":
			p.pos = end
			d, err := time.Parse(dateLayout, word[colon+1:])
			if err != nil {
				return nil, p.errf(valPos, "%s: needs a date as YYYY-MM-DD, got %q", name, word[colon+1:])
			}
			if name == "after" {
				return &After{Date: d}, nil
			}
			return &Before{Date: d}, nil
		case "origin":
			p.pos = valPos
			if p.pos < len(p.s) && p.s[p.pos] == '"' {
				v, err := p.quoted()
				if err != nil {
					return nil, err
				}
				return &Origin{Value: v}, nil
			}
			if p.pos >= len(p.s) || p.wordEnd(p.pos) == p.pos {
				return nil, p.errf(valPos, "missing value after origin:")
			}
			p.pos = p.wordEnd(p.pos)
			return &Origin{Value: p.s[valPos:p.pos]}, nil
		case "size":
			return p.parseSize(start, end, word[colon+1:], valPos)
		}
	}
	if len(word) > 4 && strings.EqualFold(word[:4], "size") && (word[4] == '>' || word[4] == '<') {
		return p.parseSize(start, end, word[4:], start+4)
	}
	p.pos = end
	t := &Term{Field: field, Text: word}
	if strings.HasSuffix(word, "*") {
		t.Text = word[:len(word)-1]
		t.Prefix = true
	}
	return t, nil
}

func (p *parser) parseFieldValue(f Field, valPos, depth int) (Node, error) {
	p.pos = valPos
	if p.pos >= len(p.s) {
		return nil, p.errf(valPos, "missing value after %s:", f)
	}
	switch c := p.s[p.pos]; {
	case c == '(':
		return p.parseGroup(f, depth)
	case c == '"':
		return p.parsePhrase(f)
	case p.wordEnd(p.pos) == p.pos:
		return nil, p.errf(valPos, "missing value after %s:", f)
	}
	end := p.wordEnd(p.pos)
	word := p.s[p.pos:end]
	p.pos = end
	t := &Term{Field: f, Text: word}
	if strings.HasSuffix(word, "*") {
		t.Text = word[:len(word)-1]
		t.Prefix = true
	}
	return t, nil
}

func (p *parser) parseSize(start, end int, spec string, specPos int) (Node, error) {
	p.pos = end
	var op SizeOp
	for _, o := range []SizeOp{SizeGE, SizeLE, SizeGT, SizeLT} {
		if strings.HasPrefix(spec, string(o)) {
			op = o
			break
		}
	}
	if op == "" {
		return nil, p.errf(specPos, "size needs >, >=, < or <= and a number, e.g. size>10k")
	}
	num := strings.ToLower(spec[len(op):])
	numPos := specPos + len(op)
	num = strings.TrimSuffix(num, "b")
	mult := int64(1)
	if num != "" {
		switch num[len(num)-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		}
		if mult != 1 {
			num = num[:len(num)-1]
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return nil, p.errf(numPos, "size needs a number with an optional unit k, m or g, got %q", spec[len(op):])
	}
	return &Size{Op: op, Bytes: n * mult}, nil
}
