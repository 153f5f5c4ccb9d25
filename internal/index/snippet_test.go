package index_test

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/query"
)

var marks = [2]string{"<mark>", "</mark>"}

func TestSnippet(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("filler words here ", 30)
	tests := []struct {
		text, q string
		max     int
		want    string
	}{
		{"Meet at the CAFÉ at noon", "cafe", 100, "Meet at the <mark>CAFÉ</mark> at noon"},
		{"Meet at the café at noon", "CAFE noon", 100, "Meet at the <mark>café</mark> at <mark>noon</mark>"},
		{"the quarterly report is late", `"quarterly report"`, 100, "the <mark>quarterly report</mark> is late"},
		{"reports and replies", "rep*", 100, "<mark>reports</mark> and <mark>replies</mark>"},
		{"nothing here", "-nothing here", 100, "nothing <mark>here</mark>"},
		{"line one\n\n  line   two", "two", 100, "line one line <mark>two</mark>"},
		{"明日は東京都庁で会議", "東京", 100, "明日は<mark>東京</mark>都庁で会議"},
		{"write to alice@corp.example now", "from:alice@corp.example", 100, "write to <mark>alice@corp.example</mark> now"},
		{"no hit at all in this text", "zebra", 10, "no hit at"},
		{"<b>x</b>", "x", 100, "<b><mark>x</mark></b>"},
		{long + "the needle is here " + long, "needle", 40, "the <mark>needle</mark> is here filler words here"},
	}
	for _, tt := range tests {
		q, err := query.Parse(tt.q)
		if err != nil {
			t.Fatal(err)
		}
		if got := index.Snippet(tt.text, q, tt.max, marks); got != tt.want {
			t.Errorf("Snippet(%.30q, %q, %d) = %q, want %q", tt.text, tt.q, tt.max, got, tt.want)
		}
	}
}

func FuzzSnippet(f *testing.F) {
	f.Add("Meet at the CAFÉ at noon", "cafe", 20)
	f.Add("明日は東京都庁で会議", "東京 -x", 5)
	f.Add("a\xffb c", `"b c"*`, 0)
	f.Fuzz(func(t *testing.T, text, qs string, n int) {
		q, err := query.Parse(qs)
		if err != nil {
			return
		}
		n %= 1000
		out := index.Snippet(text, q, n, [2]string{"[", "]"})
		if !utf8.ValidString(out) {
			t.Fatalf("invalid UTF-8 output %q", out)
		}
		limit := n
		if limit <= 0 {
			limit = index.DefaultSnippetLen
		}
		plain := strings.NewReplacer("[", "", "]", "").Replace(out)
		if utf8.RuneCountInString(plain) > limit+strings.Count(text, "[")+strings.Count(text, "]") && utf8.RuneCountInString(plain) > limit {
			t.Fatalf("snippet of %d runes exceeds %d", utf8.RuneCountInString(plain), limit)
		}
	})
}
