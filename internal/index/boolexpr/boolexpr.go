// Package boolexpr is the boolean skeleton shared by the query compilers of
// the full-text indexes (package index for SQLite, package pgindex for
// PostgreSQL). A compiler turns a query AST into an Expr tree whose inner
// nodes are the types of this package and whose leaves are its own (FTS5
// match expressions, tsqueries, SQL conditions); the simplifications that
// do not depend on the leaves live here, so both indexes treat ignored
// terms, constants and nesting alike.
//
// A nil Expr stands for an ignored term (one without any token characters,
// e.g. "--"): it is dropped from And and Or, and its negation is ignored
// too.
package boolexpr

import "github.com/mailarc/mailarc/internal/query"

// Expr is a compiled query expression: nil (ignored), Const, And, Or, Not
// or a compiler's leaf.
type Expr = any

type (
	// Const is an expression that matches every document (true) or none.
	Const bool
	// And matches the documents that all its operands match.
	And []Expr
	// Or matches the documents that any of its operands matches.
	Or []Expr
	// Not matches the documents that E does not match.
	Not struct{ E Expr }
)

// CompileAll applies compile to each node, in order.
func CompileAll(nodes []query.Node, compile func(query.Node) Expr) []Expr {
	es := make([]Expr, 0, len(nodes))
	for _, n := range nodes {
		es = append(es, compile(n))
	}
	return es
}

// Negate returns the negation of e: nil for nil (ignored), the opposite
// constant, the operand of a double negation, else Not{e}.
func Negate(e Expr) Expr {
	switch e := e.(type) {
	case nil:
		return nil
	case Const:
		return !e
	case Not:
		return e.E
	}
	return Not{e}
}

// Flatten returns the operands of an operation of type G (And or Or) on in:
// operands of type G are replaced by their own operands, recursively, and
// nil (ignored) operands are dropped.
func Flatten[G And | Or](in []Expr) []Expr {
	var flat []Expr
	var walk func([]Expr)
	walk = func(es []Expr) {
		for _, e := range es {
			if g, ok := e.(G); ok {
				walk(g)
			} else if e != nil {
				flat = append(flat, e)
			}
		}
	}
	walk(in)
	return flat
}

// Collapse returns the operation ops: identity (Const(true) for And,
// Const(false) for Or) when it has no operands, its operand when it has one,
// else ops itself.
func Collapse[G And | Or](ops G, identity Const) Expr {
	switch len(ops) {
	case 0:
		return identity
	case 1:
		return ops[0]
	}
	return ops
}
