package main

import (
	"archive/zip"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/export"
	"github.com/mailarc/mailarc/internal/query"
	"github.com/mailarc/mailarc/internal/version"
)

func runExport(ctx context.Context, args []string) error {
	fs := newFlagSet("export", "export [--server URL | --data DIR] --format mbox|zip -o FILE [--hold ID] [QUERY...]")
	var f nodeFlags
	f.register(fs, true)
	formatName := fs.String("format", "zip", "mbox or zip")
	out := fs.String("o", "", "output file (required); mbox also writes FILE.manifest.csv and FILE.custody.json")
	hold := fs.String("hold", "", "export what this litigation hold covers instead of a query")
	if err := parse(fs, args); err != nil {
		return err
	}
	format, err := export.ParseFormat(*formatName)
	if err != nil {
		return usageError{err.Error()}
	}
	if *out == "" {
		fs.Usage()
		return usageError{"-o FILE is required"}
	}
	q := strings.Join(fs.Args(), " ")
	if *hold != "" && q != "" {
		return usageError{"give either --hold ID or a query, not both"}
	}
	var c export.Custody
	if f.server != "" {
		c, err = exportRemote(ctx, &f, format, q, *hold, *out)
	} else {
		c, err = exportLocal(ctx, &f, format, q, *hold, *out)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "exported %d messages (%d bytes) to %s; manifest sha256 %s\n", c.Count, c.Bytes, *out, c.ManifestSHA256)
	return nil
}

// atomicFile is a temp file renamed over the target on success.
type atomicFile struct {
	*os.File
	target string
}

func createAtomic(path string) (*atomicFile, error) {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return nil, err
	}
	return &atomicFile{File: f, target: path}, nil
}

func (a *atomicFile) commit() error {
	if err := a.Sync(); err != nil {
		a.abort()
		return err
	}
	if err := a.Close(); err != nil {
		os.Remove(a.Name())
		return err
	}
	return os.Rename(a.Name(), a.target)
}

func (a *atomicFile) abort() {
	a.Close()
	os.Remove(a.Name())
}

func writeSidecar(path string, data []byte) error {
	af, err := createAtomic(path)
	if err != nil {
		return err
	}
	if _, err := af.Write(data); err != nil {
		af.abort()
		return err
	}
	return af.commit()
}

func custodyJSON(c export.Custody) []byte {
	b, _ := json.MarshalIndent(c, "", "  ")
	return append(b, '\n')
}

func exportLocal(ctx context.Context, f *nodeFlags, format export.Format, q, holdID, out string) (export.Custody, error) {
	n, err := f.openLocal(ctx)
	if err != nil {
		return export.Custody{}, err
	}
	defer n.Close(context.Background())
	// Bring the index up to date with what was imported offline.
	if err := n.NewIndexer().CatchUp(ctx, nil); err != nil {
		return export.Custody{}, err
	}
	gov, al, err := n.Governance(ctx)
	if err != nil {
		return export.Custody{}, err
	}
	who := localActor()
	c := export.Custody{Version: version.Version, Node: n.Cfg.NodeName, User: who, Query: q, Hold: holdID}
	var pq *query.Query
	if holdID != "" {
		hq, h, err := gov.HoldQuery(ctx, holdID)
		if err != nil {
			return c, err
		}
		pq, c.HoldName, c.Query = hq, h.Name, h.Query
	} else if pq, err = query.Parse(q); err != nil {
		return c, usageError{err.Error()}
	}
	// Whoever can open the data directory can read all of it: no scoping.
	src := &export.IndexSource{Index: n.Index, Catalog: n.Catalog, RawFunc: n.Archive.Raw, Query: pq}
	if _, err := al.Record(ctx, who, audit.ActionExport, map[string]any{"query": c.Query, "hold": holdID, "format": format, "file": out}); err != nil {
		return c, err
	}
	af, err := createAtomic(out)
	if err != nil {
		return c, err
	}
	var done export.Custody
	if format == export.FormatZip {
		done, err = export.WriteZip(ctx, af, src, c)
	} else {
		man, merr := createAtomic(out + ".manifest.csv")
		if merr != nil {
			af.abort()
			return c, merr
		}
		done, err = export.WriteMbox(ctx, af, man, src, c)
		if err == nil {
			err = man.commit()
		} else {
			man.abort()
		}
		if err == nil {
			err = writeSidecar(out+".custody.json", custodyJSON(done))
		}
	}
	if err == nil {
		err = af.commit()
	} else {
		af.abort()
	}
	detail := map[string]any{"custody": done}
	if err != nil {
		detail["error"] = err.Error()
	}
	if _, aerr := al.Record(ctx, who, audit.ActionExport+".complete", detail); aerr != nil && err == nil {
		err = aerr
	}
	return done, err
}

func exportRemote(ctx context.Context, f *nodeFlags, format export.Format, q, holdID, out string) (export.Custody, error) {
	v := url.Values{"format": {string(format)}}
	if holdID != "" {
		v.Set("hold", holdID)
	} else {
		v.Set("q", q)
	}
	af, err := createAtomic(out)
	if err != nil {
		return export.Custody{}, err
	}
	trailer, err := streamGet(ctx, f, "/api/v1/export?"+v.Encode(), af)
	if err != nil {
		af.abort()
		return export.Custody{}, err
	}
	var c export.Custody
	if format == export.FormatMbox {
		raw, err := base64.StdEncoding.DecodeString(trailer.Get("X-Mailarc-Custody"))
		if err != nil || json.Unmarshal(raw, &c) != nil || c.ManifestSHA256 == "" {
			af.abort()
			return c, fmt.Errorf("the server's answer ended without its custody record: the export is incomplete")
		}
		if err := writeSidecar(out+".custody.json", custodyJSON(c)); err != nil {
			af.abort()
			return c, err
		}
		// The manifest is a second request: it matches the mbox unless mail
		// changed in between, which the hash comparison reveals.
		v.Set("part", "manifest")
		man, err := createAtomic(out + ".manifest.csv")
		if err != nil {
			af.abort()
			return c, err
		}
		if _, err := streamGet(ctx, f, "/api/v1/export?"+v.Encode(), man); err != nil {
			man.abort()
			af.abort()
			return c, err
		}
		if err := man.commit(); err != nil {
			af.abort()
			return c, err
		}
		if sum, err := fileSHA256(out + ".manifest.csv"); err == nil && sum != c.ManifestSHA256 {
			fmt.Fprintf(os.Stderr, "warning: %s.manifest.csv (sha256 %s) differs from the manifest of the mbox (%s): mail changed between the two requests; use --format zip for a self-contained export\n", out, sum, c.ManifestSHA256)
		}
	}
	if err := af.commit(); err != nil {
		return c, err
	}
	if format == export.FormatZip {
		return readZipCustody(out)
	}
	return c, nil
}

// streamGet downloads path into w and returns the response trailers.
func streamGet(ctx context.Context, f *nodeFlags, path string, w io.Writer) (http.Header, error) {
	c := f.client()
	if c.base == "" {
		return nil, usageError{"--server URL is required"}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return nil, err
	}
	switch {
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	case c.user != "":
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := http.DefaultClient.Do(req) // no overall timeout: exports can be large
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error apiError `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e) != nil || e.Error.Code == "" {
			e.Error = apiError{Code: http.StatusText(resp.StatusCode), Message: string(b)}
		}
		e.Error.Status = resp.StatusCode
		return nil, &e.Error
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return nil, fmt.Errorf("download interrupted (the export is incomplete): %w", err)
	}
	return resp.Trailer, nil
}

func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// readZipCustody reads custody.json back from a downloaded zip export.
func readZipCustody(path string) (export.Custody, error) {
	var c export.Custody
	zr, err := zip.OpenReader(path)
	if err != nil {
		return c, fmt.Errorf("the downloaded export is not a complete zip: %w", err)
	}
	defer zr.Close()
	rc, err := zr.Open("custody.json")
	if err != nil {
		return c, fmt.Errorf("the downloaded export has no custody.json: %w", err)
	}
	defer rc.Close()
	if err := json.NewDecoder(rc).Decode(&c); err != nil {
		return c, fmt.Errorf("custody.json: %w", err)
	}
	return c, nil
}
