package index

import (
	"math"
	"strings"
	"time"

	"github.com/mailarc/mailarc/internal/index/boolexpr"
	"github.com/mailarc/mailarc/internal/index/tokens"
	"github.com/mailarc/mailarc/internal/query"
)

// The compiler turns a query AST into an expression tree whose leaves are
// FTS5 match expressions (ftsExpr), SQL conditions on meta (sqlExpr) and
// rowid ranges (ridRange). Simplification folds everything FTS5 can express
// (AND, OR, and "x NOT y" with a positive left side) into single ftsExpr
// leaves, so the common query is one MATCH driven in rowid order; the rest
// (pure negations, ORs mixing words with size filters) becomes SQL that
// probes FTS per candidate row.
//
// The inner nodes (And, Or, Not, Const) and the simplifications that do
// not depend on the leaves come from package boolexpr, shared with pgindex.

type expr = boolexpr.Expr

type (
	ftsExpr string // positive FTS5 expression
	sqlExpr struct {
		sql  string // condition on alias m (meta)
		args []any
	}
	ridRange struct{ lo, hi int64 } // lo <= rid <= hi
)

const (
	colsAddr = "{hfrom hto hcc hbcc}"
	colsText = "{subject body attach fname}"
	colsAll  = "{hfrom hto hcc hbcc subject body attach fname}"
)

// fieldCol returns the FTS column of a field.
func fieldCol(f query.Field) string {
	switch f {
	case query.FieldFrom:
		return "hfrom"
	case query.FieldTo:
		return "hto"
	case query.FieldCc:
		return "hcc"
	case query.FieldBcc:
		return "hbcc"
	case query.FieldSubject:
		return "subject"
	case query.FieldBody:
		return "body"
	case query.FieldAttachment:
		return "attach"
	case query.FieldFilename:
		return "fname"
	}
	return colsAll
}

func ftsString(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// phraseFTS renders text as an FTS5 phrase, "" when it has no tokens.
func phraseFTS(text string, prefix bool) string {
	p, open := tokens.CJKPrep(sanitize(text), true, isTokenRune)
	if !hasToken(p) {
		return ""
	}
	s := ftsString(p)
	if prefix || open {
		s += "*"
	}
	return s
}

func termExpr(t *query.Term) expr {
	if t.IsAddressForm() {
		tok := ftsString(specialToken(tokens.KindAddr, t.Text))
		if t.Field.IsAddress() {
			return ftsExpr(fieldCol(t.Field) + " : " + tok)
		}
		addr := ftsExpr(colsAddr + " : " + tok)
		if t.Field != query.FieldAny {
			// Address form in a text field: plain phrase.
			if p := phraseFTS(t.Text, false); p != "" {
				return ftsExpr(fieldCol(t.Field) + " : " + p)
			}
			return nil
		}
		if p := phraseFTS(t.Text, false); p != "" {
			return ftsExpr("(" + string(addr) + ") OR (" + colsText + " : " + p + ")")
		}
		return addr
	}
	p := phraseFTS(t.Text, t.Prefix)
	if p == "" {
		return nil
	}
	if t.Field == query.FieldAny {
		return ftsExpr(colsAll + " : " + p)
	}
	return ftsExpr(fieldCol(t.Field) + " : " + p)
}

// dateRid maps a time to the smallest rowid of its second.
func dateRid(t time.Time) int64 { return ClampUnix(t) << ridShift }

func compileNode(n query.Node) expr {
	switch n := n.(type) {
	case nil:
		return nil
	case *query.Term:
		return termExpr(n)
	case *query.HasAttachment:
		return ftsExpr("tags : " + ftsString(specialToken(tokens.KindTag, "attachment")))
	case *query.Origin:
		return ftsExpr("tags : " + ftsString(specialToken(tokens.KindOrigin, n.Value)))
	case *query.After:
		return ridRange{lo: dateRid(n.Date), hi: math.MaxInt64}
	case *query.Before:
		return ridRange{lo: math.MinInt64, hi: dateRid(n.Date) - 1}
	case *query.Size:
		return sqlExpr{sql: "m.size " + string(n.Op) + " ?", args: []any{n.Bytes}}
	case *query.Not:
		return boolexpr.Negate(compileNode(n.Node))
	case *query.And:
		return simplifyAnd(boolexpr.CompileAll(n.Nodes, compileNode))
	case *query.Or:
		return simplifyOr(boolexpr.CompileAll(n.Nodes, compileNode))
	}
	return boolexpr.Const(false)
}

// simplifyAnd flattens nested ANDs, drops ignored operands and merges the
// FTS operands (and negated FTS operands, when there is a positive one)
// into one FTS expression and the rowid ranges into one range.
func simplifyAnd(in []expr) expr {
	flat := boolexpr.Flatten[boolexpr.And](in)
	if len(flat) == 0 {
		return nil
	}
	var pos, neg []string
	var rest []expr
	rng := ridRange{math.MinInt64, math.MaxInt64}
	hasRng := false
	for _, e := range flat {
		switch e := e.(type) {
		case boolexpr.Const:
			if !e {
				return boolexpr.Const(false)
			}
		case ftsExpr:
			pos = append(pos, string(e))
		case ridRange:
			hasRng = true
			rng.lo = max(rng.lo, e.lo)
			rng.hi = min(rng.hi, e.hi)
		case boolexpr.Not:
			if f, ok := e.E.(ftsExpr); ok {
				neg = append(neg, string(f))
			} else {
				rest = append(rest, e)
			}
		default:
			rest = append(rest, e)
		}
	}
	if hasRng && rng.lo > rng.hi {
		return boolexpr.Const(false)
	}
	var out boolexpr.And
	if len(pos) > 0 {
		f := joinFTS(pos, "AND")
		if len(neg) > 0 {
			f = "(" + f + ") NOT (" + joinFTS(neg, "OR") + ")"
		}
		out = append(out, ftsExpr(f))
	} else {
		for _, n := range neg {
			out = append(out, boolexpr.Not{E: ftsExpr(n)})
		}
	}
	if hasRng {
		out = append(out, rng)
	}
	out = append(out, rest...)
	return boolexpr.Collapse(out, true)
}

func joinFTS(parts []string, op string) string {
	if len(parts) == 1 {
		return parts[0]
	}
	return "(" + strings.Join(parts, ") "+op+" (") + ")"
}

// simplifyOr flattens nested ORs, drops ignored operands and merges the
// FTS operands into one FTS expression.
func simplifyOr(in []expr) expr {
	flat := boolexpr.Flatten[boolexpr.Or](in)
	if len(flat) == 0 {
		return nil
	}
	var fts []string
	var rest boolexpr.Or
	for _, e := range flat {
		switch e := e.(type) {
		case boolexpr.Const:
			if e {
				return boolexpr.Const(true)
			}
		case ftsExpr:
			fts = append(fts, string(e))
		default:
			rest = append(rest, e)
		}
	}
	var out boolexpr.Or
	if len(fts) > 0 {
		out = append(out, ftsExpr(joinFTS(fts, "OR")))
	}
	out = append(out, rest...)
	return boolexpr.Collapse(out, false)
}

// visibilityExpr restricts to messages involving one of addrs.
func visibilityExpr(addrs []string) expr {
	if addrs == nil {
		return nil
	}
	var toks []string
	for _, a := range tokens.VisibleAddrs(addrs) {
		toks = append(toks, ftsString(specialToken(tokens.KindAddr, a)))
	}
	if len(toks) == 0 {
		return boolexpr.Const(false)
	}
	return ftsExpr(colsAddr + " : (" + strings.Join(toks, " OR ") + ")")
}

// sqlCtx carries what toSQL needs besides the expression: the rowid range
// all candidate rows lie in, which bounds the FTS subqueries.
type sqlCtx struct {
	lo, hi int64
}

// toSQL renders e as a condition on meta alias m. An FTS leaf becomes
// "m.rid IN (SELECT rowid FROM fts WHERE fts MATCH ? AND rowid BETWEEN ..)":
// SQLite evaluates the uncorrelated subquery once per statement, which is
// far cheaper than probing FTS5 once per candidate row.
func toSQL(e expr, c sqlCtx, sb *strings.Builder, args *[]any) {
	switch e := e.(type) {
	case nil:
		sb.WriteString("1")
	case boolexpr.Const:
		if e {
			sb.WriteString("1")
		} else {
			sb.WriteString("0")
		}
	case ftsExpr:
		sb.WriteString("m.rid IN (SELECT rowid FROM fts WHERE fts MATCH ? AND rowid BETWEEN ? AND ?)")
		*args = append(*args, string(e), c.lo, c.hi)
	case sqlExpr:
		sb.WriteString("(" + e.sql + ")")
		*args = append(*args, e.args...)
	case ridRange:
		sb.WriteString("(m.rid BETWEEN ? AND ?)")
		*args = append(*args, e.lo, e.hi)
	case boolexpr.Not:
		sb.WriteString("NOT ")
		toSQL(e.E, c, sb, args)
	case boolexpr.And:
		joinSQL([]expr(e), " AND ", c, sb, args)
	case boolexpr.Or:
		joinSQL([]expr(e), " OR ", c, sb, args)
	}
}

func joinSQL(es []expr, op string, c sqlCtx, sb *strings.Builder, args *[]any) {
	sb.WriteByte('(')
	for i, x := range es {
		if i > 0 {
			sb.WriteString(op)
		}
		toSQL(x, c, sb, args)
	}
	sb.WriteByte(')')
}

// plan is the top-level shape of a search: an optional driving MATCH, an
// optional rowid range and further conditions on meta.
type plan struct {
	none  bool   // matches nothing
	match string // driving FTS expression, "" to scan meta
	rng   *ridRange
	conds []expr
}

func makePlan(root query.Node, visibility []string) plan {
	e := simplifyAnd([]expr{compileNode(root), visibilityExpr(visibility)})
	var items []expr
	switch e := e.(type) {
	case nil:
	case boolexpr.Const:
		if !e {
			return plan{none: true}
		}
	case boolexpr.And:
		items = e
	default:
		items = []expr{e}
	}
	var p plan
	for _, it := range items {
		switch it := it.(type) {
		case ftsExpr:
			p.match = string(it)
		case ridRange:
			r := it
			p.rng = &r
		default:
			p.conds = append(p.conds, it)
		}
	}
	return p
}
