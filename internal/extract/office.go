package extract

import (
	"archive/zip"
	"context"
	"errors"
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"
)

var (
	docxSpec = &xmlSpec{
		text:  newSet("t", "delText"),
		skip:  newSet("instrText", "rPh"),
		block: newSet("p", "tr"),
		tab:   newSet("tab", "tc"),
		brk:   newSet("br", "cr"),
	}
	pptxSpec = &xmlSpec{
		text:  newSet("t"),
		block: newSet("p"),
		tab:   newSet("tab", "tc"),
		brk:   newSet("br"),
	}
	sharedStringsSpec = &xmlSpec{
		text:  newSet("t"),
		skip:  newSet("rPh", "phoneticPr"),
		block: newSet("si"),
	}
	sheetSpec = &xmlSpec{
		text:  newSet("t", "v"),
		skip:  newSet("rPh", "f"),
		block: newSet("row"),
		tab:   newSet("c"),
		sheet: true,
	}
	workbookSpec = &xmlSpec{
		text:  newSet(),
		attrs: map[string]string{"sheet": "name"},
	}
	xlCommentsSpec = &xmlSpec{
		text:  newSet("t"),
		skip:  newSet("rPh"),
		block: newSet("comment"),
	}
	// coreSpec reads document properties: OOXML docProps/core.xml and ODF
	// meta.xml.
	coreSpec = &xmlSpec{
		text:  newSet("title", "subject", "creator", "keywords", "keyword", "description", "lastModifiedBy", "category", "initial-creator"),
		block: newSet("title", "subject", "creator", "keywords", "keyword", "description", "lastModifiedBy", "category", "initial-creator"),
	}
	chartSpec = &xmlSpec{
		text:  newSet("t", "v"),
		block: newSet("p", "pt"),
	}
	odfSpec = &xmlSpec{
		// All character data of the body, except these.
		skip: newSet("tracked-changes", "annotation-end", "sequence-decls", "forms",
			"binary-data", "script", "font-face-decls", "automatic-styles", "scripts"),
		block: newSet("p", "h", "list-item", "table-row", "frame", "page", "annotation"),
		tab:   newSet("tab", "table-cell"),
		brk:   newSet("line-break"),
		space: newSet("s"),
	}
)

// partNumber returns the number in a part name such as "slide12.xml" so
// that parts sort as 1, 2, ..., 10 rather than 1, 10, 2.
func partNumber(name string) int {
	base := strings.TrimSuffix(path.Base(name), path.Ext(name))
	i := len(base)
	for i > 0 && base[i-1] >= '0' && base[i-1] <= '9' {
		i--
	}
	n, err := strconv.Atoi(base[i:])
	if err != nil {
		return 0
	}
	return n
}

// partsMatching returns the member names under dir whose base names start
// with prefix and end in .xml, in numeric order.
func partsMatching(files []*zip.File, dir, prefix string) []*zip.File {
	var out []*zip.File
	for _, f := range files {
		n := strings.ReplaceAll(f.Name, "\\", "/")
		if path.Dir(n) == dir && strings.HasPrefix(path.Base(n), prefix) && strings.HasSuffix(n, ".xml") {
			out = append(out, f)
		}
	}
	sort.SliceStable(out, func(a, b int) bool {
		na, nb := partNumber(out[a].Name), partNumber(out[b].Name)
		if na != nb {
			return na < nb
		}
		return out[a].Name < out[b].Name
	})
	return out
}

// officeParts extracts the given XML parts in order. A part that fails is
// reported, the others are still extracted.
func (j *job) officeParts(parts []*zip.File, spec func(*zip.File) *xmlSpec) error {
	var errs []error
	for _, f := range parts {
		if f == nil {
			continue
		}
		if err := j.check(); err != nil {
			return err
		}
		err := j.officePart(f, spec(f))
		switch {
		case err == nil:
		case errors.Is(err, errTextFull), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			return err
		case j.expanded > j.lim.MaxExpand:
			return errors.Join(append(errs, err)...)
		default:
			errs = append(errs, fmt.Errorf("part %s: %w", f.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (j *job) officePart(f *zip.File, spec *xmlSpec) error {
	rc, err := j.openMember(f)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := j.out.Newline(); err != nil {
		return err
	}
	fl := flow{write: j.out.WriteString}
	return j.xmlText(rc, spec, &fl)
}

// ooxmlSpec returns the spec for a part of a Word or PowerPoint package:
// main, the charts or the document properties.
func ooxmlSpec(main *xmlSpec) func(*zip.File) *xmlSpec {
	return func(f *zip.File) *xmlSpec {
		switch {
		case f.Name == "docProps/core.xml":
			return coreSpec
		case strings.Contains(f.Name, "/charts/"):
			return chartSpec
		}
		return main
	}
}

// docx extracts a Word document: the body, then headers, footers,
// footnotes, endnotes, comments, charts and the document properties.
func (j *job) docx(all []*zip.File, files map[string]*zip.File, depth int) error {
	parts := []*zip.File{files["word/document.xml"]}
	if parts[0] == nil {
		parts = partsMatching(all, "word", "document")
	}
	for _, p := range []string{"header", "footer", "footnotes", "endnotes", "comments"} {
		parts = append(parts, partsMatching(all, "word", p)...)
	}
	charts := partsMatching(all, "word/charts", "chart")
	parts = append(parts, charts...)
	parts = append(parts, files["docProps/core.xml"])
	err := j.officeParts(parts, ooxmlSpec(docxSpec))
	if stop, _ := j.memberErr("", err); stop {
		return err
	}
	return errors.Join(err, j.altChunks(all, depth))
}

// altChunks extracts the "alternative format import" parts of a Word
// document (HTML, text or RTF files inserted as they are).
func (j *job) altChunks(all []*zip.File, depth int) error {
	var errs []error
	for _, f := range all {
		n := strings.ToLower(f.Name)
		if !strings.HasPrefix(n, "word/") {
			continue
		}
		switch path.Ext(n) {
		case ".html", ".htm", ".xhtml", ".txt", ".rtf":
		default:
			continue
		}
		if err := j.out.Newline(); err != nil {
			return err
		}
		data, err := j.readMember(f)
		if err == nil {
			err = j.extract(f.Name, "", data, depth+1)
		}
		if stop, e := j.memberErr(f.Name, err); stop {
			return errors.Join(append(errs, e)...)
		} else if e != nil {
			errs = append(errs, e)
		}
	}
	return errors.Join(errs...)
}

// xlsx extracts a workbook: sheet names, the shared strings (every string
// cell's text, once), then each sheet's inline strings and values, then
// cell comments, charts, drawings (text boxes and shapes) and the document
// properties.
func (j *job) xlsx(all []*zip.File, files map[string]*zip.File) error {
	parts := []*zip.File{files["xl/workbook.xml"], files["xl/sharedStrings.xml"]}
	parts = append(parts, partsMatching(all, "xl/worksheets", "sheet")...)
	parts = append(parts, partsMatching(all, "xl", "comments")...)
	parts = append(parts, partsMatching(all, "xl/charts", "chart")...)
	parts = append(parts, partsMatching(all, "xl/drawings", "drawing")...)
	parts = append(parts, files["docProps/core.xml"])
	return j.officeParts(parts, func(f *zip.File) *xmlSpec {
		switch {
		case f.Name == "docProps/core.xml":
			return coreSpec
		case strings.HasPrefix(f.Name, "xl/charts/"):
			return chartSpec
		case strings.HasPrefix(f.Name, "xl/drawings/"):
			return pptxSpec // DrawingML text: a:p paragraphs of a:t runs
		case f.Name == "xl/workbook.xml":
			return workbookSpec
		case f.Name == "xl/sharedStrings.xml":
			return sharedStringsSpec
		case strings.HasPrefix(f.Name, "xl/worksheets/"):
			return sheetSpec
		}
		return xlCommentsSpec
	})
}

// pptx extracts a presentation: the slides in order, the speaker notes,
// charts and the document properties.
func (j *job) pptx(all []*zip.File, files map[string]*zip.File) error {
	parts := partsMatching(all, "ppt/slides", "slide")
	parts = append(parts, partsMatching(all, "ppt/notesSlides", "notesSlide")...)
	parts = append(parts, partsMatching(all, "ppt/charts", "chart")...)
	parts = append(parts, files["docProps/core.xml"])
	return j.officeParts(parts, ooxmlSpec(pptxSpec))
}

// odf extracts an OpenDocument text, spreadsheet or presentation from its
// content.xml, then its properties from meta.xml.
func (j *job) odf(files map[string]*zip.File) error {
	return j.officeParts([]*zip.File{files["content.xml"], files["meta.xml"]}, func(f *zip.File) *xmlSpec {
		if f.Name == "meta.xml" {
			return coreSpec
		}
		return odfSpec
	})
}
