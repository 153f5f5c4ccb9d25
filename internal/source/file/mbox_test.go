package file

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// writeMboxrd writes msgs as an mboxrd file: a From line, the message with
// every ^>*From line quoted, a newline if the message lacks one, and a blank
// separator line. It returns the file and the messages as they must read
// back (with the added final newline).
func writeMboxrd(msgs []string) (mbox []byte, want []string) {
	var b bytes.Buffer
	for i, m := range msgs {
		if m != "" && !strings.HasSuffix(m, "\n") {
			m += "\n"
		}
		want = append(want, m)
		fmt.Fprintf(&b, "From sender%d@example.com Thu Jan  1 00:00:00 2026\n", i)
		for _, line := range strings.SplitAfter(m, "\n") {
			if strings.HasPrefix(strings.TrimLeft(line, ">"), "From ") {
				b.WriteByte('>')
			}
			b.WriteString(line)
		}
		b.WriteByte('\n')
	}
	return b.Bytes(), want
}

// result is one outcome of MboxReader.Next, for comparisons.
type result struct {
	msg string
	err string // "" or "too large"
}

func readAll(t testing.TB, r io.Reader, maxSize int64) []result {
	t.Helper()
	mr := NewMboxReader(r, maxSize)
	var out []result
	for range 100000 {
		msg, err := mr.Next()
		switch {
		case errors.Is(err, io.EOF):
			return out
		case errors.Is(err, ErrTooLarge):
			if msg != nil {
				t.Fatalf("message %d: ErrTooLarge with %d bytes", len(out)+1, len(msg))
			}
			out = append(out, result{err: "too large"})
		case err != nil:
			t.Fatalf("message %d: unexpected error %v", len(out)+1, err)
		default:
			out = append(out, result{msg: string(msg)})
		}
	}
	t.Fatal("MboxReader.Next does not reach io.EOF")
	return nil
}

func msgs(ss ...string) []result {
	out := make([]result, len(ss))
	for i, s := range ss {
		out[i] = result{msg: s}
	}
	return out
}

func check(t *testing.T, got, want []result) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d messages, want %d:\ngot  %q\nwant %q", len(got), len(want), got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("message %d:\ngot  %q\nwant %q", i+1, got[i], want[i])
		}
	}
}

func TestMboxrdRoundTrip(t *testing.T) {
	t.Parallel()
	in := []string{
		"Subject: one\n\nFrom the start of a line\n>From quoted once\n>>From quoted twice\nFrom\nFrom: not a separator\n",
		"Subject: two\n\nends with a blank line\n\n",
		"Subject: three\n\n> From with a space\n >From indented\nno final newline",
		"From: header looks like a From line only with colon\nSubject: four\n\nbody\n",
		"\n\nstarts with blank lines\n",
		">From first line quoted\n",
	}
	mbox, want := writeMboxrd(in)
	check(t, readAll(t, bytes.NewReader(mbox), 0), msgs(want...))
	// The same through one-byte reads, to exercise every buffer boundary.
	check(t, readAll(t, iotest.OneByteReader(bytes.NewReader(mbox)), 0), msgs(want...))
}

func TestMboxo(t *testing.T) {
	t.Parallel()
	// mboxo quotes "From " lines but not ">From " lines; both are unquoted
	// on reading (the documented convention).
	mbox := "From a@example.com Sat Jan  3 01:05:34 1996\n" +
		"Subject: mboxo\n\n>From the writer's quoting\n>From ambiguous\nend\n\n" +
		"From b@example.com Sat Jan  3 01:05:35 1996\nSubject: b\n\nbody\n"
	check(t, readAll(t, strings.NewReader(mbox), 0), msgs(
		"Subject: mboxo\n\nFrom the writer's quoting\nFrom ambiguous\nend\n",
		"Subject: b\n\nbody\n",
	))
}

func TestMboxSeparators(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want []result
	}{
		{"empty input", "", nil},
		{"only blank lines", "\n\r\n\n", nil},
		{"leading blank lines", "\n\nFrom a\nS: 1\n\nx\n", msgs("S: 1\n\nx\n")},
		{"no trailing newline", "From a\nS: 1\n\nbody", msgs("S: 1\n\nbody")},
		{"no trailing newline, two", "From a\nS: 1\n\nx\n\nFrom b\nS: 2\n\nbody", msgs("S: 1\n\nx\n", "S: 2\n\nbody")},
		{"no separator blank line", "From a\nS: 1\n\nx\nFrom b\nS: 2\n\ny\n", msgs("S: 1\n\nx\n", "S: 2\n\ny\n")},
		{"message's own blank line kept", "From a\nS: 1\n\nx\n\n\nFrom b\nS: 2\n", msgs("S: 1\n\nx\n\n", "S: 2\n")},
		{"header-only message", "From a\nS: 1\n\nFrom b\nS: 2\n\n", msgs("S: 1\n", "S: 2\n")},
		{"empty messages", "From a\nFrom b\n\nFrom c\nS: 3\n\nFrom d\n", msgs("", "", "S: 3\n", "")},
		{"crlf", "From a\r\nS: 1\r\n\r\nbody\r\n>From x\r\n\r\nFrom b\r\nS: 2\r\n\r\nb2\r\n\r\n",
			msgs("S: 1\r\n\r\nbody\r\nFrom x\r\n", "S: 2\r\n\r\nb2\r\n")},
		{"crlf own blank line kept", "From a\r\nS: 1\r\n\r\nx\r\n\r\n\r\nFrom b\r\n", msgs("S: 1\r\n\r\nx\r\n\r\n", "")},
		{"text before first From line", "S: 0\n\nx\nFrom a\nS: 1\n", msgs("S: 0\n\nx\n", "S: 1\n")},
		{"From without space is not a separator", "From a\nS: 1\n\nFrom\nFromage\n", msgs("S: 1\n\nFrom\nFromage\n")},
		{"bare CR is not a line ending", "From a\nS: 1\r\rFrom x\n", msgs("S: 1\r\rFrom x\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			check(t, readAll(t, strings.NewReader(tt.in), 0), tt.want)
			check(t, readAll(t, iotest.OneByteReader(strings.NewReader(tt.in)), 0), tt.want)
		})
	}
}

func TestMboxContentLength(t *testing.T) {
	t.Parallel()
	body := "line one\nFrom an unquoted line in the body\n>From stays quoted in mboxcl2\n"
	tests := []struct {
		name string
		in   string
		want []result
	}{
		{
			"honoured",
			fmt.Sprintf("From a\nContent-Length: %d\nS: 1\n\n%s\nFrom b\nS: 2\n\nx\n", len(body), body),
			msgs(fmt.Sprintf("Content-Length: %d\nS: 1\n\n%s", len(body), body), "S: 2\n\nx\n"),
		},
		{
			"honoured at EOF",
			fmt.Sprintf("From a\ncontent-length:  %d \n\n%s", len(body), body),
			msgs(fmt.Sprintf("content-length:  %d \n\n%s", len(body), body)),
		},
		{
			"honoured, separator counted in",
			fmt.Sprintf("From a\nContent-Length: %d\n\n%s\nFrom b\nS: 2\n", len(body)+1, body),
			msgs(fmt.Sprintf("Content-Length: %d\n\n%s", len(body)+1, body), "S: 2\n"),
		},
		{
			"honoured, no From line inside: unquoted",
			"From a\nContent-Length: 12\n\n>From x\nabc\n\nFrom b\n",
			msgs("Content-Length: 12\n\nFrom x\nabc\n", ""),
		},
		{
			"zero",
			"From a\nContent-Length: 0\n\n\nFrom b\nS: 2\n",
			msgs("Content-Length: 0\n\n", "S: 2\n"),
		},
		{
			"crlf",
			"From a\r\nContent-Length: 16\r\n\r\nx\r\nFrom inside\r\n\r\nFrom b\r\n",
			msgs("Content-Length: 16\r\n\r\nx\r\nFrom inside\r\n", ""),
		},
		{
			"too short falls back",
			"From a\nContent-Length: 5\n\n" + body + "\nFrom b\nS: 2\n",
			msgs("Content-Length: 5\n\nline one\n", "From stays quoted in mboxcl2\n", "S: 2\n"),
		},
		{
			"too long falls back",
			"From a\nContent-Length: 500\n\n" + body + "\nFrom b\nS: 2\n",
			msgs("Content-Length: 500\n\nline one\n", "From stays quoted in mboxcl2\n", "S: 2\n"),
		},
		{
			"ends mid-line falls back",
			"From a\nContent-Length: 4\n\nline one\nFrom b\nS: 2\n",
			msgs("Content-Length: 4\n\nline one\n", "S: 2\n"),
		},
		{
			"lands on a later From line: honoured",
			"From a\nContent-Length: 9\n\nx\nFrom b\n\nFrom c\n",
			msgs("Content-Length: 9\n\nx\nFrom b\n", ""),
		},
		{
			"not a number",
			"From a\nContent-Length: 12x\n\nx\nFrom b\n",
			msgs("Content-Length: 12x\n\nx\n", ""),
		},
		{
			"only in the header section",
			"From a\nS: 1\n\nContent-Length: 0\n\nx\nFrom b\n",
			msgs("S: 1\n\nContent-Length: 0\n\nx\n", ""),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			check(t, readAll(t, strings.NewReader(tt.in), 0), tt.want)
			check(t, readAll(t, iotest.OneByteReader(strings.NewReader(tt.in)), 0), tt.want)
		})
	}
}

func TestMboxTooLarge(t *testing.T) {
	t.Parallel()
	big := "S: big\n\n" + strings.Repeat("0123456789abcdef\n", 100)
	long := "S: long line\n\n" + strings.Repeat("x", 200<<10) // longer than a read chunk
	small := "S: small\n\nbody\n"
	mbox, _ := writeMboxrd([]string{small, big, small, long, small, big})
	const maxSize = 500
	check(t, readAll(t, bytes.NewReader(mbox), maxSize), []result{
		{msg: small}, {err: "too large"}, {msg: small}, {err: "too large"}, {msg: small}, {err: "too large"},
	})

	// The limit is on the message as returned: exactly maxSize bytes pass
	// even though the mbox holds more (quoting, separator).
	exact := "S: x\n\n>From y\n"
	exact += strings.Repeat("z", maxSize-len(exact)-2) + "\n\n"
	mbox, want := writeMboxrd([]string{exact, exact + "!"})
	if len(want[0]) != maxSize {
		t.Fatalf("test setup: %d bytes", len(want[0]))
	}
	check(t, readAll(t, bytes.NewReader(mbox), maxSize), []result{{msg: want[0]}, {err: "too large"}})

	// A wrong Content-Length that makes the message look oversize falls
	// back to the From line inside it.
	in := "From a\nContent-Length: 400\n\nx\nFrom b\n" + strings.Repeat("y\n", 400) + "From c\nS: 3\n"
	check(t, readAll(t, strings.NewReader(in), maxSize), []result{
		{msg: "Content-Length: 400\n\nx\n"}, {err: "too large"}, {msg: "S: 3\n"},
	})
}

func TestMboxReadError(t *testing.T) {
	t.Parallel()
	mbox, _ := writeMboxrd([]string{"S: 1\n\nx\n", "S: 2\n\n" + strings.Repeat("y\n", 50000)})
	boom := errors.New("boom")
	r := io.MultiReader(bytes.NewReader(mbox[:len(mbox)/2]), iotest.ErrReader(boom))
	mr := NewMboxReader(r, 0)
	if msg, err := mr.Next(); err != nil || string(msg) != "S: 1\n\nx\n" {
		t.Fatalf("first message: %q, %v", msg, err)
	}
	for range 2 {
		if _, err := mr.Next(); !errors.Is(err, boom) {
			t.Fatalf("got %v, want the read error (sticky)", err)
		}
	}
}

func TestMboxLongFromLine(t *testing.T) {
	t.Parallel()
	in := "From " + strings.Repeat("a", 200<<10) + "\nS: 1\n\nx\n\nFrom " + strings.Repeat("b", 100<<10) + "\nS: 2\n"
	check(t, readAll(t, strings.NewReader(in), 0), msgs("S: 1\n\nx\n", "S: 2\n"))
}

func BenchmarkMboxReader(b *testing.B) {
	var in []string
	for i := range 200 {
		in = append(in, fmt.Sprintf("Subject: %d\n\n%s", i, strings.Repeat("Some body text of a typical line length, more or less.\n", 100+i*10)))
	}
	mbox, _ := writeMboxrd(in)
	b.SetBytes(int64(len(mbox)))
	for b.Loop() {
		mr := NewMboxReader(bytes.NewReader(mbox), 0)
		for {
			if _, err := mr.Next(); err != nil {
				break
			}
		}
	}
}
