// Package smtp is mailarc's SMTP and LMTP push source: journaling MTAs
// (Exchange journal rules, Postfix always_bcc/recipient_bcc, an LMTP
// delivery from Dovecot or Postfix) deliver here and every message is
// handed to the archive's Ingest call.
//
// The wire protocol is github.com/emersion/go-smtp's; this package is only a
// Backend/Session adapter onto Ingester.Ingest, plus connection admission
// (allowed networks, connection cap), graceful shutdown, AUTH and metrics.
// Offered extensions: PIPELINING, 8BITMIME, SMTPUTF8, CHUNKING (BDAT),
// BINARYMIME, SIZE, ENHANCEDSTATUSCODES, STARTTLS (with a TLS config) and
// AUTH PLAIN/LOGIN (with users configured).
//
// # Never lose
//
// A message is acknowledged with 250 only after Ingest returned, i.e. after
// it is durable (the archive group-commits across connections, so sessions
// call Ingest concurrently). Anything not kept gets a 4xx or 5xx reply and
// nothing is ingested for a refused or interrupted transfer. Ingest gets
// exactly the dot-unstuffed DATA (or the concatenated BDAT chunks): no
// Received header is added, and bare LF, lone CR and NUL bytes are handed
// on unchanged. The archive then stores them as DESIGN §3 says: bare LF
// normalised to CRLF (the id is the SHA-256 of the normalised bytes), lone
// CR and NUL bytes kept. Message data is read with a size limit and never
// buffered beyond MaxMessageSize.
//
// The envelope is passed in archive.Origin: Source "smtp" or "lmtp",
// MailFrom, every accepted RCPT TO, plus the addresses of the message's
// X-Original-To and Delivered-To header fields (only the first 256 KiB of
// the header block is looked at).
//
// # Replies
//
//	code  enhanced  when
//	220             greeting; 220 2.0.0 before STARTTLS handshake
//	250   2.0.0     MAIL/RCPT accepted; after DATA/BDAT "Ok: archived <id>"
//	                once Ingest returned (LMTP: one such line per recipient)
//	235   2.0.0     AUTH succeeded
//	421   4.3.2     shutting down (new connection, MAIL, DATA, or
//	                archive.ErrShuttingDown); the connection is then closed
//	421   4.7.0     max_connections reached, at connect, then closed
//	421   4.4.2     command or data timeout, then closed
//	421   4.4.0     connection error during the data transfer
//	451   4.3.0     Ingest failed temporarily (archive.ErrUnavailable or any
//	                error that is not one of the permanent ones below)
//	452   4.3.1     Ingest failed with an error wrapping ENOSPC (disk full)
//	                or archive.ErrLowSpace (free space below min_free_space)
//	452   4.5.3     more than max_recipients RCPT TO
//	538   5.7.11    AUTH before STARTTLS when require_tls is set
//	530   5.7.0     MAIL before AUTH when auth_required is set
//	535   5.7.8     AUTH with wrong credentials
//	550   5.1.1     RCPT TO not in the accepted recipients
//	552   5.3.4     SIZE= above max_message_size at MAIL FROM, data beyond
//	                it while streaming, a line over max_line_length, or
//	                archive.ErrTooLarge
//	554   5.6.0     empty message or archive.ErrEmpty
//	554   5.7.1     client not in allowed_networks, at connect, then closed
//
// Other 5xx syntax and sequencing replies come from go-smtp unchanged.
//
// # Limits
//
// Commands wait at most CommandTimeout; during DATA/BDAT each read of up
// to 32 KiB waits at most DataTimeout. A message is held in memory while it
// is ingested (Ingest takes a byte slice), so peak memory is bounded by
// MaxConnections × MaxMessageSize.
//
// A message of exactly MaxMessageSize bytes (after dot-unstuffing) is
// accepted with DATA and with BDAT, one byte more is refused (552). Upstream
// go-smtp refused such a DATA message; mailarc's fork fixes that
// (third_party/go-smtp/MAILARC.md).
//
// # Metrics
//
// mailarc_smtp_connections_total, mailarc_smtp_connections_active,
// mailarc_smtp_connections_refused_total{reason},
// mailarc_smtp_messages_accepted_total,
// mailarc_smtp_messages_refused_total{reason}, mailarc_smtp_bytes_total and
// the mailarc_smtp_accept_seconds histogram (end of data to reply).
package smtp
