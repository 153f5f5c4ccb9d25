package web

import (
	"errors"
	"net/http"
	"strconv"

	"github.com/mailarc/mailarc/internal/governance"
)

func (s *Server) needGovernance() error {
	if s.d.Governance == nil {
		return errf(http.StatusServiceUnavailable, "unavailable", "retention and holds are not available on this node")
	}
	return nil
}

// governanceError maps governance errors to API errors.
func governanceError(err error) error {
	var fe *governance.FieldError
	switch {
	case errors.As(err, &fe):
		return errf(http.StatusBadRequest, "invalid", fe.Error())
	case errors.Is(err, governance.ErrNoHold):
		return errf(http.StatusNotFound, "not_found", "no such hold")
	case errors.Is(err, governance.ErrReleased):
		return errf(http.StatusConflict, "released", "the hold is already released")
	}
	return err
}

// POST /api/v1/holds {"name","query","description","after","before","expires"}
func (s *Server) createHold(w http.ResponseWriter, r *http.Request) error {
	if err := s.needGovernance(); err != nil {
		return err
	}
	var in governance.HoldSpec
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	h, err := s.d.Governance.CreateHold(r.Context(), userFrom(r).Name, in)
	if err != nil {
		return governanceError(err)
	}
	writeJSON(w, http.StatusCreated, h)
	return nil
}

// GET /api/v1/holds[?all=true]
func (s *Server) listHolds(w http.ResponseWriter, r *http.Request) error {
	if err := s.needGovernance(); err != nil {
		return err
	}
	hs, err := s.d.Governance.Holds(r.Context(), r.URL.Query().Get("all") == "true")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"holds": hs})
	return nil
}

// GET /api/v1/holds/{id}
func (s *Server) getHold(w http.ResponseWriter, r *http.Request) error {
	if err := s.needGovernance(); err != nil {
		return err
	}
	h, err := s.d.Governance.Hold(r.Context(), r.PathValue("id"))
	if err != nil {
		return governanceError(err)
	}
	writeJSON(w, http.StatusOK, h)
	return nil
}

// GET /api/v1/holds/{id}/messages?limit=&offset=: what the hold covers
// (messages the index has indexed), newest first.
func (s *Server) holdMessages(w http.ResponseWriter, r *http.Request) error {
	if err := s.needGovernance(); err != nil {
		return err
	}
	q := r.URL.Query()
	limit, offset := 50, 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return errf(http.StatusBadRequest, "bad_limit", "limit must be between 1 and 1000")
		}
		limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errf(http.StatusBadRequest, "bad_offset", "offset must be a non-negative integer")
		}
		offset = n
	}
	res, err := s.d.Governance.HoldMessages(r.Context(), r.PathValue("id"), limit, offset)
	if err != nil {
		return governanceError(err)
	}
	ids := make([]string, len(res.Hits))
	for i, h := range res.Hits {
		ids[i] = h.ID
	}
	ms, err := s.d.Archive.Catalog().GetMany(r.Context(), ids)
	if err != nil {
		return err
	}
	out := make([]SearchHit, 0, len(ms))
	for _, m := range ms {
		out = append(out, SearchHit{ID: m.ID, Date: m.Date, From: m.From, To: nonNil(m.To), Cc: nonNil(m.Cc),
			Subject: m.Subject, Size: m.Size, Attachments: m.Attachments, Origin: nonNil(m.Origins)})
	}
	if err := s.record(r, "hold.messages", map[string]any{"id": r.PathValue("id"), "total": res.Total, "offset": offset}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"total": res.Total, "messages": out})
	return nil
}

// DELETE /api/v1/holds/{id}: release.
func (s *Server) releaseHold(w http.ResponseWriter, r *http.Request) error {
	if err := s.needGovernance(); err != nil {
		return err
	}
	if err := s.d.Governance.ReleaseHold(r.Context(), userFrom(r).Name, r.PathValue("id")); err != nil {
		return governanceError(err)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
