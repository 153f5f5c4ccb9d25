package mirror

import (
	"bufio"
	"bytes"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	var id [32]byte
	id[0] = 7
	put := encodePut(id, []byte(`{"rcpt_to":["x@y"]}`), []byte("zstd"))
	for _, f := range []frame{{frameHello, []byte(`{}`)}, {framePing, nil}, {framePut, put}} {
		if err := writeFrame(&buf, f.typ, f.payload); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&buf)
	for _, want := range []byte{frameHello, framePing, framePut} {
		f, err := readFrame(r, 1<<20)
		if err != nil || f.typ != want {
			t.Fatalf("frame %q: %v %q", want, err, f.typ)
		}
		if f.typ == framePut {
			gid, meta, z, err := decodePut(f.payload)
			if err != nil || gid != id || string(meta) != `{"rcpt_to":["x@y"]}` || string(z) != "zstd" {
				t.Fatalf("put round trip: %v %q %q", err, meta, z)
			}
		}
	}
	// A header announcing more than the cap is refused before allocation.
	buf.Reset()
	_ = writeFrame(&buf, framePut, make([]byte, 100))
	if _, err := readFrame(bufio.NewReader(&buf), 99); err == nil {
		t.Fatal("oversized frame accepted")
	}
	// A truncated frame is an error, never a short payload.
	buf.Reset()
	_ = writeFrame(&buf, framePut, put)
	if _, err := readFrame(bufio.NewReader(bytes.NewReader(buf.Bytes()[:buf.Len()-1])), 1<<20); err == nil {
		t.Fatal("truncated frame accepted")
	}
}

// FuzzFrame feeds arbitrary bytes to the frame, put and result decoders:
// they must never panic nor allocate beyond their caps.
func FuzzFrame(f *testing.F) {
	var id [32]byte
	var b bytes.Buffer
	_ = writeFrame(&b, framePut, encodePut(id, []byte(`{"mail_from":["a@b"]}`), []byte{0x28, 0xb5, 0x2f, 0xfd}))
	f.Add(b.Bytes())
	b.Reset()
	_ = writeFrame(&b, frameResult, encodeResult(id, resStored, ""))
	_ = writeFrame(&b, frameLack, make([]byte, 64))
	f.Add(b.Bytes())
	f.Add([]byte{'P', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte("H\x02{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r := bufio.NewReader(bytes.NewReader(data))
		for i := 0; i < 64; i++ {
			fr, err := readFrame(r, 1<<16)
			if err != nil {
				return
			}
			if len(fr.payload) > 1<<16 {
				t.Fatalf("payload of %d bytes beyond the cap", len(fr.payload))
			}
			switch fr.typ {
			case framePut:
				if _, meta, z, err := decodePut(fr.payload); err == nil && len(meta)+len(z)+32 > len(fr.payload) {
					t.Fatal("put parts exceed the payload")
				}
			case frameResult:
				_, _, _, _ = decodeResult(fr.payload)
			}
		}
	})
}
