package message

import (
	"sort"
	"strconv"
	"strings"
)

// maxParamSections caps RFC 2231 continuation numbers (name*0, name*1, ...).
const maxParamSections = 1000

// parseMediaHeader parses a Content-Type or Content-Disposition value (raw,
// unfolded, valid UTF-8) leniently: the lowercased value before the first
// ';' and the parameters with lowercased names. RFC 2231 continuations and
// charset'lang'%XX values are assembled and decoded; plain values containing
// RFC 2047 encoded words (as Outlook writes filenames) are decoded too.
// Unquoted values with spaces, missing closing quotes and duplicate names
// (first wins) are tolerated.
func parseMediaHeader(v string) (value string, params map[string]string) {
	semi := strings.IndexByte(v, ';')
	rest := ""
	if semi >= 0 {
		value, rest = v[:semi], v[semi+1:]
	} else {
		value = v
	}
	value = strings.ToLower(strings.TrimSpace(stripComment(value)))
	// "application/pdf name=x.pdf": a missing ';' after the value.
	if i := strings.IndexAny(value, " \t"); i > 0 && strings.IndexByte(value[i:], '=') >= 0 {
		t := v
		if semi >= 0 {
			t = v[:semi]
		}
		t = strings.TrimSpace(t)
		if j := strings.IndexAny(t, " \t"); j > 0 {
			value, rest = strings.ToLower(t[:j]), t[j:]+";"+rest
		}
	}
	if rest == "" {
		return value, nil
	}

	type section struct {
		n   int
		enc bool
		v   string
	}
	plain := map[string]string{}
	ext := map[string][]section{}
	for rest != "" {
		rest = strings.TrimLeft(rest, " \t;")
		if rest == "" {
			break
		}
		eq := strings.IndexAny(rest, "=;")
		if eq < 0 || rest[eq] == ';' { // a bare word without '='
			if eq < 0 {
				break
			}
			rest = rest[eq+1:]
			continue
		}
		name := strings.ToLower(strings.TrimSpace(rest[:eq]))
		rest = strings.TrimLeft(rest[eq+1:], " \t")
		var val string
		if strings.HasPrefix(rest, "\"") {
			var sb strings.Builder
			i := 1
			for ; i < len(rest); i++ {
				c := rest[i]
				if c == '\\' && i+1 < len(rest) {
					i++
					sb.WriteByte(rest[i])
					continue
				}
				if c == '"' {
					break
				}
				sb.WriteByte(c)
			}
			val = sb.String()
			if i < len(rest) {
				i++
			}
			rest = rest[i:]
			// Skip anything between the closing quote and the next ';'.
			if j := strings.IndexByte(rest, ';'); j >= 0 {
				rest = rest[j:]
			} else {
				rest = ""
			}
		} else {
			j := strings.IndexByte(rest, ';')
			if j < 0 {
				j = len(rest)
			}
			val = strings.TrimSpace(rest[:j])
			rest = rest[j:]
		}
		if name == "" {
			continue
		}
		if star := strings.IndexByte(name, '*'); star >= 0 {
			base, suffix := name[:star], name[star+1:]
			enc := strings.HasSuffix(suffix, "*") || suffix == ""
			suffix = strings.TrimSuffix(suffix, "*")
			n := 0
			if suffix != "" {
				var err error
				n, err = strconv.Atoi(suffix)
				if err != nil || n < 0 || n > maxParamSections {
					continue
				}
			}
			if len(ext[base]) < maxParamSections {
				ext[base] = append(ext[base], section{n: n, enc: enc, v: val})
			}
			continue
		}
		if _, dup := plain[name]; !dup {
			plain[name] = val
		}
	}

	params = make(map[string]string, len(plain)+len(ext))
	for k, v := range plain {
		params[k] = decodeWords(v)
	}
	for base, secs := range ext {
		sort.SliceStable(secs, func(i, j int) bool { return secs[i].n < secs[j].n })
		var buf []byte
		charset := ""
		for i, s := range secs {
			if i > 0 && s.n == secs[i-1].n {
				continue // duplicate section number: keep the first
			}
			v := s.v
			if s.enc {
				if i == 0 {
					// charset'language'value
					if a := strings.IndexByte(v, '\''); a >= 0 {
						if b := strings.IndexByte(v[a+1:], '\''); b >= 0 {
							charset = v[:a]
							v = v[a+1+b+1:]
						}
					}
				}
				buf = append(buf, percentDecode(v)...)
			} else {
				buf = append(buf, v...)
			}
		}
		s, _ := decodeCharset(buf, charset)
		params[base] = cleanText(s)
	}
	return value, params
}

// percentDecode decodes %XX escapes; malformed escapes stay literal.
func percentDecode(s string) []byte {
	if strings.IndexByte(s, '%') < 0 {
		return []byte(s)
	}
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			h, ok1 := unhex(s[i+1])
			l, ok2 := unhex(s[i+2])
			if ok1 && ok2 {
				out = append(out, h<<4|l)
				i += 2
				continue
			}
		}
		out = append(out, s[i])
	}
	return out
}

// unhex returns the value of a hexadecimal digit.
func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// stripComment removes a trailing RFC 5322 comment: "text/plain (x)".
func stripComment(s string) string {
	if i := strings.IndexByte(s, '('); i >= 0 {
		return s[:i]
	}
	return s
}
