package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/mailarc/mailarc/internal/archive"

	smtpsrc "github.com/mailarc/mailarc/internal/source/smtp"
)

// startSMTP starts the SMTP/LMTP listeners when configured.
func (n *Node) startSMTP(ctx context.Context, c *components) error {
	cfg := n.Cfg.SMTP
	if len(cfg.Listen) == 0 && len(cfg.LMTPListen) == 0 {
		return nil
	}
	sc := smtpsrc.Config{
		Listen:         cfg.Listen,
		LMTPListen:     cfg.LMTPListen,
		Hostname:       cfg.Hostname,
		Recipients:     cfg.Recipients,
		MaxMessageSize: int64(cfg.MaxMessageSize),
		MaxConnections: cfg.MaxConnections,
		MaxRecipients:  cfg.MaxRecipients,
		MaxLineLength:  int(cfg.MaxLineLength),
		CommandTimeout: time.Duration(cfg.CommandTimeout),
		DataTimeout:    time.Duration(cfg.DataTimeout),
		AuthRequired:   cfg.AuthRequired,
		RequireTLS:     cfg.RequireTLS,
	}
	if sc.Hostname == "" {
		sc.Hostname = n.Cfg.NodeName
	}
	if sc.MaxMessageSize == 0 {
		sc.MaxMessageSize = int64(n.Cfg.MaxMessageSize)
	}
	for _, p := range cfg.AllowedNetworks {
		pf, err := netip.ParsePrefix(p)
		if err != nil {
			return fmt.Errorf("smtp.allowed_networks: %w", err)
		}
		sc.AllowedNetworks = append(sc.AllowedNetworks, pf)
	}
	if cfg.TLSCert != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
		if err != nil {
			return fmt.Errorf("smtp.tls_cert: %w", err)
		}
		sc.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	} else {
		t, err := smtpsrc.SelfSignedTLS(n.Dir.Join("tls"), sc.Hostname)
		if err != nil {
			return fmt.Errorf("smtp: generate certificate: %w", err)
		}
		sc.TLSConfig = t
	}
	if cfg.AuthFile != "" {
		b, err := os.ReadFile(cfg.AuthFile)
		if err != nil {
			return fmt.Errorf("smtp.auth_file: %w", err)
		}
		sc.Auth = map[string]string{}
		for i, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			u, p, ok := strings.Cut(line, ":")
			if !ok {
				return fmt.Errorf("smtp.auth_file %s line %d: want user:password", cfg.AuthFile, i+1)
			}
			sc.Auth[u] = p
		}
	}
	srv, err := smtpsrc.New(sc, n.Archive, n.Log.With("component", "smtp"), n.Registry)
	if err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	if err := srv.Start(ctx); err != nil {
		return fmt.Errorf("smtp: %w", err)
	}
	c.smtpAddrs = srv.Addrs()
	c.stop = append(c.stop, srv.Shutdown)
	return nil
}

var _ smtpsrc.Ingester = (*archive.Archive)(nil)
