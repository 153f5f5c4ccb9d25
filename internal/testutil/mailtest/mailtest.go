// Package mailtest builds synthetic messages and attachments for tests of
// parsing, extraction and indexing: MIME parts with base64 bodies,
// multipart messages, and a minimal TNEF (winmail.dat) stream. It uses the
// standard library only, so any package's tests may import it.
package mailtest

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
)

// AttachmentPart returns a MIME body part (the text after its boundary
// line) carrying data base64-encoded, in lines of 76 characters, as an
// attachment named filename of type ct.
func AttachmentPart(filename, ct string, data []byte) string {
	enc := base64.StdEncoding.EncodeToString(data)
	var b strings.Builder
	fmt.Fprintf(&b, "Content-Type: %s; name=\"%s\"\r\nContent-Disposition: attachment; filename=\"%s\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", ct, filename, filename)
	for len(enc) > 76 {
		b.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	b.WriteString(enc + "\r\n")
	return b.String()
}

// Multipart returns a multipart/mixed message (or body part) made of
// headers (CRLF-terminated fields, to which the MIME fields are added) and
// parts (each the text after its boundary line, as AttachmentPart returns).
// Its boundary is derived from headers, so multiparts with different
// headers nest.
func Multipart(headers string, parts ...string) string {
	boundary := fmt.Sprintf("B%08x", crc32.ChecksumIEEE([]byte(headers)))
	var b strings.Builder
	b.WriteString(headers + "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=" + boundary + "\r\n\r\n")
	for _, p := range parts {
		b.WriteString("--" + boundary + "\r\n" + p)
	}
	b.WriteString("--" + boundary + "--\r\n")
	return b.String()
}

// TNEF returns a minimal TNEF stream (winmail.dat, [MS-OXTNEF]) with a
// subject, a plain-text body and one attached file named file holding
// fileText. Attribute checksums are zero (readers do not verify them).
func TNEF(subject, body, file, fileText string) []byte {
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	attr := func(level byte, tag uint32, val []byte) {
		b.WriteByte(level)
		le(tag)
		le(uint32(len(val)))
		b.Write(val)
		le(uint16(0)) // checksum
	}
	le(uint32(0x223E9F78))                      // signature
	le(uint16(1))                               // legacy key
	attr(1, 0x00018004, []byte(subject+"\x00")) // attSubject (message level)
	attr(1, 0x0002800C, []byte(body))           // attBody
	attr(2, 0x00069002, make([]byte, 14))       // attAttachRendData: starts an attachment
	attr(2, 0x00018010, []byte(file+"\x00"))    // attAttachTitle
	attr(2, 0x0006800F, []byte(fileText))       // attAttachData
	return b.Bytes()
}
