package mirror

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// Anti-entropy buckets (see the package doc, "Anti-entropy").
//
// Held ids form the set "m", tombstoned ids the set "t". Bucket keys:
//
//	m                    every held id
//	m.P                  32-day period P = floor(day/32)
//	m.P.D                day D = floor(date/86400) (message date, UTC)
//	m.P.D.h              day D, ids starting with hex digit h (leaf)
//	t                    every tombstoned id
//	t.h                  tombstoned ids starting with h
//	t.hh                 tombstoned ids starting with hh (leaf)
//
// A bucket's digest is its id count and the XOR of its raw 32-byte ids:
// order-independent, so both sides compute it from a plain scan.

const (
	secondsPerDay = 86400
	daysPerPeriod = 32
	// maxKeysPerRequest caps the keys of one digest or ids request.
	maxKeysPerRequest = 4096
	// maxIDsPerFrame caps the ids of one ids, get or tombstone frame.
	maxIDsPerFrame = 1 << 20
)

// bucketKey is a parsed bucket key.
type bucketKey struct {
	set    byte  // 'm' or 't'
	level  int   // 0 root; m: 1 period, 2 day, 3 leaf; t: 1, 2 leaf
	period int64 // m levels >= 1
	day    int64 // m levels >= 2
	hex    string
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// String renders the key in its wire form.
func (k bucketKey) String() string {
	switch {
	case k.set == 'm' && k.level == 0:
		return "m"
	case k.set == 'm' && k.level == 1:
		return "m." + strconv.FormatInt(k.period, 10)
	case k.set == 'm' && k.level == 2:
		return "m." + strconv.FormatInt(k.period, 10) + "." + strconv.FormatInt(k.day, 10)
	case k.set == 'm':
		return "m." + strconv.FormatInt(k.period, 10) + "." + strconv.FormatInt(k.day, 10) + "." + k.hex
	case k.level == 0:
		return "t"
	}
	return "t." + k.hex
}

// leaf reports whether the key's bucket is compared by id lists.
func (k bucketKey) leaf() bool {
	return (k.set == 'm' && k.level == 3) || (k.set == 't' && k.level == 2)
}

// dateRange is the [from, to) message date range of an "m" key.
func (k bucketKey) dateRange() (from, to int64) {
	const maxRange = int64(1) << 62
	switch k.level {
	case 0:
		return -maxRange, maxRange
	case 1:
		return k.period * daysPerPeriod * secondsPerDay, (k.period + 1) * daysPerPeriod * secondsPerDay
	}
	return k.day * secondsPerDay, (k.day + 1) * secondsPerDay
}

// child returns the child of k holding id (hex) dated date.
func (k bucketKey) child(id string, date int64) bucketKey {
	c := k
	c.level++
	if k.set == 't' {
		c.hex = id[:c.level]
		return c
	}
	day := floorDiv(date, secondsPerDay)
	switch c.level {
	case 1:
		c.period = floorDiv(day, daysPerPeriod)
	case 2:
		c.day = day
	default:
		c.hex = id[:1]
	}
	return c
}

// contains reports whether id dated date belongs in k.
func (k bucketKey) contains(id string, date int64) bool {
	if k.set == 't' {
		return strings.HasPrefix(id, k.hex)
	}
	from, to := k.dateRange()
	return date >= from && date < to && (k.level < 3 || strings.HasPrefix(id, k.hex))
}

func isHexDigit(c byte) bool { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') }

// parseKey parses a wire bucket key, refusing anything malformed.
func parseKey(s string) (bucketKey, error) {
	bad := fmt.Errorf("mirror: bad bucket key %q", s)
	if len(s) == 0 || len(s) > 64 {
		return bucketKey{}, bad
	}
	parts := strings.Split(s, ".")
	k := bucketKey{set: s[0], level: len(parts) - 1}
	switch {
	case parts[0] == "t" && len(parts) <= 2:
		if len(parts) == 2 {
			if n := len(parts[1]); n < 1 || n > 2 {
				return k, bad
			}
			for i := 0; i < len(parts[1]); i++ {
				if !isHexDigit(parts[1][i]) {
					return k, bad
				}
			}
			k.hex = parts[1]
			k.level = len(parts[1])
		}
		return k, nil
	case parts[0] == "m" && len(parts) <= 4:
		const lim = int64(1) << 40
		if len(parts) >= 2 {
			p, err := strconv.ParseInt(parts[1], 10, 64)
			if err != nil || p < -lim || p > lim {
				return k, bad
			}
			k.period = p
		}
		if len(parts) >= 3 {
			d, err := strconv.ParseInt(parts[2], 10, 64)
			if err != nil || floorDiv(d, daysPerPeriod) != k.period {
				return k, bad
			}
			k.day = d
		}
		if len(parts) == 4 {
			if len(parts[3]) != 1 || !isHexDigit(parts[3][0]) {
				return k, bad
			}
			k.hex = parts[3]
		}
		if k.String() != s { // canonical form only (no "+1", "01")
			return k, bad
		}
		return k, nil
	}
	return k, bad
}

// digest is a bucket's id count and the XOR of its raw ids.
type digest struct {
	N int64
	X [32]byte
}

func (d *digest) add(id string) {
	var raw [32]byte
	if len(id) != 2*len(raw) {
		return
	}
	if _, err := hex.Decode(raw[:], []byte(id)); err != nil {
		return
	}
	d.N++
	for i := range raw {
		d.X[i] ^= raw[i]
	}
}

// wireBucket is one bucket digest on the wire.
type wireBucket struct {
	K string `json:"k"`
	N int64  `json:"n"`
	X string `json:"x"`
}

type keysMsg struct {
	Keys []string `json:"keys"`
}

func encodeKeys(keys []string) []byte {
	b, _ := json.Marshal(keysMsg{Keys: keys})
	return b
}

// decodeKeys parses a digest or ids request.
func decodeKeys(p []byte) ([]bucketKey, error) {
	var m keysMsg
	if err := json.Unmarshal(p, &m); err != nil {
		return nil, fmt.Errorf("mirror: bad key list: %w", err)
	}
	if len(m.Keys) > maxKeysPerRequest {
		return nil, fmt.Errorf("mirror: %d keys in one request (limit %d)", len(m.Keys), maxKeysPerRequest)
	}
	out := make([]bucketKey, 0, len(m.Keys))
	for _, s := range m.Keys {
		k, err := parseKey(s)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

func encodeDigests(d map[string]digest) []byte {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]wireBucket, 0, len(keys))
	for _, k := range keys {
		v := d[k]
		out = append(out, wireBucket{K: k, N: v.N, X: hex.EncodeToString(v.X[:])})
	}
	b, _ := json.Marshal(out)
	return b
}

// decodeDigests parses a digest answer.
func decodeDigests(p []byte) (map[string]digest, error) {
	var in []wireBucket
	if err := json.Unmarshal(p, &in); err != nil {
		return nil, fmt.Errorf("mirror: bad digest answer: %w", err)
	}
	out := make(map[string]digest, len(in))
	for _, b := range in {
		if _, err := parseKey(b.K); err != nil {
			return nil, err
		}
		var d digest
		if len(b.X) != 2*len(d.X) || b.N < 0 {
			return nil, fmt.Errorf("mirror: bad digest for bucket %q", b.K)
		}
		if n, err := hex.Decode(d.X[:], []byte(b.X)); err != nil || n != len(d.X) {
			return nil, fmt.Errorf("mirror: bad digest for bucket %q", b.K)
		}
		d.N = b.N
		out[b.K] = d
	}
	return out, nil
}

// encodeIDs packs hex ids as raw 32-byte values.
func encodeIDs(ids []string) []byte {
	out := make([]byte, 0, 32*len(ids))
	for _, id := range ids {
		raw, err := hex.DecodeString(id)
		if err != nil || len(raw) != 32 {
			continue
		}
		out = append(out, raw...)
	}
	return out
}

// decodeIDs unpacks raw 32-byte ids into lowercase hex.
func decodeIDs(p []byte) ([]string, error) {
	if len(p)%32 != 0 {
		return nil, errors.New("mirror: id list length is not a multiple of 32")
	}
	if len(p)/32 > maxIDsPerFrame {
		return nil, errors.New("mirror: too many ids in one frame")
	}
	out := make([]string, len(p)/32)
	for i := range out {
		out[i] = hex.EncodeToString(p[i*32 : i*32+32])
	}
	return out, nil
}

// diffDigests returns the keys whose digests differ between the two sides
// (present on one side only, or with another count or XOR), sorted.
func diffDigests(local, remote map[string]digest) []string {
	var out []string
	for k, l := range local {
		if r, ok := remote[k]; !ok || r != l {
			if l.N == 0 && !ok {
				continue
			}
			out = append(out, k)
		}
	}
	for k, r := range remote {
		if _, ok := local[k]; !ok && r.N > 0 {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// diffIDs returns the ids only in local and only in remote, sorted.
func diffIDs(local, remote []string) (onlyLocal, onlyRemote []string) {
	l := make(map[string]bool, len(local))
	for _, id := range local {
		l[id] = true
	}
	r := make(map[string]bool, len(remote))
	for _, id := range remote {
		if r[id] {
			continue
		}
		r[id] = true
		if !l[id] {
			onlyRemote = append(onlyRemote, id)
		}
	}
	for id := range l {
		if !r[id] {
			onlyLocal = append(onlyLocal, id)
		}
	}
	sort.Strings(onlyLocal)
	sort.Strings(onlyRemote)
	return onlyLocal, onlyRemote
}
