package pull

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/config"
)

const (
	defaultPoll       = time.Minute
	defaultMaxSize    = 100 << 20
	defaultBatch      = 100
	defaultBackoffMin = time.Second
	defaultBackoffMax = 5 * time.Minute
	defaultIdle       = 25 * time.Minute
	defaultTimeout    = 30 * time.Second
	defaultCmdTimeout = 2 * time.Minute
	// maxServerFailures is how many polls in a row the server may fail to
	// deliver one message before it is skipped (recorded, never deleted).
	maxServerFailures = 5
)

// Ingester archives one message durably; *archive.Archive implements it.
type Ingester interface {
	Ingest(ctx context.Context, raw []byte, o archive.Origin) (archive.Result, error)
}

// StateStore keeps durable key/value state per source; *catalog.Catalog
// implements it. SetSourceState must be durable when it returns; an empty
// value deletes the key.
type StateStore interface {
	SourceState(ctx context.Context, source string) (map[string]string, error)
	SetSourceState(ctx context.Context, source string, kv map[string]string) error
}

// Options tune a Manager; the zero value gives the documented defaults.
type Options struct {
	// MaxMessageSize caps one message (default 100 MiB); larger messages
	// are skipped and recorded, never held in memory.
	MaxMessageSize int64
	// BatchSize is how many messages are fetched per command (default 100).
	BatchSize int
	// BackoffMin and BackoffMax bound the retry delay after a failure
	// (defaults 1s and 5m); the delay doubles per failure, with jitter.
	BackoffMin, BackoffMax time.Duration
	// IdleRestart is how often an IMAP IDLE is renewed, with a poll
	// (default 25m).
	IdleRestart time.Duration
	// DialTimeout bounds connecting, the greeting, STARTTLS and
	// authentication (default 30s).
	DialTimeout time.Duration
	// CommandTimeout bounds how long a session waits for the server once
	// logged in: a command must be answered, and a response keep flowing,
	// within it (default 2m). IMAP IDLE is exempt (it is renewed every
	// IdleRestart), and so is local work between commands.
	CommandTimeout time.Duration
	// TLSConfig is the base client TLS configuration (default: system roots,
	// TLS 1.2+); ServerName is set to the source host when empty.
	TLSConfig *tls.Config
	// HeartbeatInterval overrides the failover heartbeat interval (default:
	// derived from the shortest takeover_after, see HeartbeatInterval).
	HeartbeatInterval time.Duration
}

func (o *Options) defaults() {
	if o.MaxMessageSize <= 0 {
		o.MaxMessageSize = defaultMaxSize
	}
	if o.BatchSize <= 0 {
		o.BatchSize = defaultBatch
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = defaultBackoffMin
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = defaultBackoffMax
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.IdleRestart <= 0 {
		o.IdleRestart = defaultIdle
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = defaultTimeout
	}
	if o.CommandTimeout <= 0 {
		o.CommandTimeout = defaultCmdTimeout
	}
}

// SourceStatus is one source's state as shown by status and the API.
type SourceStatus struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Owner string `json:"owner"`
	// State is idle, polling, error, disabled or not_owner.
	State       string    `json:"state"`
	LastPoll    time.Time `json:"last_poll"`
	LastSuccess time.Time `json:"last_success"`
	LastError   string    `json:"last_error"`
	Imported    int64     `json:"imported"`
	Duplicates  int64     `json:"duplicates"`
	Failed      int64     `json:"failed"`
	// Cursor summarises the persisted position, e.g. "INBOX=1712345:4021"
	// (UIDVALIDITY:highest archived UID) or "uidls=12".
	Cursor   string    `json:"cursor"`
	NextPoll time.Time `json:"next_poll"`
	// Standby lists the nodes that may take over, in order.
	Standby []string `json:"standby,omitempty"`
	// Poller is the node that polls the source now (the lease holder as
	// far as this node knows; the owner without failover).
	Poller string `json:"poller"`
	// LeaseEpoch is the failover lease epoch (0 until a first takeover).
	LeaseEpoch uint64 `json:"lease_epoch"`
	// LastHeartbeat is when this node last heard the owner over the mirror
	// link (on the owner itself: when it last sent a heartbeat).
	LastHeartbeat time.Time `json:"last_heartbeat"`
}

// Manager polls the configured journal mailboxes owned by this node.
type Manager struct {
	node    string
	ing     Ingester
	st      StateStore
	log     *slog.Logger
	opt     Options
	met     *metrics
	runners []*runner
	byName  map[string]*runner

	// Failover (failover.go): beat is the heartbeat interval; leaseMu
	// guards every runner's lease, heard and lastSent; persistMu
	// serialises lease writes.
	beat      time.Duration
	leaseMu   sync.Mutex
	persistMu sync.Mutex
	heard     map[string]time.Time // last heartbeat from each peer
	lastSent  time.Time
}

// NewManager validates sources and prepares one poller per source. A source
// owned by another node, or disabled, is listed in Status but not polled.
func NewManager(node string, sources []config.Source, ing Ingester, st StateStore, log *slog.Logger, reg prometheus.Registerer) (*Manager, error) {
	return NewManagerOptions(node, sources, ing, st, log, reg, Options{})
}

// NewManagerOptions is NewManager with tuning options.
func NewManagerOptions(node string, sources []config.Source, ing Ingester, st StateStore, log *slog.Logger, reg prometheus.Registerer, opt Options) (*Manager, error) {
	if ing == nil || st == nil {
		return nil, errors.New("pull: ingester and state store are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opt.defaults()
	met, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	m := &Manager{node: node, ing: ing, st: st, log: log, opt: opt, met: met, byName: map[string]*runner{},
		heard: map[string]time.Time{}, beat: opt.HeartbeatInterval}
	now := time.Now()
	var errs []error
	for _, s := range sources {
		s = normalize(s)
		if err := validate(s); err != nil {
			errs = append(errs, err)
			continue
		}
		if m.byName[s.Name] != nil {
			errs = append(errs, fmt.Errorf("source %s: duplicate name", s.Name))
			continue
		}
		r := &runner{m: m, src: s, trigger: make(chan struct{}, 1), failures: map[string]int{}}
		r.status = SourceStatus{Name: s.Name, Type: s.Type, Owner: s.Owner, Standby: s.Standby}
		state := "idle"
		if len(s.Standby) > 0 {
			order := append([]string{s.Owner}, s.Standby...)
			takeover := time.Duration(s.TakeoverAfter)
			beat := opt.HeartbeatInterval
			if beat <= 0 {
				beat = heartbeatInterval(takeover)
			}
			if m.beat <= 0 || beat < m.beat {
				m.beat = beat
			}
			// The persisted lease is loaded by Run.
			r.lease = &leaseRun{mach: newLeaseMachine(node, order, takeover, beat, now), changed: make(chan struct{}, 1)}
		}
		switch {
		case s.Enabled != nil && !*s.Enabled:
			state = "disabled"
		case r.lease != nil && r.lease.mach.rank(node) < len(r.lease.mach.order):
			state = "standby"
		case s.Owner != "" && s.Owner != node:
			state = "not_owner"
		}
		r.setStateLocked(state)
		m.runners = append(m.runners, r)
		m.byName[s.Name] = r
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("pull: %w", errors.Join(errs...))
	}
	return m, nil
}

// Run polls every enabled source owned by this node, one goroutine each,
// until ctx is done. A failing source never stops the others.
func (m *Manager) Run(ctx context.Context) error {
	if err := m.restoreLeases(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	leased := false
	for _, r := range m.runners {
		if !r.active() {
			continue
		}
		wg.Add(1)
		if r.lease != nil {
			leased = true
			go func() {
				defer wg.Done()
				r.runLeased(ctx)
			}()
			continue
		}
		go func() {
			defer wg.Done()
			r.run(ctx)
		}()
	}
	if leased {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m.leaseLoop(ctx)
		}()
	}
	wg.Wait()
	return nil
}

// Status returns every configured source's state, sorted by name.
func (m *Manager) Status() []SourceStatus {
	out := make([]SourceStatus, 0, len(m.runners))
	for _, r := range m.runners {
		r.mu.Lock()
		st := r.status
		r.mu.Unlock()
		m.leaseMu.Lock()
		owner := r.src.Owner
		if owner == "" {
			owner = m.node
		}
		if owner == m.node {
			st.LastHeartbeat = m.lastSent.UTC()
		} else {
			st.LastHeartbeat = m.heard[owner].UTC()
		}
		st.Poller = owner
		if r.lease != nil {
			st.Poller = r.lease.mach.holder
			st.LeaseEpoch = r.lease.mach.epoch
		}
		m.leaseMu.Unlock()
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// PollNow asks the named source to poll immediately (also cutting short a
// failure backoff). It returns an error for an unknown or inactive source.
func (m *Manager) PollNow(name string) error {
	r := m.byName[name]
	if r == nil {
		return fmt.Errorf("pull: unknown source %q", name)
	}
	if !r.active() {
		r.mu.Lock()
		st := r.status.State
		r.mu.Unlock()
		return fmt.Errorf("pull: source %q is not polled on this node (%s)", name, st)
	}
	if r.lease != nil {
		m.leaseMu.Lock()
		holder := r.lease.mach.holder
		m.leaseMu.Unlock()
		if holder != m.node {
			return fmt.Errorf("pull: source %q is polled by %s; this node is a standby", name, holder)
		}
	}
	r.kick()
	return nil
}

// runner is one source's poll loop and status.
type runner struct {
	m       *Manager
	src     config.Source
	trigger chan struct{}

	// failures counts, per "folder/uid" or UIDL, polls in which the server
	// failed to deliver a message; only the runner goroutine uses it.
	failures map[string]int

	// lease is the failover state (nil without standby nodes).
	lease *leaseRun

	mu     sync.Mutex
	status SourceStatus
	// msgErr is set when the current poll recorded a per-message error,
	// which then stays in LastError after the poll succeeds.
	msgErr bool
}

func (r *runner) active() bool {
	if r.src.Enabled != nil && !*r.src.Enabled {
		return false
	}
	if r.lease != nil {
		return r.lease.mach.rank(r.m.node) < len(r.lease.mach.order)
	}
	return r.src.Owner == "" || r.src.Owner == r.m.node
}

func (r *runner) kick() {
	select {
	case r.trigger <- struct{}{}:
	default:
	}
}

func (r *runner) origin() archive.Origin {
	return archive.Origin{Source: r.src.Type + ":" + r.src.Name}
}

// session is one connected, authenticated mailbox session.
type session interface {
	// poll imports everything new and applies delete-mode actions. A POP3
	// session ends (QUIT commits its deletions) inside poll.
	poll(ctx context.Context) error
	// canWait reports whether the session can wait for news itself (IMAP
	// IDLE); otherwise it is closed and a new one opened at the next poll.
	canWait() bool
	// wait blocks until the next poll is due (IDLE notification, trigger,
	// re-IDLE timer) or ctx is done. An error means the connection is gone.
	wait(ctx context.Context) error
	// close ends the session; it is safe to call more than once.
	close()
}

func (r *runner) connect(ctx context.Context) (session, error) {
	if r.src.Type == "imap" {
		return r.connectIMAP(ctx)
	}
	return r.connectPOP3(ctx)
}

func (r *runner) run(ctx context.Context) {
	log := r.m.log.With("source", r.src.Name)
	fails := 0
	for ctx.Err() == nil {
		err := r.cycle(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			fails = 0
			continue
		}
		fails++
		d := backoff(fails, r.m.opt.BackoffMin, r.m.opt.BackoffMax)
		log.Warn("pull source failed", "err", err, "retry_in", d.Round(time.Millisecond))
		r.setNext(time.Now().Add(d))
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-r.trigger:
			t.Stop()
		case <-t.C:
		}
	}
}

// cycle connects, polls (waiting with IDLE while the server offers it),
// disconnects and sleeps until the next poll. An error means the source
// failed and the caller backs off.
func (r *runner) cycle(ctx context.Context) error {
	r.begin()
	s, err := r.connect(ctx)
	if err != nil {
		r.fail(err)
		return err
	}
	for {
		if err := s.poll(ctx); err != nil {
			s.close()
			if ctx.Err() != nil {
				return nil
			}
			r.fail(err)
			return err
		}
		r.succeed()
		if !s.canWait() {
			break
		}
		if err := s.wait(ctx); err != nil {
			s.close()
			if ctx.Err() != nil {
				return nil
			}
			r.fail(fmt.Errorf("idle: %w", err))
			return err
		}
		r.begin()
	}
	s.close()
	r.sleep(ctx, time.Duration(r.src.Poll)) // returns early on a trigger or when ctx is done
	return nil
}

// backoff returns the delay after n consecutive failures: min*2^(n-1)
// capped at max, with "equal jitter" (half fixed, half random) so it never
// drops to zero and never spins.
func backoff(n int, min, max time.Duration) time.Duration {
	d := min
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	if d > max {
		d = max
	}
	half := d / 2
	return half + rand.N(half+1)
}

func (r *runner) begin() {
	now := time.Now().UTC()
	r.m.met.lastPoll.WithLabelValues(r.src.Name).Set(float64(now.UnixNano()) / 1e9)
	r.mu.Lock()
	r.setStateLocked("polling")
	r.status.LastPoll = now
	r.status.NextPoll = time.Time{}
	r.msgErr = false
	r.mu.Unlock()
}

func (r *runner) fail(err error) {
	r.m.met.polls.WithLabelValues(r.src.Name, "error").Inc()
	r.mu.Lock()
	r.setStateLocked("error")
	r.status.LastError = err.Error()
	r.mu.Unlock()
}

func (r *runner) succeed() {
	now := time.Now().UTC()
	r.m.met.polls.WithLabelValues(r.src.Name, "ok").Inc()
	r.m.met.lastSuccess.WithLabelValues(r.src.Name).Set(float64(now.UnixNano()) / 1e9)
	r.mu.Lock()
	r.setStateLocked("idle")
	r.status.LastSuccess = now
	if !r.msgErr {
		r.status.LastError = ""
	}
	r.mu.Unlock()
}

// sourceStates are the values of SourceStatus.State, each a series of
// mailarc_pull_source_state.
var sourceStates = [...]string{"idle", "polling", "error", "disabled", "not_owner", "standby"}

// setStateLocked sets the status state and its one-hot gauge; r.mu is
// held (or r not yet shared).
func (r *runner) setStateLocked(state string) {
	r.status.State = state
	for _, s := range sourceStates {
		v := 0.0
		if s == state {
			v = 1
		}
		r.m.met.state.WithLabelValues(r.src.Name, s).Set(v)
	}
}

// noteError records a per-message problem without failing the poll.
func (r *runner) noteError(msg string) {
	r.mu.Lock()
	r.status.LastError = msg
	r.msgErr = true
	r.mu.Unlock()
}

func (r *runner) setNext(t time.Time) {
	r.mu.Lock()
	r.status.NextPoll = t.UTC()
	r.mu.Unlock()
}

func (r *runner) setCursor(c string) {
	r.mu.Lock()
	r.status.Cursor = c
	r.mu.Unlock()
}

// outcome of one message.
type outcome int

const (
	outImported outcome = iota
	outDuplicate
	outSkipped // permanent refusal: recorded, never retried, never deleted
)

// ingest archives raw. A temporary error is returned as is (the caller
// stops and retries later; the message is not counted, it is fetched
// again); a permanent refusal is outSkipped.
func (r *runner) ingest(ctx context.Context, raw []byte, what string) (outcome, error) {
	res, err := r.m.ing.Ingest(ctx, raw, r.origin())
	switch {
	case errors.Is(err, archive.ErrTooLarge) || errors.Is(err, archive.ErrEmpty):
		r.count(outSkipped)
		r.noteError(fmt.Sprintf("%s refused by the archive, skipped: %v", what, err))
		r.m.log.Warn("pull message refused by archive; skipped and left on the server", "source", r.src.Name, "message", what, "err", err)
		return outSkipped, nil
	case err != nil:
		return 0, fmt.Errorf("archive %s: %w", what, err)
	case res.Duplicate:
		r.count(outDuplicate)
		return outDuplicate, nil
	default:
		r.count(outImported)
		return outImported, nil
	}
}

// skip records a message that is skipped for a reason found on our side
// (too large) or the server's (repeatedly undeliverable).
func (r *runner) skip(what, why string) {
	r.count(outSkipped)
	msg := fmt.Sprintf("%s skipped: %s", what, why)
	r.noteError(msg)
	r.m.log.Warn("pull message skipped and left on the server", "source", r.src.Name, "message", what, "reason", why)
}

func (r *runner) count(o outcome) {
	res := "imported"
	r.mu.Lock()
	switch o {
	case outImported:
		r.status.Imported++
	case outDuplicate:
		r.status.Duplicates++
		res = "duplicate"
	default:
		r.status.Failed++
		res = "failed"
	}
	r.mu.Unlock()
	r.m.met.messages.WithLabelValues(r.src.Name, res).Inc()
}

// sleep waits for d, a trigger or the end of ctx.
func (r *runner) sleep(ctx context.Context, d time.Duration) {
	r.setNext(time.Now().Add(d))
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-r.trigger:
	case <-t.C:
	}
}

type metrics struct {
	polls       *prometheus.CounterVec
	messages    *prometheus.CounterVec
	lastSuccess *prometheus.GaugeVec
	lastPoll    *prometheus.GaugeVec
	state       *prometheus.GaugeVec
	cursorUID   *prometheus.GaugeVec
	uidls       *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailarc_pull_polls_total",
			Help: "Journal mailbox polls by source and result (ok, error).",
		}, []string{"source", "result"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailarc_pull_messages_total",
			Help: "Messages pulled by source and result (imported, duplicate, failed).",
		}, []string{"source", "result"}),
		lastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mailarc_pull_last_success_timestamp_seconds",
			Help: "Unix time of the last successful poll by source.",
		}, []string{"source"}),
		lastPoll: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mailarc_pull_last_poll_timestamp_seconds",
			Help: "Unix time the last poll of a source started, successful or not.",
		}, []string{"source"}),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mailarc_pull_source_state",
			Help: "1 for the state a source is in, 0 for the others (state: idle, polling, error, disabled, not_owner, standby).",
		}, []string{"source", "state"}),
		cursorUID: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mailarc_pull_cursor_uid",
			Help: "IMAP: highest UID of a folder up to which every message is archived or skipped (the cursor), set at every poll.",
		}, []string{"source", "folder"}),
		uidls: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "mailarc_pull_archived_uidls",
			Help: "POP3: archived messages still on the server (the persisted UIDL set), set at every poll.",
		}, []string{"source"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.polls, err = register(reg, m.polls); err != nil {
		return nil, err
	}
	if m.messages, err = register(reg, m.messages); err != nil {
		return nil, err
	}
	for _, g := range []**prometheus.GaugeVec{&m.lastSuccess, &m.lastPoll, &m.state, &m.cursorUID, &m.uidls} {
		if *g, err = register(reg, *g); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// register registers c, reusing an identical collector already registered
// (a restarted Manager in the same process).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if ex, ok := are.ExistingCollector.(C); ok {
				return ex, nil
			}
		}
		return c, fmt.Errorf("pull: register metrics: %w", err)
	}
	return c, nil
}
