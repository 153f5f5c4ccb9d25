package mirror

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"
)

// Protocol versions this build speaks.
const (
	protoMin = 1
	protoMax = 1
)

// exporterLabel is the TLS exporter label the auth proof is bound to.
const exporterLabel = "EXPORTER-mailarc-peer-auth"

// Peer states shown in status (DESIGN §6).
const (
	StateOnline          = "online"
	StateOffline         = "offline"
	StateUnauthorized    = "unauthorized"
	StateVersionMismatch = "version_mismatch"
	StateRefused         = "refused"
)

// States lists every peer state, for metrics.
var States = []string{StateOnline, StateOffline, StateUnauthorized, StateVersionMismatch, StateRefused}

// Hello is what each side announces before authentication.
type Hello struct {
	ProtoMin int    `json:"proto_min"`
	ProtoMax int    `json:"proto_max"`
	Version  string `json:"version"`
	Node     string `json:"node"`
	Cluster  string `json:"cluster"`
	Instance string `json:"instance"`
	Head     int64  `json:"head"`
	Lane     string `json:"lane,omitempty"`
	// MaxMessage is the node's max_message_size: a sender parks larger
	// messages for this node instead of sending them.
	MaxMessage int64 `json:"max_message_size,omitempty"`
	// Boot identifies the sending process; HelloSeq numbers its hellos in
	// the order it read Head, so the receiver can ignore a stale hello
	// instead of taking its lower head for a restore.
	Boot     string `json:"boot,omitempty"`
	HelloSeq int64  `json:"hello_seq,omitempty"`
	// Policy is a digest of the node's retention policies and active
	// holds, PolicySummary a one-line description (policy drift).
	Policy        string `json:"policy,omitempty"`
	PolicySummary string `json:"policy_summary,omitempty"`
}

// verdict answers the other side's hello or auth proof.
type verdict struct {
	OK      bool   `json:"ok"`
	Code    string `json:"code,omitempty"` // a peer state (see States) when !OK
	Message string `json:"message,omitempty"`
}

// HandshakeError is a refused handshake: State is the peer state to show,
// Msg the reason. Remote is true when the other side refused us.
type HandshakeError struct {
	State  string
	Msg    string
	Remote bool
}

func (e *HandshakeError) Error() string {
	if e.Remote {
		return "peer refused: " + e.Msg
	}
	return e.Msg
}

// ClusterID derives the cluster id from a shared secret: nodes with the
// same secret agree on it without configuration. It is informational (the
// auth proof decides).
func ClusterID(secret []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("cluster-id"))
	return hex.EncodeToString(m.Sum(nil)[:8])
}

// authMAC is the proof of the shared secret by the side playing role
// ("client" or "server"), bound to this TLS session's exporter and both
// certificate fingerprints.
func authMAC(secret, exporter []byte, role, clientFP, serverFP string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("mailarc-peer-auth-v1\x00"))
	m.Write([]byte(role))
	m.Write([]byte{0})
	m.Write(exporter)
	m.Write([]byte(clientFP))
	m.Write([]byte(serverFP))
	return m.Sum(nil)
}

// session is an authenticated peer connection.
type session struct {
	conn net.Conn
	r    *bufio.Reader
	peer Hello
	fp   string // the peer's certificate fingerprint
}

// handshakeParams are the inputs of one handshake.
type handshakeParams struct {
	role    string // "client" or "server"
	ownFP   string // our certificate's fingerprint
	local   Hello
	secrets [][]byte
	// expect is the peer name we dialled (client) or "" (server).
	expect string
	// known reports whether name is a configured peer (server side).
	known func(name string) bool
	// pinned returns the pinned fingerprint of a peer ("" when none).
	pinned func(ctx context.Context, name string) (string, error)
	// pin records a fingerprint after the first successful auth.
	pin func(ctx context.Context, name, fp string) error
}

// checkHello is our verdict on the other side's hello.
func checkHello(p *handshakeParams, h Hello) *HandshakeError {
	switch {
	case h.Instance != "" && h.Instance == p.local.Instance:
		return &HandshakeError{State: StateRefused, Msg: fmt.Sprintf("refused: connection to itself (same store instance %s); remove this node from its own [[mirror.peers]]", h.Instance)}
	case h.Node == p.local.Node:
		return &HandshakeError{State: StateRefused, Msg: fmt.Sprintf("refused: duplicate node name %q (the peer uses our node_name; node names must be unique)", h.Node)}
	case h.Version != p.local.Version:
		return &HandshakeError{State: StateVersionMismatch, Msg: fmt.Sprintf("version_mismatch (local %s, peer %s)", p.local.Version, h.Version)}
	case h.ProtoMax < protoMin || h.ProtoMin > protoMax:
		return &HandshakeError{State: StateVersionMismatch, Msg: fmt.Sprintf("version_mismatch (protocol: local %d-%d, peer %d-%d)", protoMin, protoMax, h.ProtoMin, h.ProtoMax)}
	case p.expect != "" && h.Node != p.expect:
		return &HandshakeError{State: StateRefused, Msg: fmt.Sprintf("refused: unknown peer: the node at this url says it is %q, configured as %q", h.Node, p.expect)}
	case p.known != nil && !p.known(h.Node):
		return &HandshakeError{State: StateRefused, Msg: fmt.Sprintf("refused: unknown peer %q (not in [[mirror.peers]] of %s)", h.Node, p.local.Node)}
	}
	return nil
}

// exchange writes our frame and reads the peer's of the same type.
func exchange(c net.Conn, r *bufio.Reader, typ byte, payload []byte) ([]byte, error) {
	if err := writeFrame(c, typ, payload); err != nil {
		return nil, err
	}
	f, err := readFrame(r, handshakeMaxFrame)
	if err != nil {
		return nil, err
	}
	if f.typ != typ {
		return nil, fmt.Errorf("mirror: protocol error: expected frame %q, got %q", typ, f.typ)
	}
	return f.payload, nil
}

// exchangeVerdicts sends ours and reads theirs; ours wins when both refuse.
func exchangeVerdicts(c net.Conn, r *bufio.Reader, ours *HandshakeError) error {
	v := verdict{OK: ours == nil}
	if ours != nil {
		v.Code, v.Message = ours.State, ours.Msg
	}
	b, _ := json.Marshal(v)
	p, err := exchange(c, r, frameVerdict, b)
	if ours != nil {
		return ours
	}
	if err != nil {
		return err
	}
	var theirs verdict
	if err := json.Unmarshal(p, &theirs); err != nil {
		return fmt.Errorf("mirror: bad verdict: %w", err)
	}
	if !theirs.OK {
		st := theirs.Code
		switch st {
		case StateUnauthorized, StateVersionMismatch, StateRefused:
		default:
			st = StateRefused
		}
		return &HandshakeError{State: st, Msg: theirs.Message, Remote: true}
	}
	return nil
}

// handshake runs hello, verdict, auth and pin check over a TLS connection
// (already dialled or accepted). On success it returns the session.
func handshake(ctx context.Context, conn *tls.Conn, p *handshakeParams) (*session, error) {
	deadline := time.Now().Add(30 * time.Second)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := conn.SetDeadline(deadline); err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	if err := conn.HandshakeContext(ctx); err != nil {
		return nil, fmt.Errorf("mirror: tls handshake: %w", err)
	}
	cs := conn.ConnectionState()
	if cs.Version != tls.VersionTLS13 {
		return nil, errors.New("mirror: TLS 1.3 required")
	}
	if len(cs.PeerCertificates) == 0 {
		return nil, errors.New("mirror: the peer sent no certificate")
	}
	peerFP := Fingerprint(cs.PeerCertificates[0].Raw)
	localFP := p.ownFP
	r := bufio.NewReaderSize(conn, 64<<10)

	hb, _ := json.Marshal(p.local)
	ph, err := exchange(conn, r, frameHello, hb)
	if err != nil {
		return nil, err
	}
	var peer Hello
	if err := json.Unmarshal(ph, &peer); err != nil {
		return nil, fmt.Errorf("mirror: bad hello: %w", err)
	}
	if err := exchangeVerdicts(conn, r, checkHello(p, peer)); err != nil {
		return &session{peer: peer}, err
	}

	exp, err := cs.ExportKeyingMaterial(exporterLabel, nil, 32)
	if err != nil {
		return nil, fmt.Errorf("mirror: tls exporter: %w", err)
	}
	clientFP, serverFP := localFP, peerFP
	otherRole := "server"
	if p.role == "server" {
		clientFP, serverFP = peerFP, localFP
		otherRole = "client"
	}
	mine := authMAC(p.secrets[0], exp, p.role, clientFP, serverFP)
	theirs, err := exchange(conn, r, frameAuth, mine)
	if err != nil {
		return &session{peer: peer}, err
	}
	var authErr *HandshakeError
	ok := false
	for _, s := range p.secrets {
		if hmac.Equal(theirs, authMAC(s, exp, otherRole, clientFP, serverFP)) {
			ok = true
			break
		}
	}
	if !ok {
		authErr = &HandshakeError{State: StateUnauthorized, Msg: fmt.Sprintf("unauthorized: %s did not prove the shared secret (check shared_secret_file on both nodes)", peer.Node)}
	} else {
		pinned, err := p.pinned(ctx, peer.Node)
		if err != nil {
			return nil, err
		}
		if pinned != "" && pinned != peerFP {
			authErr = &HandshakeError{State: StateRefused, Msg: fmt.Sprintf("refused: certificate of peer %s changed (pinned sha256 %s, now %s); if the peer was rebuilt on purpose run `mailarc peers repair %s` on %s", peer.Node, short(pinned), short(peerFP), peer.Node, p.local.Node)}
		}
	}
	if err := exchangeVerdicts(conn, r, authErr); err != nil {
		return &session{peer: peer}, err
	}
	if err := p.pin(ctx, peer.Node, peerFP); err != nil {
		return nil, err
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	return &session{conn: conn, r: r, peer: peer, fp: peerFP}, nil
}

func short(fp string) string {
	if len(fp) > 16 {
		return fp[:16]
	}
	return fp
}
