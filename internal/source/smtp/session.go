package smtp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/mailarc/mailarc/internal/archive"
)

// Replies returned by the session. go-smtp writes them as given.
var (
	replyShutdown     = &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 3, 2}, Message: "Service shutting down, try again later"}
	replyAuthRequired = &gosmtp.SMTPError{Code: 530, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	replyTLSRequired  = &gosmtp.SMTPError{Code: 538, EnhancedCode: gosmtp.EnhancedCode{5, 7, 11}, Message: "Encryption required for requested authentication mechanism"}
	replyBadRcpt      = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "Recipient not accepted by this archive"}
	replyTooLarge     = &gosmtp.SMTPError{Code: 552, EnhancedCode: gosmtp.EnhancedCode{5, 3, 4}, Message: "Message exceeds the maximum size"}
	replyLineTooLong  = &gosmtp.SMTPError{Code: 552, EnhancedCode: gosmtp.EnhancedCode{5, 3, 4}, Message: "Line too long"}
	replyEmpty        = &gosmtp.SMTPError{Code: 554, EnhancedCode: gosmtp.EnhancedCode{5, 6, 0}, Message: "Empty message"}
	replyStorage      = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "Temporary archive failure, try again later"}
	replyNoSpace      = &gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 3, 1}, Message: "Insufficient archive storage, try again later"}
	replyTimeout      = &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 4, 2}, Message: "Timeout waiting for message data, closing connection"}
	replyConnLost     = &gosmtp.SMTPError{Code: 421, EnhancedCode: gosmtp.EnhancedCode{4, 4, 0}, Message: "Connection error during message transfer"}
)

// backend implements go-smtp's Backend for both SMTP and LMTP servers.
type backend struct{ s *Server }

// NewSession implements gosmtp.Backend. It is called at EHLO/HELO/LHLO
// (again after STARTTLS).
func (b backend) NewSession(c *gosmtp.Conn) (gosmtp.Session, error) {
	if b.s.isDraining() {
		return nil, replyShutdown
	}
	_, isTLS := c.TLSConnectionState()
	sess := &session{
		s:      b.s,
		conn:   c,
		tc:     trackedOf(c.Conn()),
		lmtp:   c.Server().LMTP,
		tls:    isTLS,
		remote: c.Conn().RemoteAddr().String(),
	}
	b.s.log.Debug("session started", "proto", sess.proto(), "remote", sess.remote, "helo", c.Hostname(), "tls", isTLS)
	return sess, nil
}

// session is one SMTP/LMTP session (one per EHLO after each STARTTLS).
// go-smtp calls its methods from the connection goroutine; Data may run on
// a helper goroutine during BDAT but never concurrently with the others.
type session struct {
	s      *Server
	conn   *gosmtp.Conn
	tc     *trackedConn
	lmtp   bool
	tls    bool
	remote string
	user   string // authenticated user, "" if none

	hasFrom bool
	from    string
	size    int64 // SIZE= declared at MAIL FROM
	rcpts   []string

	chunks [][]byte // readBody's reusable read buffers
}

var (
	_ gosmtp.Session     = (*session)(nil)
	_ gosmtp.LMTPSession = (*session)(nil)
	_ gosmtp.AuthSession = (*session)(nil)
)

func (ss *session) proto() string {
	if ss.lmtp {
		return "lmtp"
	}
	return "smtp"
}

// refuse counts and logs a refusal and returns reply for go-smtp to send.
func (ss *session) refuse(reply *gosmtp.SMTPError, reason string, args ...any) error {
	ss.s.m.refused.WithLabelValues(reason).Inc()
	ss.s.log.Info("refused", append([]any{"proto", ss.proto(), "remote", ss.remote,
		"code", reply.Code, "reason", reason}, args...)...)
	if reply.Code == 421 {
		// 421 means the server closes the connection.
		if ss.tc != nil {
			ss.tc.abort()
		}
	}
	return reply
}

// Reset implements gosmtp.Session.
func (ss *session) Reset() {
	ss.hasFrom, ss.from, ss.size, ss.rcpts = false, "", 0, nil
}

// Logout implements gosmtp.Session.
func (ss *session) Logout() error { return nil }

// Mail implements gosmtp.Session.
func (ss *session) Mail(from string, opts *gosmtp.MailOptions) error {
	if ss.s.isDraining() {
		return ss.refuse(replyShutdown, reasonShutdown)
	}
	if ss.s.cfg.AuthRequired && ss.user == "" {
		return ss.refuse(replyAuthRequired, reasonAuth)
	}
	if opts != nil && opts.Size > ss.s.cfg.MaxMessageSize {
		return ss.refuse(replyTooLarge, reasonTooLarge, "declared_size", opts.Size)
	}
	ss.Reset()
	ss.hasFrom, ss.from = true, from
	if opts != nil {
		ss.size = opts.Size
	}
	return nil
}

// Rcpt implements gosmtp.Session. go-smtp enforces MaxRecipients itself
// (452 4.5.3).
func (ss *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if !ss.s.rcpts.match(to) {
		return ss.refuse(replyBadRcpt, reasonRecipient, "rcpt", to)
	}
	ss.rcpts = append(ss.rcpts, to)
	return nil
}

// Data implements gosmtp.Session (DATA and BDAT).
func (ss *session) Data(r io.Reader) error { return ss.deliver(r) }

// LMTPData implements gosmtp.LMTPSession. Every recipient shares the one
// Ingest call, so every recipient gets the same reply: go-smtp uses the
// returned value for each recipient without an explicit status.
func (ss *session) LMTPData(r io.Reader, _ gosmtp.StatusCollector) error { return ss.deliver(r) }

// deliver reads the message, ingests it and returns the reply. A 250 reply
// is returned as an *SMTPError with code 250 so that it can carry the
// archive id; go-smtp writes such a value verbatim.
func (ss *session) deliver(r io.Reader) error {
	if ss.tc != nil {
		if !ss.tc.beginData() {
			return ss.refuse(replyShutdown, reasonShutdown)
		}
		defer ss.tc.endData()
	} else if ss.s.isDraining() {
		return ss.refuse(replyShutdown, reasonShutdown)
	}
	raw, err := ss.readBody(r)
	if err != nil {
		return ss.readError(err)
	}
	if ss.tc != nil && ss.tc.hasReadFailed() {
		// go-smtp ends a BDAT chunk cut short by EOF as if it were
		// complete; a failed socket read during the transfer means the
		// message may be truncated, so it is not kept.
		return ss.refuse(replyConnLost, reasonAborted)
	}
	if len(raw) == 0 {
		return ss.refuse(replyEmpty, reasonEmpty)
	}
	end := time.Now()
	origin := archive.Origin{
		Source:   ss.proto(),
		MailFrom: ss.from,
		RcptTo:   mergeAddrs(ss.rcpts, headerAddrs(raw, ss.s.cfg.MaxRecipients)),
		Arrival:  end,
	}
	res, err := ss.s.ing.Ingest(ss.s.baseCtx, raw, origin)
	ss.s.m.acceptSeconds.Observe(time.Since(end).Seconds())
	if err != nil {
		reply, reason := mapIngestError(err)
		return ss.refuse(reply, reason, "size", len(raw), "err", err)
	}
	ss.s.m.accepted.Inc()
	ss.s.m.bytes.Add(float64(len(raw)))
	ss.s.log.Debug("archived", "proto", ss.proto(), "remote", ss.remote, "id", res.ID,
		"duplicate", res.Duplicate, "size", len(raw), "rcpts", len(ss.rcpts))
	return &gosmtp.SMTPError{Code: 250, EnhancedCode: gosmtp.EnhancedCode{2, 0, 0}, Message: "Ok: archived " + res.ID}
}

// readChunk is how much message data one read may wait for before the data
// timeout is extended; message data is collected in chunks of this size.
const readChunk = 32 << 10

// readBody reads the dot-unstuffed message from r, at most MaxMessageSize
// bytes, extending the read deadline by DataTimeout before every read. The
// data lands in the session's reusable chunks and is copied once into a
// slice of the exact size, so a message costs one allocation whatever its
// size (a growing buffer cost several, plus their zeroing, under load).
func (ss *session) readBody(r io.Reader) ([]byte, error) {
	limit := ss.s.cfg.MaxMessageSize
	total := int64(0)
	used := 0 // chunks of ss.chunks holding data; the last one may be partial
	fill := 0 // bytes in the last used chunk
	for {
		if used == 0 || fill == readChunk {
			if used == len(ss.chunks) {
				ss.chunks = append(ss.chunks, make([]byte, readChunk))
			}
			used++
			fill = 0
		}
		if ss.tc != nil {
			_ = ss.tc.SetReadDeadline(time.Now().Add(ss.s.cfg.DataTimeout))
		}
		n, err := r.Read(ss.chunks[used-1][fill:])
		if total+int64(n) > limit {
			ss.dropChunks()
			return nil, gosmtp.ErrDataTooLarge
		}
		total += int64(n)
		fill += n
		if errors.Is(err, io.EOF) {
			out := make([]byte, 0, total)
			for i := range used - 1 {
				out = append(out, ss.chunks[i]...)
			}
			out = append(out, ss.chunks[used-1][:fill]...)
			ss.dropChunks()
			return out, nil
		}
		if err != nil {
			ss.dropChunks()
			return nil, err
		}
	}
}

// maxKeptChunks bounds the chunk memory a session keeps between messages.
const maxKeptChunks = 4

// dropChunks releases chunks beyond maxKeptChunks after a large message.
func (ss *session) dropChunks() {
	if len(ss.chunks) > maxKeptChunks {
		clear(ss.chunks[maxKeptChunks:])
		ss.chunks = ss.chunks[:maxKeptChunks]
	}
}

// readError maps a failure while receiving message data to a reply.
func (ss *session) readError(err error) error {
	var ne net.Error
	switch {
	case errors.Is(err, gosmtp.ErrDataTooLarge):
		return ss.refuse(replyTooLarge, reasonTooLarge)
	case errors.Is(err, gosmtp.ErrTooLongLine):
		return ss.refuse(replyLineTooLong, reasonLineTooLong)
	case errors.Is(err, gosmtp.ErrDataReset):
		// BDAT transfer abandoned (RSET or disconnect); go-smtp replies itself.
		ss.s.m.refused.WithLabelValues(reasonAborted).Inc()
		ss.s.log.Info("message transfer aborted", "proto", ss.proto(), "remote", ss.remote)
		return err
	case errors.Is(err, replyShutdown) || (ss.tc != nil && ss.tc.isAborted()):
		return ss.refuse(replyShutdown, reasonShutdown)
	case errors.Is(err, replyTimeout):
		return ss.refuse(replyTimeout, reasonTimeout)
	case errors.As(err, &ne) && ne.Timeout():
		return ss.refuse(replyTimeout, reasonTimeout)
	default:
		return ss.refuse(replyConnLost, reasonAborted, "err", err)
	}
}

// mapIngestError maps an Ingest error to the reply and metric reason. Only
// the archive's permanent sentinels give 5xx; anything unknown is
// temporary so that the sender retries.
func mapIngestError(err error) (*gosmtp.SMTPError, string) {
	switch {
	case errors.Is(err, archive.ErrEmpty):
		return replyEmpty, reasonEmpty
	case errors.Is(err, archive.ErrTooLarge):
		return replyTooLarge, reasonTooLarge
	case errors.Is(err, archive.ErrShuttingDown), errors.Is(err, context.Canceled):
		return replyShutdown, reasonShutdown
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, archive.ErrLowSpace):
		return replyNoSpace, reasonNoSpace
	default:
		return replyStorage, reasonStorage
	}
}

// AuthMechanisms implements gosmtp.AuthSession.
func (ss *session) AuthMechanisms() []string {
	if len(ss.s.cfg.Auth) == 0 || (ss.s.cfg.RequireTLS && !ss.tls) {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth implements gosmtp.AuthSession.
func (ss *session) Auth(mech string) (sasl.Server, error) {
	if len(ss.s.cfg.Auth) == 0 {
		return nil, gosmtp.ErrAuthUnsupported
	}
	if ss.s.cfg.RequireTLS && !ss.tls {
		return nil, replyTLSRequired
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return ss.authFailed(user)
			}
			return ss.checkPassword(user, pass)
		}), nil
	case sasl.Login:
		return &loginServer{check: ss.checkPassword}, nil
	default:
		return nil, gosmtp.ErrAuthUnknownMechanism
	}
}

// checkPassword verifies user/pass in constant time (with respect to the
// password and to whether the user exists).
func (ss *session) checkPassword(user, pass string) error {
	want, ok := ss.s.cfg.Auth[user]
	wh := sha256.Sum256([]byte(want))
	gh := sha256.Sum256([]byte(pass))
	if subtle.ConstantTimeCompare(wh[:], gh[:]) != 1 || !ok {
		return ss.authFailed(user)
	}
	ss.user = user
	ss.s.log.Debug("authenticated", "proto", ss.proto(), "remote", ss.remote, "user", user)
	return nil
}

func (ss *session) authFailed(user string) error {
	ss.s.log.Info("authentication failed", "proto", ss.proto(), "remote", ss.remote, "user", user)
	return gosmtp.ErrAuthFailed
}

// loginServer is the server side of the (obsolete but ubiquitous) SASL
// LOGIN mechanism: "Username:" and "Password:" challenges, or the user
// name as initial response.
type loginServer struct {
	check func(user, pass string) error
	state int
	user  string
}

// Next implements sasl.Server.
func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.state {
	case 0:
		l.state = 1
		if response == nil {
			return []byte("Username:"), false, nil
		}
		fallthrough
	case 1:
		l.user = string(response)
		l.state = 2
		return []byte("Password:"), false, nil
	case 2:
		l.state = 3
		if err := l.check(l.user, string(response)); err != nil {
			return nil, true, err
		}
		return nil, true, nil
	default:
		return nil, true, sasl.ErrUnexpectedClientResponse
	}
}
