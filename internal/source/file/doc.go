// Package file reads messages out of files and directories for
// `mailarc import PATH...`: single messages (.eml or any regular file that is
// not an mbox), directories walked recursively, maildir folders, mbox files,
// and gzip or zstd compressed variants of all of them. It yields raw message
// bytes only; parsing, identity and storage are the archive's business.
//
// # What is read
//
// Walk visits the given paths in the order given. Directories are walked
// recursively in lexical (byte-wise) name order, descending into a
// subdirectory when its name comes up, so the order is deterministic.
// Each regular file is one of:
//
//   - compressed: a file that starts with the gzip magic (1f 8b) or the zstd
//     frame magic (28 b5 2f fd) is decompressed first, whatever its name; a
//     file named *.gz or *.zst without that magic is reported as a failure
//     ("bad compression"). Compressed maildir files (Dovecot's zlib plugin)
//     are therefore read too.
//   - an mbox: after decompression, the content starts with "From " (leading
//     blank lines allowed). Each message is reported as "PATH#N", N counting
//     messages from 1.
//   - otherwise a single message, yielded byte for byte as stored.
//
// A directory containing both cur/ and new/ subdirectories is a maildir: the
// files in cur/ and new/ are single messages (never mbox-detected, since
// maildir bodies are not From-quoted), tmp/ is skipped (deliveries in
// progress), and subfolders (Maildir++ ".Foo" folders and Dovecot LAYOUT=fs
// folders) are walked as maildirs of their own. In directory walks, hidden
// files (".DS_Store", ".uidvalidity", ...), "*.lock", "*.msf" (Thunderbird
// indexes), "dovecot*" files, "Thumbs.db" and "desktop.ini" are skipped, and
// so are "maildirfolder", "maildirsize", "subscriptions" and "courier*" at a
// maildir's root. Hidden directories are walked only when they are maildirs.
// Symbolic links to files are followed; symbolic links to directories are not
// (that rules out cycles). A path named explicitly on the command line is
// always read, hidden or not. An empty file is a failure ("empty message").
//
// # mbox format
//
// An mbox is a sequence of messages, each introduced by a separator line that
// starts with "From " (the envelope sender and date, which are discarded).
// The reader accepts the common flavours:
//
//   - mboxrd and mboxo: body lines that would look like a separator are quoted
//     by the writer with '>'. Every line matching ^>+From loses one '>' on
//     reading. For mboxrd that is exact. For mboxo (which quotes "From " but
//     not ">From ") it is the usual convention, the same one Python's mailbox
//     module and most importers use: a body line that genuinely began with
//     ">From " comes back as "From ". The alternative (not unquoting) would
//     leave every quoted "From " line quoted, which is far more common.
//   - mboxcl / mboxcl2: a "Content-Length:" header (the first one in the
//     message header) gives the byte length of the body. It is honoured only
//     when plausible: the counted bytes must end where a line ends and be
//     followed by a "From " line, by EOF, or by one blank line and then a
//     "From " line or EOF. Otherwise, or when the header plus the announced
//     body would exceed the size limit, the message is split on "From " lines
//     as usual, so a wrong Content-Length never loses mail. When an honoured
//     body contains an unquoted "From " line, the mailbox is mboxcl2 (which
//     does not quote) and that message is not unquoted.
//
// Any line starting with "From " ends the current message (outside an
// honoured Content-Length body); the line before it, when blank ("\n" or
// "\r\n"), is the separator the writer added and is removed, as is a blank
// last line at end of file. Nothing else is changed: line endings are kept
// as stored (the archive normalises bare LF to CRLF), so CRLF mailboxes and a
// final line without a newline come back as they are. Text before the first
// "From " line (other than blank lines) is returned as a message of its own.
//
// # Limits
//
// Files are streamed: memory per message is bounded by the size limit
// (Options.MaxMessageSize, default 100 MiB) plus a 64 KiB read buffer, and a
// multi-gigabyte mbox is never loaded whole. A message over the limit is
// reported as a failed Item wrapping ErrTooLarge and skipped without being
// buffered; reading continues with the next message. (An oversize message is
// skipped by splitting on "From " lines, since the bytes needed to check its
// Content-Length are not kept.) zstd streams may use windows of at most
// 128 MiB. A decompression or read error ends that file after reporting it as
// a failed item; the messages read before it stand.
//
// The mbox reader is hand-written rather than taken from
// github.com/emersion/go-mbox because that reader neither bounds the size of a
// line or message nor understands Content-Length.
package file
