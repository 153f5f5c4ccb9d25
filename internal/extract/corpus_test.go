package extract

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// knownEmpty lists the corpus documents (by base name) for which empty text
// is the right or the accepted answer, with the reason. Every one was
// checked with a second tool (pdftotext from poppler, unzip).
var knownEmpty = map[string]string{
	// PDFs without a text layer: pdftotext finds nothing either.
	"testOCR.pdf":                                         "scanned image, needs OCR",
	"testPDF_jpeg2000.pdf":                                "image only",
	"testColorRendering.pdf":                              "vector drawing, no text",
	"testPDF_Version.4.x.pdf":                             "no text (pdftotext agrees)",
	"testPDF_Version.5.x.pdf":                             "no text (pdftotext agrees)",
	"testPDF_Version.6.x.pdf":                             "no text (pdftotext agrees)",
	"testPDF_Version.7.x.pdf":                             "no text (pdftotext agrees)",
	"testPDF_Version.8.x.pdf":                             "no text (pdftotext agrees)",
	"testPDF_Version.9.x.pdf":                             "no text (pdftotext agrees)",
	"testPDF_Version.10.x.pdf":                            "no text (pdftotext agrees)",
	"testPDF_diffTitles.pdf":                              "metadata only (pdftotext agrees)",
	"testPDF_twoAuthors.pdf":                              "metadata only (pdftotext agrees)",
	"testPDF_sigflags.pdf":                                "no text (pdftotext agrees)",
	"testPDF_jsActionOnPage.pdf":                          "no text, JavaScript action only",
	"testPopupAnnotation.pdf":                             "text only in an annotation popup (pdftotext agrees)",
	"testPDF_malformedXFA.pdf":                            "truncated test file without xref or text",
	"testPassword4Spaces.pdf":                             "encrypted with a user password",
	"testUnicodePassword.pdf":                             "encrypted with a user password",
	"testPDF_no_extract_no_accessibility_owner_user.pdf":  "encrypted with a user password",
	"testPDF_no_extract_yes_accessibility_owner_user.pdf": "encrypted with a user password",
	// Known gap: RC4/AES with an empty user password where the library
	// fails (poppler finds about ten characters).
	"testPDF_no_extract_no_accessibility_owner_empty.pdf":  "library cannot decrypt (known gap)",
	"testPDF_no_extract_yes_accessibility_owner_empty.pdf": "library cannot decrypt (known gap)",
	// Office documents whose only content is an embedded object or macro.
	"testAltChunkMHT.docx":      "content is an MHT altChunk (MIME, not handled)",
	"testODPMacro.odp":          "slides hold only shapes; macro not extracted",
	"testODSMacro.ods":          "empty sheet; macro not extracted",
	"testODTEncrypted.odt":      "encrypted content.xml",
	"testWORD_truncated.docx":   "truncated zip without central directory",
	"testBinControlWord.rtf":    "only a picture (\\bin) and tabs",
	"testRTFEmbeddedFiles.rtf":  "only embedded OLE objects",
	"testRTFEmbeddedLink.rtf":   "only an embedded OLE link",
	"testZIP_corrupted_oom.zip": "corrupt zip",
	// Spanned (multi-volume) zip: the first volume has no central directory.
	"test-documents-spanned.zip": "split archive, unsupported",
	// Text, but no word of four letters (checked with unzip -p and by
	// decompressing the PDF content streams).
	"testDdeLink.xlsx":                                  "one number and a DDE link",
	"testWORD_missing_ooxml_bean1.docx":                 "the body is \"s.\" and \"b\"",
	"testRTFTableCellSeparation.rtf":                    "one-letter table cells",
	"testRTFUnicodeUCNControlWordCharacterDoubling.rtf": "a digit, \"abc\" and two single CJK characters",
	"test_list_override.rtf":                            "list definitions only, no body text",
	"testPDF_Version.11.x.PDFA-1b.pdf":                  "image only (one image XObject, ProcSet /ImageC)",
	"testZip_with_DataDescriptor.zip":                   "members of four binary bytes each",
	// Known gaps: text only in embedded objects or attachments of the
	// document, which are not extracted, or in a legacy CJK encoding that
	// nothing labels.
	"testEXCEL_embeddedPDF_windows.xlsx":    "text only in an embedded OLE object (known gap)",
	"testWPSAttachment.docx":                "text only in embedded OLE objects (known gap)",
	"testWPSAttachment.pptx":                "text only in embedded OLE objects (known gap)",
	"testWPSAttachment.xlsx":                "text only in embedded OLE objects (known gap)",
	"testPDF_deeplyEmbeddedAttachments.pdf": "one letter on the page; embedded files are not extracted (known gap)",
	"gbk.zip":                               "one empty member; names in GBK, not decoded (known gap)",
	"testZipEntryNameCharsetShiftSJIS.zip":  "Shift-JIS names and text without a charset label (known gap)",
}

// corpusExtensions are the formats whose every corpus document must give
// text (unless listed in knownEmpty).
var corpusExtensions = map[string]bool{
	".pdf": true, ".docx": true, ".xlsx": true, ".pptx": true, ".odt": true, ".ods": true,
	".odp": true, ".rtf": true, ".zip": true, ".ics": true, ".vcs": true, ".epub": true,
}

// corpusFiles returns the tika documents of the formats above plus every
// TNEF stream anywhere under mime-edge.
func corpusFiles(tb testing.TB) []string {
	tb.Helper()
	root := filepath.Join(corpusDir(tb), "mime-edge")
	var out []string
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		ext := strings.ToLower(filepath.Ext(p))
		if strings.Contains(p, "/apache-tika/") && corpusExtensions[ext] {
			out = append(out, p)
			return nil
		}
		if ext == ".dat" || ext == ".tnef" {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			head := make([]byte, 4)
			_, rerr := f.Read(head)
			if cerr := f.Close(); cerr != nil {
				return cerr
			}
			if rerr == nil && bytes.Equal(head, magicTNEF) {
				out = append(out, p)
			}
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	if len(out) < 100 {
		tb.Fatalf("only %d corpus documents found under %s", len(out), root)
	}
	return out
}

// TestCorpusNonEmpty extracts every PDF, OOXML, ODF, RTF, ZIP, EPUB and
// calendar document of the Tika corpus and every TNEF stream: each must
// yield a real word (see realWord), except the documents listed (with the
// reason) in knownEmpty. TestCorpusSearchable (corpus_index_test.go) then
// indexes a sample of them as attachments and searches for that word.
func TestCorpusNonEmpty(t *testing.T) {
	files := corpusFiles(t)
	var failures []string
	for _, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		ct := ""
		if bytes.HasPrefix(data, magicTNEF) {
			ct = "application/ms-tnef"
		}
		start := time.Now()
		got, err := Text(context.Background(), filepath.Base(p), ct, data, Limits{})
		if d := time.Since(start); d > DefaultLimits().Timeout+5*time.Second {
			t.Errorf("%s: took %v, past the deadline", p, d)
		}
		if len(got) > DefaultLimits().MaxText {
			t.Errorf("%s: %d bytes of text, over the limit", p, len(got))
		}
		reason, known := knownEmpty[filepath.Base(p)]
		empty := realWord(got) == ""
		switch {
		case empty && !known:
			failures = append(failures, fmt.Sprintf("%s: no word of %d letters in %d bytes of text (err: %s)", p, minWordLetters, len(got), errString(err)))
		case !empty && known:
			t.Logf("%s: now gives text although listed as empty (%s)", p, reason)
		}
		if err != nil && !empty {
			// Partial failures (one bad member of an archive) are fine but worth seeing.
			t.Logf("%s: text with error: %v", filepath.Base(p), firstLine(err.Error()))
		}
	}
	for _, f := range failures {
		t.Error(f)
	}
	t.Logf("%d documents checked", len(files))
}

// minWordLetters is the length of a word that shows extraction worked: a
// run of whitespace or a stray "x" from a drawing does not.
const minWordLetters = 4

// realWord returns the first word of text made of letters only, at least
// minWordLetters of them, delimited as the index delimits words (runs of
// letters, digits and combining marks; see internal/index/tokens), so that
// the word is one index term. It returns "" when there is none.
func realWord(text string) string {
	for _, w := range strings.FieldsFunc(text, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r)
	}) {
		if utf8.RuneCountInString(w) < minWordLetters {
			continue
		}
		letters := true
		for _, r := range w {
			if !unicode.IsLetter(r) {
				letters = false
				break
			}
		}
		if letters {
			return w
		}
	}
	return ""
}

// CorpusDoc is a corpus document with the word TestCorpusNonEmpty found in
// its text.
type CorpusDoc struct {
	Path, ContentType, Word string
}

// CorpusSample returns n corpus documents (all of them if fewer) spread
// evenly over the sorted list of those TestCorpusNonEmpty requires text
// from, each with its first real word: the same sample on every run. It is
// exported for the external test package, which indexes them (package
// index imports extract, so this package's own tests cannot).
func CorpusSample(tb testing.TB, n int) []CorpusDoc {
	tb.Helper()
	var files []string
	for _, p := range corpusFiles(tb) {
		if _, known := knownEmpty[filepath.Base(p)]; !known {
			files = append(files, p)
		}
	}
	sort.Strings(files)
	if n > len(files) {
		n = len(files)
	}
	out := make([]CorpusDoc, 0, n)
	for i := 0; i < n; i++ {
		p := files[i*len(files)/n]
		data, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		ct := "application/octet-stream"
		if bytes.HasPrefix(data, magicTNEF) {
			ct = "application/ms-tnef"
		}
		got, _ := Text(context.Background(), filepath.Base(p), ct, data, Limits{})
		w := realWord(got)
		if w == "" {
			tb.Fatalf("%s: no word of %d letters (TestCorpusNonEmpty fails too)", p, minWordLetters)
		}
		out = append(out, CorpusDoc{Path: p, ContentType: ct, Word: w})
	}
	return out
}

func errString(err error) string {
	if err == nil {
		return "nil"
	}
	return err.Error()
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// TestCorpusWords checks for a distinctive word of specific documents. Each
// word was cross-checked with pdftotext or unzip -p on the raw XML.
func TestCorpusWords(t *testing.T) {
	root := filepath.Join(corpusDir(t), "mime-edge")
	tika := filepath.Join(root, "apache-tika")
	cases := []struct {
		path, ct string
		words    []string
	}{
		{tika + "/tika-parser-pdf-module/testPDF.pdf", "", []string{"incubation", "Content Analysis Toolkit"}},
		{tika + "/tika-parser-pdf-module/testPDFVarious.pdf", "application/pdf", []string{"Keyword2", "numbered list"}},
		{tika + "/tika-parser-pdf-module/testJournalParser.pdf", "", []string{"Microrobots", "Electrical and Computer Engineering"}},
		{tika + "/tika-parser-apple-module/testAppleSingleFile.pdf", "", []string{"Hello"}},
		{tika + "/tika-parser-microsoft-module/testWORD.docx", "application/octet-stream", []string{"subtitle", "Nested table"}},
		{tika + "/tika-parser-microsoft-module/testEXCEL.xlsx", "", []string{"Squares", "Feuil1"}},
		{tika + "/tika-parser-microsoft-module/testEXCEL_textbox.xlsx", "", []string{"some autoshape text"}},
		{tika + "/tika-parser-microsoft-module/testPPT.pptx", "", []string{"Watershed", "Avalanche"}},
		{tika + "/tika-parser-microsoft-module/testAltChunkHTML.docx", "", []string{"emphasized"}},
		{tika + "/tika-parser-miscoffice-module/testODFwithOOo3.odt", "", []string{"Lucene", "simple footnote"}},
		{tika + "/tika-parser-miscoffice-module/testFooter.ods", "", []string{"Data 3"}},
		{tika + "/tika-parser-miscoffice-module/versions/LibreOfficeImpress_odp_1.3.odp", "", []string{"Beehive"}},
		{tika + "/tika-parser-microsoft-module/testRTF.rtf", "application/rtf", []string{"indexation"}},
		{tika + "/tika-parser-microsoft-module/testRTF-ms932.rtf", "", []string{"こんにちは", "テスト"}},
		{tika + "/tika-parser-microsoft-module/testRTFIgnoredControlWord.rtf", "", []string{"quick brown fox"}},
		{tika + "/tika-parser-pkg-module/test-documents.zip", "application/zip", []string{"testTXT.txt", "incubation", "Squares"}},
		{tika + "/tika-parser-miscoffice-module/testEPUB.epub", "", []string{"Subchapter"}},
		{tika + "/tika-parsers-standard-integration-tests/testICalendar.ics", "text/calendar", []string{"Hyldgaard", "Banque Nationale"}},
		{tika + "/tika-parser-microsoft-module/testWINMAIL.dat", "application/ms-tnef", []string{"five files"}},
		{tika + "/tika-parser-microsoft-module/testWORD.doc", "application/msword", []string{"Signature style"}},
		{root + "/mimekit/UnitTests/TestData/tnef/christmas.tnef", "", []string{"Tahoe"}},
		{root + "/mimekit/UnitTests/TestData/tnef/rtf.tnef", "application/ms-tnef", []string{"aafgag"}},
		{root + "/mimekit/UnitTests/TestData/tnef/unicode-mapi-attr-name.tnef", "", []string{"Aktualizacja numerów"}},
	}
	for _, c := range cases {
		t.Run(filepath.Base(c.path), func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(c.path)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Text(context.Background(), filepath.Base(c.path), c.ct, data, Limits{})
			if err != nil && !errors.Is(err, ErrUnsupported) {
				t.Logf("error (text may still be complete): %v", err)
			}
			for _, w := range c.words {
				if !strings.Contains(got, w) {
					t.Errorf("%q not found in %d bytes of text: %.300q", w, len(got), got)
				}
			}
		})
	}
}

// BenchmarkCorpus measures extraction throughput over the corpus documents
// of TestCorpusNonEmpty (input bytes per second).
func BenchmarkCorpus(b *testing.B) {
	files := corpusFiles(b)
	docs := make([][]byte, len(files))
	var total int64
	for i, p := range files {
		data, err := os.ReadFile(p)
		if err != nil {
			b.Fatal(err)
		}
		docs[i] = data
		total += int64(len(data))
	}
	b.SetBytes(total)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		for i, d := range docs {
			_, _ = Text(context.Background(), filepath.Base(files[i]), "", d, Limits{})
		}
	}
	b.ReportMetric(float64(len(docs)), "docs/op")
}
