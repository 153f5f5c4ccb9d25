package extract

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// seedCorpus adds small corpus files with the given extensions as seeds.
// The corpus is optional for fuzzing: without it only the inline seeds run.
func seedCorpus(f *testing.F, exts ...string) {
	dir, err := os.Getwd()
	if err != nil {
		return
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return
		}
		dir = parent
	}
	root := filepath.Join(dir, "..", "shared", "corpus", "mime-edge", "apache-tika")
	want := map[string]bool{}
	for _, e := range exts {
		want[e] = true
	}
	n := 0
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || n >= 40 || !want[strings.ToLower(filepath.Ext(p))] {
			return nil
		}
		if info, err := d.Info(); err != nil || info.Size() > 64<<10 {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		f.Add(data)
		n++
		return nil
	})
}

// fuzzTypes are the declared types each fuzz input is tried with.
var fuzzTypes = []struct{ name, ct string }{
	{"a.bin", ""},
	{"a.pdf", "application/pdf"},
	{"a.docx", "application/vnd.openxmlformats-officedocument.wordprocessingml.document"},
	{"a.zip", "application/zip"},
	{"a.rtf", "application/rtf"},
	{"a.html", "text/html"},
	{"a.txt", "text/plain; charset=iso-2022-jp"},
	{"a.ics", "text/calendar"},
	{"winmail.dat", "application/ms-tnef"},
	{"a.doc", "application/msword"},
	{"a.xml", "application/xml"},
	{"a.gz", "application/gzip"},
}

func FuzzText(f *testing.F) {
	f.Add([]byte("%PDF-1.4\n1 0 obj<<>>endobj\nstream\nBT (hi) Tj ET\nendstream"))
	f.Add(makeZip(f, "a.txt", "hello", "b.zip", string(makeZip(f, "c.txt", "deep"))))
	f.Add(makeDOCX(f, "fuzz me"))
	f.Add(makePDF(f, "fuzz pdf", true))
	f.Add([]byte(`{\rtf1\ansi\ansicpg932 \'82\'b1 \u1055? {\*\x y}}`))
	f.Add([]byte("BEGIN:VCALENDAR\nSUMMARY:x\n y\nEND:VCALENDAR"))
	f.Add([]byte("\x78\x9f\x3e\x22\x01\x00\x01\x04\x80\x01\x00\x03\x00\x00\x00ab\x00\x00\x00"))
	seedCorpus(f, ".pdf", ".docx", ".xlsx", ".pptx", ".odt", ".rtf", ".zip", ".ics", ".dat")
	lim := Limits{MaxText: 64 << 10, MaxInput: 1 << 20, MaxExpand: 8 << 20, Timeout: 2 * time.Second}
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, ty := range fuzzTypes {
			start := time.Now()
			got, err := Text(context.Background(), ty.name, ty.ct, data, lim)
			if d := time.Since(start); d > lim.Timeout+time.Second {
				t.Fatalf("%s: returned after %v", ty.ct, d)
			}
			if len(got) > lim.MaxText {
				t.Fatalf("%s: %d bytes of text, limit %d", ty.ct, len(got), lim.MaxText)
			}
			if !utf8.ValidString(got) {
				t.Fatalf("%s: invalid UTF-8", ty.ct)
			}
			if err != nil && err.Error() == "" {
				t.Fatalf("%s: empty error", ty.ct)
			}
		}
	})
}

func FuzzRTF(f *testing.F) {
	f.Add([]byte(`{\rtf1\ansi\deff0{\fonttbl{\f0\fcharset204 X;}}\f0 \'cf\u1055?\par\bin3 abc{\*\generator g}}`))
	f.Add([]byte(`{\rtf1\uc2\u-10179\u-8704\'81\'82\htmlrtf x\htmlrtf0 y}`))
	seedCorpus(f, ".rtf")
	f.Fuzz(func(t *testing.T, data []byte) {
		got := rtfToText(data)
		if !utf8.ValidString(got) {
			t.Fatal("invalid UTF-8")
		}
		// Text can only shrink input, apart from decoding growth (at most
		// 3 bytes per input byte, plus \u escapes which are longer).
		if len(got) > 4*len(data)+16 {
			t.Fatalf("%d bytes of text from %d bytes", len(got), len(data))
		}
	})
}

func FuzzHTMLToText(f *testing.F) {
	f.Add("<html><head><title>t</title><style>s</style></head><body><p>a&amp;b<br>c</p><script>x</script></body></html>")
	f.Add("<head><template><p>x</template>y<svg><svg></svg>z</svg>w")
	f.Add("<pre>  a  </pre><td>b<th>c<img alt=\"d\">")
	f.Fuzz(func(t *testing.T, s string) {
		got := HTMLToText(s)
		if !utf8.ValidString(got) {
			t.Fatal("invalid UTF-8")
		}
		if len(got) > 2*len(s)+16 {
			t.Fatalf("%d bytes of text from %d bytes of HTML", len(got), len(s))
		}
	})
}
