// Package server is mailarc's composition root: it builds every component
// from the configuration, wires adapters together (sources, index, web) and
// starts and stops the listeners. Nothing else wires packages together.
//
// Data directory layout (data_dir):
//
//	MAILARC        marker file (JSON: format, store instance id, created)
//	lock           flock held by the process using the directory (holds its pid)
//	catalog.db     metadata catalog (package catalog), with -wal and -shm
//	index.db       full-text index (package index), derived and rebuildable;
//	index-1.db     its second shard (index.OpenSQLiteDir)
//	store/         blob store packs (package store)
//	tls/           generated certificates (SMTP STARTTLS, mirror link)
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/mailarc/mailarc/internal/archive"
	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/auth"
	"github.com/mailarc/mailarc/internal/auth/ldapauth"
	"github.com/mailarc/mailarc/internal/catalog"
	"github.com/mailarc/mailarc/internal/config"
	"github.com/mailarc/mailarc/internal/governance"
	"github.com/mailarc/mailarc/internal/index"
	"github.com/mailarc/mailarc/internal/index/pgindex"
	"github.com/mailarc/mailarc/internal/mirror"
	"github.com/mailarc/mailarc/internal/source/pull"
	"github.com/mailarc/mailarc/internal/store"
	"github.com/mailarc/mailarc/internal/store/s3store"
	"github.com/mailarc/mailarc/internal/version"
	"github.com/mailarc/mailarc/internal/web"
	"github.com/mailarc/mailarc/internal/web/ui"
)

// Node is an opened archive: data directory, catalog, store, archive
// service and accounts. CLI commands that work on --data DIR use a Node
// without listeners; `mailarc serve` calls Serve.
type Node struct {
	Cfg      config.Config
	Log      *slog.Logger
	Dir      *DataDir
	Catalog  *catalog.Catalog
	Store    store.Store
	Archive  *archive.Archive
	Auth     *auth.Service
	Index    index.Index
	Registry *prometheus.Registry

	indexer *index.Indexer
	mirror  atomic.Pointer[mirror.Mirror] // set while serving with mirroring
	sources atomic.Pointer[pull.Manager]  // set while serving with [[sources]]

	ldap     *ldapauth.Directory // set with [ldap] enabled
	gov      *governance.Service // opened by Governance (governance.go)
	auditLog *audit.Log
	// searchTexts is the running searcher's snippet text cache, cleared
	// after purges.
	searchTexts atomic.Pointer[snippetCache]

	started time.Time
	ingest  *ingestMeter                  // the status's ingest rate (ingestrate.go)
	extra   []func(context.Context) error // closers of optional components, run in reverse
}

// Open opens the data directory (taking its lock), the catalog and store,
// and starts the archive service.
func Open(ctx context.Context, cfg config.Config, log *slog.Logger) (*Node, error) {
	if log == nil {
		log = slog.Default()
	}
	dir, err := OpenDataDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	n := &Node{Cfg: cfg, Log: log, Dir: dir, Registry: prometheus.NewRegistry(), started: time.Now()}
	n.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	n.ingest = newIngestMeter(n.started, time.Now)
	ok := false
	defer func() {
		if !ok {
			n.Close(context.Background())
		}
	}()
	switch cfg.Catalog.Backend {
	case "postgres":
		dsn, err := catalog.ReadDSNFile(cfg.Catalog.DSNFile)
		if err != nil {
			return nil, fmt.Errorf("catalog.dsn_file: %w", err)
		}
		if n.Catalog, err = catalog.OpenPostgres(ctx, dsn); err != nil {
			return nil, err
		}
	default:
		if n.Catalog, err = catalog.Open(ctx, dir.Join("catalog.db")); err != nil {
			return nil, err
		}
	}
	var key []byte
	if cfg.Store.EncryptionKeyFile != "" {
		key, err = store.LoadKeyFile(cfg.Store.EncryptionKeyFile)
		if err != nil {
			return nil, fmt.Errorf("store.encryption_key_file: %w", err)
		}
	}
	switch cfg.Store.Backend {
	case "s3":
		st, err := s3store.Open(ctx, s3store.Options{
			Endpoint: cfg.Store.Endpoint, Region: cfg.Store.Region, Bucket: cfg.Store.Bucket,
			Prefix: cfg.Store.Prefix, PathStyle: cfg.Store.PathStyle,
			CredentialsFile: cfg.Store.CredentialsFile, ObjectLock: cfg.Store.ObjectLock,
			Key: key, Logger: log.With("component", "store"),
		})
		if err != nil {
			return nil, fmt.Errorf("store (s3): %w", err)
		}
		n.Store = st
	default:
		st, err := store.OpenLocal(dir.Join("store"), store.LocalOptions{Key: key, MaxPackSize: int64(cfg.Store.MaxPackSize)})
		if err != nil {
			return nil, err
		}
		n.Store = st
	}
	if err := n.reconcileInstance(ctx); err != nil {
		return nil, err
	}
	n.Archive = archive.New(n.Catalog, n.Store, archive.Options{
		MaxMessageSize: int64(cfg.MaxMessageSize),
		MinFreeSpace:   int64(cfg.MinFreeSpace),
		SpacePath:      dir.Path,
		Logger:         log.With("component", "archive"),
		Registerer:     n.Registry,
	})
	n.ingest.count = n.Archive.Ingested
	n.Archive.OnCommit(n.ingest.commit)
	w, r := n.Catalog.DB()
	n.Auth = auth.New(w, r)
	if cfg.LDAP.Enabled {
		if n.ldap, err = ldapauth.New(cfg.LDAP, log.With("component", "ldap")); err != nil {
			return nil, err
		}
		n.Auth.SetDirectory(n.ldap)
	}
	if err := n.openIndex(ctx); err != nil {
		return nil, err
	}
	lost, err := n.Archive.RecoverTail(ctx)
	if err != nil {
		return nil, err
	}
	if len(lost) > 0 {
		// Indexed from the page cache before the crash, perhaps.
		if err := n.Index.Delete(ctx, lost); err != nil {
			return nil, fmt.Errorf("index: drop messages lost in a crash: %w", err)
		}
	}
	ok = true
	return n, nil
}

// reconcileInstance checks that catalog, store and data directory belong
// to one archive, identified by its store instance id, and records the id
// where it is missing.
//
// With the local store the data directory's marker names the archive. With
// an S3 store the bucket's store.json does (several nodes may share the
// bucket and a PostgreSQL catalog: they are one archive); a data directory
// then adopts that id in its marker, since it holds no messages itself.
func (n *Node) reconcileInstance(ctx context.Context) error {
	want := n.Dir.Marker.Instance
	// Only a bucket can be shared by nodes; the local store's own id is
	// not the archive's (the marker is, as it always was).
	shared, isShared := n.Store.(*s3store.Store)
	if isShared {
		want = shared.InstanceID()
	}
	inst, err := n.Catalog.Meta(ctx, "store_instance")
	if err != nil {
		return err
	}
	if inst == "" {
		// Nodes sharing a catalog may start together: the first id
		// written wins and the others compare against it.
		if inst, err = n.Catalog.InitMeta(ctx, "store_instance", want); err != nil {
			return err
		}
	}
	switch inst {
	case want:
	default:
		if isShared {
			return fmt.Errorf("the catalog belongs to archive %s but the bucket to archive %s: catalog and store come from different archives; refusing to start", inst, want)
		}
		return fmt.Errorf("data dir %s: the marker's store instance %s does not match the catalog's %s; the directory was assembled from different archives: refusing to start", n.Dir.Path, want, inst)
	}
	if n.Dir.Marker.Instance != want {
		n.Log.Info("data directory adopts the shared archive's store instance", "instance", want, "was", n.Dir.Marker.Instance)
		if err := n.Dir.SetInstance(want); err != nil {
			return err
		}
	}
	return nil
}

// openIndex opens the full-text index: in the PostgreSQL catalog's database
// when the catalog is there (nodes sharing the catalog share the index),
// else the SQLite files data_dir/index.db and index-1.db (index.OpenSQLiteDir).
func (n *Node) openIndex(ctx context.Context) error {
	if n.Cfg.Catalog.Backend == "postgres" {
		dsn, err := catalog.ReadDSNFile(n.Cfg.Catalog.DSNFile)
		if err != nil {
			return fmt.Errorf("catalog.dsn_file: %w", err)
		}
		ix, err := pgindex.Open(ctx, dsn)
		if err != nil {
			return err
		}
		n.Index = ix
		return nil
	}
	ix, err := index.OpenSQLiteDir(n.Dir.Path)
	if err != nil {
		return err
	}
	n.Index = ix
	return nil
}

// Close stops the archive (finishing queued commits) and closes everything.
func (n *Node) Close(ctx context.Context) error {
	var errs []error
	for i := len(n.extra) - 1; i >= 0; i-- {
		errs = append(errs, n.extra[i](ctx))
	}
	n.extra = nil
	if n.Archive != nil {
		errs = append(errs, n.Archive.Close(ctx))
		n.Archive = nil
	}
	if n.Index != nil {
		errs = append(errs, n.Index.Close())
		n.Index = nil
	}
	if n.Store != nil {
		errs = append(errs, n.Store.Close())
		n.Store = nil
	}
	if n.Catalog != nil {
		errs = append(errs, n.Catalog.Close())
		n.Catalog = nil
	}
	if n.Dir != nil {
		errs = append(errs, n.Dir.Close())
		n.Dir = nil
	}
	return errors.Join(errs...)
}

// Listeners are the bound addresses of a serving node (for tests on :0).
type Listeners struct {
	HTTP net.Addr
	SMTP []net.Addr
}

// ServeOptions tune Serve.
type ServeOptions struct {
	// AdminPassword for the bootstrap admin (MAILARC_ADMIN_PASSWORD).
	AdminPassword string
	// Ready, if non-nil, receives the bound addresses once listening.
	Ready func(Listeners)
	// ShutdownTimeout bounds graceful shutdown (default 30 s).
	ShutdownTimeout time.Duration
}

// Serve starts every listener and background worker and blocks until ctx
// is cancelled, then shuts down gracefully: stop accepting, answer 503 to
// new API requests, finish in-flight commits, close.
func (n *Node) Serve(ctx context.Context, opt ServeOptions) error {
	if opt.ShutdownTimeout == 0 {
		opt.ShutdownTimeout = 30 * time.Second
	}
	created, generated, err := n.ensureAdmin(ctx, opt.AdminPassword)
	if created && generated != "" {
		// Printed once, to the operator's terminal, never to the log (even
		// when its audit entry failed: the account exists).
		fmt.Printf("\nCreated user \"admin\" with password: %s\n(set MAILARC_ADMIN_PASSWORD to choose it; change it with `mailarc user passwd admin`)\n\n", generated)
	} else if created {
		n.Log.Info("created bootstrap user admin with the password from MAILARC_ADMIN_PASSWORD")
	}
	if err != nil {
		return fmt.Errorf("bootstrap admin: %w", err)
	}

	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() {
		stopBG()
		wg.Wait()
	}()

	comps, err := n.startComponents(bg, &wg)
	if err != nil {
		return err
	}
	if n.ldap != nil {
		// Report a directory that cannot be reached or refuses the service
		// account now rather than at the first login; serving goes on
		// either way (local accounts do not need it).
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := n.ldap.Check(bg); err != nil {
				n.Log.Error("ldap: directory check failed; directory logins will fail until it answers", "url", n.Cfg.LDAP.URL, "err", err)
			} else {
				n.Log.Info("ldap: directory reachable", "url", n.Cfg.LDAP.URL, "base_dn", n.Cfg.LDAP.BaseDN)
			}
		}()
	}

	sessions, err := auth.NewSessions(ctx, n.Catalog, n.Auth, time.Duration(n.Cfg.HTTP.SessionTTL))
	if err != nil {
		return fmt.Errorf("web sessions: %w", err)
	}
	uiDeps := ui.Deps{
		Archive:  n.Archive,
		Auth:     n.Auth,
		Sessions: sessions,
		Search:   comps.search,
		Status:   n.Status,
		Logger:   n.Log.With("component", "ui"),

		SecureCookies: n.Cfg.HTTP.SecureCookies,
	}
	if n.auditLog != nil {
		uiDeps.Audit = n.auditLog
	}
	if n.gov != nil {
		uiDeps.Holds = ui.GovernanceAdapter{S: n.gov}
		uiDeps.Retention = ui.GovernanceAdapter{S: n.gov}
	}
	uiHandler, err := ui.New(uiDeps)
	if err != nil {
		return err
	}
	h := web.New(web.Deps{
		Archive:        n.Archive,
		Auth:           n.Auth,
		Search:         comps.search,
		Status:         n.Status,
		Logger:         n.Log.With("component", "http"),
		Gatherer:       n.Registry,
		MaxMessageSize: int64(n.Cfg.MaxMessageSize),
		UI:             uiHandler,
		Sessions:       sessions,
		Audit:          n.auditLog,
		Governance:     n.gov,
		Index:          n.Index,
		NodeName:       n.Cfg.NodeName,
		Peers:          n.peersAPI(),
	})
	ln, err := net.Listen("tcp", n.Cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("http.listen %s: %w", n.Cfg.HTTP.Listen, err)
	}
	hs := web.NewHTTPServer(h)
	httpErr := make(chan error, 1)
	go func() {
		var err error
		if n.Cfg.HTTP.TLSCert != "" {
			err = hs.ServeTLS(ln, n.Cfg.HTTP.TLSCert, n.Cfg.HTTP.TLSKey)
		} else {
			err = hs.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			httpErr <- err
		}
		close(httpErr)
	}()
	h.SetReady(true)
	ls := Listeners{HTTP: ln.Addr(), SMTP: comps.smtpAddrs}
	n.Log.Info("mailarc serving", "version", version.Version, "node", n.Cfg.NodeName, "data_dir", n.Dir.Path,
		"http", ls.HTTP.String(), "smtp", fmt.Sprint(ls.SMTP))
	if opt.Ready != nil {
		opt.Ready(ls)
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case err := <-httpErr:
		serveErr = fmt.Errorf("http: %w", err)
	}
	n.Log.Info("shutting down")
	h.Drain()
	sctx, cancel := context.WithTimeout(context.Background(), opt.ShutdownTimeout)
	defer cancel()
	var errs []error
	for i := len(comps.stop) - 1; i >= 0; i-- {
		errs = append(errs, comps.stop[i](sctx))
	}
	errs = append(errs, hs.Shutdown(sctx))
	errs = append(errs, serveErr)
	return errors.Join(errs...)
}

// components are the optional parts started by Serve.
type components struct {
	search    web.Searcher
	smtpAddrs []net.Addr
	stop      []func(context.Context) error
}

// Status is the /api/v1/status document.
type Status struct {
	Node     string        `json:"node"`
	Version  string        `json:"version"`
	Started  time.Time     `json:"started"`
	Instance string        `json:"store_instance"`
	Counts   StatusCounts  `json:"counts"`
	Index    StatusIndex   `json:"index"`
	Storage  StatusStorage `json:"storage"`
	Ingest   StatusIngest  `json:"ingest"`
	Peers    []any         `json:"peers"`
	Sources  []any         `json:"sources"`
	Drift    []string      `json:"policy_drift"`
	// WORM is the S3 Object Lock sync (absent without Object Lock).
	WORM      *governance.WORMStatus `json:"worm,omitempty"`
	Listeners StatusListeners        `json:"-"`
}

// StatusCounts are message counts.
type StatusCounts struct {
	Archived int64 `json:"archived"`
	Indexed  int64 `json:"indexed"`
}

// StatusIndex is indexer progress.
type StatusIndex struct {
	LagMessages int64   `json:"lag_messages"`
	LagSeconds  float64 `json:"lag_seconds"`
	Skipped     int64   `json:"attachments_skipped,omitempty"`
}

// StatusStorage is disk usage.
type StatusStorage struct {
	RawBytes    int64 `json:"raw_bytes"`
	StoredBytes int64 `json:"stored_bytes"`
	Blobs       int64 `json:"blobs"`
	// Space is the data directory's free-space reserve (min_free_space);
	// absent when the reserve is disabled.
	Space *archive.SpaceStatus `json:"space,omitempty"`
}

// StatusListeners are bound addresses (not serialised).
type StatusListeners struct{}

// Status reports the node's state.
func (n *Node) Status(ctx context.Context) (any, error) {
	cs, err := n.Catalog.Stats(ctx)
	if err != nil {
		return nil, err
	}
	ss, err := n.Store.Stats(ctx)
	if err != nil {
		return nil, err
	}
	st := Status{
		Node: n.Cfg.NodeName, Version: version.Version, Started: n.started.UTC().Truncate(time.Second),
		Instance: n.Dir.Marker.Instance,
		Counts:   StatusCounts{Archived: cs.Messages},
		Storage:  StatusStorage{RawBytes: ss.RawBytes, StoredBytes: ss.StoredBytes, Blobs: ss.Blobs},
		Ingest:   n.ingest.status(),
		Peers:    n.peerStatus(ctx), Sources: n.sourceStatus(), Drift: n.policyDrift(ctx),
	}
	if sp, ok := n.Archive.Space(); ok {
		st.Storage.Space = &sp
	}
	n.indexStatus(ctx, &st, cs)
	if st.WORM, err = n.WORMStatus(ctx); err != nil {
		return nil, err
	}
	return st, nil
}

// defaultPath resolves p relative to the data directory when not absolute.
func (n *Node) defaultPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return n.Dir.Join(p)
}
