package main

import (
	"context"
	"net/http"
	_ "net/http/pprof" // served only on MAILARC_PPROF's address, see below
	"os"

	"github.com/mailarc/mailarc/internal/server"
)

func runServe(ctx context.Context, args []string) error {
	fs := newFlagSet("serve", "serve [--config FILE] [--data DIR]")
	var f nodeFlags
	f.register(fs, false)
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := f.loadConfig()
	if err != nil {
		return err
	}
	log := newLogger(cfg.LogLevel)
	if addr := os.Getenv("MAILARC_PPROF"); addr != "" {
		// Profiling for benchmarks and support: bind it to loopback only.
		go func() {
			log.Info("pprof listening", "addr", addr)
			if err := http.ListenAndServe(addr, nil); err != nil {
				log.Error("pprof", "err", err)
			}
		}()
	}
	n, err := server.Open(ctx, cfg, log)
	if err != nil {
		return err
	}
	serveErr := n.Serve(ctx, server.ServeOptions{AdminPassword: os.Getenv("MAILARC_ADMIN_PASSWORD")})
	closeErr := n.Close(context.Background())
	if serveErr != nil {
		return serveErr
	}
	if closeErr == nil {
		log.Info("stopped cleanly")
	}
	return closeErr
}
