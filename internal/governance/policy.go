package governance

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/mailarc/mailarc/internal/query"
)

// Keep is a retention period: a number of days, weeks, months or years, or
// forever. The zero value is forever.
type Keep struct {
	N    int
	Unit byte // 'd', 'w', 'm', 'y'; 0 = forever
}

// maxKeepYears caps periods so date arithmetic stays sane.
const maxKeepYears = 1000

// ParseKeep parses "30d", "12w", "6m", "7y" or "forever".
func ParseKeep(s string) (Keep, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "forever" || s == "" {
		return Keep{}, nil
	}
	if len(s) < 2 {
		return Keep{}, fmt.Errorf("retention period %q: want a number and d, w, m or y (30d, 6m, 7y) or forever", s)
	}
	unit := s[len(s)-1]
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n <= 0 || strings.ContainsAny(s[:len(s)-1], "+-") {
		return Keep{}, fmt.Errorf("retention period %q: want a positive number and d, w, m or y (30d, 6m, 7y) or forever", s)
	}
	limit := map[byte]int{'d': maxKeepYears * 366, 'w': maxKeepYears * 53, 'm': maxKeepYears * 12, 'y': maxKeepYears}
	l, ok := limit[unit]
	if !ok {
		return Keep{}, fmt.Errorf("retention period %q: unit must be d (days), w (weeks), m (months) or y (years)", s)
	}
	if n > l {
		return Keep{}, fmt.Errorf("retention period %q: longer than %d years; use forever", s, maxKeepYears)
	}
	return Keep{N: n, Unit: unit}, nil
}

// Forever reports whether k keeps mail forever.
func (k Keep) Forever() bool { return k.Unit == 0 }

// String renders k as ParseKeep accepts it.
func (k Keep) String() string {
	if k.Forever() {
		return "forever"
	}
	return strconv.Itoa(k.N) + string(k.Unit)
}

// Expiry is when a message dated d expires under k; ok is false for forever.
func (k Keep) Expiry(d time.Time) (t time.Time, ok bool) {
	switch k.Unit {
	case 'd':
		return d.AddDate(0, 0, k.N), true
	case 'w':
		return d.AddDate(0, 0, 7*k.N), true
	case 'm':
		return d.AddDate(0, k.N, 0), true
	case 'y':
		return d.AddDate(k.N, 0, 0), true
	}
	return time.Time{}, false
}

// Policy is one named retention rule: messages matching Query are kept for
// Keep after their date.
type Policy struct {
	Name  string `json:"name"`
	Query string `json:"query"`
	Keep  string `json:"keep"`
}

// Retention is the node's retention configuration. A message matching one
// or more policies is kept for the longest of their periods; a message
// matching none is kept for Default.
type Retention struct {
	Default  string   `json:"default"`
	Policies []Policy `json:"policies"`
}

// FieldError is a validation failure naming the offending field.
type FieldError struct {
	Field string // e.g. "policies[2].query"
	Msg   string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Msg }

// compiled is a validated Retention ready for evaluation.
type compiled struct {
	def      Keep
	policies []compiledPolicy
}

type compiledPolicy struct {
	name string
	q    *query.Query
	keep Keep
}

// maxPolicies bounds the policy list (each costs one index query per batch).
const maxPolicies = 100

// Validate checks every field and returns the normalised configuration.
func (r Retention) Validate() (Retention, error) {
	_, out, err := r.compile()
	return out, err
}

func (r Retention) compile() (*compiled, Retention, error) {
	c := &compiled{}
	out := Retention{Policies: []Policy{}}
	def, err := ParseKeep(r.Default)
	if err != nil {
		return nil, out, &FieldError{"default", err.Error()}
	}
	c.def = def
	out.Default = def.String()
	if len(r.Policies) > maxPolicies {
		return nil, out, &FieldError{"policies", fmt.Sprintf("at most %d policies", maxPolicies)}
	}
	names := map[string]bool{}
	for i, p := range r.Policies {
		field := fmt.Sprintf("policies[%d]", i)
		name := strings.TrimSpace(p.Name)
		if name == "" || len(name) > 200 {
			return nil, out, &FieldError{field + ".name", "a policy needs a name of 1-200 characters"}
		}
		if names[name] {
			return nil, out, &FieldError{field + ".name", fmt.Sprintf("duplicate policy name %q", name)}
		}
		names[name] = true
		if strings.TrimSpace(p.Query) == "" {
			return nil, out, &FieldError{field + ".query", "a policy needs a query (use default for all other mail)"}
		}
		q, err := query.Parse(p.Query)
		if err != nil {
			return nil, out, &FieldError{field + ".query", err.Error()}
		}
		k, err := ParseKeep(p.Keep)
		if err != nil {
			return nil, out, &FieldError{field + ".keep", err.Error()}
		}
		if strings.TrimSpace(p.Keep) == "" {
			return nil, out, &FieldError{field + ".keep", "a policy needs keep (30d, 6m, 7y or forever)"}
		}
		c.policies = append(c.policies, compiledPolicy{name: name, q: q, keep: k})
		out.Policies = append(out.Policies, Policy{Name: name, Query: p.Query, Keep: k.String()})
	}
	return c, out, nil
}

// cutoff is the latest message date that can possibly be expired at now:
// the shortest period decides. ok is false when everything is kept forever.
func (c *compiled) cutoff(now time.Time) (time.Time, bool) {
	var best time.Time
	ok := false
	consider := func(k Keep) {
		if k.Forever() {
			return
		}
		// A message dated d expires when Expiry(d) < now; d < now - period
		// approximately; take one extra day of slack (month lengths),
		// exactness comes from expiry() per message.
		t := now.AddDate(0, 0, 1)
		switch k.Unit {
		case 'd':
			t = t.AddDate(0, 0, -k.N)
		case 'w':
			t = t.AddDate(0, 0, -7*k.N)
		case 'm':
			t = t.AddDate(0, -k.N, 0)
		case 'y':
			t = t.AddDate(-k.N, 0, 0)
		}
		if !ok || t.After(best) {
			best, ok = t, true
		}
	}
	consider(c.def)
	for _, p := range c.policies {
		consider(p.keep)
	}
	return best, ok
}

// expiry returns when a message dated d that matched the policies with the
// given indexes expires: the longest matching period wins, the default
// applies when none matched. ok is false for forever.
func (c *compiled) expiry(d time.Time, matched []int) (time.Time, bool) {
	if len(matched) == 0 {
		return c.def.Expiry(d)
	}
	var latest time.Time
	for _, i := range matched {
		t, ok := c.policies[i].keep.Expiry(d)
		if !ok {
			return time.Time{}, false
		}
		if t.After(latest) {
			latest = t
		}
	}
	return latest, true
}
