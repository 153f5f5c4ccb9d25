package boolexpr

import (
	"reflect"
	"testing"

	"github.com/mailarc/mailarc/internal/query"
)

func TestFlatten(t *testing.T) {
	t.Parallel()
	in := []Expr{"a", nil, And{"b", And{nil, "c"}, Or{"d", "e"}}, Not{And{"f"}}}
	want := []Expr{"a", "b", "c", Or{"d", "e"}, Not{And{"f"}}}
	if got := Flatten[And](in); !reflect.DeepEqual(got, want) {
		t.Errorf("Flatten[And] = %#v, want %#v", got, want)
	}
	if got := Flatten[Or]([]Expr{Or{nil, Or{"x"}}, And{"y"}}); !reflect.DeepEqual(got, []Expr{"x", And{"y"}}) {
		t.Errorf("Flatten[Or] = %#v", got)
	}
	if got := Flatten[And]([]Expr{nil, And{nil}}); got != nil {
		t.Errorf("Flatten of ignored operands = %#v, want nil", got)
	}
}

func TestCollapseNegate(t *testing.T) {
	t.Parallel()
	if got := Collapse(And{}, true); got != Const(true) {
		t.Errorf("empty And = %#v", got)
	}
	if got := Collapse(Or(nil), false); got != Const(false) {
		t.Errorf("empty Or = %#v", got)
	}
	if got := Collapse(Or{"x"}, false); got != "x" {
		t.Errorf("one operand = %#v", got)
	}
	if got := Collapse(And{"x", "y"}, true); !reflect.DeepEqual(got, And{"x", "y"}) {
		t.Errorf("two operands = %#v", got)
	}
	for _, c := range []struct{ in, want Expr }{
		{nil, nil}, {Const(true), Const(false)}, {Not{"x"}, "x"}, {"x", Not{"x"}}, {And{"x"}, Not{And{"x"}}},
	} {
		if got := Negate(c.in); !reflect.DeepEqual(got, c.want) {
			t.Errorf("Negate(%#v) = %#v, want %#v", c.in, got, c.want)
		}
	}
	nodes := []query.Node{&query.HasAttachment{}, nil}
	got := CompileAll(nodes, func(n query.Node) Expr { return n != nil })
	if !reflect.DeepEqual(got, []Expr{true, false}) {
		t.Errorf("CompileAll = %#v", got)
	}
}
