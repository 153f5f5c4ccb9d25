package web

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/mailarc/mailarc/internal/governance"
)

// GET /api/v1/retention
func (s *Server) getRetention(w http.ResponseWriter, r *http.Request) error {
	if err := s.needGovernance(); err != nil {
		return err
	}
	st, err := s.d.Governance.Retention(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// PUT /api/v1/retention {"default":"forever","policies":[{"name","query","keep"}]}
func (s *Server) putRetention(w http.ResponseWriter, r *http.Request) error {
	if err := s.needGovernance(); err != nil {
		return err
	}
	// The fields GET adds are accepted (and ignored) so a GET answer can be
	// edited and PUT back.
	var in struct {
		governance.Retention
		Version   int64           `json:"version"`
		Updated   time.Time       `json:"updated"`
		UpdatedBy string          `json:"updated_by"`
		Confirmed json.RawMessage `json:"confirmed"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	st, err := s.d.Governance.SetRetention(r.Context(), userFrom(r).Name, in.Retention)
	if err != nil {
		return governanceError(err)
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}

// POST /api/v1/retention/run?dry_run=true | ?confirm=N
func (s *Server) runRetention(w http.ResponseWriter, r *http.Request) error {
	if err := s.needGovernance(); err != nil {
		return err
	}
	q := r.URL.Query()
	user := userFrom(r).Name
	if q.Get("dry_run") == "true" || q.Get("dry_run") == "1" {
		res, err := s.d.Governance.DryRun(r.Context(), user)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"would_purge": res.WouldPurge, "held": res.Held,
			"deferred": res.Deferred, "held_back_by": nonNil(res.HeldBackBy),
			"pending": res.Pending, "samples": res.Samples, "version": res.Version})
		return nil
	}
	v := q.Get("confirm")
	n, err := strconv.ParseInt(v, 10, 64)
	if v == "" || err != nil || n < 0 {
		dry, derr := s.d.Governance.DryRun(r.Context(), "")
		if derr != nil {
			return derr
		}
		return confirmConflict(w, "a real run needs confirm=N, N being the dry run's would_purge count", dry.WouldPurge)
	}
	res, err := s.d.Governance.Run(r.Context(), user, n)
	var ce *governance.ConfirmError
	if errors.As(err, &ce) {
		return confirmConflict(w, ce.Error(), ce.Count)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"purged": res.Purged, "held": res.Held, "pending": res.Pending, "version": res.Version,
		"deferred": res.Deferred, "held_back_by": nonNil(res.HeldBackBy)})
	return nil
}

func confirmConflict(w http.ResponseWriter, msg string, count int64) error {
	writeJSON(w, http.StatusConflict, map[string]any{"error": map[string]any{
		"code": "confirm_mismatch", "message": msg, "would_purge": count}})
	return nil
}
