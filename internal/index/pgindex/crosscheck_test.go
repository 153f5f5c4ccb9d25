//go:build sqlite_fts5

package pgindex_test

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode"

	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/message"
	"github.com/mailarc/mailarc/internal/query"
	"github.com/mailarc/mailarc/internal/testutil"
)

// trickyTexts exercise folding and tokenisation corners beyond the
// contract suite: decomposed accents, scripts without case or spaces,
// digits of other scripts, punctuation inside words, private-use and
// invalid bytes.
var trickyTexts = []string{
	"Straße STRASSE naïve nai\u0308ve Café cafe\u0301 résumé",
	"ΣΊΣΥΦΟΣ σίσυφος Ελλάδα Москва МОСКВА ёлка Ёлка",
	"東京都庁 日本語のテキスト ひらがな カタカナー 한국어 텍스트 北京开会",
	"e-mail don't x² ① ４２ ＡＢＣ ﬁle état-major",
	"हिन्दी पाठ العربية النص ภาษาไทย",
	"\uE000abc private\uE001use \xff\xfe bogus bytes",
	"alice@corp.example <bob@mail.corp.example> \"Jones, Alice\"",
	"report.pdf budget_2024.xlsx v1.2.3 192.168.0.1 http://example.com/path?q=1",
}

type crossDoc struct {
	d     index.Document
	words []string // raw words to draw queries from
}

func corpusDocs(t *testing.T, limit int) []crossDoc {
	root := testutil.FindCorpus("real", "usrp")
	if root == "" {
		testutil.Require(t, false, "the shared corpus (real/usrp) is absent")
	}
	var paths []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".eml") {
			paths = append(paths, p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(paths)
	step := max(1, len(paths)/limit)
	var out []crossDoc
	for i := 0; i < len(paths) && len(out) < limit; i += step {
		raw, err := os.ReadFile(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		p := message.Parse(raw, message.Options{})
		d := index.Document{
			Seq: int64(len(out) + 1), ID: fmt.Sprintf("c%05d", len(out)+1), Date: p.Date, Size: int64(len(raw)),
			From: addrs(p.From), Sender: addrs(p.Sender), To: addrs(p.To), Cc: addrs(p.Cc),
			Subject: p.Subject, Body: p.Text, Origins: []string{"import"},
		}
		for _, a := range p.Attachments {
			if a.Filename != "" {
				d.AttachmentNames = append(d.AttachmentNames, a.Filename)
			}
			d.AttachmentTypes = append(d.AttachmentTypes, a.ContentType)
		}
		out = append(out, crossDoc{d: d, words: strings.Fields(p.Subject + " " + firstN(p.Text, 4000))})
	}
	return out
}

func firstN(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func addrs(as []message.Address) []string {
	out := make([]string, 0, len(as))
	for _, a := range as {
		out = append(out, a.String())
	}
	return out
}

// TestSameResultsAsSQLite indexes real mail and tricky text in both the
// SQLite and the PostgreSQL index and compares the results of random
// queries built from the documents' own words.
func TestSameResultsAsSQLite(t *testing.T) {
	t.Parallel()
	docs := corpusDocs(t, 300)
	base := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, tx := range trickyTexts {
		d := index.Document{
			Seq: int64(len(docs) + 1), ID: fmt.Sprintf("x%02d", i), Date: base.Add(time.Duration(i) * time.Hour),
			From: []string{"Tricky Sender <tricky@example.org>"}, Subject: tx, Body: tx + "\n" + strings.ToUpper(tx),
		}
		docs = append(docs, crossDoc{d: d, words: strings.Fields(tx)})
	}
	sq, err := index.OpenSQLite(filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer sq.Close()
	pgx := open(t, pg.Get(t).CreateDB(t))
	defer pgx.Close()
	all := make([]index.Document, len(docs))
	for i := range docs {
		all[i] = docs[i].d
	}
	ctx := context.Background()
	for _, ix := range []index.Index{sq, pgx} {
		if err := ix.Add(ctx, all, int64(len(all))); err != nil {
			t.Fatalf("Add: %v", err)
		}
	}
	r := rand.New(rand.NewPCG(7, 11))
	fields := []string{"", "", "", "subject:", "body:", "from:", "to:", "cc:", "filename:"}
	word := func() string {
		for {
			cd := &docs[r.IntN(len(docs))]
			if len(cd.words) == 0 {
				continue
			}
			w := cd.words[r.IntN(len(cd.words))]
			w = strings.Map(func(c rune) rune {
				if c == '"' || c == '(' || c == ')' || c == '*' || unicode.IsSpace(c) {
					return -1
				}
				return c
			}, w)
			w = strings.TrimLeft(w, "-")
			if w == "" || w == "OR" || w == "AND" || w == "NOT" {
				continue
			}
			if r.IntN(3) == 0 {
				w = strings.ToUpper(w)
			}
			return w
		}
	}
	term := func() string {
		f := fields[r.IntN(len(fields))]
		switch r.IntN(5) {
		case 0:
			return f + `"` + word() + " " + word() + `"`
		case 1:
			w := []rune(word())
			return f + string(w[:1+r.IntN(len(w))]) + "*"
		case 2:
			if cd := &docs[r.IntN(len(docs))]; len(cd.d.From) > 0 {
				return "from:" + strings.Trim(cd.d.From[0][strings.LastIndexByte(cd.d.From[0], '<')+1:], "<> ")
			}
		}
		return f + word()
	}
	// Every word of the tricky texts, in both cases, as a prefix and
	// paired with its successor, then random queries.
	var fixed []string
	for _, tx := range trickyTexts {
		ws := strings.Fields(strings.NewReplacer(`"`, " ", "(", " ", ")", " ", "*", " ").Replace(tx))
		for i, w := range ws {
			w = strings.TrimLeft(w, "-")
			if w == "" {
				continue
			}
			fixed = append(fixed, w, strings.ToUpper(w), w+"*", "subject:"+w)
			if rs := []rune(w); len(rs) > 1 {
				fixed = append(fixed, string(rs[:len(rs)/2])+"*", string(rs[len(rs)/2:]))
			}
			if i+1 < len(ws) {
				fixed = append(fixed, `"`+w+" "+ws[i+1]+`"`)
			}
		}
	}
	mismatches, total := 0, len(fixed)+600
	for i := 0; i < total; i++ {
		var qs string
		switch r.IntN(4) {
		case 0:
			qs = term() + " " + term()
		case 1:
			qs = term() + " OR " + term()
		case 2:
			qs = term() + " -" + term()
		default:
			qs = term()
		}
		if i < len(fixed) {
			qs = fixed[i]
		}
		q, err := query.Parse(qs)
		if err != nil {
			continue
		}
		opt := index.Options{Limit: 10000}
		a, errA := sq.Search(ctx, q, opt)
		b, errB := pgx.Search(ctx, q, opt)
		if errA != nil || errB != nil {
			t.Fatalf("%q: sqlite %v, postgres %v", qs, errA, errB)
		}
		ga, gb := hitIDs(a), hitIDs(b)
		if !slices.Equal(ga, gb) {
			mismatches++
			t.Errorf("%q: sqlite %d hits, postgres %d; only sqlite %v, only postgres %v", qs, len(ga), len(gb), minus(ga, gb), minus(gb, ga))
		}
	}
	t.Logf("%d queries compared, %d mismatches", total, mismatches)
}

func hitIDs(r index.Result) []string {
	out := make([]string, len(r.Hits))
	for i, h := range r.Hits {
		out[i] = h.ID
	}
	return out
}

func minus(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	if len(out) > 8 {
		out = append(out[:8], "...")
	}
	return out
}
