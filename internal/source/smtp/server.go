package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailarc/mailarc/internal/archive"
)

// Ingester is the part of *archive.Archive the SMTP source needs.
type Ingester interface {
	Ingest(ctx context.Context, raw []byte, o archive.Origin) (archive.Result, error)
}

const (
	// refuseWriteTimeout bounds writing the refusal line to a connection
	// turned away at connect.
	refuseWriteTimeout = 10 * time.Second
	// abortGrace is how long Shutdown waits, after its context expired and
	// sessions were told to stop, for them to write their 421 and close
	// before their sockets are closed under them.
	abortGrace = 2 * time.Second
)

// Server is the SMTP/LMTP ingest listener. It is safe for concurrent use.
type Server struct {
	cfg     Config
	ing     Ingester
	log     *slog.Logger
	m       *metrics
	rcpts   recipientMatcher
	servers []*gosmtp.Server // [0] SMTP, [1] LMTP (when configured)

	baseCtx context.Context // parent of every Ingest call; cancelled on hard stop
	cancel  context.CancelFunc

	mu        sync.Mutex
	started   bool
	draining  bool
	listeners []net.Listener
	conns     map[*trackedConn]struct{}
	connWG    sync.WaitGroup // one per admitted connection
	bgWG      sync.WaitGroup // Serve loops and refusal writers
}

// New validates cfg, applies defaults and builds a Server that hands every
// received message to ing. Metrics are registered on reg (nil: not
// registered); several Servers may share one Registerer.
func New(cfg Config, ing Ingester, log *slog.Logger, reg prometheus.Registerer) (*Server, error) {
	if ing == nil {
		return nil, errors.New("smtp: nil Ingester")
	}
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:   cfg,
		ing:   ing,
		log:   log.With("component", "smtp"),
		m:     m,
		rcpts: newRecipientMatcher(cfg.Recipients),
		conns: make(map[*trackedConn]struct{}),
	}
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	s.servers = append(s.servers, s.newProtocolServer(false))
	if len(cfg.LMTPListen) > 0 {
		s.servers = append(s.servers, s.newProtocolServer(true))
	}
	return s, nil
}

func (s *Server) newProtocolServer(lmtp bool) *gosmtp.Server {
	srv := gosmtp.NewServer(backend{s: s})
	srv.LMTP = lmtp
	srv.Domain = s.cfg.Hostname
	srv.MaxRecipients = s.cfg.MaxRecipients
	srv.MaxMessageBytes = s.cfg.MaxMessageSize
	srv.MaxLineLength = s.cfg.MaxLineLength
	srv.ReadTimeout = s.cfg.CommandTimeout
	srv.WriteTimeout = s.cfg.CommandTimeout
	srv.TLSConfig = s.cfg.TLSConfig
	srv.AllowInsecureAuth = !s.cfg.RequireTLS
	srv.EnableSMTPUTF8 = true
	srv.EnableBINARYMIME = true // the body is stored as bytes; BDAT carries it unchanged
	srv.ErrorLog = errorLog{log: s.log}
	return srv
}

// Start binds every configured listener and starts serving. It returns
// once all listeners are bound; ctx only bounds the binding (use Shutdown
// to stop). On error nothing is left listening.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return errors.New("smtp: server already started")
	}
	var lc net.ListenConfig
	type bound struct {
		l    net.Listener
		srv  *gosmtp.Server
		lmtp bool
	}
	var ls []bound
	fail := func(err error) error {
		for _, b := range ls {
			_ = b.l.Close()
		}
		return err
	}
	for _, addr := range s.cfg.Listen {
		l, err := lc.Listen(ctx, "tcp", addr)
		if err != nil {
			return fail(fmt.Errorf("smtp: listen %s: %w", addr, err))
		}
		ls = append(ls, bound{l: l, srv: s.servers[0]})
	}
	for _, addr := range s.cfg.LMTPListen {
		network := "tcp"
		if path, ok := strings.CutPrefix(addr, "unix:"); ok {
			network, addr = "unix", path
			if err := removeStaleSocket(path); err != nil {
				return fail(err)
			}
		}
		l, err := lc.Listen(ctx, network, addr)
		if err != nil {
			return fail(fmt.Errorf("lmtp: listen %s %s: %w", network, addr, err))
		}
		ls = append(ls, bound{l: l, srv: s.servers[1], lmtp: true})
	}
	s.started = true
	for _, b := range ls {
		s.serveLocked(b.l, b.srv, b.lmtp)
	}
	return nil
}

// serveLocked serves l with srv in the background. s.mu must be held.
func (s *Server) serveLocked(l net.Listener, srv *gosmtp.Server, lmtp bool) {
	proto := "smtp"
	if lmtp {
		proto = "lmtp"
	}
	tl := &trackingListener{Listener: l, s: s, proto: proto}
	s.listeners = append(s.listeners, tl)
	s.log.Debug("listening", "proto", proto, "addr", l.Addr().String())
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		if err := srv.Serve(tl); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Error("serve stopped", "proto", proto, "addr", l.Addr().String(), "err", err)
		}
	}()
}

// removeStaleSocket deletes a leftover Unix socket at path (never any other
// kind of file).
func removeStaleSocket(path string) error {
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("lmtp: stat %s: %w", path, err)
	}
	if fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("lmtp: %s exists and is not a socket", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("lmtp: remove stale socket: %w", err)
	}
	return nil
}

// Addrs returns the addresses actually bound, SMTP listeners first, in
// configuration order.
func (s *Server) Addrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]net.Addr, 0, len(s.listeners))
	for _, l := range s.listeners {
		out = append(out, l.Addr())
	}
	return out
}

// Shutdown stops accepting connections and ends idle sessions with 421.
// Sessions in the middle of DATA/BDAT finish their message (ingest and
// reply) first. If ctx expires before they are done, their ingest context
// is cancelled, their reads fail, they reply 421 and their connections are
// closed; Shutdown then returns ctx.Err().
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if s.draining {
		s.mu.Unlock()
		return errors.New("smtp: shutdown already called")
	}
	s.draining = true
	// go-smtp's Serve returns cleanly only once its own Shutdown marked it
	// done; that call also closes its listeners. Its wait for connections
	// is replaced by connWG below, so it gets an already cancelled context.
	for _, srv := range s.servers {
		sctx, cancel := context.WithCancel(ctx)
		cancel()
		_ = srv.Shutdown(sctx)
	}
	var errs []error
	for _, l := range s.listeners {
		if err := l.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, fmt.Errorf("smtp: close listener: %w", err))
		}
	}
	for c := range s.conns {
		c.drain()
	}
	s.mu.Unlock()

	done := make(chan struct{})
	go func() {
		s.connWG.Wait()
		s.bgWG.Wait()
		close(done)
	}()
	select {
	case <-done:
		s.cancel()
		return errors.Join(errs...)
	case <-ctx.Done():
	}

	s.log.Info("shutdown deadline reached, aborting open sessions")
	s.cancel()
	s.mu.Lock()
	for c := range s.conns {
		c.abort()
	}
	s.mu.Unlock()
	t := time.NewTimer(abortGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.mu.Lock()
		for c := range s.conns {
			_ = c.Close()
		}
		s.mu.Unlock()
		<-done
	}
	return ctx.Err()
}

func (s *Server) isDraining() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.draining
}

// admit decides whether a freshly accepted connection may proceed. It
// returns the tracked connection, or a refusal reply and metric reason.
func (s *Server) admit(c net.Conn, proto string) (tc *trackedConn, reply, reason string) {
	if !s.allowedAddr(c.RemoteAddr()) {
		return nil, "554 5.7.1 Connection refused: your network is not allowed to send here", reasonConnNetwork
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining {
		return nil, "421 4.3.2 Service shutting down, try again later", reasonShutdown
	}
	if len(s.conns) >= s.cfg.MaxConnections {
		return nil, "421 4.7.0 Too many connections, try again later", reasonConnBusy
	}
	tc = &trackedConn{Conn: c, s: s, proto: proto, opened: time.Now()}
	s.conns[tc] = struct{}{}
	s.connWG.Add(1)
	s.m.connections.Inc()
	s.m.connsActive.Inc()
	return tc, "", ""
}

func (s *Server) allowedAddr(a net.Addr) bool {
	if len(s.cfg.AllowedNetworks) == 0 {
		return true
	}
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case *net.UnixAddr:
		return true
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return a.Network() == "unix" || a.Network() == "pipe"
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap()
	for _, p := range s.cfg.AllowedNetworks {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// refuse writes reply to c and closes it, in the background.
func (s *Server) refuse(c net.Conn, proto, reply, reason string) {
	s.m.connsRefused.WithLabelValues(reason).Inc()
	s.log.Info("connection refused", "proto", proto, "remote", c.RemoteAddr().String(), "reason", reason)
	s.bgWG.Add(1)
	go func() {
		defer s.bgWG.Done()
		_ = c.SetWriteDeadline(time.Now().Add(refuseWriteTimeout))
		_, _ = c.Write([]byte(reply + "\r\n"))
		_ = c.Close()
	}()
}

func (s *Server) forget(tc *trackedConn) {
	s.mu.Lock()
	delete(s.conns, tc)
	s.mu.Unlock()
	s.m.connsActive.Dec()
	s.connWG.Done()
	s.log.Debug("connection closed", "proto", tc.proto, "remote", tc.RemoteAddr().String(),
		"duration", time.Since(tc.opened).Round(time.Millisecond))
}

// trackingListener admits or refuses each accepted connection before
// go-smtp sees it.
type trackingListener struct {
	net.Listener
	s     *Server
	proto string
}

// Accept implements net.Listener.
func (l *trackingListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		tc, reply, reason := l.s.admit(c, l.proto)
		if tc == nil {
			l.s.refuse(c, l.proto, reply, reason)
			continue
		}
		l.s.log.Debug("connection opened", "proto", l.proto, "remote", c.RemoteAddr().String())
		return tc, nil
	}
}

// pastDeadline is a read deadline that has already expired.
var pastDeadline = time.Unix(1, 0)

// trackedConn wraps every admitted client connection. It counts the
// connection and lets Shutdown end idle sessions: once draining, any read
// deadline go-smtp sets is replaced by one in the past, except while the
// session is receiving a message (inData), so the next command read fails
// and go-smtp answers 421 and closes.
type trackedConn struct {
	net.Conn
	s      *Server
	proto  string
	opened time.Time
	once   sync.Once

	mu         sync.Mutex
	inData     bool
	draining   bool // end the session at its next command read
	aborted    bool // end the session at its next read, even mid-message
	readFailed bool // a read from the socket failed (EOF, reset, timeout)
}

// Read implements net.Conn. It records failed reads (see deliver) and,
// during a message transfer, turns a timeout into a 421 reply value:
// go-smtp answers a failed BDAT chunk read with the error itself when it is
// an *SMTPError and with a permanent 554 otherwise.
func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err == nil {
		return n, nil
	}
	c.mu.Lock()
	c.readFailed = true
	inData, aborted := c.inData, c.aborted
	c.mu.Unlock()
	var ne net.Error
	switch {
	case !inData:
	case aborted:
		err = replyShutdown
	case errors.As(err, &ne) && ne.Timeout():
		err = replyTimeout
	}
	return n, err
}

// hasReadFailed reports whether any socket read failed so far.
func (c *trackedConn) hasReadFailed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.readFailed
}

// Close implements net.Conn; the connection is forgotten on the first call.
func (c *trackedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.s.forget(c) })
	return err
}

// SetReadDeadline implements net.Conn.
func (c *trackedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aborted || (c.draining && !c.inData) {
		t = pastDeadline
	}
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline implements net.Conn.
func (c *trackedConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// beginData marks the start of a message transfer; false when the
// connection is being shut down and must not start one.
func (c *trackedConn) beginData() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining || c.aborted {
		return false
	}
	c.inData = true
	return true
}

func (c *trackedConn) endData() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inData = false
	if c.draining || c.aborted {
		_ = c.Conn.SetReadDeadline(pastDeadline)
	}
}

// drain ends the session at its next command (now, if it is idle).
func (c *trackedConn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	if !c.inData {
		_ = c.Conn.SetReadDeadline(pastDeadline)
	}
}

// abort ends the session at its next read.
func (c *trackedConn) abort() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.aborted = true
	_ = c.Conn.SetReadDeadline(pastDeadline)
}

func (c *trackedConn) isAborted() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.aborted
}

// trackedOf finds our wrapper under a go-smtp connection (which may have
// been upgraded to TLS).
func trackedOf(c net.Conn) *trackedConn {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	t, _ := c.(*trackedConn)
	return t
}

// errorLog adapts go-smtp's internal error logger to slog. go-smtp reports
// per-connection I/O errors (debug) and recovered panics (error) here.
type errorLog struct{ log *slog.Logger }

func (l errorLog) Printf(format string, v ...any) { l.emit(fmt.Sprintf(format, v...)) }
func (l errorLog) Println(v ...any)               { l.emit(strings.TrimSuffix(fmt.Sprintln(v...), "\n")) }

func (l errorLog) emit(msg string) {
	if knownBDATRace(msg) {
		l.log.Debug("go-smtp: BDAT transfer began after the connection closed; nothing was ingested")
		return
	}
	if strings.Contains(msg, "panic") {
		l.log.Error("go-smtp internal error", "msg", msg)
		return
	}
	l.log.Debug("go-smtp", "msg", msg)
}

// knownBDATRace recognises a panic that go-smtp v0.25 recovers itself: when
// a client disconnects right after its first BDAT chunk, the goroutine that
// starts Session.Data can run after the connection was closed and finds no
// session (nil dereference in handleBdat.func1, before our code runs). It
// is harmless (the transfer is abandoned, nothing is ingested) and is not
// logged as an error. A panic inside this package is never matched.
func knownBDATRace(msg string) bool {
	return strings.Contains(msg, "panic serving") &&
		strings.Contains(msg, "nil pointer dereference") &&
		strings.Contains(msg, "handleBdat.func1") &&
		!strings.Contains(msg, "mailarc/internal/source/smtp")
}
