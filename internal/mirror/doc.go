// Package mirror copies every message archived on this node to its peers
// and receives theirs (DESIGN §6: hello, auth, push, receive,
// anti-entropy, purge safety, policy drift, account replication).
//
// # Outbox
//
// There is no separate queue: the outbox for a peer is the catalog's change
// feed after that peer's cursor (catalog table peer_cursors). Each peer has
// two lanes, each its own TLS connection:
//
//   - the backlog lane reads the feed after the durable cursor in batches
//     (default 200), pushes them and advances the cursor over the
//     contiguous prefix of finished items (stored, have, purged, parked,
//     or not pushable), persisting it after every batch;
//   - the live lane, while the backlog lane is busy, pushes freshly
//     committed mail right away. It never moves the cursor; when the
//     backlog lane reaches the same messages the peer answers "have".
//
// Messages whose origins are all peers ("peer:NAME") are not pushed on:
// origins push to everyone (anti-entropy covers the rest).
// Queued in status counts pushable messages after the cursor.
//
// # Wire protocol (version 1)
//
// One TLS 1.3 connection per lane; both sides present their node's
// self-signed ECDSA certificate (data_dir/tls/mirror-cert.pem and
// mirror-key.pem, generated on first start, key mode 0600). Certificates
// are not verified against a CA: the peer's certificate fingerprint
// (SHA-256 of its DER) is pinned after the first successful authentication
// (catalog table mirror_pins) and a different one is refused until an
// admin runs `mailarc peers repair NAME`.
//
// Everything is framed: a type byte, the payload length as a uvarint, the
// payload. Before authentication frames are capped at 64 KiB; after it at
// max_message_size plus a small margin.
//
//	H  hello (JSON): proto_min, proto_max, version, node, cluster, instance,
//	   head, lane, max_message_size, boot, hello_seq. Both sides send one,
//	   then each sends a verdict. boot identifies the sending process and
//	   hello_seq numbers its hellos in the order they read head, so a hello
//	   noted after a later one of the same process is ignored as stale.
//	V  verdict (JSON): {"ok":true} or {"ok":false,"code":STATE,"message":...}.
//	   A hello is refused for another release (version_mismatch (local X,
//	   peer Y)), a connection to itself (same store instance), a duplicate
//	   node name, a node not in [[mirror.peers]] (server side) or a node
//	   answering under another name than the one dialled (client side).
//	A  auth proof: HMAC-SHA256(secret, "mailarc-peer-auth-v1\0" || role ||
//	   "\0" || exporter || client fingerprint || server fingerprint), role
//	   being the prover's ("client" or "server") and exporter the 32-byte
//	   TLS exporter "EXPORTER-mailarc-peer-auth". Each side proves with the
//	   first secret of shared_secret_file and accepts any. The exporter is
//	   unique per TLS session (no replay) and a proxy terminating TLS sees
//	   other exporters and fingerprints (no man in the middle). A second
//	   verdict follows: unauthorized, or refused for a changed certificate.
//	L  lack query: n raw 32-byte ids.  l  answer: n bytes, 0 have, 1 need,
//	   2 purged (tombstoned on the receiver).
//	P  put: raw id (32), uvarint length and JSON metadata (origins,
//	   mail_from, rcpt_to, arrival), then the zstd-compressed message.
//	R  result: raw id (32), one byte (s stored, h have, p purged,
//	   x rejected, r retry), optional reason text.
//	N / n  ping / pong on idle links.
//	D  digest request: JSON {"keys":[bucket keys]}.  d  answer: JSON
//	   [{"k","n","x"}] with the digests of every child of those buckets.
//	I  ids request: JSON {"keys":[leaf keys]}.  i  answer: n raw ids.
//	G  get: n raw ids; answered by one P (the message) or R (purged,
//	   rejected, retry) per id, in order.
//	T  n raw ids tombstoned on the sender.  t  empty acknowledgement.
//	U  the sender's user records (JSON, see auth).  u  the answerer's.
//	S  source-failover heartbeat (opaque, encoded by package pull; at most
//	   8 MiB).  s  the answering node's heartbeat (empty when it has no
//	   failover sources).
//
// The hello also carries policy and policy_summary: a digest of the
// node's retention policies and active holds (policy drift).
//
// # Anti-entropy
//
// A third lane per peer ("ae", its own connection) runs anti-entropy
// passes: on first contact, when the peer lost history (all three also
// reset the peer's push cursor and what we believed it holds: its hello
// shows another store instance id, or a lower feed head than the last
// non-stale hello, or, checked with a lack query whenever the backlog lane
// connects, it lacks the newest message it acknowledged), every
// Config.AntiEntropyInterval (default 24 h) and on demand (RequestSync).
// It also reconnects every ProbeInterval (5 min) and on account changes to
// exchange user records and refresh the peer's hello.
//
// A pass compares two trees of buckets (digest.go): held ids bucketed by
// message date (32-day period, day, day + first hex digit) and tombstoned
// ids bucketed by id prefix (1 and 2 hex digits). A bucket's digest is its
// count and the XOR of its raw ids. Each side leaves out of its held-id
// digests the ids it knows the other purged, and adds them to its
// tombstone digests, so both converge. The client compares top-level
// buckets and descends only into those that differ; at the leaves it
// exchanges id lists: held ids the peer lacks are pushed (lack query and
// puts, including mail that reached us from other peers), ids we lack are
// fetched with G and ingested through receive (origin peer:NAME), peer
// tombstones are recorded, our tombstones are sent with T.
//
// # Anti-entropy tables (catalog component "mirror", migration 2)
//
//	mirror_ae(peer, instance, head, wanted, pass_started, pass_head,
//	          pass_reason, total, verified, last_complete, confirmed_head,
//	          pulled, pushed, passes, last_error)
//	    per-peer pass state: the peer's last seen instance and head, a
//	    requested pass (wanted), the pass in progress, and confirmed_head:
//	    every message with seq <= it is on the peer (a completed pass that
//	    started at that head).
//	mirror_ae_done(peer, bucket)    top-level buckets verified in the
//	                                current pass (resume after a crash)
//	mirror_peer_tombs(peer, id)     ids the peer purged
//
// # Source failover
//
// When Config.Leases is set (some [[sources]] name standby nodes), a fourth
// lane per peer ("src", its own connection) sends an S frame every
// Config.LeaseInterval and hands the peer's s answer to Config.Leases; an
// incoming S is handed over likewise and answered with our heartbeat. A
// failed link is redialled after one interval, and at once when the peer
// connects its own src lane.
//
// # Purge safety
//
// PeersHave tells governance which ids every peer has acknowledged
// (cursor past a pushable, unparked message; seq <= confirmed_head; origin
// peer:NAME; or purged by the peer); the others are not purged yet.
//
// The receiver decompresses (capped), checks SHA-256(data) == id (a
// mismatch is rejected and nothing is stored) and ingests through
// archive.Ingest with origin peer:SENDER and the sender's envelope, so the
// copy is deduplicated, group-committed and indexed like any other mail;
// it answers stored only once the archive reports the message durable.
// Results are per item and may come in any order. A rejected item is
// parked (catalog table mirror_parked) and never blocks the rest; so is a
// message larger than the max_message_size the peer announced in its
// hello, without being sent (anti-entropy answers a get of one rejected).
//
// # Retry
//
// Network errors back off exponentially with full jitter (250 ms doubling,
// capped at 60 s); refusals (unauthorized, version_mismatch, refused) retry
// every 60 s and show on status. A connection from a peer cuts any wait
// short, so a restarted peer drains at once. Nothing is ever dropped.
//
// # Failpoints (tests only)
//
// Config.Failpoint is called at "mirror-before-push" (after the lack
// answer, before any put), "mirror-after-push-before-cursor" (results read,
// cursor not yet persisted) and "mirror-after-store-before-answer" (on the
// receiver). The server wires it to the MAILARC_FAILPOINT environment
// variable, exiting the process with status 137 at the named point.
package mirror
