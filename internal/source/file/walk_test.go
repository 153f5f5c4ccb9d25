package file

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zst(t *testing.T, b []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = enc.Close() }()
	return enc.EncodeAll(b, nil)
}

// writeTree creates files (path relative to root -> content) under root.
func writeTree(t *testing.T, root string, files map[string][]byte) {
	t.Helper()
	for name, content := range files {
		p := filepath.Join(root, filepath.FromSlash(name))
		if strings.HasSuffix(name, "/") { // directory only
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// got is an Item in comparable form: the error as "error" plus whether it
// is ErrTooLarge / ErrEmpty / a compression problem.
type got struct {
	src string
	raw string
	err string
}

func classify(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrTooLarge):
		return "too large"
	case errors.Is(err, ErrEmpty):
		return "empty"
	case errors.Is(err, fs.ErrNotExist):
		return "not exist"
	case strings.Contains(err.Error(), "bad compression"):
		return "bad compression"
	}
	return "error: " + err.Error()
}

func walkAll(t *testing.T, paths []string, opt Options) []got {
	t.Helper()
	var out []got
	err := Walk(context.Background(), paths, opt, func(it Item) error {
		if (it.Err == nil) == (it.Raw == nil) {
			t.Errorf("%s: Raw %d bytes with Err %v", it.Source, len(it.Raw), it.Err)
		}
		out = append(out, got{src: it.Source, raw: string(it.Raw), err: classify(it.Err)})
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return out
}

func compare(t *testing.T, root string, items, want []got) {
	t.Helper()
	for i := range items {
		items[i].src = strings.TrimPrefix(filepath.ToSlash(items[i].src), filepath.ToSlash(root)+"/")
	}
	for i := 0; i < max(len(items), len(want)); i++ {
		var g, w got
		if i < len(items) {
			g = items[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			t.Errorf("item %d:\ngot  %q\nwant %q", i+1, g, w)
		}
	}
}

const (
	msgA = "Subject: a\n\nA\n"
	msgB = "Subject: b\r\n\r\nB\r\n"
)

func TestWalkTree(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	mbox, _ := writeMboxrd([]string{msgA, "Subject: q\n\nFrom quoted\n"})
	fromMaildir := "From looks-like-mbox but is a maildir message\nSubject: m\n\nFrom x\n"
	writeTree(t, root, map[string][]byte{
		".DS_Store":                  []byte("junk"),
		".hidden/x.eml":              []byte(msgA),
		"Inbox.msf":                  []byte("// <!-- <mdb:mork:z v=\"1.4\"/> -->"),
		"Maildir/cur/1:2,S":          []byte(msgA),
		"Maildir/new/2":              []byte(fromMaildir),
		"Maildir/new/.hidden":        []byte(msgA),
		"Maildir/tmp/3":              []byte(msgA),
		"Maildir/dovecot-uidlist":    []byte("3 V1 N2\n"),
		"Maildir/dovecot.index":      []byte("\x00\x01"),
		"Maildir/subscriptions":      []byte("Sub\n"),
		"Maildir/.Sub/cur/4:2,":      []byte(msgB),
		"Maildir/.Sub/new/":          nil,
		"Maildir/.Sub/tmp/":          nil,
		"Maildir/.Sub/maildirfolder": nil,
		"Maildir/.NotMaildir/x":      []byte(msgA),
		"a.eml":                      []byte(msgA),
		"b/c.eml":                    []byte(msgB),
		"b/d/e.eml":                  []byte("\n\nleading blank lines kept\n"),
		"b.eml":                      []byte(msgA + "\n"),
		"box.mbox":                   mbox,
		"box.mbox.gz":                gz(t, mbox),
		"box.mbox.zst":               zst(t, mbox),
		"empty.eml":                  nil,
		"fake.gz":                    []byte(msgA),
		"inbox.lock":                 nil,
		"msg.eml.gz":                 gz(t, []byte(msgB)),
		"msg.eml.zst":                zst(t, []byte(msgB)),
		"noext":                      gz(t, []byte(msgA)), // sniffed by magic
	})
	if err := os.Symlink(filepath.Join(root, "a.eml"), filepath.Join(root, "link.eml")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "b"), filepath.Join(root, "linkdir")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(root, "nowhere"), filepath.Join(root, "zz-dangling")); err != nil {
		t.Fatal(err)
	}
	want := []got{
		{src: "Maildir/.Sub/cur/4:2,", raw: msgB},
		{src: "Maildir/cur/1:2,S", raw: msgA},
		{src: "Maildir/new/2", raw: fromMaildir},
		{src: "a.eml", raw: msgA},
		{src: "b/c.eml", raw: msgB},
		{src: "b/d/e.eml", raw: "\n\nleading blank lines kept\n"},
		{src: "b.eml", raw: msgA + "\n"},
		{src: "box.mbox#1", raw: msgA},
		{src: "box.mbox#2", raw: "Subject: q\n\nFrom quoted\n"},
		{src: "box.mbox.gz#1", raw: msgA},
		{src: "box.mbox.gz#2", raw: "Subject: q\n\nFrom quoted\n"},
		{src: "box.mbox.zst#1", raw: msgA},
		{src: "box.mbox.zst#2", raw: "Subject: q\n\nFrom quoted\n"},
		{src: "empty.eml", err: "empty"},
		{src: "fake.gz", err: "bad compression"},
		{src: "link.eml", raw: msgA},
		{src: "msg.eml.gz", raw: msgB},
		{src: "msg.eml.zst", raw: msgB},
		{src: "noext", raw: msgA},
		{src: "zz-dangling", err: "not exist"},
	}
	items := walkAll(t, []string{root}, Options{})
	compare(t, root, items, want)

	n, err := Count(context.Background(), []string{root})
	if err != nil || n != len(want) {
		t.Errorf("Count = %d, %v; want %d", n, err, len(want))
	}

	// Paths are visited in the order given; explicit files are read even
	// when hidden, and a maildir's folder named directly is still a maildir.
	items = walkAll(t, []string{
		filepath.Join(root, "b"),
		filepath.Join(root, ".DS_Store"),
		filepath.Join(root, "Maildir", "new"),
		filepath.Join(root, "Maildir", "new", "2"),
		filepath.Join(root, "Maildir", ".Sub"),
	}, Options{})
	compare(t, root, items, []got{
		{src: "b/c.eml", raw: msgB},
		{src: "b/d/e.eml", raw: "\n\nleading blank lines kept\n"},
		{src: ".DS_Store", raw: "junk"},
		{src: "Maildir/new/2", raw: fromMaildir},
		{src: "Maildir/new/2", raw: fromMaildir},
		{src: "Maildir/.Sub/cur/4:2,", raw: msgB},
	})
}

func TestWalkMissingPath(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	writeTree(t, root, map[string][]byte{"a.eml": []byte(msgA)})
	missing := filepath.Join(root, "missing.mbox")
	items := walkAll(t, []string{missing, filepath.Join(root, "a.eml")}, Options{})
	compare(t, root, items, []got{
		{src: "missing.mbox", err: "not exist"},
		{src: "a.eml", raw: msgA},
	})
	n, err := Count(context.Background(), []string{missing, root})
	if err != nil || n != 2 {
		t.Errorf("Count = %d, %v; want 2", n, err)
	}
}

func TestWalkTooLarge(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	big := "Subject: big\n\n" + strings.Repeat("0123456789\n", 200)
	mbox, _ := writeMboxrd([]string{msgA, big, msgB})
	writeTree(t, root, map[string][]byte{
		"1.eml":      []byte(big),
		"2.eml.gz":   gz(t, []byte(big)),
		"3.mbox":     mbox,
		"4.mbox.zst": zst(t, mbox),
		"5.eml":      []byte(big[:1000]), // exactly the limit
	})
	items := walkAll(t, []string{root}, Options{MaxMessageSize: 1000})
	compare(t, root, items, []got{
		{src: "1.eml", err: "too large"},
		{src: "2.eml.gz", err: "too large"},
		{src: "3.mbox#1", raw: msgA},
		{src: "3.mbox#2", err: "too large"},
		{src: "3.mbox#3", raw: msgB},
		{src: "4.mbox.zst#1", raw: msgA},
		{src: "4.mbox.zst#2", err: "too large"},
		{src: "4.mbox.zst#3", raw: msgB},
		{src: "5.eml", raw: big[:1000]},
	})
}

func TestWalkTruncatedCompression(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	// Barely compressible bodies, so that cutting the compressed file in
	// half cuts the content about in half too (zstd blocks are 128 KiB).
	rng := rand.New(rand.NewPCG(1, 2))
	var in []string
	for i := range 8 {
		var b strings.Builder
		b.WriteString("Subject: " + string(rune('a'+i)) + "\n\n")
		for range 40000 {
			b.WriteString(string(rune('a' + rng.IntN(26))))
			if rng.IntN(60) == 0 {
				b.WriteByte('\n')
			}
		}
		b.WriteByte('\n')
		in = append(in, b.String())
	}
	mbox, want := writeMboxrd(in)
	g, z := gz(t, mbox), zst(t, mbox)
	writeTree(t, root, map[string][]byte{
		"a.mbox.gz":  g[:len(g)/2],
		"b.mbox.zst": z[:len(z)/2],
	})
	items := walkAll(t, []string{root}, Options{})
	i := 0
	for _, name := range []string{"a.mbox.gz", "b.mbox.zst"} {
		n := 0
		for ; i < len(items) && items[i].err == "" && strings.HasPrefix(items[i].src, filepath.Join(root, name)); i++ {
			if items[i].raw != want[n] {
				t.Errorf("%s: message %d differs", items[i].src, n+1)
			}
			n++
		}
		if n == 0 || n >= len(want) {
			t.Errorf("%s: %d good messages before the damage, want some but not all", name, n)
		}
		if i >= len(items) || items[i].err != "bad compression" || !strings.HasPrefix(items[i].src, filepath.Join(root, name)+"#") {
			t.Fatalf("%s: no compression failure after the good messages: %q", name, items[i:])
		}
		i++
	}
	if i != len(items) {
		t.Errorf("items after the failures: %q", items[i:])
	}
}

func TestWalkStops(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	mbox, _ := writeMboxrd([]string{msgA, msgA, msgA})
	writeTree(t, root, map[string][]byte{"a.eml": []byte(msgA), "b.mbox": mbox, "c.eml": []byte(msgA)})

	stop := errors.New("stop")
	calls := 0
	err := Walk(context.Background(), []string{root}, Options{}, func(Item) error {
		calls++
		if calls == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || calls != 2 {
		t.Errorf("fn error: Walk = %v after %d calls, want stop after 2", err, calls)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	calls = 0
	err = Walk(ctx, []string{root}, Options{}, func(Item) error {
		calls++
		if calls == 2 {
			cancel()
		}
		return nil
	})
	if !errors.Is(err, context.Canceled) || calls != 2 {
		t.Errorf("cancel: Walk = %v after %d calls, want context.Canceled after 2", err, calls)
	}
	if _, err := Count(ctx, []string{root}); !errors.Is(err, context.Canceled) {
		t.Errorf("Count with a done context = %v", err)
	}
}

func TestCountMbox(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	var in []string
	for i := range 300 {
		in = append(in, "Subject: x\n\n"+strings.Repeat("From inside, quoted\n", i%3)+strings.Repeat("y", i*50)+"\n")
	}
	mbox, _ := writeMboxrd(in)
	writeTree(t, root, map[string][]byte{"big.mbox": mbox, "big.mbox.gz": gz(t, mbox)})
	n, err := Count(context.Background(), []string{root})
	if err != nil || n != 600 {
		t.Errorf("Count = %d, %v; want 600", n, err)
	}
}
