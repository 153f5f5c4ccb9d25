// Command mailarc is a self-hosted email archiver whose nodes mirror each
// other. Run `mailarc help` for the commands.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

type command struct {
	summary string
	run     func(ctx context.Context, args []string) error
}

func commands() map[string]command {
	return map[string]command{
		"serve":   {"run the archiver (SMTP, HTTP API, indexer)", runServe},
		"import":  {"import .eml files, maildirs and mbox files", runImport},
		"search":  {"search the archive", runSearch},
		"get":     {"write a message's raw bytes to stdout", runGet},
		"verify":  {"re-hash every stored message and check the catalog", runVerify},
		"reindex": {"rebuild the full-text index from the store", runReindex},
		"user":    {"manage users: add, list, passwd, set, del", runUser},
		"status":  {"show the node's status", runStatus},
		"source":  {"test a journal mailbox source: source test NAME", runSource},
		"peers":   {"show mirrored peers; repair NAME forgets a pinned certificate", runPeers},
		"version": {"print the release version", runVersion},
		"export":  {"export messages (mbox or zip) with manifest and chain of custody", runExport},
		"audit":   {"verify or list the audit log: verify, list", runAudit},
		"migrate": {"move the archive to other backends (e.g. S3 + PostgreSQL) and back", runMigrate},
	}
}

func usage() {
	fmt.Fprintf(os.Stderr, "usage: mailarc COMMAND [flags] [args]\n\ncommands:\n")
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(os.Stderr, "  %-8s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintf(os.Stderr, "\nRun `mailarc COMMAND -h` for a command's flags.\n")
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "help" || os.Args[1] == "-h" || os.Args[1] == "--help" {
		usage()
		if len(os.Args) < 2 {
			os.Exit(2)
		}
		return
	}
	cmd, ok := commands()[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "mailarc: unknown command %q\n\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tuneGC()
	stopProfile := startCPUProfile()
	err := cmd.run(ctx, os.Args[2:])
	stopProfile()
	if err != nil {
		if err != errSilent {
			fmt.Fprintf(os.Stderr, "mailarc %s: %v\n", os.Args[1], err)
		}
		os.Exit(exitCode(err))
	}
}
