package web

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

// TestReadBody: the body is read whole whatever the announced length (exact,
// unknown, smaller than sent); a body shorter than announced is an error.
func TestReadBody(t *testing.T) {
	msg := strings.Repeat("Subject: x\r\n\r\nbody line\r\n", 1000)
	for _, n := range []int64{int64(len(msg)), -1, 0, 10, 1 << 30} {
		got, err := readBody(strings.NewReader(msg), n)
		if err != nil || !bytes.Equal(got, []byte(msg)) {
			t.Errorf("announced %d: %d bytes, %v; want the %d bytes sent", n, len(got), err, len(msg))
		}
	}
	if _, err := readBody(strings.NewReader(msg[:100]), int64(len(msg))); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a body shorter than announced: %v, want io.ErrUnexpectedEOF", err)
	}
}
