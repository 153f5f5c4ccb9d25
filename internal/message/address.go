package message

import (
	"net/mail"
	"strings"
)

// Address is one mailbox from an address header. Addr is the address as
// written (trimmed); Name is the display name decoded to UTF-8.
type Address struct {
	Name string
	Addr string
}

// String returns "Name <addr>" or just "addr" when there is no name.
func (a Address) String() string {
	if a.Name == "" {
		return a.Addr
	}
	if a.Addr == "" {
		return a.Name
	}
	return a.Name + " <" + a.Addr + ">"
}

// maxAddresses caps the addresses taken from one header field.
const maxAddresses = 10000

// parseAddressList parses an address header value (unfolded, valid UTF-8,
// not yet RFC 2047-decoded). It tries net/mail first (as go-message's
// mail.Header.AddressList does), through fastAddressList for the common
// shapes, and falls back to a tolerant splitter; ok is false when the
// fallback was needed.
func parseAddressList(v string) (list []Address, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil, true
	}
	if l, ok := fastAddressList(v); ok {
		list = l[:min(len(l), maxAddresses)]
		for i, a := range list {
			list[i] = Address{Name: cleanText(a.Name), Addr: cleanText(strings.TrimSpace(a.Addr))}
		}
		return list, true
	}
	p := mail.AddressParser{WordDecoder: wordDecoder()}
	if l, err := p.ParseList(v); err == nil {
		list = make([]Address, 0, len(l))
		for _, a := range l {
			if a == nil || len(list) >= maxAddresses {
				continue
			}
			list = append(list, Address{Name: cleanText(a.Name), Addr: cleanText(strings.TrimSpace(a.Address))})
		}
		return list, true
	}
	return splitAddresses(v), false
}

// splitAddresses is the tolerant fallback: it splits on ',' and ';' outside
// quotes, angle brackets and comments, glues pieces without an address to the
// next one (unquoted commas in display names), strips group syntax, and reads
// "Name <addr", "addr (Name)" and bare addresses.
func splitAddresses(v string) []Address {
	var pieces []string
	depthParen, inQuote, inAngle := 0, false, false
	start := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && inQuote:
			i++
		case c == '"' && depthParen == 0:
			inQuote = !inQuote
		case inQuote:
		case c == '(':
			depthParen++
		case c == ')' && depthParen > 0:
			depthParen--
		case depthParen > 0:
		case c == '<':
			inAngle = true
		case c == '>':
			inAngle = false
		case (c == ',' || c == ';') && !inAngle:
			pieces = append(pieces, v[start:i])
			start = i + 1
		}
		if len(pieces) >= maxAddresses {
			break
		}
	}
	if start < len(v) && len(pieces) < maxAddresses {
		pieces = append(pieces, v[start:])
	}

	var out []Address
	pending := ""
	for _, piece := range pieces {
		piece = strings.TrimSpace(piece)
		// Group syntax "name: a, b;" — drop the group name.
		if c := strings.IndexByte(piece, ':'); c >= 0 && !strings.ContainsAny(piece[:c], "<@\"") {
			piece = strings.TrimSpace(piece[c+1:])
			pending = ""
		}
		if piece == "" {
			continue
		}
		if !strings.ContainsAny(piece, "@<") {
			pending = strings.TrimSpace(pending + " " + piece)
			continue
		}
		a := readAddress(piece)
		if pending != "" {
			if a.Name == "" {
				a.Name = decodeWords(unquote(pending))
			} else {
				a.Name = decodeWords(unquote(pending)) + ", " + a.Name
			}
			pending = ""
		}
		if a.Addr != "" || a.Name != "" {
			out = append(out, a)
		}
	}
	if pending != "" && !strings.ContainsAny(pending, " \t") {
		out = append(out, Address{Addr: cleanText(pending)}) // a local-only address, e.g. "root"
	}
	return out
}

// readAddress reads one mailbox leniently.
func readAddress(s string) Address {
	if a, err := (&mail.AddressParser{WordDecoder: wordDecoder()}).Parse(s); err == nil {
		return Address{Name: cleanText(a.Name), Addr: cleanText(strings.TrimSpace(a.Address))}
	}
	if lt := strings.IndexByte(s, '<'); lt >= 0 {
		addr := s[lt+1:]
		if gt := strings.IndexByte(addr, '>'); gt >= 0 {
			addr = addr[:gt]
		}
		name := strings.TrimSpace(s[:lt])
		addr = strings.TrimSpace(addr)
		if strings.HasPrefix(addr, "@") { // obsolete source route "@a,@b:user@x"
			if c := strings.IndexByte(addr, ':'); c >= 0 {
				addr = addr[c+1:]
			}
		}
		return Address{Name: decodeWords(unquote(name)), Addr: cleanText(addr)}
	}
	if lp := strings.IndexByte(s, '('); lp >= 0 {
		name := s[lp+1:]
		if rp := strings.LastIndexByte(name, ')'); rp >= 0 {
			name = name[:rp]
		}
		return Address{Name: decodeWords(strings.TrimSpace(name)), Addr: cleanText(strings.TrimSpace(s[:lp]))}
	}
	// "Foo Bar foo@x": the word with '@' is the address.
	fields := strings.Fields(s)
	for i, f := range fields {
		if strings.Contains(f, "@") {
			name := strings.Join(append(append([]string(nil), fields[:i]...), fields[i+1:]...), " ")
			return Address{Name: decodeWords(unquote(name)), Addr: cleanText(strings.Trim(f, "<>\"'"))}
		}
	}
	return Address{Addr: cleanText(strings.TrimSpace(s))}
}

// unquote removes surrounding double quotes and backslash escapes.
func unquote(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
		if strings.IndexByte(s, '\\') >= 0 {
			var sb strings.Builder
			for i := 0; i < len(s); i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
				}
				sb.WriteByte(s[i])
			}
			s = sb.String()
		}
	} else {
		s = strings.Trim(s, "\"")
	}
	return s
}
