package s3store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/mailarc/mailarc/internal/store"
)

// benchMessages returns n distinct message-like blobs of about size bytes.
func benchMessages(seed uint64, n, size int) []store.Blob {
	words := strings.Fields("Received: from mail.example.com by archive with ESMTP id the quick brown fox Subject: Re: patch quarterly report meeting attached")
	r := rand.New(rand.NewPCG(seed, 1))
	blobs := make([]store.Blob, n)
	for i := range blobs {
		var sb strings.Builder
		fmt.Fprintf(&sb, "Message-ID: <%d.%d@bench>\r\n\r\n", seed, i)
		for sb.Len() < size {
			sb.WriteString(words[r.IntN(len(words))])
			if r.IntN(12) == 0 {
				sb.WriteString("\r\n")
			} else {
				sb.WriteByte(' ')
			}
		}
		blobs[i] = store.NewBlob([]byte(sb.String()))
	}
	return blobs
}

// BenchmarkPut measures batched, encrypted Puts of 10 KB messages
// (100 per batch) against a local versitygw.
func BenchmarkPut(b *testing.B) {
	g := startGateway(b)
	opt := g.options(g.bucket(b, false, false), "bench")
	opt.Key = testKey(5)
	s := g.open(b, opt)
	ctx := context.Background()
	const batch = 100
	b.ResetTimer()
	n := 0
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		blobs := benchMessages(uint64(i), batch, 10<<10)
		b.StartTimer()
		if err := s.Put(ctx, blobs); err != nil {
			b.Fatal(err)
		}
		n += batch
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "msgs/s")
}

// BenchmarkGet measures Gets of 10 KB encrypted messages, 16 concurrent
// readers, against a local versitygw.
func BenchmarkGet(b *testing.B) {
	g := startGateway(b)
	opt := g.options(g.bucket(b, false, false), "bench")
	opt.Key = testKey(5)
	s := g.open(b, opt)
	ctx := context.Background()
	blobs := benchMessages(99, 500, 10<<10)
	if err := s.Put(ctx, blobs); err != nil {
		b.Fatal(err)
	}
	b.SetParallelism(8) // 8 x GOMAXPROCS readers
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 2))
		for pb.Next() {
			bl := blobs[r.IntN(len(blobs))]
			if _, err := s.Get(ctx, bl.ID); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}
