//go:build unix

package store

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// cpuTime returns the user+system CPU time used by the process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchMessages returns n unique message-like blobs of 10-20 kB: real corpus
// messages made unique by a prefix line when the corpus is present, else
// synthetic text.
func benchMessages(b *testing.B, n int) []Blob {
	b.Helper()
	samples := corpusSamples(b, 200)
	var usable [][]byte
	for _, s := range samples {
		if len(s) >= 2000 {
			usable = append(usable, s)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	out := make([]Blob, n)
	for i := range out {
		size := 10_000 + rng.IntN(10_000)
		var body []byte
		body = fmt.Appendf(body, "X-Bench-Unique: %d-%d\r\n", i, time.Now().UnixNano())
		for len(body) < size {
			if len(usable) > 0 {
				body = append(body, usable[rng.IntN(len(usable))]...)
			} else {
				body = fmt.Appendf(body, "Received: from host%d.example.com by mx.example.org; line %d\r\n", rng.IntN(1000), len(body))
			}
		}
		out[i] = NewBlob(body[:size])
	}
	return out
}

func benchPut(b *testing.B, opt LocalOptions) {
	const batch = 100
	msgs := benchMessages(b, 2000)
	opt.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := OpenLocal(b.TempDir(), opt)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	var raw int64
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		blobs := make([]Blob, batch)
		for j := range blobs {
			m := msgs[(i*batch+j)%len(msgs)]
			// Unique per iteration so nothing is skipped as a duplicate.
			data := fmt.Appendf(nil, "X-Iter: %d\r\n", i)
			data = append(data, m.Data...)
			blobs[j] = NewBlob(data)
			raw += int64(len(data))
		}
		b.StartTimer()
		if err := s.Put(ctx, blobs); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	el := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N*batch)/el, "blobs/s")
	b.ReportMetric(float64(raw)/el/1e6, "MB/s")
	// CPU time of the whole process per blob: on a shared machine wall time
	// is dominated by others' load and fsync latency, this is not.
	b.ReportMetric(float64(cpuTime()-cpu0)/1e3/float64(b.N*batch), "cpu-µs/blob")
	st, err := s.Stats(ctx)
	if err == nil && st.StoredBytes > 0 {
		b.ReportMetric(float64(st.RawBytes)/float64(st.StoredBytes), "ratio")
	}
}

// BenchmarkPut measures Put of batches of 100 blobs of 10-20 kB with one
// fsync per batch (the archive's group commit).
func BenchmarkPut(b *testing.B) { benchPut(b, LocalOptions{}) }

// BenchmarkPutEncrypted is BenchmarkPut with AES-256-GCM.
func BenchmarkPutEncrypted(b *testing.B) { benchPut(b, LocalOptions{Key: make([]byte, 32)}) }

// BenchmarkPutNoSync shows the cost of fsync by leaving it out.
func BenchmarkPutNoSync(b *testing.B) { benchPut(b, LocalOptions{NoSync: true}) }

// BenchmarkGet measures random reads of 10-20 kB blobs.
func BenchmarkGet(b *testing.B) {
	msgs := benchMessages(b, 2000)
	s, err := OpenLocal(b.TempDir(), LocalOptions{NoSync: true, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Put(ctx, msgs); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rng := rand.New(rand.NewPCG(rand.Uint64(), 3))
		for pb.Next() {
			if _, err := s.Get(ctx, msgs[rng.IntN(len(msgs))].ID); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "blobs/s")
}

// BenchmarkEncodeRecord measures the CPU cost of one 10-20 kB record
// (compression, CRC; no I/O) at the default level.
func BenchmarkEncodeRecord(b *testing.B) {
	msgs := benchMessages(b, 100)
	c := testCodec(b, nil, true)
	var buf []byte
	var n int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := msgs[i%len(msgs)]
		var err error
		if buf, err = c.encodeRecord(buf[:0], [32]byte(mustSum(m.Data)), m.Data); err != nil {
			b.Fatal(err)
		}
		n += int64(len(m.Data))
	}
	b.SetBytes(n / int64(b.N))
}
