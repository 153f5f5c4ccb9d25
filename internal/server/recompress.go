package server

import (
	"context"
	"sync"
	"time"

	"github.com/mailarc/mailarc/internal/store"
)

// recompressor is implemented by stores that write a burst's records
// uncompressed and compress them later (store.Local).
type recompressor interface {
	PendingRecompress() int64
	Recompress(ctx context.Context, yield func() bool) (done bool, err error)
	Stats(ctx context.Context) (store.Stats, error)
}

// recompressEvery is how often the node looks for records to compress, and
// recompressQuiet how long ingest must have been quiet (not Busy) first.
const (
	recompressEvery = time.Second
	recompressQuiet = 3 * time.Second
)

// startRecompress starts the loop that compresses, once a burst of mail is
// over, the records the archive stored uncompressed during it.
func (n *Node) startRecompress(ctx context.Context, wg *sync.WaitGroup) {
	rc, ok := n.Archive.Store().(recompressor)
	if !ok {
		return
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		n.recompressLoop(ctx, rc, n.Archive.Busy, recompressEvery, recompressQuiet)
	}()
}

// recompressLoop calls rc.Recompress every interval once busy has reported
// false for quiet, while rc has records pending; Recompress stops as soon as
// busy reports true again and a later round carries on. After a round that
// finished, it waits until more is pending than that round left (records
// it could not compress stay pending); after an error it waits twice as
// long each time, up to a minute.
func (n *Node) recompressLoop(ctx context.Context, rc recompressor, busy func() bool, interval, quiet time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	var quietSince, retryAt time.Time
	var left int64 // pending after the last finished round
	backoff := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if busy() {
				quietSince = time.Time{}
				continue
			}
			// The clock is read after busy answered, not taken from the
			// tick: a tick can wait in the channel, and its time is then
			// earlier than the moment ingest was seen quiet.
			now := time.Now()
			if quietSince.IsZero() {
				quietSince = now
			}
			if now.Sub(quietSince) < quiet || now.Before(retryAt) {
				continue
			}
			pending := rc.PendingRecompress()
			if pending <= left {
				left = min(left, pending) // deletions and compaction shrink it
				continue
			}
			before, _ := rc.Stats(ctx)
			start := time.Now()
			done, err := rc.Recompress(ctx, busy)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				n.Log.Error("store: compressing the records of a burst failed; retrying later", "err", err, "retry_in", backoff)
				retryAt = time.Now().Add(backoff)
				backoff = min(2*backoff, time.Minute)
				continue
			}
			backoff = time.Second
			after, _ := rc.Stats(ctx)
			if done {
				left = rc.PendingRecompress()
			}
			n.Log.Info("store: compressed records written uncompressed during a burst",
				"pending_bytes", pending, "stored_bytes_before", before.StoredBytes, "stored_bytes_after", after.StoredBytes,
				"seconds", time.Since(start).Seconds(), "finished", done)
		}
	}
}
