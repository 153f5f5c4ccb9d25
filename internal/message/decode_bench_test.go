package message

import (
	"encoding/base64"
	"strings"
	"testing"
)

// BenchmarkBase64Sizing sizes a 100 kB attachment as MIME writes it (76
// characters a line, CRLF), the way ingest sizes attachments: counting
// (base64Size) against the chunked decode it replaces.
func BenchmarkBase64Sizing(b *testing.B) {
	raw := make([]byte, 100<<10)
	for i := range raw {
		raw[i] = byte(i * 7)
	}
	enc := base64.StdEncoding.EncodeToString(raw)
	var sb strings.Builder
	for len(enc) > 76 {
		sb.WriteString(enc[:76] + "\r\n")
		enc = enc[76:]
	}
	sb.WriteString(enc + "\r\n")
	src := []byte(sb.String())
	b.Run("count", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for range b.N {
			if n, ok := base64Size(src); !ok || n != int64(len(raw)) {
				b.Fatal(n, ok)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.SetBytes(int64(len(src)))
		for range b.N {
			if _, n, ok := decodeBase64Strict(src, false); !ok || n != int64(len(raw)) {
				b.Fatal(n, ok)
			}
		}
	})
}

// BenchmarkNormalizeCorpus normalises the real corpus's messages as read
// from disk (bare LFs), as ingest does first.
func BenchmarkNormalizeCorpus(b *testing.B) {
	msgs := corpusMessages(b, false)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		Normalize(msgs[i%len(msgs)])
	}
}
