package catalog

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// This file holds the generic table access `mailarc migrate` uses to copy a
// catalog between engines (SQLite and PostgreSQL, either way): list the
// tables with their columns and primary keys, read rows in primary-key
// order in keyset-paginated batches, write them verbatim (same column
// values, seq numbers included) in one transaction per batch, and move the
// change-feed head counter past the copied rows. Values are exchanged as
// int64, float64, string or nil; no catalog table has a BLOB column.

// Table describes one catalog table.
type Table struct {
	Name    string
	Columns []string // in definition order
	Key     []string // primary key columns, in key order
}

// Tables lists the catalog's base tables with their columns and primary
// keys, sorted by name. It leaves out schema_migrations (each side keeps
// its own) and SQLite's internal tables. A table without a primary key is
// an error: it could not be copied in resumable batches.
func (c *Catalog) Tables(ctx context.Context) ([]Table, error) {
	var q string
	if c.dialect == Postgres {
		q = `SELECT table_name FROM information_schema.tables
			WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name`
	} else {
		q = `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\_%' ESCAPE '\' ORDER BY name`
	}
	names, err := c.strings(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("catalog: list tables: %w", err)
	}
	var out []Table
	for _, n := range names {
		if n == "schema_migrations" {
			continue
		}
		t, err := c.describe(ctx, n)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func (c *Catalog) strings(ctx context.Context, q string, args ...any) ([]string, error) {
	rows, err := c.r.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

func (c *Catalog) describe(ctx context.Context, name string) (Table, error) {
	t := Table{Name: name}
	if c.dialect == Postgres {
		cols, err := c.strings(ctx, `SELECT column_name FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = ? ORDER BY ordinal_position`, name)
		if err != nil {
			return t, fmt.Errorf("catalog: columns of %s: %w", name, err)
		}
		t.Columns = cols
		key, err := c.strings(ctx, `SELECT a.attname FROM pg_index i
			JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
			WHERE i.indrelid = (quote_ident(current_schema()) || '.' || quote_ident(?))::regclass AND i.indisprimary
			ORDER BY array_position(i.indkey::int2[], a.attnum)`, name)
		if err != nil {
			return t, fmt.Errorf("catalog: primary key of %s: %w", name, err)
		}
		t.Key = key
	} else {
		rows, err := c.r.QueryContext(ctx, `SELECT name, pk FROM pragma_table_info(?) ORDER BY cid`, name)
		if err != nil {
			return t, fmt.Errorf("catalog: columns of %s: %w", name, err)
		}
		defer rows.Close()
		pk := map[int]string{}
		for rows.Next() {
			var col string
			var n int
			if err := rows.Scan(&col, &n); err != nil {
				return t, fmt.Errorf("catalog: columns of %s: %w", name, err)
			}
			t.Columns = append(t.Columns, col)
			if n > 0 {
				pk[n] = col
			}
		}
		if err := rows.Err(); err != nil {
			return t, fmt.Errorf("catalog: columns of %s: %w", name, err)
		}
		for i := 1; i <= len(pk); i++ {
			t.Key = append(t.Key, pk[i])
		}
	}
	if len(t.Key) == 0 {
		return t, fmt.Errorf("catalog: table %s has no primary key; it cannot be copied in batches", name)
	}
	return t, nil
}

// quoteIdent quotes an SQL identifier (both engines accept double quotes).
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

func identList(cols []string) string {
	q := make([]string, len(cols))
	for i, c := range cols {
		q[i] = quoteIdent(c)
	}
	return strings.Join(q, ", ")
}

// ReadRows returns up to limit rows of t (the columns cols, which must
// include t.Key) whose primary key is above after (nil: from the start),
// in primary-key order. Each row holds int64, float64, string or nil
// values in the order of cols.
func (c *Catalog) ReadRows(ctx context.Context, t Table, cols []string, after []any, limit int) ([][]any, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "SELECT %s FROM %s", identList(cols), quoteIdent(t.Name))
	var args []any
	if after != nil {
		if len(after) != len(t.Key) {
			return nil, fmt.Errorf("catalog: read %s: resume key has %d values, the primary key %d columns", t.Name, len(after), len(t.Key))
		}
		ph := strings.TrimSuffix(strings.Repeat("?, ", len(after)), ", ")
		fmt.Fprintf(&b, " WHERE (%s) > (%s)", identList(t.Key), ph)
		args = append(args, after...)
	}
	fmt.Fprintf(&b, " ORDER BY %s LIMIT ?", identList(t.Key))
	args = append(args, limit)
	rows, err := c.r.QueryContext(ctx, b.String(), args...)
	if err != nil {
		return nil, fmt.Errorf("catalog: read %s: %w", t.Name, err)
	}
	defer rows.Close()
	var out [][]any
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, fmt.Errorf("catalog: read %s: %w", t.Name, err)
		}
		for i, v := range vals {
			nv, err := plainValue(v)
			if err != nil {
				return nil, fmt.Errorf("catalog: read %s.%s: %w", t.Name, cols[i], err)
			}
			vals[i] = nv
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("catalog: read %s: %w", t.Name, err)
	}
	return out, nil
}

// plainValue reduces a driver value to int64, float64, string or nil.
func plainValue(v any) (any, error) {
	switch x := v.(type) {
	case nil, int64, float64, string:
		return x, nil
	case []byte:
		return string(x), nil
	case int32:
		return int64(x), nil
	case int16:
		return int64(x), nil
	case int:
		return int64(x), nil
	case float32:
		return float64(x), nil
	case bool:
		if x {
			return int64(1), nil
		}
		return int64(0), nil
	default:
		return nil, fmt.Errorf("unsupported value type %T", v)
	}
}

// WriteRows inserts rows (values in the order of cols) into t in one
// transaction. Rows whose key already exists are left alone, unless upsert
// is set: then their non-key columns are overwritten. before, if non-nil,
// runs first in the same transaction and after last, so a caller can
// record its progress atomically with the rows.
func (c *Catalog) WriteRows(ctx context.Context, t Table, cols []string, rows [][]any, upsert bool, after func(tx *sql.Tx) error) error {
	return c.inTx(ctx, func(tx *sql.Tx) error {
		// Stay well below both engines' bound on bind parameters.
		per := max(1, min(500, 30000/max(1, len(cols))))
		one := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + ")"
		conflict := " ON CONFLICT DO NOTHING"
		if upsert {
			var set []string
			for _, col := range cols {
				if !contains(t.Key, col) {
					set = append(set, quoteIdent(col)+" = excluded."+quoteIdent(col))
				}
			}
			if len(set) > 0 {
				conflict = fmt.Sprintf(" ON CONFLICT (%s) DO UPDATE SET %s", identList(t.Key), strings.Join(set, ", "))
			}
		}
		for len(rows) > 0 {
			n := min(per, len(rows))
			var b strings.Builder
			fmt.Fprintf(&b, "INSERT INTO %s (%s) VALUES ", quoteIdent(t.Name), identList(cols))
			args := make([]any, 0, n*len(cols))
			for i, r := range rows[:n] {
				if len(r) != len(cols) {
					return fmt.Errorf("catalog: write %s: a row has %d values for %d columns", t.Name, len(r), len(cols))
				}
				if i > 0 {
					b.WriteString(", ")
				}
				b.WriteString(one)
				args = append(args, r...)
			}
			b.WriteString(conflict)
			if _, err := tx.ExecContext(ctx, b.String(), args...); err != nil {
				return fmt.Errorf("catalog: write %s: %w", t.Name, err)
			}
			rows = rows[n:]
		}
		if after != nil {
			return after(tx)
		}
		return nil
	})
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// CountRows returns the number of rows in table name.
func (c *Catalog) CountRows(ctx context.Context, name string) (int64, error) {
	var n int64
	if err := c.r.QueryRowContext(ctx, `SELECT count(*) FROM `+quoteIdent(name)).Scan(&n); err != nil {
		return 0, fmt.Errorf("catalog: count %s: %w", name, err)
	}
	return n, nil
}

// SetFeedHead makes the change feed's head (the highest seq ever assigned,
// see Head) at least head, and at least the highest seq present. After
// messages were copied with their seq numbers this keeps seq from ever
// being reused for a new message, purged numbers included: on PostgreSQL
// it writes meta.feed_seq, on SQLite the AUTOINCREMENT counter in
// sqlite_sequence.
func (c *Catalog) SetFeedHead(ctx context.Context, head int64) error {
	return c.inTx(ctx, func(tx *sql.Tx) error {
		var top int64
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(max(seq), 0) FROM messages`).Scan(&top); err != nil {
			return fmt.Errorf("catalog: set feed head: %w", err)
		}
		head = max(head, top)
		if c.dialect == Postgres {
			cur, err := c.counter(ctx, tx, feedSeqKey)
			if err != nil {
				return err
			}
			return c.setCounter(ctx, tx, feedSeqKey, max(cur, head))
		}
		var cur int64
		err := tx.QueryRowContext(ctx, `SELECT seq FROM sqlite_sequence WHERE name = 'messages'`).Scan(&cur)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			if head == 0 {
				return nil
			}
			_, err = tx.ExecContext(ctx, `INSERT INTO sqlite_sequence(name, seq) VALUES ('messages', ?)`, head)
		case err == nil:
			if cur >= head {
				return nil
			}
			_, err = tx.ExecContext(ctx, `UPDATE sqlite_sequence SET seq = ? WHERE name = 'messages'`, head)
		}
		if err != nil {
			return fmt.Errorf("catalog: set feed head: %w", err)
		}
		return nil
	})
}

// FeedHeadKey is the meta key under which a PostgreSQL catalog keeps its
// feed head; a copy between engines leaves it to SetFeedHead.
const FeedHeadKey = feedSeqKey

// TextAsStored returns s as this catalog stores it in a text column: as is
// on SQLite; on PostgreSQL with NUL bytes and invalid UTF-8 replaced by
// U+FFFD (see pgdriver.go). Comparing copies across engines needs it.
func TextAsStored(d Dialect, s string) string {
	if d == Postgres {
		return pgText(s)
	}
	return s
}

// WalkIDs calls fn with every message id in id order (bytewise on both
// engines), reading in pages so memory stays bounded.
func (c *Catalog) WalkIDs(ctx context.Context, fn func(id string) error) error {
	after := ""
	for {
		ids, err := c.strings(ctx, `SELECT id FROM messages WHERE id > ? ORDER BY id LIMIT 1000`, after)
		if err != nil {
			return fmt.Errorf("catalog: walk ids: %w", err)
		}
		for _, id := range ids {
			if err := fn(id); err != nil {
				return err
			}
		}
		if len(ids) < 1000 {
			return nil
		}
		after = ids[len(ids)-1]
	}
}
