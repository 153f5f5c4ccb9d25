package pgindex

import (
	"context"
	"fmt"
	"time"

	"github.com/mailarc/mailarc/internal/index"
)

var _ index.Shared = (*Index)(nil)

// indexLeadLock is the session-level advisory lock whose holder is the
// one node indexing a shared database ("mailarc lead" in ASCII, truncated).
const indexLeadLock int64 = 0x6d61696c6c656164

// leadPoll is how often a waiting node tries to take the lead, and how
// often the leader checks that its lock connection is alive.
const leadPoll = 2 * time.Second

// leadPingTimeout bounds the leader's check of its lock connection. A
// check that times out ends the lead (pgx closes a connection whose query
// is cancelled, and the session's lock goes with it), so it is longer than
// a busy database or a CPU-starved node may take to answer. (With leadPoll
// as the bound, both nodes of an e2e run on a heavily loaded machine logged
// taking the lead.) A dead session answers at once with an error, however
// long this is.
const leadPingTimeout = 10 * time.Second

// LeadIndexing implements index.Shared with a session advisory lock held
// on a dedicated connection: PostgreSQL releases it when that connection
// ends, so a crashed leader's lead passes to another node by itself.
func (x *Index) LeadIndexing(ctx context.Context) (release func(), lost <-chan struct{}, err error) {
	for {
		conn, err := x.pool.Acquire(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("pgindex: lead: %w", err)
		}
		var got bool
		if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, indexLeadLock).Scan(&got); err != nil {
			conn.Release()
			return nil, nil, fmt.Errorf("pgindex: lead: %w", err)
		}
		if got {
			lostCh := make(chan struct{})
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() { // watch the lock's connection
				defer close(done)
				t := time.NewTicker(leadPoll)
				defer t.Stop()
				for {
					select {
					case <-stop:
						return
					case <-t.C:
						pctx, cancel := context.WithTimeout(context.Background(), leadPingTimeout)
						err := conn.Ping(pctx)
						cancel()
						if err != nil {
							close(lostCh)
							return
						}
					}
				}
			}()
			release := func() {
				close(stop)
				<-done
				uctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if _, err := conn.Exec(uctx, `SELECT pg_advisory_unlock($1)`, indexLeadLock); err != nil {
					// The session ends with the connection; the lock with it.
					_ = conn.Conn().Close(uctx)
				}
				conn.Release()
			}
			return release, lostCh, nil
		}
		conn.Release()
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(leadPoll):
		}
	}
}
