package extract

import (
	"archive/zip"
	"bytes"
	"compress/flate"
	"compress/gzip"
	"context"
	"errors"
	"hash/crc32"
	"strings"
	"testing"
	"time"
)

// bombZip returns a zip whose members each inflate to memberSize zero bytes.
// The deflate stream is computed once and stored n times with CreateRaw, so
// building a multi-GiB bomb costs one compression. With lie set, the headers
// claim each member is 1 KiB.
func bombZip(tb testing.TB, n int, memberSize int64, lie bool) []byte {
	tb.Helper()
	var comp bytes.Buffer
	fw, err := flate.NewWriter(&comp, flate.BestCompression)
	if err != nil {
		tb.Fatal(err)
	}
	zeros := make([]byte, 1<<20)
	crc := crc32.NewIEEE()
	for written := int64(0); written < memberSize; written += int64(len(zeros)) {
		if _, err := fw.Write(zeros); err != nil {
			tb.Fatal(err)
		}
		crc.Write(zeros)
	}
	if err := fw.Close(); err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i < n; i++ {
		h := &zip.FileHeader{
			Name:               "zeros" + string(rune('a'+i%26)) + ".txt",
			Method:             zip.Deflate,
			CRC32:              crc.Sum32(),
			CompressedSize64:   uint64(comp.Len()),
			UncompressedSize64: uint64(memberSize),
		}
		if lie {
			h.UncompressedSize64 = 1024
		}
		w, err := zw.CreateRaw(h)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := w.Write(comp.Bytes()); err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

func TestZipBomb(t *testing.T) {
	t.Parallel()
	// 40 members x 64 MiB = 2.5 GiB in a zip of 2.6 MiB.
	honest := bombZip(t, 40, 64<<20, false)
	lying := bombZip(t, 40, 64<<20, true)
	// Members small enough for MaxInput, to reach the streaming budget.
	mid := bombZip(t, 10, 20<<20, false)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zeros := make([]byte, 1<<20)
	for i := 0; i < 64; i++ {
		if _, err := zw.Write(zeros); err != nil {
			t.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		data []byte
		lim  Limits
		want error
	}{
		// The headers already show the ratio: refused without inflating.
		{"bomb.zip", honest, Limits{}, ErrLimit},
		// Headers that understate the size: archive/zip stops at the
		// declared size, so nothing big is ever read.
		{"liar.zip", lying, Limits{}, ErrCorrupt},
		// The total budget stops the third 20 MiB member.
		{"budget.zip", mid, Limits{MaxRatio: 1e9, MaxExpand: 50 << 20}, ErrLimit},
		// No header to check: the streaming ratio check stops it.
		{"zeros.gz", gz.Bytes(), Limits{}, ErrLimit},
		// Nor a ratio limit: the member size limit stops it.
		{"zeros2.gz", gz.Bytes(), Limits{MaxRatio: 1e9, MaxInput: 10 << 20}, ErrLimit},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// A generous deadline, so that the limit under test (not the
			// clock of a loaded or race-instrumented run) stops the bomb.
			c.lim.Timeout = time.Minute
			start := time.Now()
			got, err := Text(context.Background(), c.name, "", c.data, c.lim)
			elapsed := time.Since(start)
			if !errors.Is(err, c.want) {
				t.Fatalf("err = %.300v, want %v", err, c.want)
			}
			if elapsed > 30*time.Second {
				t.Errorf("took %v", elapsed)
			}
			if strings.HasSuffix(c.name, ".zip") && !strings.Contains(got, "zerosa.txt") {
				t.Errorf("member names missing from %.200q", got)
			}
			if len(got) > 1<<20 {
				t.Errorf("%d bytes of text from a bomb of zeros", len(got))
			}
			t.Logf("%s: %v", c.name, elapsed)
		})
	}
}

func TestNestingDepth(t *testing.T) {
	t.Parallel()
	// deepword sits in a text file inside five nested zips.
	data := makeZip(t, "bottom.txt", "deepword here")
	for i := 0; i < 4; i++ {
		data = makeZip(t, "level.zip", string(data))
	}
	got, err := text(t, "top.zip", "", data)
	if !errors.Is(err, ErrLimit) {
		t.Errorf("default depth: err = %v, want ErrLimit", err)
	}
	if strings.Contains(got, "deepword") {
		t.Errorf("default depth: text from beyond the limit: %q", got)
	}
	got, err = Text(context.Background(), "top.zip", "", data, Limits{MaxDepth: 5})
	if err != nil || !strings.Contains(got, "deepword") {
		t.Errorf("MaxDepth 5: got %q, %v; want deepword, nil", got, err)
	}
}

func TestTruncatedAndGarbled(t *testing.T) {
	t.Parallel()
	docs := map[string][]byte{
		"a.pdf":  makePDF(t, "Hello hostile world", false),
		"z.pdf":  makePDF(t, "Hello hostile world", true),
		"a.docx": makeDOCX(t, "Hello hostile world", "second paragraph"),
		"a.zip":  makeZip(t, "inner.txt", "Hello hostile world", "inner.docx", string(makeDOCX(t, "nested doc"))),
	}
	for name, full := range docs {
		got, err := text(t, name, "", full)
		if err != nil || !strings.Contains(got, "Hello hostile world") {
			t.Fatalf("%s intact: got %q, %v", name, got, err)
		}
		// Every truncation and a flipped byte at many places: never a panic
		// (Text recovers, but the test also checks that errors are reasons).
		for cut := 0; cut < len(full); cut += 1 + len(full)/200 {
			got, err := text(t, name, "", full[:cut])
			if err != nil && err.Error() == "" {
				t.Errorf("%s cut at %d: empty error", name, cut)
			}
			if len(got) > DefaultLimits().MaxText {
				t.Errorf("%s cut at %d: text over the limit", name, cut)
			}
			garbled := bytes.Clone(full)
			garbled[cut] ^= 0x5a
			_, _ = text(t, name, "", garbled)
		}
	}
	// A PDF whose xref is destroyed: the library refuses it, the content
	// stream scrape still finds the words.
	for _, deflate := range []bool{false, true} {
		pdf := makePDF(t, "Hello scraped world", deflate)
		pdf = bytes.Replace(pdf, []byte("startxref"), []byte("startxxxx"), 1)
		got, err := text(t, "broken.pdf", "application/pdf", pdf)
		if !strings.Contains(got, "Hello scraped world") {
			t.Errorf("scrape (deflate %v): got %q, %v", deflate, got, err)
		}
	}
}

func TestTimeout(t *testing.T) {
	t.Parallel()
	// 40 MB of HTML cannot be converted in a millisecond.
	big := bytes.Repeat([]byte("<p>some <b>words</b> &amp; more words</p>\n"), 1_000_000)
	start := time.Now()
	_, err := Text(context.Background(), "big.html", "text/html", big, Limits{Timeout: time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %v", d)
	}

	// A cancelled caller's context is honoured too.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Text(ctx, "a.txt", "text/plain", []byte("x"), Limits{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v", err)
	}
}

func TestLimits(t *testing.T) {
	t.Parallel()
	if _, err := Text(context.Background(), "a.txt", "", make([]byte, 101), Limits{MaxInput: 100}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("MaxInput: err = %v", err)
	}
	long := strings.Repeat("äöü word ", 1000)
	got, err := Text(context.Background(), "a.txt", "text/plain", []byte(long), Limits{MaxText: 1001})
	if err != nil {
		t.Errorf("MaxText: err = %v, want nil (truncation is not an error)", err)
	}
	if len(got) > 1001 || len(got) < 990 || !strings.HasPrefix(long, got) {
		t.Errorf("MaxText: %d bytes, prefix %v", len(got), strings.HasPrefix(long, got))
	}
	d := DefaultLimits()
	if d.MaxInput != 50<<20 || d.MaxText != 4<<20 || d.MaxDepth != 3 || d.MaxRatio != 100 ||
		d.MaxExpand != 200<<20 || d.Timeout != 10*time.Second {
		t.Errorf("DefaultLimits = %+v", d)
	}
}

func TestHTMLScriptStyle(t *testing.T) {
	t.Parallel()
	in := `<!DOCTYPE html><html><head><title>TitleSecret</title>
<style>.x { color: red } StyleSecret</style><script>var ScriptSecret = "</p>";</script></head>
<body><p>Hello&nbsp;&amp; welcome</p><script type="text/javascript">alert("ScriptSecret2")</script>
<div>second<br>line</div><table><tr><td>a</td><td>b</td></tr></table>
<noscript>visible without js</noscript><template>TemplateSecret</template>
<p>caf&eacute; &#8364;5 &lt;tag&gt;</p><pre>  keep   spaces</pre></body></html>`
	got := HTMLToText(in)
	for _, bad := range []string{"Secret", "color", "alert", "<p>", "&amp;"} {
		if strings.Contains(got, bad) {
			t.Errorf("%q in %q", bad, got)
		}
	}
	for _, want := range []string{"Hello & welcome", "second\nline", "a\tb", "café €5 <tag>", "  keep   spaces", "visible without js"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q not in %q", want, got)
		}
	}
	// An unclosed head must not swallow the body.
	if got := HTMLToText("<html><head><style>x</style><p>body text"); !strings.Contains(got, "body text") {
		t.Errorf("unclosed head: %q", got)
	}
	if got := HTMLToText("<head><title>t</title>loose text"); got != "loose text" {
		t.Errorf("text in head: %q", got)
	}
	// Through Text, with a sniffed type.
	got, err := text(t, "page.bin", "", []byte(in))
	if err != nil || strings.Contains(got, "Secret") || !strings.Contains(got, "welcome") {
		t.Errorf("Text(html): %q, %v", got, err)
	}
}
