package web

import (
	"context"
	"errors"
	"net/http"

	"github.com/mailarc/mailarc/internal/mirror"
)

// PeerAdmin is what the peers endpoints need from mirroring.
type PeerAdmin interface {
	// SyncPeer requests an anti-entropy pass with the named peer now.
	SyncPeer(ctx context.Context, name string) error
	// RepairPeer forgets the peer's pinned certificate and requests a
	// full anti-entropy pass; hadPin reports whether a pin existed.
	RepairPeer(ctx context.Context, name string) (hadPin bool, err error)
}

func peerError(err error) error {
	if errors.Is(err, mirror.ErrUnknownPeer) {
		return errf(http.StatusNotFound, "not_found", "no such peer (see [[mirror.peers]]) or mirroring is not running")
	}
	return err
}

// POST /api/v1/peers/{name}/sync -> 202 {"peer","requested":true}
func (s *Server) syncPeer(w http.ResponseWriter, r *http.Request) error {
	if s.d.Peers == nil {
		return errf(http.StatusServiceUnavailable, "unavailable", "mirroring is not configured on this node")
	}
	name := r.PathValue("name")
	if err := s.d.Peers.SyncPeer(r.Context(), name); err != nil {
		return peerError(err)
	}
	s.log.Info("anti-entropy requested", "peer", name, "user", userFrom(r).Name)
	writeJSON(w, http.StatusAccepted, map[string]any{"peer": name, "requested": true})
	return nil
}

// POST /api/v1/peers/{name}/repair -> 202 {"peer","forgot_pin":bool,"requested":true}
func (s *Server) repairPeer(w http.ResponseWriter, r *http.Request) error {
	if s.d.Peers == nil {
		return errf(http.StatusServiceUnavailable, "unavailable", "mirroring is not configured on this node")
	}
	name := r.PathValue("name")
	had, err := s.d.Peers.RepairPeer(r.Context(), name)
	if err != nil {
		return peerError(err)
	}
	s.log.Warn("peer repair requested: pinned certificate forgotten", "peer", name, "had_pin", had, "user", userFrom(r).Name)
	writeJSON(w, http.StatusAccepted, map[string]any{"peer": name, "forgot_pin": had, "requested": true})
	return nil
}
