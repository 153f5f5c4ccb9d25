package extract

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// ratioGrace is the number of bytes a member may produce before the
// compression ratio limit applies: small, highly repetitive parts (XML
// spreadsheets compress 100:1 and better) are harmless.
const ratioGrace = 1 << 20

// maxMembers bounds the number of archive members looked at.
const maxMembers = 10000

// boundedReader enforces the expansion limits on one decompressed stream.
type boundedReader struct {
	j          *job
	r          io.Reader
	name       string
	compressed int64 // compressed size of the member (0: unknown)
	n          int64 // bytes produced so far
	limit      int64 // per-member cap (MaxInput)
}

func (b *boundedReader) Read(p []byte) (int, error) {
	if err := b.j.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	b.j.expanded += int64(n)
	switch {
	case b.j.expanded > b.j.lim.MaxExpand:
		return n, fmt.Errorf("%w: more than %d bytes decompressed (at %s)", ErrLimit, b.j.lim.MaxExpand, b.name)
	case b.n > b.limit:
		return n, fmt.Errorf("%w: member %s larger than %d bytes", ErrLimit, b.name, b.limit)
	case b.compressed > 0 && b.n > ratioGrace && float64(b.n) > b.j.lim.MaxRatio*float64(b.compressed):
		return n, fmt.Errorf("%w: member %s expands more than %.0f:1", ErrLimit, b.name, b.j.lim.MaxRatio)
	}
	return n, err
}

// openMember opens a zip member for streaming through the expansion limits,
// refusing at once what its header already shows to be too big.
func (j *job) openMember(f *zip.File) (io.ReadCloser, error) {
	if f.Flags&1 != 0 {
		return nil, fmt.Errorf("%w: member %s is encrypted", ErrUnsupported, f.Name)
	}
	if f.UncompressedSize64 > uint64(j.lim.MaxInput) {
		return nil, fmt.Errorf("%w: member %s declares %d bytes", ErrLimit, f.Name, f.UncompressedSize64)
	}
	if c := f.CompressedSize64; c > 0 && f.UncompressedSize64 > ratioGrace &&
		float64(f.UncompressedSize64) > j.lim.MaxRatio*float64(c) {
		return nil, fmt.Errorf("%w: member %s declares a %.0f:1 ratio", ErrLimit, f.Name,
			float64(f.UncompressedSize64)/float64(c))
	}
	rc, err := f.Open()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return &readCloser{
		Reader: &boundedReader{j: j, r: rc, name: f.Name, compressed: int64(f.CompressedSize64), limit: j.lim.MaxInput},
		Closer: rc,
	}, nil
}

type readCloser struct {
	io.Reader
	io.Closer
}

// readMember reads a whole zip member through the limits.
func (j *job) readMember(f *zip.File) ([]byte, error) {
	rc, err := j.openMember(f)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if f.UncompressedSize64 < 1<<20 {
		buf.Grow(int(f.UncompressedSize64))
	}
	if _, err := io.Copy(&buf, rc); err != nil {
		if errors.Is(err, ErrLimit) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	return buf.Bytes(), nil
}

// zipFile handles every zip-based format: OOXML and OpenDocument files are
// recognised by their parts, anything else is a generic archive.
func (j *job) zipFile(name string, data []byte, depth int) error {
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil && !errors.Is(err, zip.ErrInsecurePath) {
		return fmt.Errorf("%w: zip: %v", ErrCorrupt, err)
	}
	// bzip2 members (method 12) occur in archives made by Info-ZIP.
	zr.RegisterDecompressor(12, func(r io.Reader) io.ReadCloser { return io.NopCloser(bzip2.NewReader(r)) })
	files := make(map[string]*zip.File, len(zr.File))
	for _, f := range zr.File {
		files[strings.TrimPrefix(strings.ReplaceAll(f.Name, "\\", "/"), "/")] = f
	}
	switch {
	case files["word/document.xml"] != nil || hasPrefix(files, "word/document"):
		return j.docx(zr.File, files, depth)
	case files["xl/workbook.xml"] != nil || hasPrefix(files, "xl/worksheets/"):
		return j.xlsx(zr.File, files)
	case files["ppt/presentation.xml"] != nil || hasPrefix(files, "ppt/slides/"):
		return j.pptx(zr.File, files)
	case files["content.xml"] != nil && (files["mimetype"] != nil || files["META-INF/manifest.xml"] != nil):
		return j.odf(files)
	}
	if depth >= j.lim.MaxDepth {
		return fmt.Errorf("%w: archive %s nested deeper than %d", ErrLimit, name, j.lim.MaxDepth)
	}
	return j.zipMembers(zr.File, depth)
}

func hasPrefix(files map[string]*zip.File, prefix string) bool {
	for n := range files {
		if strings.HasPrefix(n, prefix) {
			return true
		}
	}
	return false
}

// zipMembers extracts every member of a generic archive: its name, then its
// text. Unsupported members contribute their name only.
func (j *job) zipMembers(files []*zip.File, depth int) error {
	var errs []error
	for i, f := range files {
		if i >= maxMembers {
			errs = append(errs, fmt.Errorf("%w: more than %d members", ErrLimit, maxMembers))
			break
		}
		if err := j.check(); err != nil {
			return err
		}
		if strings.HasPrefix(f.Name, "__MACOSX/") {
			continue // AppleDouble resource forks of the real members
		}
		if err := j.out.Newline(); err != nil {
			return err
		}
		if err := j.out.WriteString(f.Name + "\n"); err != nil {
			return err
		}
		if f.FileInfo().IsDir() || f.UncompressedSize64 == 0 {
			continue
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

// memberErr classifies the error of one archive member: whether extraction
// must stop altogether, and the error worth reporting (nil for none).
func (j *job) memberErr(name string, err error) (stop bool, report error) {
	switch {
	case err == nil, errors.Is(err, ErrUnsupported):
		return false, nil
	case errors.Is(err, errTextFull), errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return true, err
	case j.expanded > j.lim.MaxExpand:
		return true, err
	case name == "":
		return false, err
	}
	return false, fmt.Errorf("member %s: %w", name, err)
}

// tarFile extracts the members of a tar archive, like zipMembers.
func (j *job) tarFile(data []byte, depth int) error {
	if depth >= j.lim.MaxDepth {
		return fmt.Errorf("%w: archive nested deeper than %d", ErrLimit, j.lim.MaxDepth)
	}
	tr := tar.NewReader(bytes.NewReader(data))
	var errs []error
	for i := 0; ; i++ {
		if i >= maxMembers {
			errs = append(errs, fmt.Errorf("%w: more than %d members", ErrLimit, maxMembers))
			break
		}
		if err := j.check(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: tar: %v", ErrCorrupt, err))
			break
		}
		if err := j.out.Newline(); err != nil {
			return err
		}
		if err := j.out.WriteString(h.Name + "\n"); err != nil {
			return err
		}
		if h.Typeflag != tar.TypeReg && h.Typeflag != 0 {
			continue
		}
		// The tar data is already in memory, so members cannot expand.
		body, err := io.ReadAll(io.LimitReader(tr, j.lim.MaxInput))
		if err == nil {
			err = j.extract(h.Name, "", body, depth+1)
		} else {
			err = fmt.Errorf("%w: tar member: %v", ErrCorrupt, err)
		}
		if stop, e := j.memberErr(h.Name, err); stop {
			return errors.Join(append(errs, e)...)
		} else if e != nil {
			errs = append(errs, e)
		}
	}
	return errors.Join(errs...)
}

// gzipFile decompresses through the expansion limits and extracts the
// result under the name without its .gz suffix.
func (j *job) gzipFile(name string, data []byte, depth int) error {
	if depth >= j.lim.MaxDepth {
		return fmt.Errorf("%w: gzip nested deeper than %d", ErrLimit, j.lim.MaxDepth)
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
	}
	br := &boundedReader{j: j, r: zr, name: name, compressed: int64(len(data)), limit: j.lim.MaxInput}
	body, err := io.ReadAll(br)
	if err != nil {
		if errors.Is(err, ErrLimit) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			return err
		}
		if len(body) == 0 {
			return fmt.Errorf("%w: gzip: %v", ErrCorrupt, err)
		}
		// A truncated stream: extract what was there.
	}
	inner := zr.Name
	if inner == "" {
		base := path.Base(strings.ReplaceAll(name, "\\", "/"))
		switch lower := strings.ToLower(base); {
		case strings.HasSuffix(lower, ".tgz"):
			inner = base[:len(base)-4] + ".tar"
		case strings.HasSuffix(lower, ".gz"):
			inner = base[:len(base)-3]
		default:
			inner = base
		}
	}
	return j.extract(inner, "", body, depth+1)
}
