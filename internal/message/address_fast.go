package message

import "strings"

// fastAddressList parses the common shapes of an address list without
// net/mail: comma-separated items, each "local@domain", "<local@domain>" or
// "Display Name <local@domain>", in printable ASCII, where the display name
// is atoms (dots allowed) and quoted strings without backslashes, separated
// by spaces or tabs. Anything else (comments, groups, encoded words, quoted
// local parts, domain literals, empty entries, non-ASCII, escapes) makes ok
// false, and the caller uses net/mail. When ok is true the result is exactly
// what net/mail's AddressParser.ParseList returns for v (FuzzFastAddressList
// checks that on any input), without its per-character rune decoding and
// allocations.
func fastAddressList(v string) (list []Address, ok bool) {
	if strings.Contains(v, "=?") {
		return nil, false // an RFC 2047 word: net/mail decodes it
	}
	list = make([]Address, 0, 1+strings.Count(v, ","))
	i := skipWSP(v, 0)
	for {
		a, next, ok := fastAddress(v, i)
		if !ok {
			return nil, false
		}
		list = append(list, a)
		i = skipWSP(v, next)
		if i == len(v) {
			return list, true
		}
		if v[i] != ',' {
			return nil, false
		}
		i = skipWSP(v, i+1)
		if i == len(v) || v[i] == ',' {
			return nil, false // a trailing or empty entry
		}
	}
}

// fastAddress reads one item of fastAddressList at v[i:] and returns the
// index after it.
func fastAddress(v string, i int) (a Address, next int, ok bool) {
	// A bare addr-spec: net/mail tries it first.
	if spec, j, ok := fastAddrSpec(v, i); ok {
		return Address{Addr: spec}, j, true
	}
	// [phrase] "<" addr-spec ">". While the phrase is simple (atoms, one
	// space between them) the name is v[start:end] as written; name is
	// built only once it is not.
	var name strings.Builder
	words, start, end, simple := 0, i, i, true
	notSimple := func() {
		if simple {
			simple = false
			name.WriteString(v[start:end]) // the words so far, as joined
		}
	}
	for i < len(v) && v[i] != '<' {
		var word string
		switch {
		case v[i] == '"':
			j := i + 1
			for j < len(v) && isFastQtext(v[j]) {
				j++
			}
			if j == len(v) || v[j] != '"' {
				return Address{}, 0, false
			}
			notSimple()
			word = v[i+1 : j]
			i = j + 1
		case isFastAtext(v[i]) || v[i] == '.':
			j := i
			for j < len(v) && (isFastAtext(v[j]) || v[j] == '.') {
				j++
			}
			word = v[i:j]
			i = j
		default:
			return Address{}, 0, false
		}
		if !simple {
			if words > 0 {
				name.WriteByte(' ')
			}
			name.WriteString(word)
		}
		words++
		end = i
		j := skipWSP(v, i)
		if j < len(v) && v[j] != '<' && j == i {
			return Address{}, 0, false // words not separated by white space
		}
		if j > i && j < len(v) && v[j] != '<' && (j-i != 1 || v[i] != ' ') {
			notSimple() // joined with one space, not as written
		}
		i = j
	}
	if i == len(v) {
		return Address{}, 0, false
	}
	spec, j, ok := fastAddrSpec(v, i+1)
	if !ok || j == len(v) || v[j] != '>' {
		return Address{}, 0, false
	}
	a = Address{Addr: spec}
	if words > 0 {
		if simple {
			a.Name = v[start:end]
		} else {
			a.Name = name.String()
		}
	}
	return a, j + 1, true
}

// fastAddrSpec reads "local@domain" at v[i:], both dot-atoms (no leading,
// trailing or double dot) of ASCII atext, and returns it and the index after
// it. It stops short (ok false) where net/mail would read further: a '@'
// followed by white space, a quoted local part, a domain literal.
func fastAddrSpec(v string, i int) (spec string, next int, ok bool) {
	at := dotAtomEnd(v, i)
	if at == i || at == len(v) || v[at] != '@' {
		return "", 0, false
	}
	end := dotAtomEnd(v, at+1)
	if end == at+1 {
		return "", 0, false
	}
	if end < len(v) && v[end] == '.' {
		return "", 0, false // a dot-atom cannot end in a dot
	}
	return v[i:end], end, true
}

// dotAtomEnd returns the end of the dot-atom at v[i:], i when there is
// none or it starts with a dot, and stops before a second dot in a row.
func dotAtomEnd(v string, i int) int {
	j := i
	for j < len(v) {
		switch {
		case isFastAtext(v[j]):
			j++
		case v[j] == '.' && j > i && j+1 < len(v) && isFastAtext(v[j+1]):
			j++
		default:
			return j
		}
	}
	return j
}

func skipWSP(v string, i int) int {
	for i < len(v) && (v[i] == ' ' || v[i] == '\t') {
		i++
	}
	return i
}

// isFastAtext reports whether c is RFC 5322 atext in ASCII.
func isFastAtext(c byte) bool {
	if c <= ' ' || c >= 0x7f {
		return false
	}
	switch c {
	case '(', ')', '<', '>', '[', ']', ':', ';', '@', '\\', ',', '"', '.':
		return false
	}
	return true
}

// isFastQtext reports whether c may stand unescaped in a quoted string:
// printable ASCII but '"' and '\', or a space or tab.
func isFastQtext(c byte) bool {
	return c == ' ' || c == '\t' || (c > ' ' && c < 0x7f && c != '"' && c != '\\')
}
