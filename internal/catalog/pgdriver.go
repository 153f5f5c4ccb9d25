package catalog

import (
	"context"
	"database/sql/driver"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/stdlib"
)

// This file adapts pgx's database/sql driver to the SQL the catalog's
// components write. Every component keeps using *sql.DB with SQLite-style
// "?" placeholders; the connector below hands database/sql connections that
// rewrite "?" to PostgreSQL's "$1, $2, ..." (outside quoted literals,
// identifiers, comments and dollar-quoted bodies) before pgx sees the query,
// and that make string arguments storable in a PostgreSQL text column (see
// pgText). Doing it at the driver level keeps the components' code and their
// *sql.DB API unchanged, and covers prepared statements, transactions and
// one-off queries alike.

// pgConnector wraps pgx's connector so every connection rewrites queries.
type pgConnector struct {
	driver.Connector
}

// Connect opens a pgx connection and wraps it.
func (c pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	sc, ok := conn.(*stdlib.Conn)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("catalog: unexpected pgx connection type %T", conn)
	}
	return &pgConn{Conn: sc}, nil
}

// pgConn is a pgx connection whose queries are rebound from "?" to "$n".
// Every other driver interface (transactions, ping, session reset, named
// value checks) comes from the embedded *stdlib.Conn.
type pgConn struct {
	*stdlib.Conn
}

func (c *pgConn) Prepare(query string) (driver.Stmt, error) {
	return c.PrepareContext(context.Background(), query)
}

func (c *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := c.Conn.PrepareContext(ctx, rebind(query))
	if err != nil {
		return nil, err
	}
	if s, ok := st.(*stdlib.Stmt); ok {
		return &pgStmt{Stmt: s}, nil
	}
	return st, nil
}

func (c *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.ExecContext(ctx, rebind(query), pgArgs(args))
}

func (c *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.QueryContext(ctx, rebind(query), pgArgs(args))
}

// pgStmt is a prepared statement whose string arguments go through pgText.
type pgStmt struct {
	*stdlib.Stmt
}

func (s *pgStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.Stmt.ExecContext(ctx, pgArgs(args))
}

func (s *pgStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	return s.Stmt.QueryContext(ctx, pgArgs(args))
}

// pgArgs applies pgText to string arguments, copying the slice only when
// something changes.
func pgArgs(args []driver.NamedValue) []driver.NamedValue {
	out, copied := args, false
	for i, a := range args {
		s, ok := a.Value.(string)
		if !ok {
			continue
		}
		if t := pgText(s); t != s {
			if !copied {
				out, copied = slices.Clone(args), true
			}
			out[i].Value = t
		}
	}
	return out
}

// pgText makes s storable in a PostgreSQL text column, which holds neither
// NUL bytes nor invalid UTF-8 (SQLite stores both): each NUL and each
// invalid byte sequence becomes U+FFFD. Mail headers can contain either, and
// the archive must never refuse a message for its content; the raw bytes
// stay untouched in the blob store. Valid strings are returned as they are.
func pgText(s string) string {
	if utf8.ValidString(s) && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}

// rebind rewrites the "?" placeholders of query to "$1", "$2", ... in
// order. A "?" inside a single-quoted literal (including E'...' with
// backslash escapes), a double-quoted identifier, a -- or /* */ comment or
// a dollar-quoted body ($$...$$, $tag$...$tag$) is left alone.
func rebind(query string) string {
	if strings.IndexByte(query, '?') < 0 {
		return query
	}
	var b strings.Builder
	b.Grow(len(query) + 16)
	n := 0
	for i := 0; i < len(query); {
		c := query[i]
		switch {
		case c == '\'':
			esc := i > 0 && (query[i-1] == 'E' || query[i-1] == 'e') && (i < 2 || !identByte(query[i-2]))
			j := skipQuoted(query, i, '\'', esc)
			b.WriteString(query[i:j])
			i = j
		case c == '"':
			j := skipQuoted(query, i, '"', false)
			b.WriteString(query[i:j])
			i = j
		case c == '-' && strings.HasPrefix(query[i:], "--"):
			j := strings.IndexByte(query[i:], '\n')
			if j < 0 {
				j = len(query) - i
			}
			b.WriteString(query[i : i+j])
			i += j
		case c == '/' && strings.HasPrefix(query[i:], "/*"):
			j := skipBlockComment(query, i)
			b.WriteString(query[i:j])
			i = j
		case c == '$' && (i == 0 || !identByte(query[i-1])):
			j := skipDollarQuoted(query, i)
			b.WriteString(query[i:j])
			i = j
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			i++
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String()
}

func identByte(c byte) bool {
	return c == '_' || c == '$' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

// skipQuoted returns the index after the literal opened by q at i (a
// doubled quote stays inside; with esc, so does a backslash-escaped one),
// or len(s) when it is not closed.
func skipQuoted(s string, i int, q byte, esc bool) int {
	for j := i + 1; j < len(s); j++ {
		switch s[j] {
		case '\\':
			if esc {
				j++
			}
		case q:
			if j+1 < len(s) && s[j+1] == q {
				j++
				continue
			}
			return j + 1
		}
	}
	return len(s)
}

// skipBlockComment returns the index after the (possibly nested, as in
// PostgreSQL) comment starting at i.
func skipBlockComment(s string, i int) int {
	depth := 0
	for j := i; j < len(s)-1; j++ {
		switch {
		case s[j] == '/' && s[j+1] == '*':
			depth++
			j++
		case s[j] == '*' && s[j+1] == '/':
			depth--
			j++
			if depth == 0 {
				return j + 1
			}
		}
	}
	return len(s)
}

// skipDollarQuoted returns the index after the dollar-quoted string
// starting at i, or i+1 when the "$" does not open one (a "$1" parameter,
// say).
func skipDollarQuoted(s string, i int) int {
	j := i + 1
	for j < len(s) && s[j] != '$' {
		c := s[j]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80 || (j > i+1 && c >= '0' && c <= '9')) {
			return i + 1
		}
		j++
	}
	if j >= len(s) {
		return i + 1
	}
	tag := s[i : j+1]
	end := strings.Index(s[j+1:], tag)
	if end < 0 {
		return len(s)
	}
	return j + 1 + end + len(tag)
}
