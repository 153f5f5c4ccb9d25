package mirror

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/mailarc/mailarc/internal/archive"
)

// receiveConcurrency bounds the puts of one connection being ingested at
// once (they share group commits in the archive); receiveBytes bounds their
// compressed size in flight (a single larger put still proceeds alone).
const (
	receiveConcurrency = 64
	receiveBytes       = 128 << 20
)

// budget is a byte budget shared by a connection's in-flight puts.
type budget struct {
	mu   sync.Mutex
	cond *sync.Cond
	used int64
}

func newBudget() *budget {
	b := &budget{}
	b.cond = sync.NewCond(&b.mu)
	return b
}

// acquire waits until n bytes fit (or nothing else is in flight).
func (b *budget) acquire(n int64) {
	b.mu.Lock()
	for b.used > 0 && b.used+n > receiveBytes {
		b.cond.Wait()
	}
	b.used += n
	b.mu.Unlock()
}

func (b *budget) release(n int64) {
	b.mu.Lock()
	b.used -= n
	b.mu.Unlock()
	b.cond.Broadcast()
}

// receiveLoop answers lack queries, ingests puts and answers pings on an
// authenticated incoming connection until it fails or ctx ends.
func (m *Mirror) receiveLoop(ctx context.Context, s *session, p *peer) {
	w := newWriter(s.conn)
	sem := make(chan struct{}, receiveConcurrency)
	bud := newBudget()
	var wg sync.WaitGroup
	defer wg.Wait()
	from := p.cfg.Name
	ae := &aeServer{m: m, from: from}
	for {
		if err := s.conn.SetReadDeadline(time.Now().Add(4*m.cfg.PingInterval + 30*time.Second)); err != nil {
			return
		}
		f, err := readFrame(s.r, m.maxFrame)
		if err != nil {
			if ctx.Err() == nil {
				m.log.Debug("mirror: incoming link closed", "peer", from, "err", err)
			}
			return
		}
		switch f.typ {
		case framePing:
			if err := w.write(framePong, nil); err != nil {
				return
			}
		case frameLack:
			ans, err := m.lacking(ctx, f.payload)
			if err != nil {
				m.log.Warn("mirror: answering lack query", "peer", from, "err", err)
				return
			}
			if err := w.write(frameLackAns, ans); err != nil {
				return
			}
		case framePut:
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			size := int64(len(f.payload))
			bud.acquire(size)
			wg.Add(1)
			go func(payload []byte) {
				defer wg.Done()
				defer func() { <-sem }()
				defer bud.release(size)
				id, res, reason := m.receive(ctx, from, payload)
				if err := w.write(frameResult, encodeResult(id, res, reason)); err != nil {
					_ = s.conn.Close()
				}
			}(f.payload)
		case frameLease:
			if err := m.answerLease(ctx, w, from, f.payload); err != nil {
				if ctx.Err() == nil {
					m.log.Warn("mirror: heartbeat from peer", "peer", from, "err", err)
				}
				return
			}
		case frameDigest, frameIDs, frameTombs, frameGet, frameUsers:
			if err := ae.handle(ctx, w, f); err != nil {
				if ctx.Err() == nil {
					m.log.Warn("mirror: anti-entropy request from peer", "peer", from, "err", err)
				}
				return
			}
		default:
			m.log.Warn("mirror: protocol error from peer", "peer", from, "frame", fmt.Sprintf("%q", f.typ))
			return
		}
	}
}

// lacking answers a lack query: one byte per 32-byte id.
func (m *Mirror) lacking(ctx context.Context, p []byte) ([]byte, error) {
	if len(p)%32 != 0 {
		return nil, errors.New("mirror: lack query length is not a multiple of 32")
	}
	ids := make([]string, len(p)/32)
	for i := range ids {
		ids[i] = hex.EncodeToString(p[i*32 : i*32+32])
	}
	have, err := m.cat.Exists(ctx, ids)
	if err != nil {
		return nil, err
	}
	purged, err := m.cat.IsTombstoned(ctx, ids)
	if err != nil {
		return nil, err
	}
	ans := make([]byte, len(ids))
	for i, id := range ids {
		switch {
		case purged[id]:
			ans[i] = lackPurged
		case have[id]:
			ans[i] = lackHave
		default:
			ans[i] = lackNeed
		}
	}
	return ans, nil
}

// receive checks and ingests one put. It answers stored only after the
// archive reports the message durable.
func (m *Mirror) receive(ctx context.Context, from string, payload []byte) ([32]byte, byte, string) {
	id, meta, zdata, err := decodePut(payload)
	if err != nil {
		return id, resRejected, err.Error()
	}
	var pm putMeta
	if err := json.Unmarshal(meta, &pm); err != nil {
		return id, resRejected, "bad metadata: " + err.Error()
	}
	data, err := m.dec.DecodeAll(zdata, nil)
	if errors.Is(err, zstd.ErrDecoderSizeExceeded) {
		return id, resRejected, fmt.Sprintf("%v (more than max_message_size, %d bytes)", archive.ErrTooLarge, m.cfg.MaxMessageSize)
	}
	if err != nil {
		return id, resRejected, "corrupt compressed data: " + err.Error()
	}
	if sum := sha256.Sum256(data); sum != id {
		m.log.Warn("mirror: refused a message whose bytes do not match its id", "peer", from, "id", hex.EncodeToString(id[:]))
		return id, resRejected, "sha-256 of the data does not match the id"
	}
	o := archive.Origin{Source: "peer:" + from, RcptTo: pm.RcptTo}
	if pm.Arrival > 0 {
		o.Arrival = time.Unix(0, pm.Arrival)
	}
	froms := pm.MailFrom
	if len(froms) == 0 {
		froms = []string{""}
	}
	stored := false
	for i, mf := range froms {
		o.MailFrom = mf
		if i > 0 {
			o.RcptTo = nil
		}
		res, err := m.arch.Ingest(ctx, data, o)
		switch {
		case errors.Is(err, archive.ErrEmpty), errors.Is(err, archive.ErrTooLarge):
			return id, resRejected, err.Error()
		case err != nil:
			return id, resRetry, "temporary: " + err.Error()
		case res.Purged:
			return id, resPurged, ""
		case res.ID != hex.EncodeToString(id[:]):
			return id, resRejected, "the archive computed a different id " + res.ID
		}
		if i == 0 && !res.Duplicate {
			stored = true
		}
	}
	m.failpoint("mirror-after-store-before-answer")
	if stored {
		return id, resStored, ""
	}
	return id, resHave, ""
}

func (m *Mirror) failpoint(name string) {
	if m.cfg.Failpoint != nil {
		m.cfg.Failpoint(name)
	}
}
