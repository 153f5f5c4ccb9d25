package indextest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/query"
)

// vocabulary of the generated documents; accented words are also written
// without accents or in other case, to exercise folding.
var vocab = []string{
	"alpha", "beta", "gamma", "delta", "report", "reply", "repair", "budget",
	"meeting", "café", "über", "naïve", "résumé", "zeta", "omega", "quarterly",
	"invoice", "contract", "project", "status", "x1", "2024",
}

var addrPool = []string{
	"Alice Smith <alice@corp.example>",
	"alice@corp.example.org",
	"malice@corp.example",
	"Bob Report <bob@mail.corp.example>",
	"carol@other.example",
	`"Dave Jones" <dave.jones@corp.example>`,
	"Émile Zola <emile@lettres.example>",
	"eve@other.example",
}

var originPool = []string{"smtp", "import", "api", "imap:journal", "peer:arc-b", "peer:arc-c"}

var attachPool = [][2]string{
	{"report.pdf", "application/pdf"}, {"photo.png", "image/png"},
	{"notes.txt", "text/plain"}, {"budget 2024.xlsx", "application/vnd.ms-excel"},
}

// testFold folds the way the index promises to: lowercase, diacritics removed.
var testFold = strings.NewReplacer("é", "e", "ü", "u", "ï", "i", "É", "e", "Ü", "u")

func tokens(s string) []string {
	s = testFold.Replace(strings.ToLower(s))
	return strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsNumber(r) })
}

func addrOf(e string) string {
	if i := strings.LastIndexByte(e, '<'); i >= 0 {
		return strings.ToLower(strings.Trim(e[i:], "<>"))
	}
	return strings.ToLower(e)
}

func variant(r *rand.Rand, w string) string {
	switch r.IntN(4) {
	case 0:
		return strings.ToUpper(w)
	case 1:
		return testFold.Replace(w)
	case 2:
		r0, n := utf8.DecodeRuneInString(w)
		return string(unicode.ToUpper(r0)) + w[n:]
	}
	return w
}

func words(r *rand.Rand, n int) string {
	var out []string
	for i := 0; i < n; i++ {
		out = append(out, variant(r, vocab[r.IntN(len(vocab))]))
	}
	seps := []string{" ", ", ", "\n", "-", ". "}
	var b strings.Builder
	for i, w := range out {
		if i > 0 {
			b.WriteString(seps[r.IntN(len(seps))])
		}
		b.WriteString(w)
	}
	return b.String()
}

func pick(r *rand.Rand, pool []string, max int) []string {
	var out []string
	for n := r.IntN(max + 1); n > 0; n-- {
		out = append(out, pool[r.IntN(len(pool))])
	}
	return out
}

var exactBase = time.Date(2021, 1, 1, 0, 0, 0, 0, time.UTC)

func genDocs(r *rand.Rand, n int) []index.Document {
	var docs []index.Document
	for i := 1; i <= n; i++ {
		d := index.Document{
			Seq: int64(i), ID: fmt.Sprintf("id%04d", i),
			Size:     int64(r.IntN(4 << 20)),
			From:     pick(r, addrPool, 1),
			Sender:   pick(r, addrPool, 1)[:0],
			To:       pick(r, addrPool, 3),
			Cc:       pick(r, addrPool, 2),
			Bcc:      pick(r, addrPool, 1),
			Envelope: pick(r, addrPool, 2),
			Subject:  words(r, r.IntN(4)),
			Body:     words(r, r.IntN(30)),
			Origins:  pick(r, originPool, 2),
		}
		if len(d.Envelope) > 0 {
			for j, e := range d.Envelope {
				d.Envelope[j] = addrOf(e) // envelope entries are bare addresses
			}
		}
		if r.IntN(5) == 0 {
			d.Sender = pick(r, addrPool, 1)
		}
		switch r.IntN(10) {
		case 0: // midnight, to hit date boundaries
			d.Date = exactBase.AddDate(0, 0, r.IntN(1000))
		case 1: // share a second with another document
			if i > 1 {
				d.Date = docs[r.IntN(i-1)].Date
				break
			}
			fallthrough
		default:
			d.Date = exactBase.Add(time.Duration(r.Int64N(1000*24*3600)) * time.Second)
		}
		for _, a := range pick(r, []string{"0", "1", "2", "3"}, 2) {
			at := attachPool[a[0]-'0']
			d.AttachmentNames = append(d.AttachmentNames, at[0])
			d.AttachmentTypes = append(d.AttachmentTypes, at[1])
		}
		if len(d.AttachmentNames) > 0 {
			d.AttachmentText = words(r, r.IntN(10))
		} else if r.IntN(20) == 0 {
			d.AttachmentTypes = []string{"message/delivery-status"} // unnamed part
		}
		docs = append(docs, d)
	}
	return docs
}

// evalDoc is a document prepared for the brute-force evaluator.
type evalDoc struct {
	d       *index.Document
	entries map[query.Field][][]string // address fields: tokens per entry
	addrs   map[query.Field][]string   // address fields: lowercase addresses
	text    map[query.Field][]string   // text fields: token stream
}

func newEvalDoc(d *index.Document) *evalDoc {
	e := &evalDoc{d: d, entries: map[query.Field][][]string{}, addrs: map[query.Field][]string{}, text: map[query.Field][]string{}}
	for f, lists := range map[query.Field][][]string{
		query.FieldFrom: {d.From, d.Sender}, query.FieldTo: {d.To, d.Envelope},
		query.FieldCc: {d.Cc}, query.FieldBcc: {d.Bcc, d.Envelope},
	} {
		for _, l := range lists {
			for _, x := range l {
				e.entries[f] = append(e.entries[f], tokens(x))
				e.addrs[f] = append(e.addrs[f], addrOf(x))
			}
		}
	}
	e.text[query.FieldSubject] = tokens(d.Subject)
	e.text[query.FieldBody] = tokens(d.Body)
	e.text[query.FieldAttachment] = tokens(d.AttachmentText)
	e.text[query.FieldFilename] = tokens(strings.Join(append(slices.Clone(d.AttachmentNames), d.AttachmentTypes...), " "))
	return e
}

func containsPhrase(stream, phrase []string, prefix bool) bool {
	for i := 0; i+len(phrase) <= len(stream); i++ {
		ok := true
		for j, w := range phrase {
			got := stream[i+j]
			if got != w && !(prefix && j == len(phrase)-1 && strings.HasPrefix(got, w)) {
				ok = false
				break
			}
		}
		if ok {
			return true
		}
	}
	return false
}

func addrMatches(a, form string) bool {
	form = strings.ToLower(form)
	at := strings.LastIndexByte(a, '@')
	switch {
	case a == form:
		return true
	case strings.HasSuffix(form, "@"):
		return at >= 0 && a[:at+1] == form
	case strings.HasPrefix(form, "@") && at >= 0:
		dom := a[at+1:]
		return dom == form[1:] || strings.HasSuffix(dom, "."+form[1:])
	}
	return false
}

var addrFields = []query.Field{query.FieldFrom, query.FieldTo, query.FieldCc, query.FieldBcc}
var textFieldList = []query.Field{query.FieldSubject, query.FieldBody, query.FieldAttachment, query.FieldFilename}

func (e *evalDoc) termInField(t *query.Term, f query.Field, phrase []string) bool {
	if f.IsAddress() {
		if t.IsAddressForm() {
			return slices.ContainsFunc(e.addrs[f], func(a string) bool { return addrMatches(a, t.Text) })
		}
		return slices.ContainsFunc(e.entries[f], func(toks []string) bool { return containsPhrase(toks, phrase, t.Prefix) })
	}
	return containsPhrase(e.text[f], phrase, t.Prefix)
}

// eval returns whether n matches and whether n counts at all (terms without
// tokens are ignored).
func (e *evalDoc) eval(n query.Node) (match, counts bool) {
	switch n := n.(type) {
	case *query.Term:
		phrase := tokens(n.Text)
		if len(phrase) == 0 && !(n.IsAddressForm() && (n.Field == query.FieldAny || n.Field.IsAddress())) {
			return false, false
		}
		fields := []query.Field{n.Field}
		if n.Field == query.FieldAny {
			fields = append(slices.Clone(addrFields), textFieldList...)
		}
		for _, f := range fields {
			if (f.IsAddress() || !n.IsAddressForm() || len(phrase) > 0) && e.termInField(n, f, phrase) {
				return true, true
			}
		}
		return false, true
	case *query.HasAttachment:
		return e.d.HasAttachment(), true
	case *query.After:
		return !e.d.Date.Truncate(time.Second).Before(n.Date), true
	case *query.Before:
		return e.d.Date.Truncate(time.Second).Before(n.Date), true
	case *query.Size:
		return n.Match(e.d.Size), true
	case *query.Origin:
		return slices.ContainsFunc(e.d.Origins, n.MatchOrigin), true
	case *query.Not:
		m, c := e.eval(n.Node)
		return !m, c
	case *query.And:
		any := false
		for _, c := range n.Nodes {
			m, counts := e.eval(c)
			if counts {
				any = true
				if !m {
					return false, true
				}
			}
		}
		return any, any
	case *query.Or:
		any := false
		for _, c := range n.Nodes {
			m, counts := e.eval(c)
			if counts {
				any = true
				if m {
					return true, true
				}
			}
		}
		return false, any
	}
	return false, true
}

func (e *evalDoc) visible(addrs []string) bool {
	if addrs == nil {
		return true
	}
	for _, f := range addrFields {
		for _, a := range e.addrs[f] {
			if slices.Contains(addrs, a) {
				return true
			}
		}
	}
	return false
}

// genQuery builds a random query AST of at most the given depth.
func genQuery(r *rand.Rand, docs []index.Document, depth int) query.Node {
	if depth > 0 && r.IntN(3) > 0 {
		switch r.IntN(4) {
		case 0, 1:
			var ns []query.Node
			for n := 2 + r.IntN(2); n > 0; n-- {
				ns = append(ns, genQuery(r, docs, depth-1))
			}
			return &query.And{Nodes: ns}
		case 2:
			var ns []query.Node
			for n := 2 + r.IntN(2); n > 0; n-- {
				ns = append(ns, genQuery(r, docs, depth-1))
			}
			return &query.Or{Nodes: ns}
		default:
			return &query.Not{Node: genQuery(r, docs, depth-1)}
		}
	}
	fields := []query.Field{query.FieldAny, query.FieldAny, query.FieldAny, query.FieldFrom, query.FieldTo,
		query.FieldCc, query.FieldBcc, query.FieldSubject, query.FieldBody, query.FieldAttachment, query.FieldFilename}
	f := fields[r.IntN(len(fields))]
	d := &docs[r.IntN(len(docs))]
	switch r.IntN(14) {
	case 0:
		return &query.HasAttachment{}
	case 1:
		return &query.After{Date: d.Date.Truncate(24 * time.Hour)}
	case 2:
		return &query.Before{Date: d.Date.Truncate(24*time.Hour).AddDate(0, 0, r.IntN(3))}
	case 3:
		ops := []query.SizeOp{query.SizeGT, query.SizeGE, query.SizeLT, query.SizeLE}
		return &query.Size{Op: ops[r.IntN(4)], Bytes: d.Size}
	case 4:
		o := originPool[r.IntN(len(originPool))]
		if i := strings.IndexByte(o, ':'); i > 0 && r.IntN(2) == 0 {
			o = o[:i]
		}
		return &query.Origin{Value: variant(r, o)}
	case 5, 6: // address forms and address words
		a := addrOf(addrPool[r.IntN(len(addrPool))])
		at := strings.LastIndexByte(a, '@')
		forms := []string{a, a[:at+1], a[at:], "@" + a[strings.LastIndexByte(a, '.')+1:], a[at+1:], a[:at], strings.ToUpper(a)}
		fs := []query.Field{query.FieldAny, query.FieldFrom, query.FieldTo, query.FieldCc, query.FieldBcc, query.FieldBody}
		return &query.Term{Field: fs[r.IntN(len(fs))], Text: forms[r.IntN(len(forms))]}
	case 7: // display-name phrase
		return &query.Term{Field: f, Text: []string{"Alice Smith", "Dave Jones", "emile zola", "Bob Report"}[r.IntN(4)], Phrase: true}
	case 8, 9: // a phrase taken from a document, so that it usually matches
		src := tokens(d.Body + " " + d.Subject)
		if len(src) >= 2 {
			i := r.IntN(len(src) - 1)
			return &query.Term{Field: f, Text: variant(r, src[i]) + " " + variant(r, src[i+1]), Phrase: true, Prefix: r.IntN(4) == 0}
		}
	case 10: // prefix
		w := testFold.Replace(vocab[r.IntN(len(vocab))])
		return &query.Term{Field: f, Text: w[:min(len(w), 1+r.IntN(4))], Prefix: true}
	case 11: // attachment names
		return &query.Term{Field: f, Text: []string{"report.pdf", "pdf", "budget", "png", "application"}[r.IntN(5)]}
	}
	return &query.Term{Field: f, Text: variant(r, vocab[r.IntN(len(vocab))])}
}

func testExactness(t *testing.T, open func(t *testing.T) index.Index) {
	ctx := context.Background()
	ix := openIdx(t, open)
	r := newRand(1)
	docs := genDocs(r, 400)
	// Add in batches, plus a re-add of some documents (must not duplicate).
	for i := 0; i < len(docs); i += 100 {
		add(t, ix, docs[i:i+100], int64(i+100))
	}
	add(t, ix, docs[10:30], int64(len(docs)))
	evs := make([]*evalDoc, len(docs))
	allIDs := make([]string, len(docs))
	for i := range docs {
		evs[i] = newEvalDoc(&docs[i])
		allIDs[i] = docs[i].ID
	}
	userSets := [][]string{nil, nil, {"alice@corp.example"}, {"carol@other.example", "emile@lettres.example"}}
	nonEmpty := 0
	for qi := 0; qi < 400; qi++ {
		root := genQuery(r, docs, 3)
		// Go through the query syntax: String -> Parse must give the same AST.
		text := root.String()
		q, err := query.Parse(text)
		if err != nil {
			t.Fatalf("Parse(%q) of a generated query: %v", text, err)
		}
		vis := userSets[r.IntN(len(userSets))]
		var want []index.Document
		for i, e := range evs {
			m, counts := e.eval(q.Root)
			if (m || !counts) && e.visible(vis) {
				want = append(want, docs[i])
			}
		}
		if len(want) > 0 {
			nonEmpty++
		}
		sortDocs(want, false)
		opt := index.Options{Limit: 1000, Addresses: vis, CountTotal: true}
		if r.IntN(2) == 0 {
			opt.Sort = index.SortDateAsc
			sortDocs(want, true)
		}
		res, err := ix.Search(ctx, q, opt)
		if err != nil {
			t.Fatalf("Search(%q): %v", text, err)
		}
		wantIDs := make([]string, len(want))
		for i, d := range want {
			wantIDs[i] = d.ID
		}
		if got := ids(res); !slices.Equal(got, wantIDs) || res.Total != len(want) {
			t.Errorf("query %q (visible to %v, sort %d):\n got %d %v\nwant %d %v", text, vis, opt.Sort, res.Total, diffIDs(got, wantIDs), len(want), diffIDs(wantIDs, got))
			continue
		}
		if qi%4 == 0 {
			got, err := ix.Matches(ctx, q, allIDs)
			if err != nil {
				t.Fatalf("Matches(%q): %v", text, err)
			}
			var wantM []string
			for i, e := range evs {
				if m, counts := e.eval(q.Root); m || !counts {
					wantM = append(wantM, docs[i].ID)
				}
			}
			sort.Strings(got)
			sort.Strings(wantM)
			if !slices.Equal(got, wantM) {
				t.Errorf("Matches(%q): got %v, want %v", text, diffIDs(got, wantM), diffIDs(wantM, got))
			}
		}
	}
	if nonEmpty < 100 {
		t.Errorf("only %d of 400 generated queries matched anything; generator too weak", nonEmpty)
	}
}

func sortDocs(ds []index.Document, asc bool) {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		ta, tb := a.Date.Unix(), b.Date.Unix()
		less := ta < tb || (ta == tb && a.Seq < b.Seq)
		if asc {
			return less
		}
		return !less && !(ta == tb && a.Seq == b.Seq)
	})
}

// diffIDs returns the ids in a that are not in b (to keep failures short).
func diffIDs(a, b []string) []string {
	out := []string{}
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
