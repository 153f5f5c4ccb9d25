package mirror

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Source-failover heartbeat frames (see the package doc). The payload is
// opaque to the mirror: package pull encodes and decodes it.
const (
	frameLease    byte = 'S' // the sender's heartbeat
	frameLeaseAns byte = 's' // the answering side's heartbeat
)

// maxLeaseFrame caps a heartbeat payload in either direction.
const maxLeaseFrame = 8 << 20

// SourceLeases exchanges source-failover heartbeats with peers;
// *pull.Manager implements it. Payloads are opaque to the mirror.
type SourceLeases interface {
	// Heartbeat returns this node's heartbeat for the named peer.
	Heartbeat(ctx context.Context, peer string) ([]byte, error)
	// ReceiveHeartbeat handles the named peer's heartbeat.
	ReceiveHeartbeat(ctx context.Context, peer string, payload []byte) error
}

// leaseLoop keeps a "src" lane to one peer and exchanges heartbeats every
// Config.LeaseInterval: it sends ours (S) and hands the peer's answer (s)
// to Config.Leases. Failures reconnect after at most one interval, so a
// peer that comes back is heard again within about one interval.
func (m *Mirror) leaseLoop(ctx context.Context, p *peer) {
	every := m.cfg.LeaseInterval
	for ctx.Err() == nil {
		err := m.leaseConnect(ctx, p, every)
		if ctx.Err() != nil {
			return
		}
		var he *HandshakeError
		wait := every
		if errors.As(err, &he) {
			wait = max(every, m.cfg.SlowRetry/4)
		}
		m.log.Debug("mirror: heartbeat lane to peer failed", "peer", p.cfg.Name, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
		case <-t.C:
		case <-p.leaseWake:
		}
		t.Stop()
	}
}

// leaseConnect dials the peer and exchanges heartbeats until the link or
// ctx fails.
func (m *Mirror) leaseConnect(ctx context.Context, p *peer, every time.Duration) error {
	s, closeConn, err := m.dial(ctx, p, "src")
	if err != nil {
		return err
	}
	defer closeConn()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		mine, err := m.cfg.Leases.Heartbeat(ctx, p.cfg.Name)
		if err != nil {
			return err
		}
		if len(mine) > maxLeaseFrame {
			return fmt.Errorf("mirror: heartbeat of %d bytes exceeds %d", len(mine), maxLeaseFrame)
		}
		if err := s.conn.SetDeadline(time.Now().Add(max(4*every, 10*time.Second))); err != nil {
			return fmt.Errorf("mirror: %w", err)
		}
		if err := writeFrame(s.conn, frameLease, mine); err != nil {
			return err
		}
		f, err := readFrame(s.r, maxLeaseFrame)
		if err != nil {
			return fmt.Errorf("mirror: heartbeat answer: %w", err)
		}
		if f.typ != frameLeaseAns {
			return fmt.Errorf("mirror: protocol error: expected %q, got %q", frameLeaseAns, f.typ)
		}
		if len(f.payload) > 0 { // empty: the peer has no failover sources
			if err := m.cfg.Leases.ReceiveHeartbeat(ctx, p.cfg.Name, f.payload); err != nil {
				m.log.Warn("mirror: heartbeat from peer", "peer", p.cfg.Name, "err", err)
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

// answerLease handles an incoming heartbeat and answers with ours.
func (m *Mirror) answerLease(ctx context.Context, w *writer, from string, payload []byte) error {
	if m.cfg.Leases == nil {
		// Failover is not configured here: answer with nothing so the
		// peer's lane stays up; it learns nothing from us.
		return w.write(frameLeaseAns, nil)
	}
	if len(payload) > maxLeaseFrame {
		return fmt.Errorf("mirror: heartbeat of %d bytes exceeds %d", len(payload), maxLeaseFrame)
	}
	if err := m.cfg.Leases.ReceiveHeartbeat(ctx, from, payload); err != nil {
		m.log.Warn("mirror: heartbeat from peer", "peer", from, "err", err)
	}
	mine, err := m.cfg.Leases.Heartbeat(ctx, from)
	if err != nil {
		return err
	}
	return w.write(frameLeaseAns, mine)
}
