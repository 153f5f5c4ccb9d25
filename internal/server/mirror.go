package server

import (
	"context"
	"sync"
)

// startMirror starts mirroring when [mirror] is configured (filled in by the
// mirroring work).
func (n *Node) startMirror(ctx context.Context, wg *sync.WaitGroup, c *components) error {
	return nil
}

// peerStatus is the peers[] part of /api/v1/status.
func (n *Node) peerStatus(ctx context.Context) []any { return []any{} }

// policyDrift is the policy_drift part of /api/v1/status.
func (n *Node) policyDrift(ctx context.Context) []string { return []string{} }
