// Package message parses email leniently: RFC 5322 headers, MIME structure
// (RFC 2045-2049), encoded words (RFC 2047), parameter continuations and
// charsets (RFC 2231), and Exchange / Microsoft 365 envelope journal reports
// ([MS-OXJRNL]).
//
// It is a pure package: no I/O, no storage, no package-level mutable state.
// An archiver must never refuse or lose a message because it is malformed, so
// nothing here fails: Parse always returns a usable *Parsed and records what it
// could not understand in Parsed.Problems (short notes that never quote body
// text). Every parser in the package is fuzzed and bounded: MIME nesting depth,
// number of parts and decoded text size are capped (see Options), and all work
// is linear in the input size times the (capped) nesting depth.
//
// Message identity: Normalize turns bare LF line endings into CRLF, and ID is
// the lowercase hex SHA-256 of the normalised bytes (DESIGN §3).
//
// Implementation notes. The MIME tree is split directly on the in-memory
// message bytes (sub-slices, no copies) instead of with go-message's streaming
// multipart reader, because that reader aborts a whole multipart on the first
// malformed part header or stray line, which would drop content. Charset
// decoding uses golang.org/x/text through github.com/emersion/go-message/charset
// plus an alias table for the names seen in real mail (ks_c_5601-1987, gb2312,
// x-sjis, unicode-1-1-utf-7, ...); unknown charsets fall back to UTF-8 when the
// bytes are valid UTF-8 and to windows-1252 otherwise. Address lists go through
// net/mail (as go-message's mail package does) and fall back to a tolerant
// splitter; the common plain-ASCII shapes take a fast path whose results are
// net/mail's (fuzz-checked). Attachments are sized, not decoded, at ingest;
// well-formed base64 is sized by counting.
package message
