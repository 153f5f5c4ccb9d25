package archive_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/message"
)

// bigMessage returns a multipart message carrying size random bytes as a
// base64 attachment in 76-character CRLF lines (for 50 MiB, about 68 MiB).
func bigMessage(size int) []byte {
	data := make([]byte, size)
	var seed [32]byte
	rand.NewChaCha8(seed).Read(data)
	const head = "From: Big Sender <big@example.com>\r\nTo: archive@example.com\r\nSubject: the big one\r\n" +
		"Date: Mon, 2 Mar 2020 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"=_big\"\r\n\r\n" +
		"--=_big\r\nContent-Type: text/plain\r\n\r\nsee the attachment\r\n--=_big\r\n" +
		"Content-Type: application/octet-stream; name=big.bin\r\nContent-Disposition: attachment; filename=big.bin\r\n" +
		"Content-Transfer-Encoding: base64\r\n\r\n"
	const tail = "--=_big--\r\n"
	encLen := base64.StdEncoding.EncodedLen(size)
	var b bytes.Buffer
	b.Grow(len(head) + encLen + 2*(encLen/76+1) + len(tail))
	b.WriteString(head)
	line := make([]byte, 76)
	for len(data) > 0 {
		n := min(57, len(data)) // 57 bytes encode to 76 characters
		base64.StdEncoding.Encode(line, data[:n])
		b.Write(line[:base64.StdEncoding.EncodedLen(n)])
		b.WriteString("\r\n")
		data = data[n:]
	}
	b.WriteString(tail)
	return b.Bytes()
}

// TestIngestLargeAttachment: a ~68 MB message (a 50 MiB attachment, base64)
// is archived, comes back byte-exact, has its attachment listed with the
// decoded size, and parsing it stays bounded.
func TestIngestLargeAttachment(t *testing.T) {
	if testing.Short() {
		t.Skip("a 68 MB message in -short mode")
	}
	size := 50 << 20
	bound := 60 * time.Second
	if raceEnabled {
		size = 5 << 20 // the race detector makes 50 MB take minutes
	}
	raw := bigMessage(size)
	if !raceEnabled && (len(raw) < 67<<20 || len(raw) > 70<<20) {
		t.Fatalf("test message is %d bytes, want about 68 MiB", len(raw))
	}
	f := open(t, t.TempDir(), archive.Options{})
	ctx := context.Background()

	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	r, err := f.a.Ingest(ctx, raw, archive.Origin{Source: "import"})
	took := time.Since(start)
	if err != nil {
		t.Fatalf("ingest of a %d-byte message: %v", len(raw), err)
	}
	if took > bound {
		t.Errorf("ingest of a %d-byte message took %v (bound %v)", len(raw), took, bound)
	}
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("ingest of %d bytes: %v, %d MiB allocated", len(raw), took, (after.TotalAlloc-before.TotalAlloc)>>20)
	if r.ID != sha(raw) || r.Duplicate {
		t.Fatalf("result %+v, want new id %s", r, sha(raw))
	}

	m, err := f.a.Get(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if m.Size != int64(len(raw)) || m.Subject != "the big one" || len(m.Attachments) != 1 ||
		m.Attachments[0].Filename != "big.bin" || m.Attachments[0].Size != int64(size) {
		t.Errorf("catalog record: size %d, subject %q, attachments %+v", m.Size, m.Subject, m.Attachments)
	}

	got, err := f.a.Raw(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, raw) {
		t.Fatalf("raw read back differs (%d bytes, want %d)", len(got), len(raw))
	}

	// The indexer's full parse (text decoded, attachment measured) is bounded too.
	start = time.Now()
	p := message.Parse(raw, message.Options{})
	if d := time.Since(start); d > bound {
		t.Errorf("full parse took %v (bound %v)", d, bound)
	}
	if len(p.Attachments) != 1 || p.Attachments[0].Size != int64(size) || p.Text != "see the attachment" {
		t.Errorf("parse: %d attachments, text %q", len(p.Attachments), p.Text)
	}

	rep, err := f.a.Verify(ctx, nil)
	if err != nil || rep.Blobs != 1 || len(rep.Problems) != 0 {
		t.Errorf("verify: %+v %v", rep, err)
	}
}
