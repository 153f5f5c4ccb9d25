package pgindex

import (
	"strconv"
	"strings"
	"time"

	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/index/boolexpr"
	"github.com/mailarc/mailarc/internal/index/tokens"
	"github.com/mailarc/mailarc/internal/query"
)

// The compiler turns a query AST into an expression whose leaves are
// tsqueries (tsq) over the document's tsvector and SQL conditions on the
// date and size columns (cond). Everything a tsquery can express (words,
// phrases, prefixes, address forms, origins, has:attachment and any AND,
// OR, NOT of them) is folded into one tsq leaf, so the common query is a
// single "tsv @@ tsquery" served by the GIN index.
//
// Inner nodes and leaf-independent simplifications (a nil expr is an
// ignored term) come from package boolexpr, shared with the SQLite index.

type expr = boolexpr.Expr

type (
	tsq  string // tsquery text, self-contained (parenthesised if compound)
	cond struct {
		sql string // condition on alias d, with one %s per argument
		arg int64
	}
)

func lexemeQuery(lex string, prefix bool) string {
	var b strings.Builder
	writeQuoted(&b, lex)
	if prefix {
		b.WriteString(":*")
	}
	return b.String()
}

// phraseIn renders toks as a phrase in the field with the given code.
func phraseIn(code byte, toks []string, prefix bool) string {
	parts := make([]string, len(toks))
	for i, t := range toks {
		parts[i] = lexemeQuery(string(code)+t, prefix && i == len(toks)-1)
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "(" + strings.Join(parts, " <-> ") + ")"
}

// anyOf joins alternatives with OR.
func anyOf(parts []string) tsq {
	if len(parts) == 1 {
		return tsq(parts[0])
	}
	return tsq("(" + strings.Join(parts, " | ") + ")")
}

// phraseInAll is the phrase in any of the fields.
func phraseInAll(codes []byte, toks []string, prefix bool) tsq {
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = phraseIn(c, toks, prefix)
	}
	return anyOf(parts)
}

// addrIn is the address form v in any of the fields.
func addrIn(codes []byte, v string) []string {
	parts := make([]string, len(codes))
	for i, c := range codes {
		parts[i] = lexemeQuery(specialLexeme(c, tokens.KindAddr, v), false)
	}
	return parts
}

func termExpr(t *query.Term) expr {
	toks, open := queryTokens(t.Text)
	prefix := t.Prefix || open
	if t.IsAddressForm() {
		if t.Field.IsAddress() {
			return anyOf(addrIn([]byte{fieldCode(t.Field)}, t.Text))
		}
		if t.Field != query.FieldAny {
			// Address form in a text field: plain phrase.
			if len(toks) == 0 {
				return nil
			}
			return tsq(phraseIn(fieldCode(t.Field), toks, prefix))
		}
		parts := addrIn(addrCodes, t.Text)
		if len(toks) > 0 {
			parts = append(parts, string(phraseInAll(textCodes, toks, prefix)))
		}
		return anyOf(parts)
	}
	if len(toks) == 0 {
		return nil
	}
	if t.Field == query.FieldAny {
		return phraseInAll(allCodes, toks, prefix)
	}
	return tsq(phraseIn(fieldCode(t.Field), toks, prefix))
}

// unixDay is the Unix time of a query date; dates are clamped like
// document dates.
func unixDay(t time.Time) int64 { return index.ClampUnix(t) }

func compileNode(n query.Node) expr {
	switch n := n.(type) {
	case nil:
		return nil
	case *query.Term:
		return termExpr(n)
	case *query.HasAttachment:
		return tsq(lexemeQuery(specialLexeme(codeTags, tokens.KindTag, "attachment"), false))
	case *query.Origin:
		return tsq(lexemeQuery(specialLexeme(codeTags, tokens.KindOrigin, n.Value), false))
	case *query.After:
		return cond{sql: "d.date >= %s", arg: unixDay(n.Date)}
	case *query.Before:
		return cond{sql: "d.date < %s", arg: unixDay(n.Date)}
	case *query.Size:
		switch n.Op {
		case query.SizeGT, query.SizeGE, query.SizeLT, query.SizeLE:
			return cond{sql: "d.size " + string(n.Op) + " %s", arg: n.Bytes}
		}
		return boolexpr.Const(false)
	case *query.Not:
		return simplifyNot(compileNode(n.Node))
	case *query.And:
		return simplifyAnd(boolexpr.CompileAll(n.Nodes, compileNode))
	case *query.Or:
		return simplifyOr(boolexpr.CompileAll(n.Nodes, compileNode))
	}
	return boolexpr.Const(false)
}

// simplifyNot negates e, folding the negation of a tsquery into it.
func simplifyNot(e expr) expr {
	if q, ok := e.(tsq); ok {
		return tsq("!" + string(q))
	}
	return boolexpr.Negate(e)
}

// simplifyAnd flattens nested ANDs, drops ignored operands and merges all
// tsquery operands into one.
func simplifyAnd(in []expr) expr { return simplify[boolexpr.And](in, true, " & ") }

// simplifyOr is simplifyAnd for OR.
func simplifyOr(in []expr) expr { return simplify[boolexpr.Or](in, false, " | ") }

// simplify simplifies the operation G (with the given identity, and op
// joining tsqueries) on in.
func simplify[G boolexpr.And | boolexpr.Or](in []expr, identity boolexpr.Const, op string) expr {
	flat := boolexpr.Flatten[G](in)
	if len(flat) == 0 {
		return nil
	}
	var qs []string
	var rest []expr
	for _, e := range flat {
		switch e := e.(type) {
		case boolexpr.Const:
			if e != identity {
				return e
			}
		case tsq:
			qs = append(qs, string(e))
		default:
			rest = append(rest, e)
		}
	}
	var out G
	if len(qs) > 0 {
		out = append(out, joinTsq(qs, op))
	}
	return boolexpr.Collapse(append(out, rest...), identity)
}

func joinTsq(qs []string, op string) tsq {
	if len(qs) == 1 {
		return tsq(qs[0])
	}
	return tsq("(" + strings.Join(qs, op) + ")")
}

// visibilityExpr restricts to messages with one of addrs in an address
// field; nil when addrs is nil.
func visibilityExpr(addrs []string) expr {
	if addrs == nil {
		return nil
	}
	var parts []string
	for _, a := range tokens.VisibleAddrs(addrs) {
		parts = append(parts, addrIn(addrCodes, a)...)
	}
	if len(parts) == 0 {
		return boolexpr.Const(false)
	}
	return anyOf(parts)
}

// sqlBuilder renders expressions as SQL with numbered parameters.
type sqlBuilder struct {
	sb   strings.Builder
	args []any
}

func (b *sqlBuilder) param(v any) string {
	b.args = append(b.args, v)
	return "$" + strconv.Itoa(len(b.args))
}

// cond renders e as a condition on alias d.
func (b *sqlBuilder) cond(e expr) {
	switch e := e.(type) {
	case nil:
		b.sb.WriteString("TRUE")
	case boolexpr.Const:
		if e {
			b.sb.WriteString("TRUE")
		} else {
			b.sb.WriteString("FALSE")
		}
	case tsq:
		b.sb.WriteString("d.tsv @@ " + b.param(string(e)) + "::text::tsquery")
	case cond:
		b.sb.WriteString("(" + strings.Replace(e.sql, "%s", b.param(e.arg), 1) + ")")
	case boolexpr.Not:
		b.sb.WriteString("NOT ")
		b.cond(e.E)
	case boolexpr.And:
		b.join([]expr(e), " AND ")
	case boolexpr.Or:
		b.join([]expr(e), " OR ")
	}
}

func (b *sqlBuilder) join(es []expr, op string) {
	b.sb.WriteByte('(')
	for i, x := range es {
		if i > 0 {
			b.sb.WriteString(op)
		}
		b.cond(x)
	}
	b.sb.WriteByte(')')
}

// rankQuery returns the tsquery that relevance is computed from: the
// query's top-level tsquery, "" when it has none.
func rankQuery(e expr) string {
	switch e := e.(type) {
	case tsq:
		return string(e)
	case boolexpr.And:
		for _, x := range e {
			if q, ok := x.(tsq); ok {
				return string(q)
			}
		}
	}
	return ""
}
