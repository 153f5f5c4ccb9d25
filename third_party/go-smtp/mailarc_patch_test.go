package smtp

// Differential tests for mailarc's two patches (see MAILARC.md): the bulk
// dataReader and lineLimitReader must behave exactly like upstream's
// byte-at-a-time loops, kept here as the reference.

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// refDotUnstuff is upstream v0.25.1's dataReader state machine run over a
// whole input, with the one intended change of the size-limit patch:
// ErrDataTooLarge only when a byte of data beyond the limit would be
// returned (upstream refused any byte read at the limit, so the end-of-data
// line after exactly limit bytes of data).
func refDotUnstuff(in []byte, limit int64) ([]byte, error) {
	const (
		stateBeginLine = iota
		stateDot
		stateDotCR
		stateCR
		stateData
		stateEOF
	)
	state := stateBeginLine
	var out []byte
	for _, c := range in {
		switch state {
		case stateBeginLine:
			if c == '.' {
				state = stateDot
				continue
			}
			if c == '\r' {
				state = stateCR
				break
			}
			state = stateData
		case stateDot:
			if c == '\r' {
				state = stateDotCR
				continue
			}
			state = stateData
		case stateDotCR:
			if c == '\n' {
				return out, nil
			}
			state = stateData
		case stateCR:
			if c == '\n' {
				state = stateBeginLine
				break
			}
			state = stateData
		case stateData:
			if c == '\r' {
				state = stateCR
			}
		}
		if limit > 0 && int64(len(out)) >= limit {
			return out, ErrDataTooLarge
		}
		out = append(out, c)
	}
	return out, io.ErrUnexpectedEOF
}

func readAllData(in []byte, bufSize int, chunk int, limit int64) ([]byte, error) {
	br := bufio.NewReaderSize(iotest.HalfReader(bytes.NewReader(in)), bufSize)
	dr := &dataReader{r: br, limited: limit > 0, n: limit}
	var out []byte
	p := make([]byte, chunk)
	for {
		n, err := dr.Read(p)
		out = append(out, p[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if n == 0 && len(out) > len(in)+1 {
			return out, errors.New("no progress")
		}
	}
}

func checkDataReader(t *testing.T, in []byte, bufSize, chunk int, limit int64) {
	t.Helper()
	want, wantErr := refDotUnstuff(in, limit)
	got, err := readAllData(in, bufSize, chunk, limit)
	if !errors.Is(err, wantErr) && !(wantErr == nil && err == nil) {
		t.Fatalf("input %q (buf %d, chunk %d, limit %d): error %v, upstream %v", in, bufSize, chunk, limit, err, wantErr)
	}
	if wantErr == nil && !bytes.Equal(got, want) {
		t.Fatalf("input %q (buf %d, chunk %d): got %q, upstream %q", in, bufSize, chunk, got, want)
	}
}

func TestDataReaderMatchesUpstream(t *testing.T) {
	for _, in := range []string{
		"hello\r\n.\r\n",
		"..dot\r\n.\r\n",
		"a\rb\r\n\r\n.x\r\n.\r\n",
		"no end",
		".\r\n",
		"line\r\n.\rx\r\n.\r\n",
		string(bytes.Repeat([]byte("X"), 100000)) + "\r\n.\r\n",
		// Around the limit of 5 bytes used below.
		"abc\r\n.\r\n",
		"abcd\r\n.\r\n",
		"abc\r\n..\r\n.\r\n",
		"abc\r\n.x\r\n.\r\n",
		"abc\r\n.\rx\r\n.\r\n",
		"abc\r\n.",
		"abc\r\n.\r",
		"abc\r\n",
		"abcd\r",
		"..b\r\n\r\n.\r\n",
		// Runs across line ends (dataRun): ordinary lines, empty lines,
		// bare LFs, dots and CRs starting lines in the middle of a run.
		"one\r\ntwo\r\nthree\r\n.\r\n",
		"a\r\n\nb\r\n\n\r\n.\r\n",
		"a\r\nb\r\n.c\r\nd\r\n..\r\ne\r\n.\r\n",
		"a\r\nb\r\n\rc\r\n\r\r\n.\r\n",
		"a\r\nb\r\nc\r\n.\r\nafter the end\r\n",
		strings.Repeat("XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX\r\n", 1400) + ".\r\n",
	} {
		for _, bs := range []int{16, 17, 4096} {
			for _, chunk := range []int{1, 3, 64, 32 << 10} {
				checkDataReader(t, []byte(in), bs, chunk, 0)
				checkDataReader(t, []byte(in), bs, chunk, 5)
			}
		}
	}
}

// TestDataReaderExactLimit: a DATA message of exactly MaxMessageBytes
// bytes is accepted (upstream refused it), one byte more is refused.
func TestDataReaderExactLimit(t *testing.T) {
	const in = "ab\r\n..c\r\n.\r\n" // 8 bytes of data: "ab\r\n.c\r\n"
	for _, chunk := range []int{1, 2, 7, 64} {
		got, err := readAllData([]byte(in), 16, chunk, 8)
		if err != nil || string(got) != "ab\r\n.c\r\n" {
			t.Fatalf("chunk %d, limit = size: %q, %v; want the message", chunk, got, err)
		}
		if _, err := readAllData([]byte(in), 16, chunk, 7); err != ErrDataTooLarge {
			t.Fatalf("chunk %d, limit = size-1: %v, want ErrDataTooLarge", chunk, err)
		}
	}
}

func FuzzDataReader(f *testing.F) {
	f.Add([]byte("abc\r\n.\r\n"), uint8(0), uint8(2), uint8(5))
	f.Add([]byte("a\r\n..b\r\n.\r\n"), uint8(16), uint8(7), uint8(0))
	f.Add([]byte("x\r\r\n.\r\r\n.\r\n"), uint8(1), uint8(1), uint8(3))
	f.Fuzz(func(t *testing.T, in []byte, bs, chunk, limit uint8) {
		checkDataReader(t, in, 16+int(bs), 1+int(chunk), int64(limit))
	})
}

func refLineLimit(in []byte, limit int) error {
	cur := 0
	for _, c := range in {
		if c == '\n' {
			cur = 0
		}
		cur++
		if cur > limit {
			return ErrTooLongLine
		}
	}
	return nil
}

func FuzzLineLimitReader(f *testing.F) {
	f.Add([]byte("abc\ndefgh\n"), uint8(4), uint8(3))
	f.Add([]byte("\n\n\n"), uint8(1), uint8(1))
	f.Fuzz(func(t *testing.T, in []byte, limit, chunk uint8) {
		l := 1 + int(limit)
		r := &lineLimitReader{R: bytes.NewReader(in), LineLimit: l}
		p := make([]byte, 1+int(chunk))
		var err error
		for err == nil {
			_, err = r.Read(p)
		}
		want := refLineLimit(in, l)
		if want == nil && err != io.EOF || want != nil && err != want {
			t.Fatalf("input %q limit %d chunk %d: %v, upstream %v", in, l, 1+int(chunk), err, want)
		}
		if want != nil {
			if _, err := r.Read(p); err != ErrTooLongLine {
				t.Fatalf("error not sticky: %v", err)
			}
		}
	})
}

// BenchmarkDataReader reads a 100 kB message of 75-byte lines (the shape
// of Postfix smtp-source's) through dataReader, as the server does.
func BenchmarkDataReader(b *testing.B) {
	in := []byte(strings.Repeat(strings.Repeat("X", 73)+"\r\n", 1365) + ".\r\n")
	p := make([]byte, 32<<10)
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		dr := &dataReader{r: bufio.NewReaderSize(bytes.NewReader(in), 4096)}
		for {
			if _, err := dr.Read(p); err != nil {
				break
			}
		}
	}
}
