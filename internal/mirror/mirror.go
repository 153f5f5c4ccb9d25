package mirror

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailarc/mailarc/internal/archive"
)

// PeerConfig is one configured peer ([[mirror.peers]]).
type PeerConfig struct {
	Name string
	URL  string // https://host:port
}

// Config configures a Mirror.
type Config struct {
	// NodeName is our node_name; Instance our store instance id; Version
	// our release version (internal/version.Version).
	NodeName, Instance, Version string
	// Listen is the TLS listen address for incoming peers ("" = none).
	Listen string
	// Secrets are the accepted shared secrets; the first is used to prove.
	Secrets [][]byte
	// Peers to push to and to accept pushes from.
	Peers []PeerConfig
	// Certificate is this node's key pair (LoadOrCreateKeyPair).
	Certificate tls.Certificate
	// MaxMessageSize caps a received message (default 100 MiB).
	MaxMessageSize int64
	// BatchSize is the number of feed entries per push batch (default 200).
	BatchSize int
	// RetryBase and RetryMax bound the full-jitter exponential backoff on
	// network errors (defaults 250 ms and 60 s); SlowRetry is the delay
	// after an auth or version refusal (default 60 s).
	RetryBase, RetryMax, SlowRetry time.Duration
	// PingInterval keeps idle links checked (default 15 s).
	PingInterval time.Duration
	// AntiEntropyInterval is the period of anti-entropy passes with each
	// peer (default 24 h; [mirror] anti_entropy_interval). Passes also run on
	// first contact, when a peer was rebuilt or restored, and on demand.
	AntiEntropyInterval time.Duration
	// ProbeInterval is how often the anti-entropy lane reconnects to
	// refresh the peer's hello (policy drift, rebuilt peers) and sync
	// accounts (default 5 min).
	ProbeInterval time.Duration
	// Leases, when set, exchanges source-failover heartbeats with every
	// peer every LeaseInterval (default 10 s) on a "src" lane.
	Leases        SourceLeases
	LeaseInterval time.Duration
	// Users, when set, replicates user accounts with every peer.
	Users UserSync
	// Policy, when set, returns a digest of this node's retention policies
	// and active holds and a one-line summary; both travel in the hello so
	// status can show policy drift.
	Policy func(ctx context.Context) (digest, summary string)
	// Failpoint, when non-nil, is called at named points (tests only: the
	// server makes it exit the process when MAILARC_FAILPOINT names the point).
	Failpoint func(name string)
	// Logger (default slog.Default()) and Registerer (nil: no metrics).
	Logger     *slog.Logger
	Registerer prometheus.Registerer
}

// LoadSecrets reads a shared secret file: one secret per line (blank lines
// and lines starting with # ignored). Every secret is accepted; the first
// is the one used, so a secret is rotated by adding the new one on a second
// line everywhere, then moving it first, then removing the old one.
func LoadSecrets(path string) ([][]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("mirror.shared_secret_file: %w", err)
	}
	var out [][]byte
	for i, l := range strings.Split(string(b), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		if len(l) < 16 {
			return nil, fmt.Errorf("mirror.shared_secret_file %s line %d: secret too short (at least 16 characters; use e.g. `openssl rand -hex 32`)", path, i+1)
		}
		out = append(out, []byte(l))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("mirror.shared_secret_file %s: no secret in the file", path)
	}
	return out, nil
}

// Mirror pushes this node's mail to its peers and receives theirs.
type Mirror struct {
	cfg   Config
	arch  *archive.Archive
	cat   *archive.Catalog
	tab   *tables
	log   *slog.Logger
	met   *metrics
	peers map[string]*peer
	order []string
	ownFP string
	enc   *zstd.Encoder
	dec   *zstd.Decoder

	maxFrame int

	helloMu sync.Mutex // serialises noteHello and lostHistory

	// boot identifies this process in our hellos; helloSeq numbers them in
	// the order they read the feed head (under seqMu), so a peer can tell
	// a stale hello from a lower head.
	boot     string
	seqMu    sync.Mutex
	helloSeq int64

	// hooks are test-only instrumentation (nil in production).
	hooks hooks

	ln      net.Listener
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	connsMu sync.Mutex
	conns   map[net.Conn]struct{}
}

// hooks lets in-package tests observe and interrupt the mirror.
type hooks struct {
	// aeBucketDone is called after a top-level bucket of an anti-entropy
	// pass was verified and persisted; an error aborts the pass there.
	aeBucketDone func(peer, bucket string) error
	// backlogBatch is called when the backlog lane is about to push a
	// batch of n entries to peer (after Draining was updated).
	backlogBatch func(peer string, n int)
}

// peer is the runtime state of one configured peer.
type peer struct {
	cfg  PeerConfig
	addr string

	wake     chan struct{} // cut a retry wait short (the peer came back)
	work     chan struct{} // new mail for the backlog lane
	liveWork chan struct{} // new mail for the live lane

	aeWake     chan struct{} // anti-entropy or account sync wanted
	leaseWake  chan struct{} // the peer connected: heartbeat it now
	aeRunning  atomic.Bool
	usersDirty atomic.Bool

	busy        atomic.Bool  // the backlog lane is pushing a batch
	draining    atomic.Bool  // ... and that batch was full: a backlog is being sent (see Draining)
	inflightEnd atomic.Int64 // last seq of the backlog lane's batch

	// maxMsg is the peer's max_message_size from its latest hello (0:
	// unknown); larger messages are parked instead of sent.
	maxMsg atomic.Int64

	// boot and helloSeq of the peer's latest noted hello, and the boots
	// of its processes seen before that one (under helloMu).
	boot      string
	helloSeq  int64
	pastBoots []string

	mu          sync.Mutex
	state       string
	lastErr     string
	lastSuccess time.Time
	rate        rate
	aeErr       string

	// From the peer's latest hello (policy drift).
	policy, policySummary string
	policySeen            bool

	// Purge safety: messages retention wanted to purge that the peer has
	// not acknowledged, as of the last sweep batch.
	heldBack     int64
	heldBackAt   time.Time
	heldBackLogs time.Time
}

// New builds a Mirror over an archive. It creates the mirror's catalog
// tables; Start begins networking.
func New(ctx context.Context, cfg Config, arch *archive.Archive) (*Mirror, error) {
	if cfg.NodeName == "" || cfg.Instance == "" {
		return nil, errors.New("mirror: node name and store instance are required")
	}
	if len(cfg.Secrets) == 0 {
		return nil, errors.New("mirror: mirror.shared_secret_file is required")
	}
	if len(cfg.Certificate.Certificate) == 0 {
		return nil, errors.New("mirror: no certificate")
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = 100 << 20
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 200
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = 250 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 60 * time.Second
	}
	if cfg.SlowRetry <= 0 {
		cfg.SlowRetry = 60 * time.Second
	}
	if cfg.PingInterval <= 0 {
		cfg.PingInterval = 15 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.AntiEntropyInterval <= 0 {
		cfg.AntiEntropyInterval = 24 * time.Hour
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = 5 * time.Minute
	}
	if cfg.LeaseInterval <= 0 {
		cfg.LeaseInterval = 10 * time.Second
	}
	var boot [8]byte
	if _, err := rand.Read(boot[:]); err != nil {
		return nil, fmt.Errorf("mirror: boot id: %w", err)
	}
	m := &Mirror{cfg: cfg, arch: arch, cat: arch.Catalog(), log: cfg.Logger, peers: map[string]*peer{},
		ownFP: Fingerprint(cfg.Certificate.Certificate[0]), conns: map[net.Conn]struct{}{}, boot: hex.EncodeToString(boot[:])}
	m.maxFrame = int(cfg.MaxMessageSize + cfg.MaxMessageSize/64 + maxMetaLen + 1024)
	for _, p := range cfg.Peers {
		addr, err := peerAddr(p.URL)
		if err != nil {
			return nil, fmt.Errorf("mirror.peers %s: %w", p.Name, err)
		}
		if p.Name == "" {
			return nil, fmt.Errorf("mirror.peers (url %s): name is required", p.URL)
		}
		if _, dup := m.peers[p.Name]; dup {
			return nil, fmt.Errorf("mirror.peers: %s listed twice", p.Name)
		}
		m.peers[p.Name] = &peer{cfg: p, addr: addr, state: StateOffline,
			wake: make(chan struct{}, 1), aeWake: make(chan struct{}, 1), leaseWake: make(chan struct{}, 1), work: make(chan struct{}, 1), liveWork: make(chan struct{}, 1)}
		m.order = append(m.order, p.Name)
	}
	var err error
	if m.tab, err = openTables(ctx, m.cat); err != nil {
		return nil, err
	}
	if m.enc, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1)); err != nil {
		return nil, fmt.Errorf("mirror: zstd: %w", err)
	}
	if m.dec, err = zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(uint64(cfg.MaxMessageSize)+1)); err != nil {
		return nil, fmt.Errorf("mirror: zstd: %w", err)
	}
	m.met = newMetrics(cfg.Registerer)
	for _, name := range m.order {
		m.met.setState(name, StateOffline)
	}
	return m, nil
}

// peerAddr turns https://host:port into host:port.
func peerAddr(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("url %q: %w", raw, err)
	}
	if u.Scheme != "https" || u.Host == "" || u.Port() == "" || (u.Path != "" && u.Path != "/") {
		return "", fmt.Errorf("url %q: want https://host:port", raw)
	}
	return u.Host, nil
}

// hello is our hello for a new connection.
func (m *Mirror) hello(ctx context.Context, lane string) Hello {
	m.seqMu.Lock()
	m.helloSeq++
	seq := m.helloSeq
	head, err := m.cat.Head(ctx)
	m.seqMu.Unlock()
	if err != nil {
		m.log.Warn("mirror: reading feed head", "err", err)
	}
	h := Hello{ProtoMin: protoMin, ProtoMax: protoMax, Version: m.cfg.Version, Node: m.cfg.NodeName,
		Cluster: ClusterID(m.cfg.Secrets[0]), Instance: m.cfg.Instance, Head: head, Lane: lane,
		MaxMessage: m.cfg.MaxMessageSize, Boot: m.boot, HelloSeq: seq}
	if m.cfg.Policy != nil {
		h.Policy, h.PolicySummary = m.cfg.Policy(ctx)
	}
	return h
}

func (m *Mirror) params(ctx context.Context, role, lane, expect string) *handshakeParams {
	p := &handshakeParams{role: role, ownFP: m.ownFP, local: m.hello(ctx, lane), secrets: m.cfg.Secrets,
		expect: expect, pinned: m.tab.pinned, pin: m.tab.pin}
	if role == "server" {
		p.known = func(name string) bool { _, ok := m.peers[name]; return ok }
	}
	return p
}

// Start opens the listener (when configured) and starts one backlog lane
// and one live lane per peer. Stop it with Close.
func (m *Mirror) Start(ctx context.Context) error {
	ctx, m.cancel = context.WithCancel(ctx)
	if m.cfg.Listen != "" {
		tc := &tls.Config{
			Certificates: []tls.Certificate{m.cfg.Certificate},
			ClientAuth:   tls.RequireAnyClientCert, // verified by pinning + the auth proof
			MinVersion:   tls.VersionTLS13,
		}
		ln, err := tls.Listen("tcp", m.cfg.Listen, tc)
		if err != nil {
			m.cancel()
			return fmt.Errorf("mirror.listen %s: %w", m.cfg.Listen, err)
		}
		m.ln = ln
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.acceptLoop(ctx)
		}()
	}
	for _, name := range m.order {
		p := m.peers[name]
		m.wg.Add(2)
		go func() {
			defer m.wg.Done()
			m.runLane(ctx, p, false)
		}()
		go func() {
			defer m.wg.Done()
			m.runLane(ctx, p, true)
		}()
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			m.aeLoop(ctx, p)
		}()
		if m.cfg.Leases != nil {
			m.wg.Add(1)
			go func() {
				defer m.wg.Done()
				m.leaseLoop(ctx, p)
			}()
		}
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.refreshLoop(ctx)
	}()
	return nil
}

// Addr is the bound listen address (nil when not listening).
func (m *Mirror) Addr() net.Addr {
	if m.ln == nil {
		return nil
	}
	return m.ln.Addr()
}

// Draining reports whether the backlog lane of some peer is sending a
// backlog (its last batch was full, i.e. more mail was waiting). The
// server's indexer yields then, as it does to busy ingest: getting mail
// onto the second node comes before indexing it here.
func (m *Mirror) Draining() bool {
	for _, p := range m.peers {
		if p.draining.Load() {
			return true
		}
	}
	return false
}

// Notify tells the lanes that new mail was committed (archive OnCommit).
// It never blocks.
func (m *Mirror) Notify() {
	for _, p := range m.peers {
		signal(p.work)
		signal(p.liveWork)
	}
}

func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Close stops the lanes and the listener, closes peer connections and
// waits for the goroutines (or ctx).
func (m *Mirror) Close(ctx context.Context) error {
	if m.cancel != nil {
		m.cancel()
	}
	var err error
	if m.ln != nil {
		err = m.ln.Close()
	}
	m.connsMu.Lock()
	for c := range m.conns {
		_ = c.Close()
	}
	m.connsMu.Unlock()
	done := make(chan struct{})
	go func() {
		m.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("mirror: close: %w", ctx.Err())
	}
	m.enc.Close()
	m.dec.Close()
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

func (m *Mirror) track(c net.Conn) func() {
	m.connsMu.Lock()
	m.conns[c] = struct{}{}
	m.connsMu.Unlock()
	return func() {
		m.connsMu.Lock()
		delete(m.conns, c)
		m.connsMu.Unlock()
		_ = c.Close()
	}
}

// dial connects to a peer and authenticates as client.
func (m *Mirror) dial(ctx context.Context, p *peer, lane string) (*session, func(), error) {
	d := tls.Dialer{NetDialer: &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}, Config: &tls.Config{
		Certificates:       []tls.Certificate{m.cfg.Certificate},
		InsecureSkipVerify: true, // we verify by fingerprint pinning + the auth proof
		MinVersion:         tls.VersionTLS13,
	}}
	c, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, nil, fmt.Errorf("mirror: connect %s (%s): %w", p.cfg.Name, p.addr, err)
	}
	untrack := m.track(c)
	s, err := handshake(ctx, c.(*tls.Conn), m.params(ctx, "client", lane, p.cfg.Name))
	if err != nil {
		untrack()
		return nil, nil, err
	}
	m.noteHello(ctx, p, s.peer)
	return s, untrack, nil
}

// acceptLoop serves incoming peer connections.
func (m *Mirror) acceptLoop(ctx context.Context) {
	var delay time.Duration
	for {
		c, err := m.ln.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(delay*2, 5*time.Millisecond), time.Second)
			m.log.Warn("mirror: accept", "err", err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			continue
		}
		delay = 0
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			untrack := m.track(c)
			defer untrack()
			m.serveConn(ctx, c.(*tls.Conn))
		}()
	}
}

// serveConn authenticates an incoming connection and receives pushes.
func (m *Mirror) serveConn(ctx context.Context, c *tls.Conn) {
	s, err := handshake(ctx, c, m.params(ctx, "server", "", ""))
	if err != nil {
		name := ""
		if s != nil {
			name = s.peer.Node
		}
		var he *HandshakeError
		if errors.As(err, &he) {
			m.log.Warn("mirror: refused incoming peer", "peer", name, "remote", c.RemoteAddr().String(), "state", he.State, "reason", he.Error())
			if p := m.peers[name]; p != nil {
				m.setState(p, he.State, he.Error())
			}
		} else {
			m.log.Debug("mirror: incoming handshake failed", "peer", name, "remote", c.RemoteAddr().String(), "err", err)
		}
		return
	}
	p := m.peers[s.peer.Node]
	m.log.Info("mirror: peer connected", "peer", s.peer.Node, "lane", s.peer.Lane, "remote", c.RemoteAddr().String())
	signal(p.wake) // it is up: retry our own pushes to it now
	if s.peer.Lane == "src" {
		signal(p.leaseWake)
	}
	m.noteHello(ctx, p, s.peer)
	m.receiveLoop(ctx, s, p)
}

// setState records a lane's view of a peer.
func (m *Mirror) setState(p *peer, state, errText string) {
	p.mu.Lock()
	old := p.state
	p.state = state
	if errText != "" {
		p.lastErr = errText
	}
	p.mu.Unlock()
	if old != state {
		m.met.setState(p.cfg.Name, state)
		if state == StateOnline {
			m.log.Info("mirror: peer online", "peer", p.cfg.Name)
		}
	}
}

// writer serialises frame writes on a connection.
type writer struct {
	mu sync.Mutex
	c  net.Conn
	bw *bufio.Writer
}

func newWriter(c net.Conn) *writer { return &writer{c: c, bw: bufio.NewWriterSize(c, 64<<10)} }

func (w *writer) write(typ byte, payload []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.c.SetWriteDeadline(time.Now().Add(2 * time.Minute)); err != nil {
		return fmt.Errorf("mirror: %w", err)
	}
	if err := writeFrame(w.bw, typ, payload); err != nil {
		return err
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("mirror: write frame: %w", err)
	}
	return nil
}
