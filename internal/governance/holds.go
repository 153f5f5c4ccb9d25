package governance

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/query"
)

// Hold is a litigation hold: every message its query and date range
// match, now or in the future, is kept whatever the retention policies say
// until the hold is released or expires.
type Hold struct {
	ID          string     `json:"id"`
	Name        string     `json:"name"`
	Description string     `json:"description"`
	Query       string     `json:"query"`
	After       *time.Time `json:"after,omitempty"`  // message date >= After
	Before      *time.Time `json:"before,omitempty"` // message date < Before
	Creator     string     `json:"creator"`
	Created     time.Time  `json:"created_at"`
	Expires     *time.Time `json:"expires,omitempty"`
	Released    *time.Time `json:"released_at,omitempty"`
	ReleasedBy  string     `json:"released_by,omitempty"`
	Active      bool       `json:"active"`
}

// HoldSpec is what a caller gives to create a hold. Dates are YYYY-MM-DD
// or RFC 3339.
type HoldSpec struct {
	Name        string `json:"name"`
	Description string `json:"description"`
	Query       string `json:"query"`
	After       string `json:"after"`
	Before      string `json:"before"`
	Expires     string `json:"expires"`
}

// ErrNoHold is returned for an unknown hold id.
var ErrNoHold = errors.New("governance: no such hold")

// ErrReleased is returned when releasing a hold twice.
var ErrReleased = errors.New("governance: hold already released")

func parseDate(field, s string) (*time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, nil
	}
	for _, layout := range []string{"2006-01-02", time.RFC3339Nano} {
		if t, err := time.Parse(layout, s); err == nil {
			t = t.UTC()
			return &t, nil
		}
	}
	return nil, &FieldError{field, fmt.Sprintf("%q is not a date (YYYY-MM-DD or RFC 3339)", s)}
}

// ast returns the hold's full condition: its query and date range.
func (h *Hold) ast() (*query.Query, error) {
	q, err := query.Parse(h.Query)
	if err != nil {
		return nil, fmt.Errorf("hold %s: stored query no longer parses: %w", h.ID, err)
	}
	var nodes []query.Node
	if q.Root != nil {
		nodes = append(nodes, q.Root)
	}
	if h.After != nil {
		nodes = append(nodes, &query.After{Date: *h.After})
	}
	if h.Before != nil {
		nodes = append(nodes, &query.Before{Date: *h.Before})
	}
	switch len(nodes) {
	case 0:
		return &query.Query{}, nil
	case 1:
		return &query.Query{Root: nodes[0]}, nil
	}
	return &query.Query{Root: &query.And{Nodes: nodes}}, nil
}

func (h *Hold) activeAt(now time.Time) bool {
	return h.Released == nil && (h.Expires == nil || now.Before(*h.Expires))
}

// CreateHold validates spec, stores the hold and audit-logs it. It takes
// effect for every purge that starts after it returns.
func (s *Service) CreateHold(ctx context.Context, user string, spec HoldSpec) (*Hold, error) {
	name := strings.TrimSpace(spec.Name)
	if name == "" || len(name) > 200 {
		return nil, &FieldError{"name", "a hold needs a name (case) of 1-200 characters"}
	}
	if len(spec.Description) > 10000 {
		return nil, &FieldError{"description", "at most 10000 characters"}
	}
	if _, err := query.Parse(spec.Query); err != nil {
		return nil, &FieldError{"query", err.Error()}
	}
	h := &Hold{Name: name, Description: spec.Description, Query: spec.Query, Creator: user, Created: s.now().UTC().Truncate(time.Second)}
	var err error
	if h.After, err = parseDate("after", spec.After); err != nil {
		return nil, err
	}
	if h.Before, err = parseDate("before", spec.Before); err != nil {
		return nil, err
	}
	if h.Expires, err = parseDate("expires", spec.Expires); err != nil {
		return nil, err
	}
	if h.After != nil && h.Before != nil && !h.After.Before(*h.Before) {
		return nil, &FieldError{"before", "must be later than after"}
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("governance: hold id: %w", err)
	}
	h.ID = hex.EncodeToString(b[:])
	h.Active = h.activeAt(s.now())
	// Purges evaluate holds under purgeMu: a hold committed here is seen
	// by every purge batch that has not yet evaluated its holds.
	s.purgeMu.Lock()
	defer s.purgeMu.Unlock()
	_, err = s.w.ExecContext(ctx, `INSERT INTO holds(id, name, description, query, after, before, creator, created, expires, released, released_by)
		VALUES (?,?,?,?,?,?,?,?,?,NULL,'')`, h.ID, h.Name, h.Description, h.Query, unixOrNil(h.After), unixOrNil(h.Before), h.Creator, h.Created.Unix(), unixOrNil(h.Expires))
	if err != nil {
		return nil, fmt.Errorf("governance: create hold: %w", err)
	}
	s.kickWORM()
	if err := s.record(ctx, user, audit.ActionHoldCreate, h); err != nil {
		return nil, err
	}
	return h, nil
}

func unixOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.Unix()
}

const holdCols = `id, name, description, query, after, before, creator, created, expires, released, released_by`

func (s *Service) scanHold(sc interface{ Scan(...any) error }) (*Hold, error) {
	var h Hold
	var after, before, expires, released sql.NullInt64
	var created int64
	if err := sc.Scan(&h.ID, &h.Name, &h.Description, &h.Query, &after, &before, &h.Creator, &created, &expires, &released, &h.ReleasedBy); err != nil {
		return nil, err
	}
	tp := func(n sql.NullInt64) *time.Time {
		if !n.Valid {
			return nil
		}
		t := time.Unix(n.Int64, 0).UTC()
		return &t
	}
	h.After, h.Before, h.Expires, h.Released = tp(after), tp(before), tp(expires), tp(released)
	h.Created = time.Unix(created, 0).UTC()
	h.Active = h.activeAt(s.now())
	return &h, nil
}

// Holds lists holds, newest first; released and expired ones only when all is set.
func (s *Service) Holds(ctx context.Context, all bool) ([]*Hold, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT `+holdCols+` FROM holds ORDER BY created DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("governance: list holds: %w", err)
	}
	defer rows.Close()
	out := []*Hold{}
	for rows.Next() {
		h, err := s.scanHold(rows)
		if err != nil {
			return nil, fmt.Errorf("governance: list holds: %w", err)
		}
		if all || h.Active {
			out = append(out, h)
		}
	}
	return out, rows.Err()
}

// Hold returns one hold.
func (s *Service) Hold(ctx context.Context, id string) (*Hold, error) {
	h, err := s.scanHold(s.r.QueryRowContext(ctx, `SELECT `+holdCols+` FROM holds WHERE id=?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoHold
	}
	if err != nil {
		return nil, fmt.Errorf("governance: hold %s: %w", id, err)
	}
	return h, nil
}

// ReleaseHold releases a hold (it stays listed, inactive) and audit-logs it.
func (s *Service) ReleaseHold(ctx context.Context, user, id string) error {
	h, err := s.Hold(ctx, id)
	if err != nil {
		return err
	}
	if h.Released != nil {
		return ErrReleased
	}
	if _, err := s.w.ExecContext(ctx, `UPDATE holds SET released=?, released_by=? WHERE id=? AND released IS NULL`, s.now().Unix(), user, id); err != nil {
		return fmt.Errorf("governance: release hold %s: %w", id, err)
	}
	s.kickWORM()
	return s.record(ctx, user, audit.ActionHoldRelease, map[string]string{"id": id, "name": h.Name})
}

// HoldQuery returns the hold's condition (query and date range) as a query
// AST, for listing and exporting what it covers.
func (s *Service) HoldQuery(ctx context.Context, id string) (*query.Query, *Hold, error) {
	h, err := s.Hold(ctx, id)
	if err != nil {
		return nil, nil, err
	}
	q, err := h.ast()
	return q, h, err
}

// HoldMessages returns one page of the (indexed) messages a hold covers,
// newest first, with the total.
func (s *Service) HoldMessages(ctx context.Context, id string, limit, offset int) (index.Result, error) {
	q, _, err := s.HoldQuery(ctx, id)
	if err != nil {
		return index.Result{}, err
	}
	res, err := s.idx.Search(ctx, q, index.Options{Limit: limit, Offset: offset, CountTotal: true})
	if err != nil {
		return index.Result{}, fmt.Errorf("governance: hold %s messages: %w", id, err)
	}
	return res, nil
}

// activeHolds returns the compiled active holds.
func (s *Service) activeHolds(ctx context.Context) ([]*query.Query, error) {
	hs, err := s.Holds(ctx, false)
	if err != nil {
		return nil, err
	}
	out := make([]*query.Query, 0, len(hs))
	for _, h := range hs {
		q, err := h.ast()
		if err != nil {
			return nil, err
		}
		out = append(out, q)
	}
	return out, nil
}
