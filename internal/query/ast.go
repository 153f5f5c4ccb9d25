package query

import (
	"strconv"
	"strings"
	"time"
)

// Query is a parsed user query. Root is nil when the query is empty, which
// means "all messages".
type Query struct {
	Root Node
}

// Node is one node of the query AST. The concrete types are *And, *Or, *Not,
// *Term, *HasAttachment, *After, *Before, *Size and *Origin.
type Node interface {
	// String renders the node in query syntax; parsing the result yields an
	// equal node.
	String() string
	node()
}

// Field names the part of a message a Term is matched against.
type Field string

// Fields a Term can be restricted to. FieldAny (a bare word) matches every
// text field: the address fields, subject, body, attachment text and
// attachment file names.
const (
	FieldAny        Field = ""
	FieldFrom       Field = "from"       // From and Sender headers
	FieldTo         Field = "to"         // To header and envelope recipients
	FieldCc         Field = "cc"         // Cc header
	FieldBcc        Field = "bcc"        // Bcc header and all envelope recipients
	FieldSubject    Field = "subject"    // Subject header
	FieldBody       Field = "body"       // body text (plain and HTML-to-text)
	FieldAttachment Field = "attachment" // text extracted from attachments
	FieldFilename   Field = "filename"   // attachment file names and media types
)

// IsAddress reports whether f is one of the address fields (from, to, cc, bcc).
func (f Field) IsAddress() bool {
	switch f {
	case FieldFrom, FieldTo, FieldCc, FieldBcc:
		return true
	}
	return false
}

// textField returns the Field for a lowercase field name that takes a Term
// value.
func textField(name string) (Field, bool) {
	switch f := Field(name); f {
	case FieldFrom, FieldTo, FieldCc, FieldBcc, FieldSubject, FieldBody, FieldAttachment, FieldFilename:
		return f, true
	}
	return FieldAny, false
}

// And matches when every child matches.
type And struct{ Nodes []Node }

// Or matches when at least one child matches.
type Or struct{ Nodes []Node }

// Not matches when its child does not.
type Not struct{ Node Node }

// Term is a word or a quoted phrase, optionally restricted to a field and
// optionally a prefix (trailing '*'). The text is matched as a sequence of
// tokens (runs of letters and digits, case and diacritics folded); a word
// like "foo-bar" therefore behaves like the phrase "foo bar". In the address
// fields a text containing '@' and no space is an address form instead:
// "alice@corp.example" matches that exact address, "alice@" any address with
// that local part and "@corp.example" any address in that domain or its
// subdomains.
type Term struct {
	Field  Field
	Text   string // the word or phrase as typed, without quotes and '*'
	Phrase bool   // written in double quotes
	Prefix bool   // written with a trailing '*': the last token is a prefix
}

// IsAddressForm reports whether t's text is an address form (see Term).
func (t *Term) IsAddressForm() bool {
	return !t.Prefix && strings.Contains(t.Text, "@") && !strings.ContainsFunc(t.Text, isSpace)
}

// HasAttachment is has:attachment: the message has at least one attachment.
type HasAttachment struct{}

// After is after:YYYY-MM-DD: the message date is on or after Date (00:00 UTC).
type After struct{ Date time.Time }

// Before is before:YYYY-MM-DD: the message date is before Date (00:00 UTC).
type Before struct{ Date time.Time }

// SizeOp is the comparison of a Size filter.
type SizeOp string

// Size comparisons.
const (
	SizeGT SizeOp = ">"
	SizeGE SizeOp = ">="
	SizeLT SizeOp = "<"
	SizeLE SizeOp = "<="
)

// Size is size>N, size>=N, size<N or size<=N on the stored message size in
// bytes.
type Size struct {
	Op    SizeOp
	Bytes int64
}

// Match reports whether size satisfies the filter.
func (s *Size) Match(size int64) bool {
	switch s.Op {
	case SizeGT:
		return size > s.Bytes
	case SizeGE:
		return size >= s.Bytes
	case SizeLT:
		return size < s.Bytes
	case SizeLE:
		return size <= s.Bytes
	}
	return false
}

// Origin is origin:VALUE: the message was delivered by that origin. Matching
// is case-insensitive on whole colon-separated segments from the start:
// origin:peer matches "peer:arc-b", origin:peer:arc-b matches only that peer.
type Origin struct{ Value string }

// MatchOrigin reports whether the origin o (as stored, e.g. "peer:arc-b")
// matches the filter.
func (f *Origin) MatchOrigin(o string) bool {
	for _, p := range OriginPrefixes(o) {
		if p == strings.ToLower(f.Value) {
			return true
		}
	}
	return false
}

// OriginPrefixes returns the lowercase colon-segment prefixes of an origin
// that an origin: filter can name: "peer:arc-b" -> ["peer", "peer:arc-b"].
func OriginPrefixes(o string) []string {
	o = strings.ToLower(o)
	var out []string
	for i := 0; i < len(o); i++ {
		if o[i] == ':' {
			out = append(out, o[:i])
		}
	}
	return append(out, o)
}

func (*And) node()           {}
func (*Or) node()            {}
func (*Not) node()           {}
func (*Term) node()          {}
func (*HasAttachment) node() {}
func (*After) node()         {}
func (*Before) node()        {}
func (*Size) node()          {}
func (*Origin) node()        {}

// String renders the query; Parse(q.String()) yields an equal AST.
func (q *Query) String() string {
	if q == nil || q.Root == nil {
		return ""
	}
	return q.Root.String()
}

func (n *And) String() string { return joinNodes(n.Nodes, " ") }
func (n *Or) String() string  { return joinNodes(n.Nodes, " OR ") }

func joinNodes(nodes []Node, sep string) string {
	parts := make([]string, len(nodes))
	for i, c := range nodes {
		parts[i] = wrap(c)
	}
	return strings.Join(parts, sep)
}

// wrap parenthesises composite nodes so they keep their shape when nested.
func wrap(n Node) string {
	switch n.(type) {
	case *And, *Or:
		return "(" + n.String() + ")"
	}
	return n.String()
}

func (n *Not) String() string { return "-" + wrap(n.Node) }

func (n *Term) String() string {
	var b strings.Builder
	if n.Field != FieldAny {
		b.WriteString(string(n.Field))
		b.WriteByte(':')
	}
	if n.Phrase {
		b.WriteString(`"` + n.Text + `"`)
	} else {
		b.WriteString(n.Text)
	}
	if n.Prefix {
		b.WriteByte('*')
	}
	return b.String()
}

func (*HasAttachment) String() string { return "has:attachment" }
func (n *After) String() string       { return "after:" + n.Date.Format(dateLayout) }
func (n *Before) String() string      { return "before:" + n.Date.Format(dateLayout) }
func (n *Size) String() string        { return "size" + string(n.Op) + strconv.FormatInt(n.Bytes, 10) }

func (n *Origin) String() string {
	if n.Value == "" || strings.ContainsAny(n.Value, " \t\r\n\f\v()\"") || strings.ContainsFunc(n.Value, isSpace) {
		return `origin:"` + n.Value + `"`
	}
	return "origin:" + n.Value
}

// Terms returns the positive words and phrases of q (those not under an odd
// number of negations), for highlighting. Prefix terms are returned without
// their '*'.
func (q *Query) Terms() []string {
	var out []string
	for _, t := range q.PositiveTerms() {
		out = append(out, t.Text)
	}
	return out
}

// PositiveTerms is like Terms but returns the Term nodes themselves.
func (q *Query) PositiveTerms() []*Term {
	if q == nil || q.Root == nil {
		return nil
	}
	var out []*Term
	var walk func(n Node, neg bool)
	walk = func(n Node, neg bool) {
		switch n := n.(type) {
		case *And:
			for _, c := range n.Nodes {
				walk(c, neg)
			}
		case *Or:
			for _, c := range n.Nodes {
				walk(c, neg)
			}
		case *Not:
			walk(n.Node, !neg)
		case *Term:
			if !neg && n.Text != "" {
				out = append(out, n)
			}
		}
	}
	walk(q.Root, false)
	return out
}
