package web

import (
	"encoding/csv"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/auth"
)

// record writes an audit entry for the request's user. A request whose
// audit entry cannot be written fails: what is not on record must not
// happen. Without an audit log (tests) it does nothing.
func (s *Server) record(r *http.Request, action string, detail any) error {
	if s.d.Audit == nil {
		return nil
	}
	name := ""
	if u := userFrom(r); u != nil {
		name = u.Name
	}
	if _, err := s.d.Audit.Record(r.Context(), name, action, detail); err != nil {
		return err
	}
	return nil
}

// recordLogin audits an authentication attempt; failures to write are
// logged (the login answer itself does not depend on them).
func (s *Server) recordLogin(r *http.Request, name, method string, u *auth.User, err error) {
	if s.d.Audit == nil {
		return
	}
	reason := ""
	switch {
	case err == nil:
	case errors.Is(err, auth.ErrThrottled):
		reason = "throttled"
	case errors.Is(err, auth.ErrBadCredentials), errors.Is(err, auth.ErrNoUser):
		reason = "bad credentials"
	default:
		reason = "error"
	}
	if u != nil {
		name = u.Name
	}
	if aerr := s.d.Audit.RecordLogin(r.Context(), name, method, clientIP(r), err == nil, reason); aerr != nil {
		s.log.Error("audit login", "err", aerr)
	}
}

// parseTime accepts YYYY-MM-DD or RFC 3339.
func parseTime(s string) (time.Time, bool) {
	for _, l := range []string{"2006-01-02", time.RFC3339Nano} {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// GET /api/v1/audit?limit=&action=&user=&after=&before=&before_seq=&format=json|csv
func (s *Server) getAudit(w http.ResponseWriter, r *http.Request) error {
	if s.d.Audit == nil {
		return errf(http.StatusServiceUnavailable, "unavailable", "the audit log is not available on this node")
	}
	q := r.URL.Query()
	f := audit.Filter{Limit: 100, Action: q.Get("action"), User: q.Get("user")}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 10000 {
			return errf(http.StatusBadRequest, "bad_limit", "limit must be between 1 and 10000")
		}
		f.Limit = n
	}
	if v := q.Get("before_seq"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return errf(http.StatusBadRequest, "bad_before_seq", "before_seq must be a positive integer")
		}
		f.BeforeSeq = n
	}
	for name, dst := range map[string]*time.Time{"after": &f.After, "before": &f.Before} {
		if v := q.Get(name); v != "" {
			t, ok := parseTime(v)
			if !ok {
				return errf(http.StatusBadRequest, "bad_"+name, name+" must be YYYY-MM-DD or RFC 3339")
			}
			*dst = t
		}
	}
	format := q.Get("format")
	if format != "" && format != "json" && format != "csv" {
		return errf(http.StatusBadRequest, "bad_format", "format must be json or csv")
	}
	es, err := s.d.Audit.Query(r.Context(), f)
	if err != nil {
		return err
	}
	if format != "csv" {
		writeJSON(w, http.StatusOK, map[string]any{"entries": es})
		return nil
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="audit.csv"`)
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"seq", "time", "user", "action", "detail", "prev_hash", "hash"})
	for _, e := range es {
		_ = cw.Write([]string{strconv.FormatInt(e.Seq, 10), e.Time.Format(time.RFC3339Nano), csvSafe(e.User), e.Action, csvSafe(string(e.Detail)), e.PrevHash, e.Hash})
	}
	cw.Flush()
	return nil
}

// csvSafe stops spreadsheet formula injection through user-controlled
// cells (a leading =, +, - or @ is prefixed with a quote).
func csvSafe(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
