package store

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"testing"
)

// TestEncodeLevels: Smaller compresses, Deferred writes the blob as it is
// (a plain record, for Recompress), and both records decode to the exact
// bytes; a store without compression ignores the level.
func TestEncodeLevels(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	for i := 0; b.Len() < 200_000; i++ {
		fmt.Fprintf(&b, "Received: from host%d.example.org by mx.example.net; line %d of a long and repetitive message\r\n", i%37, i)
	}
	data := b.Bytes()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	records := map[Level]int{}
	for _, opt := range []LocalOptions{{}, {NoCompress: true}} {
		opt.Logger, opt.NoSync = quiet, true
		l, err := OpenLocal(t.TempDir(), opt)
		if err != nil {
			t.Fatal(err)
		}
		for _, lvl := range []Level{Smaller, Deferred} {
			blob := Blob{Data: data}
			if err := l.Encode(&blob, lvl); err != nil {
				t.Fatalf("Encode(%v): %v", lvl, err)
			}
			_, got, err := l.codec.decodeRecord(blob.record)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("level %v: record does not decode to the data (%v)", lvl, err)
			}
			if !opt.NoCompress {
				records[lvl] = len(blob.record)
			} else if len(blob.record) != recordHeaderSize+len(data) {
				t.Errorf("NoCompress, level %v: record is %d bytes, want %d", lvl, len(blob.record), recordHeaderSize+len(data))
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if records[Smaller] >= len(data)/4 {
		t.Errorf("Smaller: record of %d bytes for %d repetitive bytes: not compressed", records[Smaller], len(data))
	}
	if records[Deferred] != recordHeaderSize+len(data) {
		t.Errorf("Deferred: record of %d bytes, want the %d-byte header and the blob as it is", records[Deferred], recordHeaderSize)
	}
}
