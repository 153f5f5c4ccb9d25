package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/mailarc/mailarc/internal/config"
	"github.com/mailarc/mailarc/internal/server"
)

// errSilent ends a command with exit status 1 after it printed its own report.
var errSilent = errors.New("failed")

// usageError is a command-line mistake (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

func exitCode(err error) int {
	var ue usageError
	if errors.As(err, &ue) || errors.Is(err, flag.ErrHelp) {
		return 2
	}
	return 1
}

// nodeFlags are the flags shared by commands that open a node.
type nodeFlags struct {
	config string
	data   string
	server string
	user   string
	pass   string
}

func (f *nodeFlags) register(fs *flag.FlagSet, remote bool) {
	fs.StringVar(&f.config, "config", "", "config file (TOML); default: embedded defaults")
	fs.StringVar(&f.data, "data", "", "data directory (overrides data_dir)")
	if remote {
		fs.StringVar(&f.server, "server", os.Getenv("MAILARC_SERVER"), "URL of a running node (e.g. http://127.0.0.1:8080); default: open --data directly")
		fs.StringVar(&f.user, "user", os.Getenv("MAILARC_USER"), "user name for --server (or MAILARC_USER)")
		fs.StringVar(&f.pass, "password", "", "password for --server (better: MAILARC_PASSWORD or a token in MAILARC_TOKEN)")
	}
}

func (f *nodeFlags) loadConfig() (config.Config, error) {
	cfg, err := config.Load(f.config, os.Environ())
	if err != nil {
		return cfg, err
	}
	if f.data != "" {
		cfg.DataDir = f.data
	}
	return cfg, nil
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	switch level {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	default:
		l = slog.LevelInfo
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// openLocal opens the node's data directory directly (no server).
func (f *nodeFlags) openLocal(ctx context.Context) (*server.Node, error) {
	cfg, err := f.loadConfig()
	if err != nil {
		return nil, err
	}
	level := cfg.LogLevel
	if level == "info" {
		level = "warn" // CLI commands stay quiet unless something is wrong
	}
	return server.Open(ctx, cfg, newLogger(level))
}

// client returns an API client for --server.
func (f *nodeFlags) client() *apiClient {
	pass := f.pass
	if pass == "" {
		pass = os.Getenv("MAILARC_PASSWORD")
	}
	return &apiClient{base: strings.TrimRight(f.server, "/"), user: f.user, pass: pass, token: os.Getenv("MAILARC_TOKEN"),
		hc: http.Client{Timeout: 10 * time.Minute}}
}

// parse parses flags, allowing them after positional arguments too.
func parse(fs *flag.FlagSet, args []string) error {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if rest[0] == "--" {
			pos = append(pos, rest[1:]...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	return fs.Parse(append([]string{"--"}, pos...))
}

func newFlagSet(name, usage string) *flag.FlagSet {
	fs := flag.NewFlagSet("mailarc "+name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: mailarc %s\n\nflags:\n", usage)
		fs.PrintDefaults()
	}
	return fs
}
