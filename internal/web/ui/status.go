package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"time"
)

// statusDoc mirrors the /api/v1/status document (DESIGN §5); unknown
// fields are ignored and missing ones stay zero.
type statusDoc struct {
	Node     string    `json:"node"`
	Version  string    `json:"version"`
	Started  time.Time `json:"started"`
	Instance string    `json:"store_instance"`
	Counts   struct {
		Archived int64 `json:"archived"`
		Indexed  int64 `json:"indexed"`
	} `json:"counts"`
	Index struct {
		LagMessages int64   `json:"lag_messages"`
		LagSeconds  float64 `json:"lag_seconds"`
		Skipped     int64   `json:"attachments_skipped"`
	} `json:"index"`
	Storage struct {
		RawBytes    int64 `json:"raw_bytes"`
		StoredBytes int64 `json:"stored_bytes"`
		Blobs       int64 `json:"blobs"`
	} `json:"storage"`
	Ingest struct {
		PerMinute     float64 `json:"per_minute"`
		Total         int64   `json:"total"`
		WindowSeconds int     `json:"window_seconds"`
	} `json:"ingest"`
	Peers   []map[string]any `json:"peers"`
	Sources []map[string]any `json:"sources"`
	Drift   []string         `json:"policy_drift"`
}

type kvTable struct {
	Columns []string
	Rows    [][]string
}

type statusData struct {
	Available bool
	S         statusDoc
	Uptime    string
	Peers     kvTable
	Sources   kvTable
	HasIngest bool
	// IngestWindow is the rate's window in words ("5 min").
	IngestWindow string
}

var peerColumns = []string{"name", "url", "state", "queued", "oldest_queued_age_s", "last_success", "last_error"}

// table renders a list of JSON objects: preferred columns first (when any
// row has them), then the remaining keys in order.
func table(rows []map[string]any, preferred []string) kvTable {
	seen := map[string]bool{}
	var cols []string
	for _, c := range preferred {
		for _, r := range rows {
			if _, ok := r[c]; ok {
				cols = append(cols, c)
				seen[c] = true
				break
			}
		}
	}
	var extra []string
	for _, r := range rows {
		for k := range r {
			if !seen[k] {
				seen[k] = true
				extra = append(extra, k)
			}
		}
	}
	sort.Strings(extra)
	cols = append(cols, extra...)
	t := kvTable{Columns: cols}
	for _, r := range rows {
		var line []string
		for _, c := range cols {
			line = append(line, cell(r[c]))
		}
		t.Rows = append(t.Rows, line)
	}
	return t
}

func cell(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return shorten(x, 200)
	case float64:
		if x == float64(int64(x)) {
			return fmt.Sprintf("%d", int64(x))
		}
		return fmt.Sprintf("%.1f", x)
	case bool:
		if x {
			return "yes"
		}
		return "no"
	default:
		b, _ := json.Marshal(x)
		return shorten(string(b), 200)
	}
}

func (h *Handler) statusPage(w http.ResponseWriter, r *http.Request, c *reqCtx) error {
	d := statusData{Available: h.d.Status != nil}
	if d.Available {
		st, err := h.d.Status(r.Context())
		if err != nil {
			return err
		}
		b, err := json.Marshal(st)
		if err != nil {
			return fmt.Errorf("ui: encode status: %w", err)
		}
		if err := json.Unmarshal(b, &d.S); err != nil {
			return fmt.Errorf("ui: decode status: %w", err)
		}
		var raw map[string]json.RawMessage
		if json.Unmarshal(b, &raw) == nil {
			_, d.HasIngest = raw["ingest"]
		}
		if !d.S.Started.IsZero() {
			d.Uptime = time.Since(d.S.Started).Round(time.Second).String()
		}
		if w := d.S.Ingest.WindowSeconds; w > 0 {
			d.IngestWindow = (time.Duration(w) * time.Second).String()
			if w%60 == 0 {
				d.IngestWindow = fmt.Sprintf("%d min", w/60)
			}
		}
		d.Peers = table(d.S.Peers, peerColumns)
		d.Sources = table(d.S.Sources, []string{"name", "type", "host", "owner", "state", "last_poll", "last_error"})
	}
	h.render(w, r, http.StatusOK, "status", c.view("Status", "status", d))
	return nil
}
