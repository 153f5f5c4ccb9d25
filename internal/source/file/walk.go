package file

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// ErrEmpty is wrapped by the error reported for an empty file or mbox entry.
var ErrEmpty = errors.New("empty message")

// zstdMaxWindow caps the decoder window (and so its memory) for .zst files.
// zstd's default levels use at most 8 MiB and --long up to 128 MiB.
const zstdMaxWindow = 128 << 20

// Item is one message read by Walk, or one failure.
type Item struct {
	// Source is the human-readable location: "/path/x.eml",
	// "/path/box.mbox#17" (1-based message number within the mbox),
	// "/path/maildir/cur/123:2,S".
	Source string
	// Raw is the message bytes (nil when Err != nil).
	Raw []byte
	// Err is set when this item failed (unreadable, oversize, empty, bad
	// compression); iteration continues with the next item. Oversize and
	// empty items wrap ErrTooLarge and ErrEmpty, a missing path
	// fs.ErrNotExist, and decompression failures start with "bad
	// compression". The text does not repeat Source (os errors may name the
	// path themselves).
	Err error
}

// Options tune Walk.
type Options struct {
	// MaxMessageSize is the largest message accepted, in bytes;
	// DefaultMaxMessageSize (100 MiB) when 0 or negative.
	MaxMessageSize int64
}

// Walk reads every message under paths (files or directories) in a
// deterministic order (paths as given, directory entries in sorted name
// order) and calls fn for each item. It stops early only when fn returns an
// error (which Walk returns) or ctx is done (ctx.Err() is returned). Problems
// with the input, including a path that does not exist, are reported as
// failed Items, not as Walk's error.
func Walk(ctx context.Context, paths []string, opt Options, fn func(Item) error) error {
	maxSize := opt.MaxMessageSize
	if maxSize <= 0 {
		maxSize = DefaultMaxMessageSize
	}
	return enumerate(ctx, paths, func(e entry) error {
		if e.err != nil {
			return fn(Item{Source: e.path, Err: e.err})
		}
		return readFile(ctx, e, maxSize, fn)
	})
}

// Count quickly estimates how many items Walk will yield, for a progress
// bar: one per file, and for an mbox the number of lines starting with
// "From " (so a Content-Length body with unquoted From lines is
// over-counted). Compressed files are decompressed to count. Unreadable
// paths count as one item each. The error is ctx.Err() when ctx is done.
func Count(ctx context.Context, paths []string) (int, error) {
	n := 0
	err := enumerate(ctx, paths, func(e entry) error {
		if e.err != nil || e.maildir {
			n++
			return nil
		}
		c, err := countFile(ctx, e.path)
		n += c
		return err
	})
	return n, err
}

// entry is a file to read, or a path that could not be read.
type entry struct {
	path    string
	maildir bool  // a message file in a maildir's cur/ or new/: always one message
	err     error // set when the path could not be read
}

// dirKind says how a directory's entries are treated.
type dirKind int

const (
	plainDir    dirKind = iota
	maildirRoot         // has cur/ and new/
	maildirMsgs         // cur/ or new/ of a maildir
)

// enumerate calls visit for every file Walk reads, in Walk's order.
func enumerate(ctx context.Context, paths []string, visit func(entry) error) error {
	for _, p := range paths {
		if err := ctx.Err(); err != nil {
			return err
		}
		fi, err := os.Stat(p)
		switch {
		case err != nil:
			err = visit(entry{path: p, err: err})
		case fi.IsDir():
			err = walkDir(ctx, p, kindOf(p), visit)
		case fi.Mode().IsRegular():
			err = visit(entry{path: p, maildir: inMaildirFolder(p)})
		default:
			err = visit(entry{path: p, err: fmt.Errorf("%s: not a regular file or directory", p)})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// kindOf classifies a directory named on the command line.
func kindOf(dir string) dirKind {
	switch {
	case isMaildir(dir):
		return maildirRoot
	case inMaildirFolder(filepath.Join(dir, "x")):
		return maildirMsgs
	}
	return plainDir
}

// isMaildir reports whether dir has cur/ and new/ subdirectories.
func isMaildir(dir string) bool {
	for _, sub := range []string{"cur", "new"} {
		fi, err := os.Stat(filepath.Join(dir, sub))
		if err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

// inMaildirFolder reports whether the file path lies directly in the cur/
// or new/ folder of a maildir.
func inMaildirFolder(path string) bool {
	dir := filepath.Dir(path)
	base := filepath.Base(dir)
	return (base == "cur" || base == "new") && isMaildir(filepath.Dir(dir))
}

// skipFile reports whether a file met in a directory walk is not mail.
func skipFile(name string, kind dirKind) bool {
	lower := strings.ToLower(name)
	switch {
	case strings.HasPrefix(name, "."),
		strings.HasSuffix(lower, ".lock"),
		strings.HasSuffix(lower, ".msf"),
		strings.HasPrefix(lower, "dovecot"),
		lower == "thumbs.db", lower == "desktop.ini":
		return true
	case kind == maildirRoot:
		return lower == "maildirfolder" || lower == "maildirsize" ||
			lower == "subscriptions" || strings.HasPrefix(lower, "courier")
	}
	return false
}

func walkDir(ctx context.Context, dir string, kind dirKind, visit func(entry) error) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		if err := visit(entry{path: dir, err: fmt.Errorf("read directory: %w", err)}); err != nil {
			return err
		}
		// os.ReadDir returns the entries it could read; carry on with them.
	}
	for _, de := range ents {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := de.Name()
		p := filepath.Join(dir, name)
		typ := de.Type()
		if typ&fs.ModeSymlink != 0 {
			fi, err := os.Stat(p)
			if err != nil {
				if err := visit(entry{path: p, err: err}); err != nil {
					return err
				}
				continue
			}
			if fi.IsDir() {
				continue // directory links are not followed: no cycles
			}
			typ = fi.Mode().Type()
		}
		switch {
		case typ.IsDir():
			err = walkSubdir(ctx, p, name, kind, visit)
		case typ.IsRegular():
			if skipFile(name, kind) {
				continue
			}
			err = visit(entry{path: p, maildir: kind == maildirMsgs})
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// walkSubdir walks the subdirectory p (named name) of a directory of kind
// parent.
func walkSubdir(ctx context.Context, p, name string, parent dirKind, visit func(entry) error) error {
	switch {
	case parent == maildirMsgs:
		return nil // cur/ and new/ hold only files
	case parent == maildirRoot && (name == "cur" || name == "new"):
		return walkDir(ctx, p, maildirMsgs, visit)
	case parent == maildirRoot && name == "tmp":
		return nil // deliveries in progress
	case isMaildir(p):
		return walkDir(ctx, p, maildirRoot, visit)
	case strings.HasPrefix(name, "."):
		return nil // hidden and not a maildir
	}
	return walkDir(ctx, p, plainDir, visit)
}

// opened is a file opened for reading, decompressed if need be.
type opened struct {
	*bufio.Reader
	close      func() error
	compressed bool
}

// readErr wraps an error met while reading the content of o.
func (o *opened) readErr(err error) error {
	if o.compressed {
		return fmt.Errorf("bad compression: %w", err)
	}
	return fmt.Errorf("read: %w", err)
}

// openFile opens path and returns a reader of its decompressed content.
// Its close function must be called when done.
func openFile(path string) (*opened, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, chunkSize)
	magic, err := br.Peek(4)
	if err != nil && !errors.Is(err, io.EOF) {
		_ = f.Close()
		return nil, fmt.Errorf("read: %w", err)
	}
	ext := strings.ToLower(filepath.Ext(path))
	switch {
	case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(br)
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("bad compression: gzip: %w", err)
		}
		closeFn := func() error {
			zerr := zr.Close()
			if err := f.Close(); err != nil {
				return err
			}
			return zerr
		}
		return &opened{bufio.NewReaderSize(zr, chunkSize), closeFn, true}, nil
	case bytes.HasPrefix(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(br,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxWindow(zstdMaxWindow))
		if err != nil {
			_ = f.Close()
			return nil, fmt.Errorf("bad compression: zstd: %w", err)
		}
		closeFn := func() error {
			zr.Close()
			return f.Close()
		}
		return &opened{bufio.NewReaderSize(zr, chunkSize), closeFn, true}, nil
	case ext == ".gz" || ext == ".zst":
		_ = f.Close()
		return nil, fmt.Errorf("bad compression: not a %s file", strings.TrimPrefix(ext, "."))
	}
	return &opened{br, f.Close, false}, nil
}

// isMbox reports whether the content in br starts with "From ", after
// blank lines, looking at most at the buffer's size.
func isMbox(br *bufio.Reader) (bool, error) {
	b, err := br.Peek(br.Size())
	if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, bufio.ErrBufferFull) {
		if len(b) == 0 {
			return false, err
		}
	}
	for {
		switch {
		case bytes.HasPrefix(b, []byte("\n")):
			b = b[1:]
		case bytes.HasPrefix(b, []byte("\r\n")):
			b = b[2:]
		default:
			return bytes.HasPrefix(b, []byte(fromPrefix)), nil
		}
	}
}

// readFile reports the message(s) of one file to fn.
func readFile(ctx context.Context, e entry, maxSize int64, fn func(Item) error) error {
	fail := func(err error) error { return fn(Item{Source: e.path, Err: err}) }
	o, err := openFile(e.path)
	if err != nil {
		return fail(err)
	}
	defer func() {
		// A close error of a file only read from changes nothing read.
		_ = o.close()
	}()
	mbox := false
	if !e.maildir {
		if mbox, err = isMbox(o.Reader); err != nil {
			return fail(o.readErr(err))
		}
	}
	if !mbox {
		if !o.compressed {
			if fi, err := os.Stat(e.path); err == nil && fi.Size() > maxSize {
				return fail(fmt.Errorf("%w (%d bytes, more than %d)", ErrTooLarge, fi.Size(), maxSize))
			}
		}
		raw, err := io.ReadAll(io.LimitReader(o, maxSize+1))
		switch {
		case err != nil:
			return fail(o.readErr(err))
		case int64(len(raw)) > maxSize:
			return fail(fmt.Errorf("%w (more than %d bytes)", ErrTooLarge, maxSize))
		case len(raw) == 0:
			return fail(ErrEmpty)
		}
		return fn(Item{Source: e.path, Raw: raw})
	}
	mr := NewMboxReader(o, maxSize)
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		src := e.path + "#" + strconv.Itoa(n)
		raw, err := mr.Next()
		switch {
		case errors.Is(err, io.EOF):
			return nil
		case errors.Is(err, ErrTooLarge):
			err = fn(Item{Source: src, Err: err})
		case err != nil:
			// The stream is broken: report it once and leave the file.
			return fn(Item{Source: src, Err: o.readErr(err)})
		case len(raw) == 0:
			err = fn(Item{Source: src, Err: ErrEmpty})
		default:
			err = fn(Item{Source: src, Raw: raw})
		}
		if err != nil {
			return err
		}
	}
}

// countFile counts the messages in one file as Count describes.
func countFile(ctx context.Context, path string) (int, error) {
	o, err := openFile(path)
	if err != nil {
		return 1, nil
	}
	defer func() { _ = o.close() }()
	mbox, err := isMbox(o.Reader)
	if err != nil || !mbox {
		return 1, nil
	}
	n := 0
	atLineStart := true
	buf := make([]byte, chunkSize)
	carry := 0 // bytes at the start of buf kept from the previous read
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		r, rerr := io.ReadFull(o, buf[carry:])
		b := buf[:carry+r]
		// Scan complete lines; keep a possibly partial line start of
		// fewer than 5 bytes for the next round.
		i := 0
		for i < len(b) {
			if atLineStart {
				if len(b)-i < len(fromPrefix) && rerr == nil {
					break
				}
				if bytes.HasPrefix(b[i:], []byte(fromPrefix)) {
					n++
				}
			}
			j := bytes.IndexByte(b[i:], '\n')
			if j < 0 {
				i = len(b)
				atLineStart = false
				break
			}
			i += j + 1
			atLineStart = true
		}
		carry = copy(buf, b[i:])
		if rerr != nil {
			// io.EOF, io.ErrUnexpectedEOF (a short last read) or a
			// broken stream: either way counting is over.
			return max(n, 1), nil
		}
	}
}
