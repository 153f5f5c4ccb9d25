// Package export writes eDiscovery exports of archived mail, streamed in
// constant memory: one message body at a time, whatever the export size.
//
// # Formats
//
// zip (Format "zip"): one archive with
//
//	messages/<id>.eml   every message, exactly its stored bytes (deflated)
//	manifest.csv        header "id,sha256,date,from,subject", one row per
//	                    message in export order; sha256 is computed from the
//	                    bytes written (it equals the id, which is the SHA-256
//	                    of the stored bytes); date is RFC 3339 UTC
//	custody.json        the chain-of-custody record (Custody), written last:
//	                    who, when, node, query or hold, count, bytes and the
//	                    SHA-256 of manifest.csv
//
// mbox (Format "mbox"): mboxrd. Each message is preceded by
// "From <id> <asctime date>\n", lines matching ^>*From  get one more '>', the
// stored bytes (CRLF line endings) are otherwise unchanged, and a blank line
// separates messages. The manifest and custody record cannot be part of an
// mbox without inventing a fake message, so they go to a sidecar:
// WriteMbox writes the manifest to a second writer (the CLI writes
// FILE.manifest.csv and FILE.custody.json next to FILE; the HTTP API sends
// the custody record in trailers and offers part=manifest).
//
// While writing the zip, the manifest is spooled to a temporary file (it is
// copied into the archive at the end and removed); it contains message
// subjects, so it is created with mode 0600.
package export

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"
	"time"
)

// Format is an export format.
type Format string

// Formats.
const (
	FormatMbox Format = "mbox"
	FormatZip  Format = "zip"
)

// ParseFormat validates a format name ("" means zip).
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(s) {
	case "", "zip":
		return FormatZip, nil
	case "mbox":
		return FormatMbox, nil
	}
	return "", fmt.Errorf("export format %q: want mbox or zip", s)
}

// Meta is the listing metadata of one exported message.
type Meta struct {
	ID      string
	Date    time.Time
	From    string
	Subject string
}

// Source yields the messages of an export.
type Source interface {
	// Each calls fn for every message, in export order. It must not hold
	// more than a page of messages in memory.
	Each(ctx context.Context, fn func(Meta) error) error
	// Raw returns a message's stored bytes.
	Raw(ctx context.Context, id string) ([]byte, error)
}

// Custody is the chain-of-custody record of one export.
type Custody struct {
	Tool           string    `json:"tool"`
	Version        string    `json:"version"`
	Node           string    `json:"node"`
	User           string    `json:"user"`
	Started        time.Time `json:"started"`
	Completed      time.Time `json:"completed"`
	Query          string    `json:"query"`
	Hold           string    `json:"hold,omitempty"`
	HoldName       string    `json:"hold_name,omitempty"`
	Format         Format    `json:"format"`
	Count          int64     `json:"count"`
	Bytes          int64     `json:"bytes"`
	Manifest       string    `json:"manifest"`
	ManifestSHA256 string    `json:"manifest_sha256"`
}

// ErrHashMismatch is returned when a message's bytes do not hash to its id.
var ErrHashMismatch = errors.New("export: message bytes do not match their id")

// manifest writes CSV rows and hashes everything written.
type manifest struct {
	h   hash.Hash
	csv *csv.Writer
	n   int64
}

func newManifest(w io.Writer) (*manifest, error) {
	m := &manifest{h: sha256.New()}
	m.csv = csv.NewWriter(io.MultiWriter(w, m.h))
	if err := m.csv.Write([]string{"id", "sha256", "date", "from", "subject"}); err != nil {
		return nil, fmt.Errorf("export: manifest: %w", err)
	}
	return m, nil
}

func (m *manifest) row(meta Meta, sum string) error {
	m.n++
	if err := m.csv.Write([]string{meta.ID, sum, meta.Date.UTC().Format(time.RFC3339), oneLine(meta.From), oneLine(meta.Subject)}); err != nil {
		return fmt.Errorf("export: manifest: %w", err)
	}
	return nil
}

func (m *manifest) finish() (string, error) {
	m.csv.Flush()
	if err := m.csv.Error(); err != nil {
		return "", fmt.Errorf("export: manifest: %w", err)
	}
	return hex.EncodeToString(m.h.Sum(nil)), nil
}

// oneLine keeps header values on one manifest line.
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return ' '
		}
		return r
	}, s)
}

// each walks src, loading and checking every message's bytes.
func each(ctx context.Context, src Source, fn func(Meta, []byte, string) error) error {
	return src.Each(ctx, func(m Meta) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		raw, err := src.Raw(ctx, m.ID)
		if err != nil {
			return fmt.Errorf("export: read %s: %w", m.ID, err)
		}
		sum := sha256.Sum256(raw)
		hs := hex.EncodeToString(sum[:])
		if hs != m.ID {
			return fmt.Errorf("%w: %s hashes to %s", ErrHashMismatch, m.ID, hs)
		}
		return fn(m, raw, hs)
	})
}

// WriteZip streams a zip export of src to w and returns the completed
// custody record (which is also the archive's custody.json). c carries
// who, node, query and hold; the rest is filled in.
func WriteZip(ctx context.Context, w io.Writer, src Source, c Custody) (Custody, error) {
	c = start(c, FormatZip, "manifest.csv")
	spool, err := os.CreateTemp("", "mailarc-manifest-*.csv")
	if err != nil {
		return c, fmt.Errorf("export: manifest spool: %w", err)
	}
	defer func() {
		spool.Close()
		os.Remove(spool.Name())
	}()
	bw := bufio.NewWriter(spool)
	man, err := newManifest(bw)
	if err != nil {
		return c, err
	}
	zw := zip.NewWriter(w)
	err = each(ctx, src, func(m Meta, raw []byte, sum string) error {
		fw, err := zw.CreateHeader(&zip.FileHeader{Name: "messages/" + m.ID + ".eml", Method: zip.Deflate, Modified: m.Date.UTC()})
		if err != nil {
			return fmt.Errorf("export: zip: %w", err)
		}
		if _, err := fw.Write(raw); err != nil {
			return fmt.Errorf("export: zip: %w", err)
		}
		c.Bytes += int64(len(raw))
		return man.row(m, sum)
	})
	if err != nil {
		return c, err
	}
	if c.ManifestSHA256, err = man.finish(); err != nil {
		return c, err
	}
	c.Count = man.n
	if err := bw.Flush(); err != nil {
		return c, fmt.Errorf("export: manifest spool: %w", err)
	}
	if _, err := spool.Seek(0, io.SeekStart); err != nil {
		return c, fmt.Errorf("export: manifest spool: %w", err)
	}
	fw, err := zw.CreateHeader(&zip.FileHeader{Name: "manifest.csv", Method: zip.Deflate, Modified: time.Now().UTC()})
	if err != nil {
		return c, fmt.Errorf("export: zip: %w", err)
	}
	if _, err := io.Copy(fw, spool); err != nil {
		return c, fmt.Errorf("export: zip manifest: %w", err)
	}
	c.Completed = time.Now().UTC()
	fw, err = zw.CreateHeader(&zip.FileHeader{Name: "custody.json", Method: zip.Deflate, Modified: c.Completed})
	if err != nil {
		return c, fmt.Errorf("export: zip: %w", err)
	}
	enc := json.NewEncoder(fw)
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil {
		return c, fmt.Errorf("export: custody: %w", err)
	}
	if err := zw.Close(); err != nil {
		return c, fmt.Errorf("export: zip: %w", err)
	}
	return c, nil
}

// WriteMbox streams an mboxrd export of src to w and its manifest to
// manifestW (io.Discard to only hash it), and returns the completed
// custody record.
func WriteMbox(ctx context.Context, w, manifestW io.Writer, src Source, c Custody) (Custody, error) {
	c = start(c, FormatMbox, "manifest.csv")
	bw := bufio.NewWriterSize(w, 64<<10)
	man, err := newManifest(manifestW)
	if err != nil {
		return c, err
	}
	err = each(ctx, src, func(m Meta, raw []byte, sum string) error {
		if _, err := fmt.Fprintf(bw, "From %s %s\n", m.ID, m.Date.UTC().Format(time.ANSIC)); err != nil {
			return fmt.Errorf("export: mbox: %w", err)
		}
		if err := writeQuoted(bw, raw); err != nil {
			return fmt.Errorf("export: mbox: %w", err)
		}
		c.Bytes += int64(len(raw))
		return man.row(m, sum)
	})
	if err != nil {
		return c, err
	}
	if err := bw.Flush(); err != nil {
		return c, fmt.Errorf("export: mbox: %w", err)
	}
	if c.ManifestSHA256, err = man.finish(); err != nil {
		return c, err
	}
	c.Count = man.n
	c.Completed = time.Now().UTC()
	return c, nil
}

// WriteManifest writes only the manifest of src (no bodies are read; the
// sha256 column is the id, which is the SHA-256 of the stored bytes) and
// returns its hash and row count.
func WriteManifest(ctx context.Context, w io.Writer, src Source) (sum string, n int64, err error) {
	man, err := newManifest(w)
	if err != nil {
		return "", 0, err
	}
	if err := src.Each(ctx, func(m Meta) error { return man.row(m, m.ID) }); err != nil {
		return "", 0, err
	}
	sum, err = man.finish()
	return sum, man.n, err
}

func start(c Custody, f Format, manifestName string) Custody {
	if c.Tool == "" {
		c.Tool = "mailarc"
	}
	c.Format = f
	c.Manifest = manifestName
	if c.Started.IsZero() {
		c.Started = time.Now().UTC()
	}
	return c
}

// writeQuoted writes raw with mboxrd quoting and the message separator: a
// final line break if missing, then one blank line.
func writeQuoted(w *bufio.Writer, raw []byte) error {
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line = raw[:i+1]
		}
		raw = raw[len(line):]
		if isFromLine(line) {
			if err := w.WriteByte('>'); err != nil {
				return err
			}
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		if len(raw) == 0 && line[len(line)-1] != '\n' {
			if _, err := w.WriteString("\n"); err != nil {
				return err
			}
		}
	}
	_, err := w.WriteString("\n")
	return err
}

// isFromLine reports whether line matches ^>*From .
func isFromLine(line []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(line, ">"), []byte("From "))
}
