package smtp

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"
)

// Defaults applied by New to zero-valued Config fields.
const (
	DefaultMaxMessageSize = 100 << 20 // 100 MiB
	DefaultMaxConnections = 200
	DefaultMaxRecipients  = 10000
	DefaultMaxLineLength  = 1 << 20 // 1 MiB
	DefaultCommandTimeout = 5 * time.Minute
	DefaultDataTimeout    = 10 * time.Minute
)

// Config configures a Server. The zero value of every numeric or duration
// field means "use the default"; the lead's TOML layer maps onto it.
type Config struct {
	// Listen are SMTP listen addresses such as "127.0.0.1:2525". Port 0
	// picks a free port (see Server.Addrs).
	Listen []string
	// LMTPListen are optional LMTP listen addresses: a TCP address or
	// "unix:/path/to/socket". A stale socket file is replaced; the socket
	// gets the process umask's permissions, so restrict access with the
	// permissions of its directory.
	LMTPListen []string
	// Hostname is announced in the greeting and EHLO reply; default
	// os.Hostname().
	Hostname string
	// Recipients are the accepted RCPT TO addresses, matched
	// case-insensitively: an exact address ("journal@example.com") or a
	// whole domain ("@example.com"). Empty accepts every recipient.
	Recipients []string
	// AllowedNetworks restricts which client IPs may connect; others get
	// "554 5.7.1" and are disconnected. Empty allows all. Unix-socket
	// clients are always allowed.
	AllowedNetworks []netip.Prefix
	// MaxMessageSize is the largest message accepted, in bytes (advertised
	// as SIZE). Default 100 MiB.
	MaxMessageSize int64
	// MaxConnections caps concurrent client connections; extra ones get
	// "421 4.7.0" at connect. Default 200.
	MaxConnections int
	// MaxRecipients caps RCPT TO per message. Default 10000 (journaling
	// envelopes can be large).
	MaxRecipients int
	// MaxLineLength caps a single command or message line, in bytes.
	// Larger than RFC 5321's 1000 so that badly formatted real mail is
	// still archived; it bounds per-connection memory for command lines.
	// Default 1 MiB.
	MaxLineLength int
	// CommandTimeout is how long to wait for the next command. Default 5m.
	CommandTimeout time.Duration
	// DataTimeout is how long to wait for the next chunk of message data
	// during DATA/BDAT. Default 10m.
	DataTimeout time.Duration
	// TLSConfig enables STARTTLS when non-nil (see SelfSignedTLS).
	TLSConfig *tls.Config
	// Auth maps user names to passwords for AUTH PLAIN and LOGIN. Nil or
	// empty: AUTH is not offered.
	Auth map[string]string
	// AuthRequired refuses MAIL FROM until the client has authenticated.
	AuthRequired bool
	// RequireTLS offers and accepts AUTH only after STARTTLS.
	RequireTLS bool
}

// withDefaults returns cfg with zero-valued fields replaced by defaults.
func (cfg Config) withDefaults() Config {
	if cfg.Hostname == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		cfg.Hostname = h
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.MaxConnections == 0 {
		cfg.MaxConnections = DefaultMaxConnections
	}
	if cfg.MaxRecipients == 0 {
		cfg.MaxRecipients = DefaultMaxRecipients
	}
	if cfg.MaxLineLength == 0 {
		cfg.MaxLineLength = DefaultMaxLineLength
	}
	if cfg.CommandTimeout == 0 {
		cfg.CommandTimeout = DefaultCommandTimeout
	}
	if cfg.DataTimeout == 0 {
		cfg.DataTimeout = DefaultDataTimeout
	}
	return cfg
}

// validate reports every problem in cfg (after defaults), naming the field.
func (cfg Config) validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if len(cfg.Listen) == 0 && len(cfg.LMTPListen) == 0 {
		bad("listen", "no SMTP or LMTP listen address")
	}
	for _, a := range cfg.Listen {
		if strings.TrimSpace(a) == "" || strings.HasPrefix(a, "unix:") {
			bad("listen", "%q is not a TCP address", a)
		}
	}
	for _, a := range cfg.LMTPListen {
		if strings.TrimSpace(a) == "" || a == "unix:" {
			bad("lmtp_listen", "%q is empty", a)
		}
	}
	for _, r := range cfg.Recipients {
		if !strings.Contains(r, "@") || strings.HasSuffix(r, "@") || strings.ContainsAny(r, " \t<>") {
			bad("recipients", "%q is neither an address nor @domain", r)
		}
	}
	for _, p := range cfg.AllowedNetworks {
		if !p.IsValid() {
			bad("allowed_networks", "invalid prefix %v", p)
		}
	}
	if cfg.MaxMessageSize < 0 {
		bad("max_message_size", "negative")
	}
	if cfg.MaxConnections < 0 {
		bad("max_connections", "negative")
	}
	if cfg.MaxRecipients < 0 {
		bad("max_recipients", "negative")
	}
	if cfg.MaxLineLength < 0 {
		bad("max_line_length", "negative")
	}
	if cfg.CommandTimeout < 0 || cfg.DataTimeout < 0 {
		bad("timeouts", "negative")
	}
	if cfg.RequireTLS && cfg.TLSConfig == nil {
		bad("require_tls", "set but no TLS certificate is configured")
	}
	if cfg.AuthRequired && len(cfg.Auth) == 0 {
		bad("auth_required", "set but no users are configured")
	}
	for u := range cfg.Auth {
		if u == "" {
			bad("auth", "empty user name")
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("smtp config: %w", err)
	}
	return nil
}
