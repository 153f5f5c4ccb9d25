package query

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, s string) *Query {
	t.Helper()
	q, err := Parse(s)
	if err != nil {
		t.Fatalf("Parse(%q): %v", s, err)
	}
	return q
}

func day(s string) time.Time {
	d, err := time.Parse(dateLayout, s)
	if err != nil {
		panic(err)
	}
	return d
}

func TestParseAST(t *testing.T) {
	t.Parallel()
	w := func(s string) *Term { return &Term{Text: s} }
	tests := []struct {
		in   string
		want Node
	}{
		{"", nil},
		{"   ", nil},
		{"alice", w("alice")},
		{"alice bob", &And{[]Node{w("alice"), w("bob")}}},
		{"alice AND bob", &And{[]Node{w("alice"), w("bob")}}},
		{"alice and bob", &And{[]Node{w("alice"), w("and"), w("bob")}}},
		{"alice OR bob", &Or{[]Node{w("alice"), w("bob")}}},
		{"alice or bob", &And{[]Node{w("alice"), w("or"), w("bob")}}},
		{"a b OR c", &Or{[]Node{&And{[]Node{w("a"), w("b")}}, w("c")}}},
		{"a (b OR c)", &And{[]Node{w("a"), &Or{[]Node{w("b"), w("c")}}}}},
		{"-a", &Not{w("a")}},
		{"NOT a", &Not{w("a")}},
		{"NOT(a)", &Not{w("a")}},
		{"a - b", &And{[]Node{w("a"), w("-"), w("b")}}},
		{`"exact phrase"`, &Term{Text: "exact phrase", Phrase: true}},
		{`"exact phr"*`, &Term{Text: "exact phr", Phrase: true, Prefix: true}},
		{"rep*", &Term{Text: "rep", Prefix: true}},
		{"From:alice@corp.example", &Term{Field: FieldFrom, Text: "alice@corp.example"}},
		{`from:"Alice Smith"`, &Term{Field: FieldFrom, Text: "Alice Smith", Phrase: true}},
		{"from:(alice OR bob)", &Or{[]Node{&Term{Field: FieldFrom, Text: "alice"}, &Term{Field: FieldFrom, Text: "bob"}}}},
		{"subject:(a -b)", &And{[]Node{&Term{Field: FieldSubject, Text: "a"}, &Not{&Term{Field: FieldSubject, Text: "b"}}}}},
		{"re: hello", &And{[]Node{w("re:"), w("hello")}}},
		{"has:attachment", &HasAttachment{}},
		{"-has:Attachments", &Not{&HasAttachment{}}},
		{"after:2024-01-31 before:2024-02-01", &And{[]Node{&After{day("2024-01-31")}, &Before{day("2024-02-01")}}}},
		{"size>10k", &Size{SizeGT, 10 << 10}},
		{"size>=10KB", &Size{SizeGE, 10 << 10}},
		{"size<2m", &Size{SizeLT, 2 << 20}},
		{"size<=1g", &Size{SizeLE, 1 << 30}},
		{"size:>100", &Size{SizeGT, 100}},
		{"origin:peer:arc-b", &Origin{"peer:arc-b"}},
		{`origin:"smtp"`, &Origin{"smtp"}},
		{`-"OR"`, &Not{&Term{Text: "OR", Phrase: true}}},
		{"body:東京", &Term{Field: FieldBody, Text: "東京"}},
	}
	for _, tt := range tests {
		q := mustParse(t, tt.in)
		if !reflect.DeepEqual(q.Root, tt.want) {
			t.Errorf("Parse(%q) = %s (%#v), want %#v", tt.in, q, q.Root, tt.want)
		}
		again := mustParse(t, q.String())
		if !reflect.DeepEqual(again.Root, q.Root) {
			t.Errorf("round trip %q -> %q changed the AST", tt.in, q.String())
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in  string
		pos int
	}{
		{`"unterminated`, 0},
		{`a "unterminated`, 2},
		{"(a", 0},
		{"a)", 1},
		{"()", 0},
		{"OR a", 0},
		{"a OR", 2},
		{"a OR OR b", 2},
		{"NOT", 0},
		{"a AND", 2},
		{"AND a", 0},
		{"from:", 5},
		{"from: alice", 5},
		{"has:", 4},
		{"has:pdf", 4},
		{"after:2024-13-01", 6},
		{"before:yesterday", 7},
		{"size>", 5},
		{"size>10x", 5},
		{"size:10k", 5},
		{"size>99999999999999999999", 5},
		{"origin:", 7},
		{"from:(subject:x)", 6},
		{"a\xffb", 1},
		{strings.Repeat("(", 40) + "a" + strings.Repeat(")", 40), 32},
		{strings.Repeat("a ", MaxLength), MaxLength},
	}
	for _, tt := range tests {
		q, err := Parse(tt.in)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Parse(%q) = %v, %v; want *SyntaxError", tt.in, q, err)
			continue
		}
		if se.Pos != tt.pos {
			t.Errorf("Parse(%q) error at %d (%s), want position %d", tt.in, se.Pos, se.Msg, tt.pos)
		}
		if !strings.Contains(se.Error(), "position") {
			t.Errorf("error %q does not name the position", se.Error())
		}
	}
}

func TestTooManyNodes(t *testing.T) {
	t.Parallel()
	_, err := Parse(strings.Repeat("a ", MaxNodes+1))
	var se *SyntaxError
	if !errors.As(err, &se) {
		t.Fatalf("got %v, want *SyntaxError", err)
	}
}

func TestTerms(t *testing.T) {
	t.Parallel()
	q := mustParse(t, `alice -bob "big deal" from:carol NOT (dave OR -eve) rep* has:attachment`)
	got := q.Terms()
	want := []string{"alice", "big deal", "carol", "eve", "rep"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Terms() = %q, want %q", got, want)
	}
}

func TestOriginMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		filter, origin string
		want           bool
	}{
		{"smtp", "smtp", true},
		{"SMTP", "smtp", true},
		{"peer", "peer:arc-b", true},
		{"peer:arc-b", "peer:arc-b", true},
		{"peer:arc", "peer:arc-b", false},
		{"pe", "peer:arc-b", false},
		{"imap", "imap:journal", true},
	}
	for _, tt := range tests {
		if got := (&Origin{tt.filter}).MatchOrigin(tt.origin); got != tt.want {
			t.Errorf("origin:%s on %q = %v, want %v", tt.filter, tt.origin, got, tt.want)
		}
	}
}

func TestAddressForm(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]bool{
		"from:alice@corp.example": true, "from:@corp.example": true, "from:alice@": true,
		"from:alice": false, "from:corp.example": false, `from:"a b@c"`: false, "from:a@b*": false,
	} {
		term := mustParse(t, in).Root.(*Term)
		if got := term.IsAddressForm(); got != want {
			t.Errorf("%s: IsAddressForm = %v, want %v", in, got, want)
		}
	}
}
