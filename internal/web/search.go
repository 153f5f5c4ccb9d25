package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/auth"
)

// SearchRequest is one search, already scoped to the caller.
type SearchRequest struct {
	Query  string
	Limit  int
	Offset int
	Sort   string // "date" (oldest first), "-date" (newest first, default), "relevance"
	User   *auth.User
	// NoSnippets skips building snippets (each needs the stored message
	// read and parsed); for scripts that only want ids and metadata.
	NoSnippets bool
	// ExactCount asks for the exact number of matches; otherwise counting
	// stops at CountCap (or just past the requested page, if deeper) and
	// SearchResult.TotalCapped says so.
	ExactCount bool
}

// CountCap is where a search's count stops unless ExactCount is asked:
// counting every match of a common word costs time in proportion to the
// matches, so a million-message archive answers "10000+" at once and the
// exact figure on request (API count=exact, the UI's "count all" link).
const CountCap = 10000

// MaxRelevanceDepth is how deep relevance-ordered results page (offset
// plus limit): ranking has to hold every earlier hit of every index shard
// in memory, so deeper pages are refused (date order pages without limit).
const MaxRelevanceDepth = 10000

// CountLimit is the index count limit for req: 0 (exact) or at least
// CountCap and always past the requested page, so "next page" is known.
func (req SearchRequest) CountLimit() int {
	if req.ExactCount {
		return 0
	}
	return max(CountCap, req.Offset+req.Limit+1)
}

// SearchHit is one result (DESIGN §5 search response).
type SearchHit struct {
	ID          string               `json:"id"`
	Date        time.Time            `json:"date"`
	From        string               `json:"from"`
	To          []string             `json:"to"`
	Cc          []string             `json:"cc"`
	Subject     string               `json:"subject"`
	Size        int64                `json:"size"`
	Attachments []archive.Attachment `json:"attachments"`
	Snippet     string               `json:"snippet"`
	Origin      []string             `json:"origin"`
}

// SearchResult is a page of results.
type SearchResult struct {
	Total int `json:"total"`
	// TotalCapped: counting stopped early, there are at least Total
	// matches (ask count=exact for the exact number).
	TotalCapped bool        `json:"total_capped"`
	Messages    []SearchHit `json:"messages"`
	TookMS      float64     `json:"took_ms"`
}

// Searcher runs searches; the server wires the index-backed implementation.
type Searcher interface {
	Search(ctx context.Context, req SearchRequest) (SearchResult, error)
}

// QueryError is a search query that does not parse; Pos is a byte offset.
type QueryError interface {
	error
	Position() int
}

func (s *Server) search(w http.ResponseWriter, r *http.Request) error {
	if s.d.Search == nil {
		return errf(http.StatusServiceUnavailable, "unavailable", "search is not available on this node")
	}
	q := r.URL.Query()
	req := SearchRequest{Query: q.Get("q"), Limit: 50, Sort: q.Get("sort"), User: userFrom(r), NoSnippets: q.Get("snippets") == "false"}
	switch q.Get("count") {
	case "", "capped":
	case "exact":
		req.ExactCount = true
	default:
		return errf(http.StatusBadRequest, "bad_count", "count must be exact or capped")
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return errf(http.StatusBadRequest, "bad_limit", "limit must be between 1 and 1000")
		}
		req.Limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return errf(http.StatusBadRequest, "bad_offset", "offset must be a non-negative integer")
		}
		req.Offset = n
	}
	switch req.Sort {
	case "", "-date":
		req.Sort = "-date"
	case "date", "relevance":
	default:
		return errf(http.StatusBadRequest, "bad_sort", "sort must be date, -date or relevance")
	}
	if req.Sort == "relevance" && req.Offset+req.Limit > MaxRelevanceDepth {
		return errf(http.StatusBadRequest, "bad_offset", fmt.Sprintf("sort=relevance pages at most %d results deep (offset+limit); use sort=date or -date to go further", MaxRelevanceDepth))
	}
	res, err := s.d.Search.Search(r.Context(), req)
	var qe QueryError
	if errors.As(err, &qe) {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{
			"code": "bad_query", "message": qe.Error(), "position": qe.Position()}})
		return nil
	}
	if err != nil {
		return err
	}
	if res.Messages == nil {
		res.Messages = []SearchHit{}
	}
	if err := s.record(r, audit.ActionSearch, map[string]any{"query": req.Query, "total": res.Total, "limit": req.Limit, "offset": req.Offset, "sort": req.Sort}); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}
