package message

import (
	"reflect"
	"testing"
)

// fastAddressCases are shapes the fast path takes (want non-nil) or leaves
// to net/mail (want nil).
var fastAddressCases = []struct {
	in   string
	want []Address
}{
	{"alice@example.com", []Address{{Addr: "alice@example.com"}}},
	{"Alice Smith <alice@example.com>", []Address{{Name: "Alice Smith", Addr: "alice@example.com"}}},
	{"<alice@example.com>", []Address{{Addr: "alice@example.com"}}},
	{`"Smith, Alice" <a.smith@mail.example.com>, bob@x.org`, []Address{{Name: "Smith, Alice", Addr: "a.smith@mail.example.com"}, {Addr: "bob@x.org"}}},
	{"John  Q.\tPublic <jqp@x.y>", []Address{{Name: "John Q. Public", Addr: "jqp@x.y"}}},
	{`"" <a@b>`, []Address{{Addr: "a@b"}}},
	{`"a"  "b" <a@b>`, []Address{{Name: "a b", Addr: "a@b"}}},
	{"Name<a@b>,c@d , <e@f>", []Address{{Name: "Name", Addr: "a@b"}, {Addr: "c@d"}, {Addr: "e@f"}}},
	{".odd. <o@x>", []Address{{Name: ".odd.", Addr: "o@x"}}},
	{"x+tag@sub-1.example.co.uk", []Address{{Addr: "x+tag@sub-1.example.co.uk"}}},
	// Left to net/mail:
	{"=?utf-8?q?J=C3=B6rg?= <j@x>", nil},
	{"a@b (Alice)", nil},
	{"group: a@b, c@d;", nil},
	{`"a\"b" <a@b>`, nil},
	{`"quoted"@example.com`, nil},
	{"a@[127.0.0.1]", nil},
	{"a@b,,c@d", nil},
	{"a@b,", nil},
	{",a@b", nil},
	{"a..b@c", nil},
	{"a@b..c", nil},
	{"a@b.", nil},
	{".a@b", nil},
	{"a@ b", nil},
	{"a @b", nil},
	{"< a@b>", nil},
	{"<a@b >", nil},
	{"Jörg <j@x>", nil},
	{"a@b <c@d>", nil},
	{`"a"b <a@b>`, nil},
	{"Alice", nil},
	{"", nil},
	{"a@b\r\n", nil},
}

func TestFastAddressList(t *testing.T) {
	for _, c := range fastAddressCases {
		got, ok := fastAddressList(c.in)
		if ok != (c.want != nil) {
			t.Errorf("%q: fast path took it: %v, want %v", c.in, ok, c.want != nil)
			continue
		}
		if ok && !reflect.DeepEqual(got, c.want) {
			t.Errorf("%q: %q, want %q", c.in, got, c.want)
		}
		checkFastAddressList(t, c.in)
	}
}

// TestParseAddressListCapsFastPath: parseAddressList caps what the fast path
// takes at maxAddresses, as it caps what net/mail returns.
func TestParseAddressListCapsFastPath(t *testing.T) {
	v := "a@b"
	for range maxAddresses + 5 {
		v += ", a@b"
	}
	list, ok := parseAddressList(v)
	if !ok || len(list) != maxAddresses {
		t.Fatalf("%d addresses (ok %v), want the cap %d", len(list), ok, maxAddresses)
	}
}
