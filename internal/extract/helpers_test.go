package extract

import (
	"archive/zip"
	"bytes"
	"compress/zlib"
	"context"
	"fmt"
	"testing"

	"github.com/mailarc/mailarc/internal/testutil"
)

// corpusDir returns <repo root>/../shared/corpus, skipping the test when it
// is absent (failing instead under MAILARC_INTEGRATION=1).
func corpusDir(tb testing.TB) string {
	tb.Helper()
	c := testutil.FindCorpus()
	testutil.Require(tb, c != "" && testutil.FindCorpus("mime-edge") != "", "the shared corpus (../shared/corpus/mime-edge) is not present")
	return c
}

// text runs Text with default limits and a background context.
func text(tb testing.TB, name, ct string, data []byte) (string, error) {
	tb.Helper()
	return Text(context.Background(), name, ct, data, Limits{})
}

// makeZip builds a zip archive from name/content pairs.
func makeZip(tb testing.TB, files ...string) []byte {
	tb.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for i := 0; i+1 < len(files); i += 2 {
		w, err := zw.Create(files[i])
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := w.Write([]byte(files[i+1])); err != nil {
			tb.Fatal(err)
		}
	}
	if err := zw.Close(); err != nil {
		tb.Fatal(err)
	}
	return buf.Bytes()
}

// makeDOCX builds a minimal Word document whose body holds the paragraphs.
func makeDOCX(tb testing.TB, paragraphs ...string) []byte {
	tb.Helper()
	var body bytes.Buffer
	for _, p := range paragraphs {
		// Split each paragraph over two runs to check that runs join.
		half := len(p) / 2
		fmt.Fprintf(&body, `<w:p><w:r><w:t xml:space="preserve">%s</w:t></w:r><w:r><w:t>%s</w:t></w:r></w:p>`, p[:half], p[half:])
	}
	doc := `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>` +
		body.String() + `</w:body></w:document>`
	return makeZip(tb,
		"[Content_Types].xml", `<?xml version="1.0"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types"/>`,
		"word/document.xml", doc)
}

// makePDF builds a small valid one-page PDF showing text with Helvetica,
// its content stream compressed when deflate is set.
func makePDF(tb testing.TB, text string, deflate bool) []byte {
	tb.Helper()
	content := []byte("BT /F1 12 Tf 72 720 Td (" + text + ") Tj ET")
	filter := ""
	if deflate {
		var z bytes.Buffer
		zw := zlib.NewWriter(&z)
		if _, err := zw.Write(content); err != nil {
			tb.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			tb.Fatal(err)
		}
		content = z.Bytes()
		filter = " /Filter /FlateDecode"
	}
	objs := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		fmt.Sprintf("<< /Length %d%s >>\nstream\n%s\nendstream", len(content), filter, content),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	}
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n")
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, xref)
	return b.Bytes()
}
