package file

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzMboxReader checks three properties on every input:
//
//  1. Read as an mbox, any byte stream ends in io.EOF without panic, no
//     message exceeds the limit, and the messages together are no longer
//     than the input (every input byte is returned at most once).
//  2. Split on NUL bytes into bodies, each under a correct Content-Length
//     header and written unquoted (mboxcl2), the messages read back exactly,
//     unquoted From lines in the body included (and unquoted only when the
//     body has no unquoted From line).
//  3. The same pieces as whole messages written as mboxrd read back exactly
//     (a missing final newline added), and with a small limit exactly the
//     oversize ones fail while the rest still read back. Inputs containing
//     "content-length" are left out of this check: a Content-Length header
//     that happens to be plausible legitimately changes the split.
func FuzzMboxReader(f *testing.F) {
	for _, s := range []string{
		"From a\nS: 1\n\nbody\n>From x\n\nFrom b\nS: 2\n\n",
		"From a\r\nContent-Length: 3\r\n\r\nx\r\n\r\nFrom b\r\n",
		"From a\nContent-Length: 9\n\nx\nFrom b\n\nFrom c\n",
		"S: 1\n\nFrom x\x00>From y\n\x00\x00From \n\n\n\x00no newline",
		"\n\nFrom a\nFrom b\n\n",
	} {
		f.Add([]byte(s))
	}
	for _, p := range []string{
		"mime-edge/spamassassin-t-data/t/data/nice.mbox",
		"mime-edge/spamassassin-t-data/t/data/spam/009",
		"real/btrfs/000/000001.eml",
		"real/usrp/000/000001.eml",
	} {
		dir := corpusDir(filepath.Dir(p))
		if dir == "" {
			continue
		}
		if b, err := os.ReadFile(filepath.Join(dir, filepath.Base(p))); err == nil && len(b) < 64<<10 {
			f.Add(b)
		}
	}
	f.Fuzz(fuzzBody)
}

// fuzzBody is FuzzMboxReader's property check.
func fuzzBody(t *testing.T, data []byte) {
	// 1. Arbitrary input.
	for _, limit := range []int64{64, 1 << 20} {
		total := 0
		for _, r := range readAll(t, bytes.NewReader(data), limit) {
			if int64(len(r.msg)) > limit {
				t.Fatalf("message of %d bytes, limit %d", len(r.msg), limit)
			}
			total += len(r.msg)
		}
		if total > len(data) {
			t.Fatalf("%d message bytes out of %d input bytes", total, len(data))
		}
	}

	parts := strings.Split(string(data), "\x00")
	if len(parts) > 50 {
		parts = parts[:50]
	}

	// 2. mboxcl2 round trip.
	var b bytes.Buffer
	var wantCL []string
	for _, body := range parts {
		msg := fmt.Sprintf("Content-Length: %d\n\n%s", len(body), body)
		fmt.Fprintf(&b, "From x\n%s\n", msg)
		if !hasUnquotedFrom(body) {
			msg = plainUnquote(msg)
		}
		wantCL = append(wantCL, msg)
	}
	check(t, readAll(t, bytes.NewReader(b.Bytes()), 1<<20), msgs(wantCL...))

	// 3. mboxrd round trip.
	if strings.Contains(strings.ToLower(string(data)), "content-length") {
		return
	}
	mbox, want := writeMboxrd(parts)
	check(t, readAll(t, bytes.NewReader(mbox), 1<<20), msgs(want...))
	const small = 40
	var wantSmall []result
	for _, w := range want {
		if len(w) > small {
			wantSmall = append(wantSmall, result{err: "too large"})
		} else {
			wantSmall = append(wantSmall, result{msg: w})
		}
	}
	check(t, readAll(t, bytes.NewReader(mbox), small), wantSmall)
}

// hasUnquotedFrom reports whether a line of s starts with "From ".
func hasUnquotedFrom(s string) bool {
	for _, line := range strings.SplitAfter(s, "\n") {
		if strings.HasPrefix(line, "From ") {
			return true
		}
	}
	return false
}

// plainUnquote is an independent, obvious version of unquoteFrom.
func plainUnquote(s string) string {
	lines := strings.SplitAfter(s, "\n")
	for i, line := range lines {
		if t := strings.TrimLeft(line, ">"); len(t) < len(line) && strings.HasPrefix(t, "From ") {
			lines[i] = line[1:]
		}
	}
	return strings.Join(lines, "")
}

// TestFuzzHelpers keeps the fuzz oracle honest.
func TestFuzzHelpers(t *testing.T) {
	t.Parallel()
	if got := plainUnquote(">From a\n>>From b\n> From c\nFrom d\n>From"); got != "From a\n>From b\n> From c\nFrom d\n>From" {
		t.Errorf("plainUnquote = %q", got)
	}
	if got := string(unquoteFrom([]byte(">From a\r\n>>From b\n>Fro"))); got != "From a\r\n>From b\n>Fro" {
		t.Errorf("unquoteFrom = %q", got)
	}
	if !hasUnquotedFrom("x\nFrom y") || hasUnquotedFrom(">From y\n From z") {
		t.Error("hasUnquotedFrom")
	}
	mr := NewMboxReader(strings.NewReader(""), 0)
	if _, err := mr.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("empty stream: %v", err)
	}
}
