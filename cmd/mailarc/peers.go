package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"text/tabwriter"
	"time"

	"github.com/mailarc/mailarc/internal/mirror"
)

// runPeers prints the mirrored peers table, or repairs a peer's pin.
func runPeers(ctx context.Context, args []string) error {
	if len(args) > 0 && args[0] == "repair" {
		return runPeersRepair(ctx, args[1:])
	}
	if len(args) > 0 && args[0] == "sync" {
		return runPeersSync(ctx, args[1:])
	}
	fs := newFlagSet("peers", "peers [--server URL | --data DIR] [--json]\n       mailarc peers sync [--server URL] NAME\n       mailarc peers repair [--data DIR] NAME")
	var f nodeFlags
	f.register(fs, true)
	asJSON := fs.Bool("json", false, "print JSON instead of a table")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("unexpected argument %q (did you mean `mailarc peers sync NAME` or `mailarc peers repair NAME`?)", fs.Arg(0))}
	}
	var peers []mirror.PeerStatus
	if f.server != "" {
		var st struct {
			Peers []mirror.PeerStatus `json:"peers"`
		}
		if err := f.client().getJSON(ctx, "/api/v1/status", &st); err != nil {
			return err
		}
		peers = st.Peers
	} else {
		n, err := f.openLocal(ctx)
		if err != nil {
			return err
		}
		defer n.Close(context.Background())
		if peers, err = mirror.OfflineStatus(ctx, n.Catalog, n.MirrorPeers()); err != nil {
			return err
		}
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(peers)
	}
	if len(peers) == 0 {
		fmt.Println("no peers configured ([[mirror.peers]] in the config)")
		return nil
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tQUEUED\tOLDEST\tPARKED\tMSG/S\tLAST SUCCESS\tANTI-ENTROPY\tURL\tLAST ERROR")
	for _, p := range peers {
		last := "never"
		if p.LastSuccess != nil {
			last = p.LastSuccess.Local().Format(time.DateTime)
		}
		oldest := "-"
		if p.Queued > 0 {
			oldest = (time.Duration(p.OldestQueuedAgeS) * time.Second).String()
		}
		ae := fmt.Sprintf("%s %d/%d", p.AntiEntropy.State, p.AntiEntropy.Verified, p.AntiEntropy.Total)
		if p.AntiEntropy.LastComplete != nil {
			ae += " (last " + p.AntiEntropy.LastComplete.Local().Format(time.DateTime) + ")"
		}
		errText := p.LastError
		if p.PurgeWarning != "" {
			errText = p.PurgeWarning
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%.1f\t%s\t%s\t%s\t%s\n", p.Name, p.State, p.Queued, oldest, p.Parked, p.Throughput, last, ae, p.URL, errText)
	}
	return tw.Flush()
}

// runPeersRepair forgets a peer's pinned certificate (the node must be
// stopped: it opens the data directory).
func runPeersRepair(ctx context.Context, args []string) error {
	fs := newFlagSet("peers repair", "peers repair [--config FILE | --data DIR] NAME")
	var f nodeFlags
	f.register(fs, false)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"peers repair: give exactly one peer NAME"}
	}
	name := fs.Arg(0)
	n, err := f.openLocal(ctx)
	if err != nil {
		return fmt.Errorf("%w (stop the node first: repair opens its data directory)", err)
	}
	defer n.Close(context.Background())
	known := false
	for _, p := range n.Cfg.Mirror.Peers {
		known = known || p.Name == name
	}
	if !known {
		return usageError{fmt.Sprintf("peers repair: %q is not in [[mirror.peers]]", name)}
	}
	had, err := mirror.Repair(ctx, n.Catalog, name)
	if err != nil {
		return err
	}
	if had {
		fmt.Printf("forgot the pinned certificate of %s; the next successful authentication pins its current one\n", name)
	} else {
		fmt.Printf("%s had no pinned certificate; nothing to do\n", name)
	}
	return nil
}

// runPeersSync asks a running node for an anti-entropy pass with a peer.
func runPeersSync(ctx context.Context, args []string) error {
	fs := newFlagSet("peers sync", "peers sync [--server URL | --config FILE] NAME")
	var f nodeFlags
	f.register(fs, true)
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageError{"peers sync: give exactly one peer NAME"}
	}
	if f.server == "" {
		// The node must be running: default to its configured HTTP address.
		cfg, err := f.loadConfig()
		if err != nil {
			return err
		}
		f.server = "http://" + cfg.HTTP.Listen
	}
	name := fs.Arg(0)
	resp, err := f.client().do(ctx, http.MethodPost, "/api/v1/peers/"+url.PathEscape(name)+"/sync", nil, "")
	if err != nil {
		return err
	}
	resp.Body.Close()
	fmt.Printf("anti-entropy with %s requested; follow it with `mailarc peers --server %s`\n", name, f.server)
	return nil
}
