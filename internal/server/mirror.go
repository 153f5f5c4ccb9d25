package server

import (
	"context"
	"fmt"
	"os"
	"sync"

	"github.com/mailarc/mailarc/internal/mirror"
	"github.com/mailarc/mailarc/internal/version"
)

// failpointEnv names the test-only failpoint variable (see package mirror).
const failpointEnv = "MAILARC_FAILPOINT"

// MirrorPeers returns the configured peers in mirror's terms.
func (n *Node) MirrorPeers() []mirror.PeerConfig {
	out := make([]mirror.PeerConfig, 0, len(n.Cfg.Mirror.Peers))
	for _, p := range n.Cfg.Mirror.Peers {
		out = append(out, mirror.PeerConfig{Name: p.Name, URL: p.URL})
	}
	return out
}

// startMirror starts mirroring when [mirror] is configured.
func (n *Node) startMirror(ctx context.Context, wg *sync.WaitGroup, c *components) error {
	mc := n.Cfg.Mirror
	if mc.Listen == "" && len(mc.Peers) == 0 {
		return nil
	}
	if mc.Listen == "" {
		return fmt.Errorf("mirror.listen: required when [[mirror.peers]] are configured (peers push to it)")
	}
	if mc.SharedSecretFile == "" {
		return fmt.Errorf("mirror.shared_secret_file: required for mirroring")
	}
	secrets, err := mirror.LoadSecrets(n.defaultPath(mc.SharedSecretFile))
	if err != nil {
		return err
	}
	if fi, err := os.Stat(n.defaultPath(mc.SharedSecretFile)); err == nil && fi.Mode().Perm()&0o077 != 0 {
		n.Log.Warn("mirror.shared_secret_file is readable by other users; chmod 600 it", "file", mc.SharedSecretFile)
	}
	cert, err := mirror.LoadOrCreateKeyPair(n.Dir.Join("tls"), n.Cfg.NodeName)
	if err != nil {
		return err
	}
	cfg := mirror.Config{
		NodeName: n.Cfg.NodeName, Instance: n.Dir.Marker.Instance, Version: version.Version,
		Listen: mc.Listen, Secrets: secrets, Peers: n.MirrorPeers(), Certificate: cert,
		MaxMessageSize: int64(n.Cfg.MaxMessageSize),
		Logger:         n.Log.With("component", "mirror"), Registerer: n.Registry,
	}
	if fp := os.Getenv(failpointEnv); fp != "" {
		log := n.Log
		cfg.Failpoint = func(name string) {
			if name == fp {
				log.Warn("failpoint reached: exiting", "failpoint", name)
				os.Exit(137)
			}
		}
	}
	m, err := mirror.New(ctx, cfg, n.Archive)
	if err != nil {
		return err
	}
	n.Archive.OnCommit(m.Notify)
	if err := m.Start(ctx); err != nil {
		return err
	}
	n.mirror.Store(m)
	n.Log.Info("mirroring", "listen", m.Addr().String(), "peers", len(mc.Peers))
	c.stop = append(c.stop, func(ctx context.Context) error {
		n.mirror.Store(nil)
		return m.Close(ctx)
	})
	return nil
}

// peerStatus is the peers[] part of /api/v1/status. A node that is not
// serving (CLI on --data) reports its peers from the catalog.
func (n *Node) peerStatus(ctx context.Context) []any {
	var st []mirror.PeerStatus
	var err error
	if m := n.mirror.Load(); m != nil {
		st, err = m.Status(ctx)
	} else if len(n.Cfg.Mirror.Peers) > 0 {
		st, err = mirror.OfflineStatus(ctx, n.Catalog, n.MirrorPeers())
	}
	if err != nil {
		n.Log.Warn("peer status", "err", err)
	}
	out := make([]any, 0, len(st))
	for _, s := range st {
		out = append(out, s)
	}
	return out
}

// policyDrift is the policy_drift part of /api/v1/status.
func (n *Node) policyDrift(ctx context.Context) []string { return []string{} }
