package archive

import (
	"errors"
	"time"

	"github.com/mailarc/mailarc/internal/catalog"
)

// Origin describes where a message came from and the envelope it arrived
// with. Everything in it is metadata that is merged by union when the same
// bytes arrive again.
type Origin struct {
	// Source names the ingest path: "api", "import", "smtp", "lmtp",
	// "imap:NAME", "pop3:NAME" or "peer:NAME".
	Source string
	// MailFrom is the SMTP envelope sender, if any.
	MailFrom string
	// RcptTo are the envelope recipients (SMTP RCPT TO, X-Original-To,
	// Delivered-To, journal report recipients), if any.
	RcptTo []string
	// Arrival is when the message reached us; zero means now.
	Arrival time.Time
}

// Result is the outcome of a successful Ingest.
type Result struct {
	// ID is the lowercase hex SHA-256 of the stored (normalised) bytes.
	ID string
	// Duplicate is true when the bytes were already archived; nothing new
	// was stored, only metadata was merged.
	Duplicate bool
	// Seq is the message's change-feed sequence number.
	Seq int64
	// Purged is true when the id was purged by retention earlier: nothing
	// was stored (a tombstone stops resurrection), and the sender may treat
	// the message as handled.
	Purged bool
}

// Errors returned by Ingest. Callers map them to protocol replies: ErrEmpty
// and ErrTooLarge are permanent refusals (SMTP 5xx, HTTP 400/413); ErrShuttingDown
// and ErrUnavailable are temporary (SMTP 4xx, HTTP 503) so the sender retries.
var (
	ErrEmpty        = errors.New("archive: empty message")
	ErrTooLarge     = errors.New("archive: message exceeds the size limit")
	ErrShuttingDown = errors.New("archive: shutting down")
	ErrUnavailable  = errors.New("archive: temporarily unavailable")
	ErrNotFound     = errors.New("archive: message not found")
)

// Catalog records, re-exported so that the adapters around the core (the
// mirror, the HTTP layer) reach catalog data through archive without
// importing the catalog package (DESIGN §4).
type (
	// Message is a message's catalog record.
	Message = catalog.Message
	// Attachment is listing metadata of one attachment.
	Attachment = catalog.Attachment
	// Catalog is the metadata database, for adapters that keep their own
	// tables in it (the mirror's cursors and anti-entropy state).
	Catalog = catalog.Catalog
)

// ErrCatalogNotFound is the catalog's not-found error.
var ErrCatalogNotFound = catalog.ErrNotFound
