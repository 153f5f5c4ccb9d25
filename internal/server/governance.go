package server

import (
	"context"
	"sync"
)

// startGovernance starts the retention sweeper and related workers (filled
// in by the governance work).
func (n *Node) startGovernance(ctx context.Context, wg *sync.WaitGroup, c *components) error {
	return nil
}
