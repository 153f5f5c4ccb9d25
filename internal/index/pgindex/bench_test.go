package pgindex_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/query"
)

var benchWords = strings.Fields(`the of and to in is that for it as was with be by on not he this are or
	his from at which but have an they you were her she there been one all we their has would when if so
	no will can more other could our what into up than some these them then two may only about out time
	report budget meeting invoice contract project status quarterly deadline review draft approval`)

func benchDocs(r *rand.Rand, from, n int) []index.Document {
	docs := make([]index.Document, n)
	for i := range docs {
		seq := int64(from + i + 1)
		var b strings.Builder
		for w := 0; w < 300; w++ {
			b.WriteString(benchWords[r.IntN(len(benchWords))])
			b.WriteByte(' ')
		}
		docs[i] = index.Document{
			Seq: seq, ID: fmt.Sprintf("%064x", seq), Date: time.Unix(1.6e9+seq*600, 0), Size: 4000 + seq%5000,
			From: []string{fmt.Sprintf("User %d <user%d@corp%d.example>", seq%50, seq%50, seq%7)},
			To:   []string{fmt.Sprintf("rcpt%d@corp.example", seq%20)}, Subject: benchWords[r.IntN(len(benchWords))] + " subject",
			Body: b.String(), Origins: []string{"smtp"},
		}
	}
	return docs
}

// BenchmarkAdd adds batches of 100 documents of 300 words.
func BenchmarkAdd(b *testing.B) {
	ix := open(b, pg.Get(b).CreateDB(b))
	defer ix.Close()
	r := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		docs := benchDocs(r, i*100, 100)
		if err := ix.Add(ctx, docs, int64(i*100+100)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "docs/s")
}

// BenchmarkSearch searches 10,000 documents.
func BenchmarkSearch(b *testing.B) {
	ix := open(b, pg.Get(b).CreateDB(b))
	defer ix.Close()
	r := rand.New(rand.NewPCG(1, 2))
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		if err := ix.Add(ctx, benchDocs(r, i*100, 100), int64(i*100+100)); err != nil {
			b.Fatal(err)
		}
	}
	for _, qs := range []string{"report", `"quarterly deadline"`, "from:user7@corp3.example budget", "approval -draft", "rep* size>6000", "after:2020-10-01 review"} {
		q, err := query.Parse(qs)
		if err != nil {
			b.Fatal(err)
		}
		for _, count := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/count=%v", qs, count), func(b *testing.B) {
				for b.Loop() {
					if _, err := ix.Search(ctx, q, index.Options{CountTotal: count}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
