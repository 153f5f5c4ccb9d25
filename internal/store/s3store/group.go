package s3store

import (
	"context"
	"sync"
)

// group runs functions with bounded concurrency and keeps the first error,
// canceling the context of the others when one fails (like errgroup).
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{}
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

// newGroup returns a group running at most limit functions at once, and
// the context they should use.
func newGroup(ctx context.Context, limit int) (*group, context.Context) {
	gctx, cancel := context.WithCancel(ctx)
	return &group{ctx: gctx, cancel: cancel, sem: make(chan struct{}, limit)}, gctx
}

// Go runs fn in a new goroutine once a slot is free. If the group's context
// is done before that, fn is not run.
func (g *group) Go(fn func() error) {
	select {
	case g.sem <- struct{}{}:
	case <-g.ctx.Done():
		g.fail(g.ctx.Err())
		return
	}
	g.wg.Add(1)
	go func() {
		defer func() {
			<-g.sem
			g.wg.Done()
		}()
		if err := fn(); err != nil {
			g.fail(err)
		}
	}()
}

func (g *group) fail(err error) {
	g.once.Do(func() {
		g.err = err
		g.cancel()
	})
}

// Wait waits for every started function and returns the first error.
func (g *group) Wait() error {
	g.wg.Wait()
	g.cancel()
	return g.err
}
