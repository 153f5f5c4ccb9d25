package extract

import (
	"strings"
)

// icsProperties are the iCalendar/vCalendar properties whose values are
// indexed.
var icsProperties = map[string]bool{
	"SUMMARY": true, "DESCRIPTION": true, "LOCATION": true, "ORGANIZER": true, "ATTENDEE": true,
	"COMMENT": true, "CONTACT": true, "CATEGORIES": true, "RESOURCES": true,
}

// ics extracts the human-readable properties of a calendar object.
func (j *job) ics(s string) error {
	var b strings.Builder
	for i, line := range unfoldLines(s) {
		if i%1024 == 0 {
			if err := j.check(); err != nil {
				return err
			}
		}
		text, ok := icsLine(line)
		if !ok {
			continue
		}
		b.WriteString(text)
		b.WriteByte('\n')
		if b.Len() > 32<<10 {
			if err := j.out.WriteString(b.String()); err != nil {
				return err
			}
			b.Reset()
		}
	}
	return j.out.WriteString(b.String())
}

// unfoldLines splits a calendar into logical lines: a physical line that
// starts with a space or tab continues the previous one (RFC 5545 3.1).
func unfoldLines(s string) []string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	var out []string
	var cur strings.Builder
	for _, l := range strings.Split(s, "\n") {
		if l != "" && (l[0] == ' ' || l[0] == '\t') {
			cur.WriteString(l[1:])
			continue
		}
		if cur.Len() > 0 {
			out = append(out, cur.String())
			cur.Reset()
		}
		cur.WriteString(l)
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// icsLine returns the text of one content line when its property is indexed:
// the value (unescaped, without a mailto: prefix) and any CN parameter.
func icsLine(line string) (string, bool) {
	nameEnd := strings.IndexAny(line, ";:")
	if nameEnd <= 0 {
		return "", false
	}
	name := strings.ToUpper(line[:nameEnd])
	if i := strings.LastIndexByte(name, '.'); i >= 0 { // grouped property: "item1.SUMMARY"
		name = name[i+1:]
	}
	if !icsProperties[name] {
		return "", false
	}
	// Parameters may contain quoted strings with ':' inside.
	rest := line[nameEnd:]
	var params, value string
	inQuote := false
	for i := 0; i < len(rest); i++ {
		switch rest[i] {
		case '"':
			inQuote = !inQuote
		case ':':
			if !inQuote {
				params, value = rest[:i], rest[i+1:]
				i = len(rest)
			}
		}
	}
	var parts []string
	for _, p := range strings.Split(params, ";") {
		k, v, ok := strings.Cut(p, "=")
		if ok && strings.EqualFold(strings.TrimSpace(k), "CN") {
			parts = append(parts, strings.Trim(v, `"`))
		}
	}
	value = strings.TrimSpace(value)
	if len(value) > 7 && strings.EqualFold(value[:7], "mailto:") {
		value = value[7:]
	}
	if value = icsUnescape(value); value != "" {
		parts = append(parts, value)
	}
	if len(parts) == 0 {
		return "", false
	}
	return strings.Join(parts, " "), true
}

// icsUnescape undoes the TEXT escapes \n \N \, \; \\ of RFC 5545 3.3.11.
func icsUnescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		i++
		switch s[i] {
		case 'n', 'N':
			b.WriteByte('\n')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}
