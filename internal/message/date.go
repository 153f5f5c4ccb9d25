package message

import (
	"net/mail"
	"strconv"
	"strings"
	"time"
)

// maxDateLen caps the length of a date value that is examined.
const maxDateLen = 256

// parseDate parses an RFC 5322 date and, failing that, the broken forms seen
// in real mail: missing seconds, two-digit years, named zones ("EST", "CEST"),
// missing zone (taken as UTC), ISO 8601, ctime order, extra text. The result
// is UTC; ok is false when no plausible date was found.
func parseDate(v string) (time.Time, bool) {
	v = strings.TrimSpace(v)
	if len(v) > maxDateLen {
		v = v[:maxDateLen]
	}
	if v == "" {
		return time.Time{}, false
	}
	if t, err := parseRFC5322Date(v); err == nil && plausible(t) {
		// time.Parse gives a zone abbreviation it does not know ("EST"
		// outside America, "CEST") a zero offset, and a known one the
		// machine's offset; use the fixed table so results are the same
		// everywhere.
		if name, _ := t.Zone(); name != "" && strings.Contains(strings.ToUpper(v), name) {
			if loc := parseZone(name); loc != nil {
				t = time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), 0, loc)
			}
		}
		return t.UTC(), true
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05 -0700", "2006-01-02 15:04:05Z07:00"} {
		if t, err := time.Parse(layout, v); err == nil && plausible(t) {
			return t.UTC(), true
		}
	}
	return parseDateTokens(v)
}

// preferredDate is RFC 5322's preferred date form, the one nearly all mail
// uses.
const preferredDate = "Mon, 2 Jan 2006 15:04:05 -0700"

// parseRFC5322Date is mail.ParseDate with a fast path: it tries the
// preferred form first. mail.ParseDate tries its 24 layouts without a day of
// week before that one, and every failed time.Parse allocates an error (a
// quarter of a message's allocations at ingest). The result is the same:
// none of those 24 layouts can match a value that starts with a day name,
// and a value the preferred form matches whole (no comment after the zone,
// no CR) is the string mail.ParseDate would hand to time.Parse.
func parseRFC5322Date(v string) (time.Time, error) {
	if t, err := time.Parse(preferredDate, v); err == nil {
		return t, nil
	}
	return mail.ParseDate(v)
}

// plausible reports whether t can be used as a message date (and encoded as
// JSON / RFC 3339).
func plausible(t time.Time) bool {
	y := t.UTC().Year()
	return y >= 1900 && y <= 9999
}

// parseDateTokens reads a date from loosely ordered tokens.
func parseDateTokens(v string) (time.Time, bool) {
	// Drop comments and separators.
	var sb strings.Builder
	depth := 0
	for _, r := range v {
		switch {
		case r == '(':
			depth++
			sb.WriteByte(' ')
		case r == ')' && depth > 0:
			depth--
		case depth > 0:
		case r == ',':
			sb.WriteByte(' ')
		default:
			sb.WriteRune(r)
		}
	}
	var toks []string
	for _, tok := range strings.Fields(sb.String()) {
		// ISO 8601 "2006-01-02T15:04:05": split date and time.
		if len(tok) > 11 && tok[4] == '-' && (tok[10] == 'T' || tok[10] == 't') {
			toks = append(toks, tok[:10], tok[11:])
			continue
		}
		toks = append(toks, tok)
	}
	day, month, year := -1, -1, -1
	yearDigits := 0
	hour, minute, sec := -1, 0, 0
	var zone *time.Location
	pm, am := false, false
	for _, tok := range toks {
		lt := strings.ToLower(strings.Trim(tok, ".,;"))
		switch {
		case lt == "":
		case lt == "am" || lt == "a.m":
			am = true
		case lt == "pm" || lt == "p.m":
			pm = true
		case strings.Count(lt, ":") >= 1 && hour < 0 && isDigit(lt[0]):
			t := lt
			if i := strings.IndexAny(t, "+-z"); i > 0 {
				if loc := parseZone(t[i:]); loc != nil {
					zone = loc
				}
				t = t[:i]
			}
			parts := strings.Split(t, ":")
			if len(parts) < 2 {
				continue
			}
			h, err1 := strconv.Atoi(parts[0])
			m, err2 := strconv.Atoi(parts[1])
			if err1 != nil || err2 != nil {
				continue
			}
			hour, minute = h, m
			if len(parts) > 2 {
				s := parts[2]
				if i := strings.IndexByte(s, '.'); i >= 0 {
					s = s[:i]
				}
				if n, err := strconv.Atoi(s); err == nil {
					sec = n
				}
			}
		case (lt[0] == '+' || lt[0] == '-') && len(lt) > 1 && isDigit(lt[1]):
			if loc := parseZone(lt); loc != nil && zone == nil {
				zone = loc
			}
		case strings.Count(lt, "-") == 2 && isDigit(lt[0]) || strings.Count(lt, "/") == 2 && isDigit(lt[0]):
			sep := "-"
			if strings.Contains(lt, "/") {
				sep = "/"
			}
			p := strings.SplitN(lt, sep, 3)
			if t := strings.IndexByte(p[2], 't'); t >= 0 { // ISO 8601 with time
				p[2] = p[2][:t]
			}
			a, e1 := strconv.Atoi(p[0])
			b, e2 := strconv.Atoi(p[1])
			c, e3 := strconv.Atoi(p[2])
			if e1 != nil || e3 != nil {
				if e1 == nil && e3 == nil && e2 != nil { // 02-Jan-2006
					if m := monthNum(p[1]); m > 0 {
						day, month, year, yearDigits = a, m, c, len(p[2])
					}
				}
				continue
			}
			if e2 != nil {
				if m := monthNum(p[1]); m > 0 {
					day, month, year, yearDigits = a, m, c, len(p[2])
				}
				continue
			}
			switch {
			case len(p[0]) == 4: // yyyy-mm-dd
				year, month, day = a, b, c
				yearDigits = 4
			case sep == "/" && a <= 12 && b > 12: // mm/dd/yyyy
				month, day, year = a, b, c
				yearDigits = len(p[2])
			default: // dd-mm-yyyy, dd/mm/yyyy
				day, month, year = a, b, c
				yearDigits = len(p[2])
			}
		case isDigit(lt[0]) && allDigits(lt):
			n, _ := strconv.Atoi(lt)
			switch {
			case len(lt) >= 3 && year < 0:
				year, yearDigits = n, len(lt)
			case day < 0 && n >= 1 && n <= 31:
				day = n
			case year < 0:
				year, yearDigits = n, len(lt)
			}
		default:
			if m := monthNum(lt); m > 0 && month < 0 {
				month = m
			} else if loc := parseZone(lt); loc != nil && zone == nil {
				zone = loc
			}
		}
	}
	if day < 1 || day > 31 || month < 1 || month > 12 || year < 0 {
		return time.Time{}, false
	}
	switch { // RFC 5322 section 4.3 for two- and three-digit years
	case yearDigits <= 2 && year < 50:
		year += 2000
	case yearDigits <= 3 && year < 1000:
		year += 1900
	}
	if hour < 0 {
		hour = 0
	}
	if pm && hour < 12 {
		hour += 12
	}
	if am && hour == 12 {
		hour = 0
	}
	if hour > 24 || minute > 59 || sec > 60 {
		return time.Time{}, false
	}
	if sec == 60 {
		sec = 59
	}
	if zone == nil {
		zone = time.UTC
	}
	t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, zone)
	if !plausible(t) {
		return time.Time{}, false
	}
	return t.UTC(), true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

// monthNum returns 1-12 for an English (or common German/French/Spanish
// abbreviated) month name, 0 otherwise.
func monthNum(s string) int {
	s = strings.ToLower(s)
	if len(s) < 3 {
		return 0
	}
	switch s[:3] {
	case "jan", "ene", "gen":
		return 1
	case "feb", "fév", "fev":
		return 2
	case "mar", "mär", "mrz":
		return 3
	case "apr", "avr", "abr":
		return 4
	case "may", "mai", "mag":
		return 5
	case "jun", "jui":
		if strings.HasPrefix(s, "juil") {
			return 7
		}
		return 6
	case "jul", "lug":
		return 7
	case "aug", "aoû", "ago":
		return 8
	case "sep", "set":
		return 9
	case "oct", "okt", "ott":
		return 10
	case "nov":
		return 11
	case "dec", "dez", "déc", "dic":
		return 12
	}
	return 0
}

// parseZone reads "+hhmm", "-hh:mm", "+hh", "Z", "GMT+0200" or a common zone
// abbreviation.
func parseZone(s string) *time.Location {
	s = strings.ToUpper(strings.TrimSpace(s))
	for _, p := range []string{"GMT", "UTC", "UT"} {
		if strings.HasPrefix(s, p) && len(s) > len(p) && (s[len(p)] == '+' || s[len(p)] == '-') {
			s = s[len(p):]
			break
		}
	}
	if s == "" {
		return nil
	}
	if s[0] == '+' || s[0] == '-' {
		d := strings.ReplaceAll(s[1:], ":", "")
		if !allDigits(d) || len(d) > 4 {
			return nil
		}
		var h, m int
		switch len(d) {
		case 1, 2:
			h, _ = strconv.Atoi(d)
		case 3:
			h, _ = strconv.Atoi(d[:1])
			m, _ = strconv.Atoi(d[1:])
		case 4:
			h, _ = strconv.Atoi(d[:2])
			m, _ = strconv.Atoi(d[2:])
		}
		if h > 14 || m > 59 {
			return nil
		}
		off := h*3600 + m*60
		if s[0] == '-' {
			off = -off
		}
		return time.FixedZone("", off)
	}
	hours := map[string]float64{ // read-only, local to the call
		"Z": 0, "UT": 0, "UTC": 0, "GMT": 0, "WET": 0,
		"EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
		"AKST": -9, "AKDT": -8, "HST": -10, "AST": -4, "ADT": -3, "NST": -3.5, "NDT": -2.5,
		"BST": 1, "IST": 5.5, "CET": 1, "MET": 1, "WEST": 1, "CEST": 2, "MEST": 2, "MESZ": 2, "MEZ": 1,
		"EET": 2, "EEST": 3, "MSK": 3, "MSD": 4, "SAST": 2, "PKT": 5, "ICT": 7, "WIB": 7,
		"HKT": 8, "SGT": 8, "AWST": 8, "PHT": 8, "JST": 9, "KST": 9,
		"ACST": 9.5, "ACDT": 10.5, "AEST": 10, "AEDT": 11, "NZST": 12, "NZDT": 13, "BRT": -3, "ART": -3,
	}
	if h, ok := hours[s]; ok {
		return time.FixedZone(s, int(h*3600))
	}
	return nil
}
