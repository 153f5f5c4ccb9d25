package export

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/source/file"
)

// fakeSource generates n messages on the fly; only ids are kept.
type fakeSource struct {
	ids  []string
	size int
	gen  func(i int) []byte
	// sample is called every 100 messages (memory probe).
	sample func()
}

func newFake(n, size int) *fakeSource {
	f := &fakeSource{size: size}
	f.gen = func(i int) []byte {
		var b bytes.Buffer
		fmt.Fprintf(&b, "From: sender%d@corp.example\r\nTo: r@corp.example\r\nSubject: message %d\r\nDate: Mon, 2 Mar 2020 10:00:00 +0000\r\n\r\n", i, i)
		b.WriteString("From the start of the body\r\n>From quoted already\r\n")
		line := strings.Repeat(fmt.Sprintf("line of message %d ", i), 4) + "\r\n"
		for b.Len() < size {
			b.WriteString(line)
		}
		return b.Bytes()
	}
	for i := range n {
		s := sha256.Sum256(f.gen(i))
		f.ids = append(f.ids, hex.EncodeToString(s[:]))
	}
	return f
}

func (f *fakeSource) Each(ctx context.Context, fn func(Meta) error) error {
	for i, id := range f.ids {
		if f.sample != nil && i%100 == 0 {
			f.sample()
		}
		if err := fn(Meta{ID: id, Date: time.Date(2020, 3, 2, 10, 0, i%60, 0, time.UTC), From: fmt.Sprintf("sender%d@corp.example", i), Subject: fmt.Sprintf("message %d, \"quoted\"\nnewline", i)}); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeSource) Raw(ctx context.Context, id string) ([]byte, error) {
	for i, x := range f.ids {
		if x == id {
			return f.gen(i), nil
		}
	}
	return nil, fmt.Errorf("no %s", id)
}

func checkManifest(t *testing.T, man []byte, f *fakeSource, sum string) {
	t.Helper()
	h := sha256.Sum256(man)
	if hex.EncodeToString(h[:]) != sum {
		t.Fatal("manifest hash in custody does not match the manifest")
	}
	rows, err := csv.NewReader(bytes.NewReader(man)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(f.ids)+1 || strings.Join(rows[0], ",") != "id,sha256,date,from,subject" {
		t.Fatalf("manifest has %d rows: %v", len(rows), rows[0])
	}
	for i, r := range rows[1:] {
		raw, _ := f.Raw(context.Background(), r[0])
		s := sha256.Sum256(raw)
		if r[0] != f.ids[i] || r[1] != hex.EncodeToString(s[:]) || strings.Contains(r[4], "\n") {
			t.Fatalf("manifest row %d: %v", i, r)
		}
	}
}

func TestZipRoundTrip(t *testing.T) {
	f := newFake(50, 3000)
	var buf bytes.Buffer
	c, err := WriteZip(context.Background(), &buf, f, Custody{User: "auditor", Node: "n1", Query: "from:x"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Count != 50 || c.User != "auditor" || c.Completed.IsZero() || c.Format != FormatZip {
		t.Fatalf("custody: %+v", c)
	}
	zr, err := zip.NewReader(bytes.NewReader(buf.Bytes()), int64(buf.Len()))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{}
	for _, zf := range zr.File {
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		files[zf.Name] = b
	}
	if len(files) != 52 {
		t.Fatalf("%d files", len(files))
	}
	for i, id := range f.ids {
		if !bytes.Equal(files["messages/"+id+".eml"], f.gen(i)) {
			t.Fatalf("message %d differs", i)
		}
	}
	var got Custody
	if err := json.Unmarshal(files["custody.json"], &got); err != nil || got.ManifestSHA256 != c.ManifestSHA256 || got.Count != 50 {
		t.Fatalf("custody.json: %v %+v", err, got)
	}
	checkManifest(t, files["manifest.csv"], f, got.ManifestSHA256)
}

func TestMboxRoundTrip(t *testing.T) {
	f := newFake(30, 2000)
	var mbox, man bytes.Buffer
	c, err := WriteMbox(context.Background(), &mbox, &man, f, Custody{User: "u"})
	if err != nil {
		t.Fatal(err)
	}
	checkManifest(t, man.Bytes(), f, c.ManifestSHA256)
	r := file.NewMboxReader(bytes.NewReader(mbox.Bytes()), 0)
	for i := range f.ids {
		got, err := r.Next()
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !bytes.Equal(got, f.gen(i)) {
			t.Fatalf("message %d differs:\n%q\n%q", i, got[:200], f.gen(i)[:200])
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("trailing data: %v", err)
	}
	// Manifest only: same rows, no bodies read.
	var m2 bytes.Buffer
	sum, n, err := WriteManifest(context.Background(), &m2, f)
	if err != nil || n != 30 || sum != c.ManifestSHA256 {
		t.Fatalf("manifest only: %v %d %s", err, n, sum)
	}
}

func TestHashMismatch(t *testing.T) {
	f := newFake(3, 500)
	f.ids[1] = strings.Repeat("0", 64)
	if _, err := WriteZip(context.Background(), io.Discard, f, Custody{}); err == nil {
		t.Fatal("a corrupt message was exported")
	}
}

// TestBoundedMemory exports 10,000 messages of 10 KB (100 MB) and checks the
// live heap never grows by more than a few MB.
func TestBoundedMemory(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("memory measurement: skipped with -short and under the race detector (slow and distorting)")
	}
	const n, size = 10000, 10 << 10
	f := newFake(n, size)
	// Raw by linear search would be quadratic: index the ids.
	pos := make(map[string]int, n)
	for i, id := range f.ids {
		pos[id] = i
	}
	src := &indexedFake{fakeSource: f, pos: pos}
	for _, format := range []Format{FormatZip, FormatMbox} {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		base := ms.HeapAlloc
		var peak uint64
		f.sample = func() {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
		var err error
		var c Custody
		cw := &countWriter{}
		if format == FormatZip {
			c, err = WriteZip(context.Background(), cw, src, Custody{})
		} else {
			c, err = WriteMbox(context.Background(), cw, io.Discard, src, Custody{})
		}
		if err != nil {
			t.Fatal(err)
		}
		if c.Count != n || c.Bytes < n*size {
			t.Fatalf("%s: custody %+v", format, c)
		}
		growth := int64(peak) - int64(base)
		t.Logf("%s: exported %d MB (%d MB written), live heap growth %.1f MB", format, c.Bytes>>20, cw.n>>20, float64(growth)/(1<<20))
		if growth > 16<<20 {
			t.Fatalf("%s: heap grew by %d MB exporting %d MB", format, growth>>20, c.Bytes>>20)
		}
	}
}

type indexedFake struct {
	*fakeSource
	pos map[string]int
}

func (f *indexedFake) Raw(ctx context.Context, id string) ([]byte, error) {
	return f.gen(f.pos[id]), nil
}

type countWriter struct{ n int64 }

func (w *countWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

func TestParseFormat(t *testing.T) {
	for s, want := range map[string]Format{"": FormatZip, "ZIP": FormatZip, "mbox": FormatMbox} {
		if f, err := ParseFormat(s); err != nil || f != want {
			t.Errorf("%q: %v %v", s, f, err)
		}
	}
	if _, err := ParseFormat("pst"); err == nil {
		t.Error("pst accepted")
	}
}
