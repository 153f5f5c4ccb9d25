package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"sync"
	"time"

	"github.com/mailarc/mailarc/internal/auth"
	"github.com/mailarc/mailarc/internal/mirror"
	"github.com/mailarc/mailarc/internal/version"
	"github.com/mailarc/mailarc/internal/web"
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
	// Sessions valid on every mirrored node (load balancing): the signing
	// key is derived from the shared secret. Serve opens the sessions after
	// the components, so they load this key.
	if err := auth.UseSharedSessionKey(ctx, n.Catalog, secrets[0]); err != nil {
		return err
	}
	cfg := mirror.Config{
		NodeName: n.Cfg.NodeName, Instance: n.Dir.Marker.Instance, Version: version.Version,
		Listen: mc.Listen, Secrets: secrets, Peers: n.MirrorPeers(), Certificate: cert,
		MaxMessageSize:      int64(n.Cfg.MaxMessageSize),
		AntiEntropyInterval: time.Duration(mc.AntiEntropyInterval),
		Users:               n.Auth,
		Policy:              n.policyDigest,
		Logger:              n.Log.With("component", "mirror"), Registerer: n.Registry,
	}
	if sm := n.sources.Load(); sm != nil && sm.HasFailover() {
		// Source failover: heartbeats and lease views travel on a "src" lane.
		cfg.Leases = sm
		cfg.LeaseInterval = sm.HeartbeatInterval()
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
	n.Auth.OnChange(m.UsersChanged)
	if (mc.PurgeRequiresPeers == nil || *mc.PurgeRequiresPeers) && n.gov != nil && len(mc.Peers) > 0 {
		n.gov.SetPeersHave(m.PeersHave)
	}
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

// policyDrift is the policy_drift part of /api/v1/status: one line per
// peer whose retention policies or active holds differ from ours.
func (n *Node) policyDrift(ctx context.Context) []string {
	if m := n.mirror.Load(); m != nil {
		return m.PolicyDrift(ctx)
	}
	return []string{}
}

// policyDigest is the canonical digest of this node's retention policies
// and active holds, with a one-line summary, for the mirror hello: SHA-256
// (first 16 hex digits) of the JSON of the normalised policy (default and
// policies in their stored order) and the active holds' conditions (query,
// after, before, expires), sorted.
func (n *Node) policyDigest(ctx context.Context) (string, string) {
	if n.gov == nil {
		return "", ""
	}
	st, err := n.gov.Retention(ctx)
	if err != nil {
		n.Log.Warn("policy digest", "err", err)
		return "", ""
	}
	holds, err := n.gov.Holds(ctx, false)
	if err != nil {
		n.Log.Warn("policy digest", "err", err)
		return "", ""
	}
	type holdCond struct {
		Query   string     `json:"query"`
		After   *time.Time `json:"after,omitempty"`
		Before  *time.Time `json:"before,omitempty"`
		Expires *time.Time `json:"expires,omitempty"`
	}
	conds := make([]holdCond, 0, len(holds))
	keys := make([]string, 0, len(holds))
	for _, h := range holds {
		c := holdCond{Query: h.Query, After: h.After, Before: h.Before, Expires: h.Expires}
		conds = append(conds, c)
		b, _ := json.Marshal(c)
		keys = append(keys, string(b))
	}
	sort.Strings(keys)
	b, _ := json.Marshal(map[string]any{"retention": st.Retention, "holds": keys})
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8]), mirror.PolicySummary(st.Default, len(st.Policies), len(conds))
}

// peerAdmin is what the peers API needs (nil when not mirroring).
type peerAdmin struct{ n *Node }

func (a peerAdmin) m() (*mirror.Mirror, error) {
	m := a.n.mirror.Load()
	if m == nil {
		return nil, fmt.Errorf("%w: mirroring is not running on this node", mirror.ErrUnknownPeer)
	}
	return m, nil
}

// SyncPeer requests an anti-entropy pass with the named peer.
func (a peerAdmin) SyncPeer(ctx context.Context, name string) error {
	m, err := a.m()
	if err != nil {
		return err
	}
	return m.RequestSync(ctx, name, "requested by an admin")
}

// RepairPeer forgets the peer's pinned certificate and requests a pass.
func (a peerAdmin) RepairPeer(ctx context.Context, name string) (bool, error) {
	m, err := a.m()
	if err != nil {
		return false, err
	}
	return m.RepairPeer(ctx, name)
}

// peersAPI is the peers endpoints' backend (nil when mirroring is off).
func (n *Node) peersAPI() web.PeerAdmin {
	if n.mirror.Load() == nil {
		return nil
	}
	return peerAdmin{n}
}
