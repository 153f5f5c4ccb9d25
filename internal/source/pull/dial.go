package pull

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/mailarc/mailarc/internal/certs"
	"github.com/mailarc/mailarc/internal/config"
)

// ErrInsecure is returned when a source would send credentials in clear text
// to a host that is not a loopback address and allow_insecure is not set.
var ErrInsecure = errors.New("pull: refusing plaintext authentication")

// normalize returns src with defaults applied: tls implicit, the protocol's
// standard port, auth plain, folders ["INBOX"], poll 1m, mode keep.
func normalize(src config.Source) config.Source {
	if src.TLS == "" {
		src.TLS = "implicit"
	}
	if src.Auth == "" {
		src.Auth = "plain"
	}
	if src.Mode == "" {
		src.Mode = "keep"
	}
	if src.Port == 0 {
		switch {
		case src.Type == "imap" && src.TLS == "implicit":
			src.Port = 993
		case src.Type == "imap":
			src.Port = 143
		case src.TLS == "implicit":
			src.Port = 995
		default:
			src.Port = 110
		}
	}
	if len(src.Folders) == 0 {
		src.Folders = []string{"INBOX"}
	}
	if src.Poll <= 0 {
		src.Poll = config.Duration(defaultPoll)
	}
	if src.TakeoverAfter <= 0 {
		src.TakeoverAfter = config.Duration(defaultTakeover)
	}
	return src
}

// validate checks one normalised source.
func validate(src config.Source) error {
	if src.Name == "" {
		return errors.New("source name must not be empty")
	}
	if src.Type != "imap" && src.Type != "pop3" {
		return fmt.Errorf("source %s: type must be imap or pop3, not %q", src.Name, src.Type)
	}
	if src.Host == "" {
		return fmt.Errorf("source %s: host must not be empty", src.Name)
	}
	switch src.TLS {
	case "implicit", "starttls", "none":
	default:
		return fmt.Errorf("source %s: tls must be implicit, starttls or none, not %q", src.Name, src.TLS)
	}
	switch src.Auth {
	case "plain", "login":
		if src.PasswordFile == "" {
			return fmt.Errorf("source %s: auth %s needs password_file", src.Name, src.Auth)
		}
	case "xoauth2":
		if src.TokenFile == "" {
			return fmt.Errorf("source %s: auth xoauth2 needs token_file", src.Name)
		}
	default:
		return fmt.Errorf("source %s: auth must be plain, login or xoauth2, not %q", src.Name, src.Auth)
	}
	if src.User == "" {
		return fmt.Errorf("source %s: user must not be empty", src.Name)
	}
	if src.CAFile != "" && src.TLS == "none" {
		return fmt.Errorf("source %s: ca_file is set but tls = \"none\"", src.Name)
	}
	if len(src.Standby) > 0 && src.Owner == "" {
		return fmt.Errorf("source %s: standby needs owner (the node that polls while it is up)", src.Name)
	}
	seen := map[string]bool{src.Owner: true}
	for _, n := range src.Standby {
		if n == "" || seen[n] {
			return fmt.Errorf("source %s: standby %q is empty, the owner or listed twice", src.Name, n)
		}
		seen[n] = true
	}
	switch src.Mode {
	case "keep", "delete":
	default:
		return fmt.Errorf("source %s: mode must be keep or delete, not %q", src.Name, src.Mode)
	}
	if src.MoveTo != "" {
		if src.Type != "imap" {
			return fmt.Errorf("source %s: move_to is only supported for imap sources", src.Name)
		}
		if src.Mode != "delete" {
			return fmt.Errorf("source %s: move_to takes archived messages out of the folder and needs mode = \"delete\"", src.Name)
		}
	}
	if src.Type == "pop3" {
		if len(src.Folders) != 1 || src.Folders[0] != "INBOX" {
			return fmt.Errorf("source %s: pop3 has no folders; remove the folders setting", src.Name)
		}
	}
	return checkTransport(src)
}

// checkTransport refuses clear-text authentication to anything but a
// loopback address unless allow_insecure is set.
func checkTransport(src config.Source) error {
	if src.TLS != "none" || src.AllowInsecure || isLoopback(src.Host) {
		return nil
	}
	return fmt.Errorf("%w: source %s would send credentials unencrypted to %s (tls = \"none\"); use tls = \"implicit\" or \"starttls\", or set allow_insecure = true", ErrInsecure, src.Name, src.Host)
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// secret returns the password (auth plain/login) or the OAuth access token
// (auth xoauth2), read from its file at every connect so rotated tokens are
// picked up. Trailing CR/LF are removed.
func secret(src config.Source) (string, error) {
	path := src.PasswordFile
	what := "password_file"
	if src.Auth == "xoauth2" {
		path, what = src.TokenFile, "token_file"
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", what, err)
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return "", fmt.Errorf("%s %s is empty", what, path)
	}
	return s, nil
}

// xoauth2String is the initial client response of the XOAUTH2 SASL
// mechanism (Google and Microsoft): "user=U^Aauth=Bearer T^A^A".
func xoauth2String(user, token string) []byte {
	return []byte("user=" + user + "\x01auth=Bearer " + token + "\x01\x01")
}

// xoauth2Client implements sasl.Client for XOAUTH2. A server challenge is
// the JSON error report; it is kept (it contains no secret) and answered
// with an empty response so the server finishes with a tagged NO.
type xoauth2Client struct {
	user, token string
	failure     string
}

func (a *xoauth2Client) Start() (string, []byte, error) {
	return "XOAUTH2", xoauth2String(a.user, a.token), nil
}

func (a *xoauth2Client) Next(challenge []byte) ([]byte, error) {
	if len(challenge) > 512 {
		challenge = challenge[:512]
	}
	a.failure = string(challenge)
	return []byte{}, nil
}

// tlsConfig returns the TLS client configuration for src: Options.TLSConfig
// (default: system roots, TLS 1.2+), trusting only the certificates of
// src.CAFile when set (re-read at every connect), with ServerName the
// source host unless set.
func (m *Manager) tlsConfig(src config.Source) (*tls.Config, error) {
	var c *tls.Config
	if m.opt.TLSConfig != nil {
		c = m.opt.TLSConfig.Clone()
	} else {
		c = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	if c.ServerName == "" {
		c.ServerName = strings.Trim(src.Host, "[]")
	}
	if src.CAFile != "" && src.TLS != "none" {
		pool, err := certs.LoadPool(src.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ca_file: %w", err)
		}
		c.RootCAs = pool
	}
	return c, nil
}

// dial opens a TCP (or implicit TLS) connection honouring ctx.
func dialConn(ctx context.Context, src config.Source, tc *tls.Config, o Options) (net.Conn, error) {
	addr := net.JoinHostPort(src.Host, fmt.Sprint(src.Port))
	d := &net.Dialer{Timeout: o.DialTimeout}
	if src.TLS == "implicit" {
		td := &tls.Dialer{NetDialer: d, Config: tc}
		c, err := td.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, fmt.Errorf("connect %s (implicit TLS, server name %q): %w", addr, tc.ServerName, err)
		}
		return c, nil
	}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", addr, err)
	}
	return c, nil
}
