package extract

import (
	"bytes"
	"net/http"
	"path"
	"strings"
)

// kind is the parser chosen for a document.
type kind int

const (
	kindUnknown kind = iota
	kindPDF
	kindZip // zip, and everything built on it: OOXML, ODF, EPUB
	kindTar
	kindGzip
	kindRTF
	kindHTML
	kindXML
	kindText
	kindICS
	kindTNEF
	kindOLE         // legacy Office / Outlook compound file
	kindUnsupported // recognised, and known to have no extractor (media, pst, 7z, ...)
)

var (
	magicOLE  = []byte{0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1}
	magicTNEF = []byte{0x78, 0x9F, 0x3E, 0x22}
)

// sniff recognises formats by their magic bytes; it returns kindUnknown for
// data that has no strong signature (text formats, mostly).
func sniff(data []byte) kind {
	head := data
	if len(head) > 1024 {
		head = head[:1024]
	}
	switch {
	case bytes.HasPrefix(data, []byte("PK\x03\x04")), bytes.HasPrefix(data, []byte("PK\x05\x06")):
		return kindZip
	case bytes.HasPrefix(data, magicOLE):
		return kindOLE
	case bytes.HasPrefix(data, magicTNEF):
		return kindTNEF
	case bytes.HasPrefix(data, []byte{0x1f, 0x8b}):
		return kindGzip
	case bytes.HasPrefix(data, []byte("{\\rtf")):
		return kindRTF
	case bytes.Contains(head, []byte("%PDF-")):
		return kindPDF
	case bytes.HasPrefix(data, []byte("!BDN")): // Outlook PST/OST
		return kindUnsupported
	case len(data) >= 262 && bytes.Equal(data[257:262], []byte("ustar")):
		return kindTar
	}
	ct := http.DetectContentType(head)
	switch {
	case strings.HasPrefix(ct, "image/"), strings.HasPrefix(ct, "audio/"), strings.HasPrefix(ct, "video/"),
		ct == "application/ogg", ct == "application/x-rar-compressed", ct == "application/wasm",
		ct == "application/font-woff", ct == "font/ttf", ct == "font/otf", ct == "font/woff2",
		ct == "font/collection", ct == "application/vnd.ms-fontobject":
		return kindUnsupported
	}
	if bytes.HasPrefix(data, []byte("7z\xBC\xAF\x27\x1C")) {
		return kindUnsupported
	}
	return kindUnknown
}

// byMediaType maps a media type to a kind; kindUnknown for generic types.
func byMediaType(mt string) kind {
	switch mt {
	case "", "application/octet-stream", "application/binary", "application/unknown",
		"application/x-download", "application/force-download", "binary/octet-stream":
		return kindUnknown
	case "application/pdf", "application/x-pdf", "application/acrobat":
		return kindPDF
	case "application/rtf", "text/rtf", "text/richtext", "application/x-rtf":
		return kindRTF
	case "text/html", "application/xhtml+xml":
		return kindHTML
	case "text/calendar", "text/x-vcalendar", "application/ics":
		return kindICS
	case "application/ms-tnef", "application/vnd.ms-tnef":
		return kindTNEF
	case "application/xml", "text/xml":
		return kindXML
	case "application/zip", "application/x-zip-compressed", "application/x-zip", "application/epub+zip":
		return kindZip
	case "application/gzip", "application/x-gzip":
		return kindGzip
	case "application/x-tar":
		return kindTar
	case "application/json", "application/x-sh", "application/javascript", "message/delivery-status",
		"text/rfc822-headers", "message/disposition-notification":
		return kindText
	case "message/rfc822", "message/global":
		// Attached messages are the message parser's job (the indexer
		// uses it); an .eml member of an archive is still read as text.
		return kindUnsupported
	}
	switch {
	case strings.HasPrefix(mt, "text/"):
		return kindText
	case strings.HasPrefix(mt, "image/"), strings.HasPrefix(mt, "audio/"), strings.HasPrefix(mt, "video/"),
		strings.HasPrefix(mt, "font/"):
		return kindUnsupported
	case strings.HasPrefix(mt, "application/vnd.openxmlformats-officedocument."),
		strings.HasPrefix(mt, "application/vnd.oasis.opendocument."),
		strings.HasPrefix(mt, "application/vnd.ms-word.document"),
		strings.HasPrefix(mt, "application/vnd.ms-excel.sheet"),
		strings.HasPrefix(mt, "application/vnd.ms-powerpoint.presentation"):
		return kindZip
	case mt == "application/msword", mt == "application/vnd.ms-excel", mt == "application/vnd.ms-powerpoint",
		mt == "application/vnd.ms-outlook":
		return kindOLE
	}
	return kindUnknown
}

// byExtension maps a file name extension to a kind.
func byExtension(name string) kind {
	switch strings.ToLower(path.Ext(strings.ReplaceAll(name, "\\", "/"))) {
	case ".pdf":
		return kindPDF
	case ".zip", ".docx", ".docm", ".dotx", ".xlsx", ".xlsm", ".pptx", ".pptm", ".ppsx",
		".odt", ".ods", ".odp", ".ott", ".epub", ".jar":
		return kindZip
	case ".tar":
		return kindTar
	case ".gz", ".tgz":
		return kindGzip
	case ".rtf":
		return kindRTF
	case ".html", ".htm", ".xhtml", ".shtml":
		return kindHTML
	case ".xml", ".svg", ".opf", ".ncx":
		return kindXML
	case ".ics", ".vcs", ".ical", ".ifb":
		return kindICS
	case ".txt", ".text", ".csv", ".tsv", ".log", ".md", ".eml", ".vcf", ".json", ".ini", ".cfg",
		".conf", ".yaml", ".yml", ".diff", ".patch", ".c", ".h", ".go", ".py", ".java", ".js",
		".css", ".sh", ".sql", ".tex", ".srt", ".mbox", ".asc", ".emlx":
		return kindText
	case ".doc", ".dot", ".xls", ".xlt", ".ppt", ".pps", ".msg":
		return kindOLE
	case ".dat":
		// winmail.dat is the usual TNEF name; sniff decides.
		return kindUnknown
	case ".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".heic", ".ico",
		".mp3", ".wav", ".ogg", ".m4a", ".flac", ".mp4", ".mov", ".avi", ".mkv", ".webm",
		".pst", ".ost", ".7z", ".rar", ".exe", ".dll", ".iso", ".p7m", ".p7s", ".p7c":
		return kindUnsupported
	}
	return kindUnknown
}

// needsMagic reports whether a kind can only be parsed when its signature is
// present; a declared type without it is not trusted.
func needsMagic(k kind) bool {
	switch k {
	case kindPDF, kindZip, kindTar, kindGzip, kindTNEF, kindOLE:
		return true
	}
	return false
}

// detect chooses the parser: a strong magic signature wins (declared types
// are often wrong), then the media type, then the file name extension, then
// a content sniff for text.
func detect(name, mediaType string, data []byte) kind {
	if k := sniff(data); k != kindUnknown {
		return k
	}
	for _, k := range []kind{byMediaType(mediaType), byExtension(name)} {
		if k == kindUnknown || needsMagic(k) {
			// A binary format without its signature: not what it claims.
			continue
		}
		if k == kindText || k == kindRTF {
			// RTF without "{\rtf" and text declared as text are both
			// handled as text, but only if the data looks like text.
			if !looksText(data) {
				return kindUnsupported
			}
			if k == kindRTF {
				if bytes.Contains(firstN(data, 64), []byte("{\\rtf")) {
					return kindRTF
				}
				return kindText
			}
			return sniffTextKind(data, kindText)
		}
		return k
	}
	if looksText(data) {
		return sniffTextKind(data, kindText)
	}
	return kindUnknown
}

// sniffTextKind refines a text document into HTML, calendar or XML when
// the content says so.
func sniffTextKind(data []byte, def kind) kind {
	head := bytes.TrimLeft(firstN(data, 512), "\xef\xbb\xbf \t\r\n")
	upper := bytes.ToUpper(firstN(head, 64))
	switch {
	case bytes.HasPrefix(upper, []byte("BEGIN:VCALENDAR")):
		return kindICS
	case bytes.HasPrefix(upper, []byte("<!DOCTYPE HTML")), bytes.HasPrefix(upper, []byte("<HTML")):
		return kindHTML
	case bytes.HasPrefix(head, []byte("{\\rtf")):
		return kindRTF
	}
	return def
}

func firstN(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// looksText reports whether the start of data is plausibly text in some
// 8-bit or UTF-16 encoding: few control bytes, no NULs (except UTF-16).
func looksText(data []byte) bool {
	head := firstN(data, 4096)
	if len(head) == 0 {
		return true
	}
	if bytes.HasPrefix(head, []byte{0xFF, 0xFE}) || bytes.HasPrefix(head, []byte{0xFE, 0xFF}) {
		return true
	}
	bad := 0
	for _, c := range head {
		if c == 0 {
			return false
		}
		if c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f' && c != 0x1b {
			bad++
		}
	}
	return bad*20 < len(head) // under 5% control bytes
}
