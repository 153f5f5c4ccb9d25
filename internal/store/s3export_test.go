package store

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestCodecExport(t *testing.T) {
	key := bytes.Repeat([]byte{4}, KeySize)
	c, err := NewCodec(CodecOptions{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := NewBlob([]byte(strings.Repeat("Subject: codec\r\n", 200)))
	rec, err := c.Encode(b)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(rec, []byte("Subject")) {
		t.Fatal("encrypted record contains plaintext")
	}
	id, raw, err := RecordRawLen(rec[:RecordHeaderSize])
	if err != nil || id != b.ID || raw != int64(len(b.Data)) {
		t.Fatalf("RecordRawLen = %s, %d, %v", id, raw, err)
	}
	id, data, err := c.Decode(rec)
	if err != nil || id != b.ID || !bytes.Equal(data, b.Data) {
		t.Fatalf("Decode = %s, %d bytes, %v", id, len(data), err)
	}
	rec[len(rec)-1] ^= 1
	if _, _, err := c.Decode(rec); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Decode of a damaged record = %v, want ErrCorrupt", err)
	}
	if _, err := c.Encode(Blob{ID: b.ID, Data: []byte("other")}); err == nil {
		t.Fatal("Encode accepted data that does not match its id")
	}
	other, err := NewCodec(CodecOptions{Key: bytes.Repeat([]byte{5}, KeySize)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	rec[len(rec)-1] ^= 1
	if _, _, err := other.Decode(rec); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Decode with another key = %v, want ErrCorrupt", err)
	}
}

func TestMetaExport(t *testing.T) {
	key := bytes.Repeat([]byte{4}, KeySize)
	enc, _ := NewCodec(CodecOptions{Key: key})
	defer enc.Close()
	wrong, _ := NewCodec(CodecOptions{Key: bytes.Repeat([]byte{6}, KeySize)})
	defer wrong.Close()
	plain, _ := NewCodec(CodecOptions{})
	defer plain.Close()

	m, inst, err := NewMeta(enc)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := CheckMeta(m, enc, "test"); err != nil || got != inst {
		t.Fatalf("CheckMeta with the right key = %s, %v", got, err)
	}
	if _, err := CheckMeta(m, wrong, "test"); err == nil {
		t.Fatal("CheckMeta accepted the wrong key")
	}
	if _, err := CheckMeta(m, plain, "test"); err == nil {
		t.Fatal("CheckMeta accepted no key for an encrypted store")
	}
	pm, _, err := NewMeta(plain)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CheckMeta(pm, enc, "test"); err == nil {
		t.Fatal("CheckMeta accepted a key for an unencrypted store")
	}
	if _, err := CheckMeta([]byte("{"), plain, "test"); err == nil {
		t.Fatal("CheckMeta accepted malformed JSON")
	}
}
