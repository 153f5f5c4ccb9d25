// Package pull imports journal mailboxes over IMAP and POP3 into the
// archive, exactly once, and deletes from the server only what is durably
// archived.
//
// A Manager runs one goroutine per enabled source owned by this node
// (owner empty or equal to the node name; sources owned elsewhere are only
// listed in Status as "not_owner") or naming this node as a standby. Each goroutine connects, authenticates
// (PLAIN/LOGIN with the password read from password_file, or XOAUTH2 with the
// access token read from token_file, both re-read at every connect), imports
// what is new and then either IDLEs (IMAP, one folder, server supports
// IDLE; renewed every 25 minutes with a poll) or disconnects and sleeps for
// `poll`. Failures back off exponentially (1s doubling to 5m, equal jitter)
// and never affect other sources. Plaintext (tls = "none") is refused unless
// the host is a loopback address or allow_insecure is set; TLS verifies the
// host name against the system roots or the source's ca_file.
//
// Connecting, the greeting, STARTTLS and login are bounded by
// Options.DialTimeout; after that every command must be answered within
// Options.CommandTimeout (POP3: a deadline per command; IMAP: watchdogConn,
// which re-arms a read deadline at every command and every byte read and
// is held off during IDLE and local work such as archiving).
//
// # Persisted state
//
// Positions live in the catalog's per-source key/value store (StateStore),
// under the source name:
//
//	imap.cursor.FOLDER  "UIDVALIDITY:UID"  every message with a UID <= UID is handled
//	imap.done.FOLDER    "7:9,12"           UIDs above the cursor already archived
//	imap.skip.FOLDER    "4"                UIDs skipped for good (too large, refused
//	                                        by the archive, or undeliverable 5 polls in a row)
//	pop3.uidls          "z1:" + base64(deflate(sorted UIDLs joined by "\n"))
//	                                        archived messages still on the server
//	pop3.skip           same encoding       messages skipped for good
//	lease.epoch         "3"                failover lease epoch (sources with standby)
//	lease.holder        "arc-b"            node holding that epoch
//
// UIDL sets are pruned to what the server still lists at every poll; the
// IMAP skip set is pruned to messages still present in delete mode.
//
// # Exactly once
//
// A message counts as handled only after Ingest returned, which happens
// only once it is durable; state is written after that (per batch of 100),
// so a crash at any point loses nothing and at worst fetches one batch
// again, which the archive deduplicates because ids are content hashes.
// IMAP fetches UIDs above the cursor in batches with BODY.PEEK[] (no \Seen
// change), streaming one message at a time into a buffer capped at the
// maximum message size; the cursor advances over the contiguous handled
// prefix of the UIDs present or archived (UIDs only grow, so nothing can
// appear below it; archived UIDs that delete mode removed do not hold it
// back). A UIDVALIDITY change resets the folder's state and rescans it from 1;
// rescanned messages come back as duplicates. "*" as a folder means every
// selectable folder except move_to. POP3 compares the server's UIDL list
// with the archived set and RETRs the rest (dot-unstuffed, size-capped).
//
// Oversize messages (above Options.MaxMessageSize, default 100 MiB) and
// messages the archive refuses permanently (empty) are skipped: counted as
// failed, shown in last_error, logged (without content) and left on the
// server even in delete mode, so the folder never blocks. A temporary
// archive error stops the poll; it is retried with backoff.
//
// # Delete mode
//
// mode = "delete" removes only messages whose archive is durable: IMAP
// marks exactly those UIDs \Deleted and removes them with UID EXPUNGE
// (UIDPLUS is required; a plain EXPUNGE could remove other clients' mail) or,
// with move_to, UID MOVEs them. Each poll first removes messages at or below
// the cursor (or in the done set) that an interrupted session left behind.
// POP3 sends DELE only for archived UIDLs and QUIT commits them after the
// state is saved; an interrupted session deletes nothing and the next one
// DELEs without fetching again. Skipped messages are never deleted.
//
// # Failover
//
// A source with standby nodes is polled by whoever holds its lease
// (epoch, holder); the owner holds epoch 0. Nodes exchange heartbeats over
// the mirror link (Manager.Heartbeat and ReceiveHeartbeat, wired by the
// server; every takeover_after/6, 100 ms to 10 s). A heartbeat is JSON:
//
//	{"node":"arc-a","sources":[{"name":"journal","epoch":3,"holder":"arc-a",
//	  "state":{"imap.cursor.INBOX":"1712345:4021", ...}}]}
//
// listing the sender's lease view per failover source and, for keep-mode
// sources the sender polls, its state keys other than lease.* (at most
// 256 KiB per source), which a non-polling receiver stores in place of its
// own. Delete-mode sources share no state: a standby then refetches what
// is still on the server and deletes only what it archived itself.
// Payloads above 4 MiB, 1024 sources or 4096 keys are refused.
//
// The lease state machine (lease.go): a higher epoch wins; at the same
// epoch the holder earlier in the order owner, standby... wins. A
// candidate takes the lease (epoch+1) when the holder and every candidate
// before it were silent for takeover_after; the holder hands it to an
// earlier candidate heard continuously for two heartbeat intervals. A new
// lease is persisted before it is acted on, and a node acts on a lease only
// after hearing every other candidate once since it started (or after
// takeover_after). Deletions (IMAP expunge/move, POP3 DELE and the QUIT
// that commits them) require that the node still holds the epoch the poll
// started under; learning a higher epoch held elsewhere cancels the poll.
package pull
