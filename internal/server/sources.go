package server

import (
	"context"
	"sync"
)

// startSources starts the journal-mailbox pollers (filled in by the pull work).
func (n *Node) startSources(ctx context.Context, wg *sync.WaitGroup, c *components) error {
	return nil
}

// sourceStatus is the sources[] part of /api/v1/status.
func (n *Node) sourceStatus() []any { return []any{} }
