package catalog

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func BenchmarkCommitGroup(b *testing.B) {
	for _, n := range []int{1, 8, 16} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			ctx := context.Background()
			c, err := Open(ctx, filepath.Join(b.TempDir(), "c.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			k := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				items := make([]NewMessage, n)
				for j := range items {
					k++
					items[j] = NewMessage{ID: fmt.Sprintf("%064x", k), Date: time.Now(), Arrival: time.Now(), Size: 14000,
						From: "alice@example.com", To: []string{"bob@example.com", "carol@example.com"}, Subject: "Re: quarterly numbers for the team",
						MessageID: fmt.Sprintf("<%d@example.com>", k), Origin: "api:admin"}
				}
				if _, err := c.Commit(ctx, items); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "us/msg")
		})
	}
}
