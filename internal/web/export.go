package web

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/export"
	"github.com/mailarc/mailarc/internal/governance"
	"github.com/mailarc/mailarc/internal/query"
	"github.com/mailarc/mailarc/internal/version"
)

// GET /api/v1/export?q=&format=mbox|zip[&part=manifest] or ?hold=ID
//
// Streams the export; the caller's visibility applies (a user exports only
// their own mail; holds are for admins and auditors). zip carries
// messages, manifest.csv and custody.json. mbox carries the messages; its
// custody record follows in the trailers X-Mailarc-Custody (base64 JSON),
// X-Mailarc-Manifest-Sha256 and X-Mailarc-Export-Count, and part=manifest
// answers the manifest CSV alone.
func (s *Server) export(w http.ResponseWriter, r *http.Request) error {
	if s.d.Index == nil {
		return errf(http.StatusServiceUnavailable, "unavailable", "export is not available on this node")
	}
	v := r.URL.Query()
	u := userFrom(r)
	format, err := export.ParseFormat(v.Get("format"))
	if err != nil {
		return errf(http.StatusBadRequest, "bad_format", "format must be mbox or zip")
	}
	part := v.Get("part")
	if part != "" && part != "manifest" {
		return errf(http.StatusBadRequest, "bad_part", "part must be manifest or absent")
	}
	c := export.Custody{Tool: "mailarc", Version: version.Version, Node: s.d.NodeName, User: u.Name, Query: v.Get("q"), Hold: v.Get("hold")}
	var q *query.Query
	if c.Hold != "" {
		if !u.SeesAll() {
			return errf(http.StatusForbidden, "forbidden", "only admins and auditors may export a hold")
		}
		if err := s.needGovernance(); err != nil {
			return err
		}
		hq, h, err := s.d.Governance.HoldQuery(r.Context(), c.Hold)
		if errors.Is(err, governance.ErrNoHold) {
			return errf(http.StatusNotFound, "not_found", "no such hold")
		}
		if err != nil {
			return err
		}
		q, c.HoldName, c.Query = hq, h.Name, h.Query
	} else {
		q, err = query.Parse(c.Query)
		var se *query.SyntaxError
		if errors.As(err, &se) {
			writeJSON(w, http.StatusBadRequest, map[string]any{"error": map[string]any{
				"code": "bad_query", "message": se.Error(), "position": se.Pos}})
			return nil
		}
		if err != nil {
			return err
		}
	}
	src := &export.IndexSource{
		Index: s.d.Index, Catalog: s.d.Archive.Catalog(), RawFunc: s.d.Archive.Raw, Query: q,
		Visible: func(ctx context.Context, m *archive.Message) (bool, error) { return Visible(ctx, s.d.Archive, u, m) },
	}
	if !u.SeesAll() {
		src.Addresses = append([]string{}, u.Addresses...)
	}
	c.Started = time.Now().UTC()
	// On record before any byte leaves.
	if err := s.record(r, audit.ActionExport, map[string]any{"query": c.Query, "hold": c.Hold, "format": format, "part": part}); err != nil {
		return err
	}
	stamp := c.Started.Format("20060102-150405")
	if part == "manifest" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="mailarc-export-`+stamp+`.manifest.csv"`)
		sum, n, err := export.WriteManifest(r.Context(), w, src)
		return s.finishExport(r, c, sum, n, err)
	}
	var done export.Custody
	switch format {
	case export.FormatZip:
		w.Header().Set("Content-Type", "application/zip")
		w.Header().Set("Content-Disposition", `attachment; filename="mailarc-export-`+stamp+`.zip"`)
		done, err = export.WriteZip(r.Context(), w, src, c)
	default:
		w.Header().Set("Trailer", "X-Mailarc-Custody, X-Mailarc-Manifest-Sha256, X-Mailarc-Export-Count")
		w.Header().Set("Content-Type", "application/mbox")
		w.Header().Set("Content-Disposition", `attachment; filename="mailarc-export-`+stamp+`.mbox"`)
		done, err = export.WriteMbox(r.Context(), w, io.Discard, src, c)
		if err == nil {
			b, _ := json.Marshal(done)
			w.Header().Set("X-Mailarc-Custody", base64.StdEncoding.EncodeToString(b))
			w.Header().Set("X-Mailarc-Manifest-Sha256", done.ManifestSHA256)
			w.Header().Set("X-Mailarc-Export-Count", strconv.FormatInt(done.Count, 10))
		}
	}
	return s.finishExport(r, done, done.ManifestSHA256, done.Count, err)
}

// finishExport records the outcome. A failure after the first byte was
// sent cannot become an error answer any more: the connection is aborted
// so the client sees a broken download rather than a short, valid-looking one.
func (s *Server) finishExport(r *http.Request, c export.Custody, sum string, n int64, err error) error {
	detail := map[string]any{"custody": c, "manifest_sha256": sum, "count": n}
	if err != nil {
		detail["error"] = err.Error()
	}
	if aerr := s.record(r, audit.ActionExport+".complete", detail); aerr != nil {
		s.log.Error("audit export completion", "err", aerr)
	}
	if err != nil {
		s.log.Error("export failed", "user", c.User, "err", err)
		panic(http.ErrAbortHandler)
	}
	return nil
}
