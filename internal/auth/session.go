package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Browser sessions.
//
// A session token is
//
//	base64url("s1|" + user + "|" + expiryUnix + "|" + generation + "|" + randomID) + "." + base64url(HMAC-SHA256(key, payload))
//
// The HMAC key (32 random bytes, hex) lives in the catalog meta table under
// "session_key", so sessions survive restarts and stay valid on nodes that
// share the key. Logout bumps the user's generation (meta
// "session_gen:<user>"), which invalidates every session of that user that
// was issued before, on every node that reads the same meta table.
//
// CSRF tokens are session-bound: base64url(HMAC-SHA256(key, "csrf|" + randomID)).

// SessionCookie is the name of the session cookie.
const SessionCookie = "mailarc_session"

// ErrBadSession is returned for a missing, malformed, forged, expired or
// revoked session token.
var ErrBadSession = errors.New("auth: invalid or expired session")

// MetaStore persists small values (the catalog's meta table satisfies it).
type MetaStore interface {
	Meta(ctx context.Context, key string) (string, error)
	SetMeta(ctx context.Context, key, value string) error
	// InitMeta stores value unless key has one and returns the stored
	// value (nodes sharing a catalog agree on the first one written).
	InitMeta(ctx context.Context, key, value string) (string, error)
}

// Session is a verified session.
type Session struct {
	User    *User
	ID      string
	Expires time.Time
}

// Sessions issues and verifies signed session tokens.
type Sessions struct {
	key  []byte
	meta MetaStore
	svc  *Service
	ttl  time.Duration
	now  func() time.Time
}

const (
	sessionKeyMeta = "session_key"
	sessionGenMeta = "session_gen:"
	// DefaultSessionTTL is how long a session lasts.
	DefaultSessionTTL = 12 * time.Hour
)

// NewSessions loads the signing key from meta, creating it on first use.
// ttl <= 0 means DefaultSessionTTL.
func NewSessions(ctx context.Context, meta MetaStore, svc *Service, ttl time.Duration) (*Sessions, error) {
	if ttl <= 0 {
		ttl = DefaultSessionTTL
	}
	v, err := meta.Meta(ctx, sessionKeyMeta)
	if err != nil {
		return nil, fmt.Errorf("auth: load session key: %w", err)
	}
	key, err := hex.DecodeString(v)
	if v == "" || err != nil || len(key) < 32 {
		key = make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, fmt.Errorf("auth: session key: %w", err)
		}
		if v == "" {
			// Nodes sharing a catalog and starting together must end up
			// with one key: keep whichever was stored first.
			stored, err := meta.InitMeta(ctx, sessionKeyMeta, hex.EncodeToString(key))
			if err != nil {
				return nil, fmt.Errorf("auth: store session key: %w", err)
			}
			if key, err = hex.DecodeString(stored); err != nil || len(key) < 32 {
				return nil, errors.New("auth: the stored session key is damaged")
			}
		} else if err := meta.SetMeta(ctx, sessionKeyMeta, hex.EncodeToString(key)); err != nil {
			return nil, fmt.Errorf("auth: store session key: %w", err)
		}
	}
	return &Sessions{key: key, meta: meta, svc: svc, ttl: ttl, now: time.Now}, nil
}

// TTL returns the session lifetime.
func (s *Sessions) TTL() time.Duration { return s.ttl }

func (s *Sessions) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, s.key)
	for i, p := range parts {
		if i > 0 {
			m.Write([]byte{0})
		}
		m.Write([]byte(p))
	}
	return m.Sum(nil)
}

func (s *Sessions) generation(ctx context.Context, user string) (int64, error) {
	v, err := s.meta.Meta(ctx, sessionGenMeta+user)
	if err != nil {
		return 0, fmt.Errorf("auth: session generation: %w", err)
	}
	if v == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("auth: session generation of %s: %w", user, err)
	}
	return n, nil
}

// Issue creates a session token for user.
func (s *Sessions) Issue(ctx context.Context, user string) (token string, expires time.Time, err error) {
	if err := validName(user); err != nil {
		return "", time.Time{}, err
	}
	gen, err := s.generation(ctx, user)
	if err != nil {
		return "", time.Time{}, err
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", time.Time{}, fmt.Errorf("auth: session id: %w", err)
	}
	expires = s.now().Add(s.ttl).Truncate(time.Second)
	payload := strings.Join([]string{"s1", user, strconv.FormatInt(expires.Unix(), 10),
		strconv.FormatInt(gen, 10), hex.EncodeToString(id)}, "|")
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(payload)) + "." + enc.EncodeToString(s.mac("session", payload)), expires, nil
}

// Verify checks a session token and returns the session with the user's
// current account (role and addresses are read fresh).
func (s *Sessions) Verify(ctx context.Context, token string) (*Session, error) {
	if len(token) > 1024 {
		return nil, ErrBadSession
	}
	p64, m64, ok := strings.Cut(token, ".")
	if !ok {
		return nil, ErrBadSession
	}
	enc := base64.RawURLEncoding
	payload, err1 := enc.DecodeString(p64)
	mac, err2 := enc.DecodeString(m64)
	if err1 != nil || err2 != nil || !hmac.Equal(mac, s.mac("session", string(payload))) {
		return nil, ErrBadSession
	}
	f := strings.Split(string(payload), "|")
	if len(f) != 5 || f[0] != "s1" {
		return nil, ErrBadSession
	}
	exp, err1 := strconv.ParseInt(f[2], 10, 64)
	gen, err2 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil || !s.now().Before(time.Unix(exp, 0)) {
		return nil, ErrBadSession
	}
	cur, err := s.generation(ctx, f[1])
	if err != nil {
		return nil, err
	}
	if gen != cur {
		return nil, ErrBadSession
	}
	u, err := s.svc.Get(ctx, f[1])
	if errors.Is(err, ErrNoUser) {
		return nil, ErrBadSession
	}
	if err != nil {
		return nil, err
	}
	return &Session{User: u, ID: f[4], Expires: time.Unix(exp, 0)}, nil
}

// Revoke invalidates every session of user issued so far (logout).
func (s *Sessions) Revoke(ctx context.Context, user string) error {
	gen, err := s.generation(ctx, user)
	if err != nil {
		return err
	}
	if err := s.meta.SetMeta(ctx, sessionGenMeta+user, strconv.FormatInt(gen+1, 10)); err != nil {
		return fmt.Errorf("auth: revoke sessions of %s: %w", user, err)
	}
	if s.svc != nil {
		s.svc.changed() // mirrored peers learn the new generation (logout everywhere)
	}
	return nil
}

// CSRFToken returns the anti-CSRF token bound to a session id.
func (s *Sessions) CSRFToken(sessionID string) string {
	return base64.RawURLEncoding.EncodeToString(s.mac("csrf", sessionID))
}

// CheckCSRF reports whether token is the CSRF token of sessionID.
func (s *Sessions) CheckCSRF(sessionID, token string) bool {
	want := s.CSRFToken(sessionID)
	return sessionID != "" && subtle.ConstantTimeCompare([]byte(want), []byte(token)) == 1
}

// UseSharedSessionKey derives the session signing key from the mirrored
// nodes' shared secret (HMAC-SHA256(secret, "mailarc-session-key-v1")) and
// stores it as the node's key, so a session issued by one mirrored node is
// valid on every other (a load balancer may send the next request
// anywhere). Call it before NewSessions. Sessions signed with an earlier
// key end.
func UseSharedSessionKey(ctx context.Context, meta MetaStore, secret []byte) error {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("mailarc-session-key-v1"))
	key := hex.EncodeToString(m.Sum(nil))
	cur, err := meta.Meta(ctx, sessionKeyMeta)
	if err != nil {
		return fmt.Errorf("auth: load session key: %w", err)
	}
	if cur == key {
		return nil
	}
	if err := meta.SetMeta(ctx, sessionKeyMeta, key); err != nil {
		return fmt.Errorf("auth: store session key: %w", err)
	}
	return nil
}
