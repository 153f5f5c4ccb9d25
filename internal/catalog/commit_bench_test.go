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

// BenchmarkIsTombstoned is the archive's check before a group's blobs are
// written: a batch of 8 ids, none tombstoned, against a catalog holding a
// few tombstones.
func BenchmarkIsTombstoned(b *testing.B) {
	ctx := context.Background()
	c, err := Open(ctx, filepath.Join(b.TempDir(), "c.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Purge(ctx, []string{fmt.Sprintf("%064x", 1), fmt.Sprintf("%064x", 2)}, "test", time.Now()); err != nil {
		b.Fatal(err)
	}
	ids := make([]string, 8)
	for i := range ids {
		ids[i] = fmt.Sprintf("%064x", 100+i)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if got, err := c.IsTombstoned(ctx, ids); err != nil || len(got) != 0 {
			b.Fatal(got, err)
		}
	}
}
