package smtp

import (
	"bytes"
	"net/mail"
	"strings"
)

// recipientMatcher decides which RCPT TO addresses are accepted.
type recipientMatcher struct {
	all     bool
	exact   map[string]struct{}
	domains map[string]struct{} // lowercased, without the "@"
}

func newRecipientMatcher(list []string) recipientMatcher {
	m := recipientMatcher{
		all:     len(list) == 0,
		exact:   make(map[string]struct{}),
		domains: make(map[string]struct{}),
	}
	for _, r := range list {
		r = strings.ToLower(strings.TrimSpace(r))
		if d, ok := strings.CutPrefix(r, "@"); ok {
			m.domains[d] = struct{}{}
		} else {
			m.exact[r] = struct{}{}
		}
	}
	return m
}

// match reports whether addr is accepted (case-insensitive).
func (m recipientMatcher) match(addr string) bool {
	if m.all {
		return true
	}
	a := strings.ToLower(addr)
	if _, ok := m.exact[a]; ok {
		return true
	}
	if i := strings.LastIndexByte(a, '@'); i >= 0 {
		_, ok := m.domains[a[i+1:]]
		return ok
	}
	return false
}

// Bounds for headerAddrs: it looks only at the start of the message.
const (
	maxHeaderScan  = 256 << 10 // bytes of header block examined
	maxHeaderAddr  = 512       // longest address kept
	maxHeaderValue = 64 << 10  // longest unfolded field value examined
)

// headerAddrs returns the addresses in the X-Original-To and Delivered-To
// fields of raw's header block, at most limit of them. It never fails:
// values that do not parse as address lists are split on commas and
// whitespace. Only the first maxHeaderScan bytes are examined.
func headerAddrs(raw []byte, limit int) []string {
	if limit <= 0 {
		return nil
	}
	if len(raw) > maxHeaderScan {
		raw = raw[:maxHeaderScan]
	}
	var out []string
	var name string  // current field name, lowercased
	var value []byte // current unfolded field value
	flush := func() {
		if name == "x-original-to" || name == "delivered-to" {
			out = appendAddrs(out, string(value), limit)
		}
		name, value = "", value[:0]
	}
	for len(raw) > 0 && len(out) < limit {
		var line []byte
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			line, raw = raw, nil
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			break // end of the header block
		}
		if line[0] == ' ' || line[0] == '\t' {
			if name != "" && len(value)+len(line) <= maxHeaderValue {
				value = append(value, line...)
			}
			continue
		}
		flush()
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue // not a field; lenient: skip it
		}
		name = strings.ToLower(string(bytes.TrimRight(line[:colon], " \t")))
		if name != "x-original-to" && name != "delivered-to" {
			name = ""
			continue
		}
		v := line[colon+1:]
		if len(v) > maxHeaderValue {
			v = v[:maxHeaderValue]
		}
		value = append(value[:0], v...)
	}
	flush()
	if len(out) > limit {
		out = out[:limit]
	}
	return out
}

// appendAddrs appends the addresses in a header value to out.
func appendAddrs(out []string, v string, limit int) []string {
	v = strings.TrimSpace(v)
	if v == "" {
		return out
	}
	if list, err := mail.ParseAddressList(v); err == nil {
		for _, a := range list {
			if len(out) >= limit {
				break
			}
			if a.Address != "" && len(a.Address) <= maxHeaderAddr {
				out = append(out, a.Address)
			}
		}
		return out
	}
	for _, f := range strings.FieldsFunc(v, func(r rune) bool {
		return r == ',' || r == ';' || r == ' ' || r == '\t'
	}) {
		if len(out) >= limit {
			break
		}
		f = strings.Trim(f, "<>\"'")
		if f != "" && len(f) <= maxHeaderAddr {
			out = append(out, f)
		}
	}
	return out
}

// mergeAddrs returns a followed by the members of b not already present,
// comparing case-insensitively and dropping duplicates within a too.
func mergeAddrs(a, b []string) []string {
	seen := make(map[string]struct{}, len(a)+len(b))
	out := make([]string, 0, len(a)+len(b))
	for _, list := range [][]string{a, b} {
		for _, s := range list {
			k := strings.ToLower(s)
			if _, dup := seen[k]; dup {
				continue
			}
			seen[k] = struct{}{}
			out = append(out, s)
		}
	}
	return out
}
