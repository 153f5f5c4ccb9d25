package pull

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/emersion/go-imap/v2"

	"github.com/mailarc/mailarc/internal/config"
)

// TestReport is what `mailarc source test NAME` prints.
type TestReport struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Address is host:port as dialled.
	Address string `json:"address"`
	TLS     string `json:"tls"`
	Auth    string `json:"auth"`
	// Capabilities the server announced after login.
	Capabilities []string `json:"capabilities"`
	// Folders with their message counts (POP3: one "INBOX").
	Folders []FolderReport `json:"folders"`
}

// FolderReport is one folder of a TestReport.
type FolderReport struct {
	Name     string `json:"name"`
	Messages uint32 `json:"messages"`
	// Polled is true when the source's folders setting selects it.
	Polled bool `json:"polled"`
}

// Test connects to src, authenticates and lists its folders with message
// counts, changing nothing on the server.
func Test(ctx context.Context, src config.Source) (TestReport, error) {
	return TestWithOptions(ctx, src, Options{})
}

// TestWithOptions is Test with tuning options (TLS roots, timeouts).
func TestWithOptions(ctx context.Context, src config.Source, opt Options) (TestReport, error) {
	src = normalize(src)
	if err := validate(src); err != nil {
		return TestReport{}, err
	}
	opt.defaults()
	m := &Manager{opt: opt, log: slog.New(slog.DiscardHandler)}
	rep := TestReport{Name: src.Name, Type: src.Type, Address: fmt.Sprintf("%s:%d", src.Host, src.Port), TLS: src.TLS, Auth: src.Auth}
	if src.Type == "pop3" {
		c, stop, err := dialPOP3(ctx, m, src)
		if err != nil {
			return rep, err
		}
		defer stop()
		defer c.close()
		for k := range c.caps {
			rep.Capabilities = append(rep.Capabilities, k)
		}
		n, _, err := c.stat()
		if err != nil {
			return rep, err
		}
		rep.Folders = []FolderReport{{Name: "INBOX", Messages: uint32(n), Polled: true}}
		return rep, c.quit()
	}
	c, _, stop, err := dialIMAP(ctx, m, src, nil)
	if err != nil {
		return rep, err
	}
	defer stop()
	defer c.Close()
	for cp := range c.Caps() {
		rep.Capabilities = append(rep.Capabilities, string(cp))
	}
	names, err := listFolders(c, "")
	if err != nil {
		return rep, err
	}
	for _, name := range names {
		sd, err := c.Status(name, &imap.StatusOptions{NumMessages: true}).Wait()
		if err != nil {
			return rep, fmt.Errorf("status %s: %w", name, err)
		}
		fr := FolderReport{Name: name, Polled: polled(src, name)}
		if sd.NumMessages != nil {
			fr.Messages = *sd.NumMessages
		}
		rep.Folders = append(rep.Folders, fr)
	}
	if err := c.Logout().Wait(); err != nil {
		return rep, fmt.Errorf("logout: %w", err)
	}
	return rep, nil
}

func polled(src config.Source, name string) bool {
	for _, f := range src.Folders {
		if f == name || (f == "*" && name != src.MoveTo) {
			return true
		}
	}
	return false
}
