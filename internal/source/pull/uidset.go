package pull

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"
)

// uidSet is a set of IMAP UIDs, persisted as "1:5,9,12:14".
type uidSet map[imap.UID]struct{}

func (s uidSet) has(u imap.UID) bool { _, ok := s[u]; return ok }

func (s uidSet) sorted() []imap.UID {
	out := make([]imap.UID, 0, len(s))
	for u := range s {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}

// String encodes s as a comma-separated list of ranges.
func (s uidSet) String() string {
	return toIMAPSet(s.sorted()).String()
}

// toIMAPSet turns sorted UIDs into an imap.UIDSet of ranges.
func toIMAPSet(uids []imap.UID) imap.UIDSet {
	var set imap.UIDSet
	for i := 0; i < len(uids); {
		j := i
		for j+1 < len(uids) && uids[j+1] == uids[j]+1 {
			j++
		}
		set = append(set, imap.UIDRange{Start: uids[i], Stop: uids[j]})
		i = j + 1
	}
	return set
}

// maxSetSize bounds a decoded set so corrupt state cannot exhaust memory.
const maxSetSize = 10_000_000

// parseUIDSet decodes the String form; "" is the empty set.
func parseUIDSet(str string) (uidSet, error) {
	s := uidSet{}
	if str == "" {
		return s, nil
	}
	for _, part := range strings.Split(str, ",") {
		a, b, isRange := strings.Cut(part, ":")
		lo, err := strconv.ParseUint(a, 10, 32)
		if err != nil || lo == 0 {
			return nil, fmt.Errorf("bad uid set %q", str)
		}
		hi := lo
		if isRange {
			if hi, err = strconv.ParseUint(b, 10, 32); err != nil || hi < lo {
				return nil, fmt.Errorf("bad uid set %q", str)
			}
		}
		if hi-lo > maxSetSize || len(s) > maxSetSize {
			return nil, fmt.Errorf("uid set %q too large", str)
		}
		for u := lo; u <= hi; u++ {
			s[imap.UID(u)] = struct{}{}
		}
	}
	return s, nil
}

// parseCursor decodes "UIDVALIDITY:UID"; "" is (0, 0).
func parseCursor(str string) (uint32, imap.UID, error) {
	if str == "" {
		return 0, 0, nil
	}
	a, b, ok := strings.Cut(str, ":")
	v, err1 := strconv.ParseUint(a, 10, 32)
	n, err2 := strconv.ParseUint(b, 10, 32)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("bad cursor %q", str)
	}
	return uint32(v), imap.UID(n), nil
}
