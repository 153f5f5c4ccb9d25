package query

import (
	"errors"
	"reflect"
	"testing"
)

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "alice", `"exact phrase"*`, "a OR b", "-a NOT b", "(a (b OR c)) -d",
		"from:(alice OR bob) to:x@y.example cc:@corp bcc:z subject:re body:x attachment:y filename:z.pdf",
		"has:attachment after:2024-01-01 before:2024-02-01 size>10k size<=2m origin:peer:arc-b",
		"café CAFE 東京 rep* ** - -- NOT(x)", `a"b"c`, "size:>1g", `origin:"a b"`, "from:-x",
		"a AND b", "((a))", "a)", `"`, "(", "from:(subject:x)",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Parse(s)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) returned %T, want *SyntaxError", s, err)
			}
			if se.Pos < 0 || se.Pos > len(s) {
				t.Fatalf("Parse(%q): position %d out of range", s, se.Pos)
			}
			return
		}
		out := q.String()
		q2, err := Parse(out)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its String %q does not parse: %v", s, out, err)
		}
		if !reflect.DeepEqual(q.Root, q2.Root) {
			t.Fatalf("round trip changed the AST: %q -> %q -> %q", s, out, q2.String())
		}
		_ = q.Terms()
	})
}
