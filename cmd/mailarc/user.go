package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/auth"
	"github.com/mailarc/mailarc/internal/web"
)

func runUser(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{"usage: mailarc user add|list|passwd|set|del [flags] [NAME]"}
	}
	sub, args := args[0], args[1:]
	switch sub {
	case "add", "list", "passwd", "set", "del":
	default:
		return usageError{"unknown user subcommand " + sub + ": want add, list, passwd, set or del"}
	}
	fs := newFlagSet("user "+sub, "user "+sub+" [--server URL | --data DIR] ... [NAME]")
	var f nodeFlags
	f.register(fs, true)
	role := fs.String("role", "user", "role for add and set: admin, auditor or user")
	addrs := fs.String("addresses", "", "comma-separated addresses for add and set (a user sees mail to or from them); set replaces the list (--addresses '' empties it)")
	pwFile := fs.String("password-file", "", "read the password from this file instead of prompting (or MAILARC_NEW_PASSWORD)")
	if err := parse(fs, args); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	op := userOp{sub: sub, role: auth.Role(*role)}
	if given["role"] && !auth.ValidRole(op.role) {
		return usageError{fmt.Sprintf("unknown role %q: want admin, auditor or user", *role)}
	}
	for _, a := range strings.Split(*addrs, ",") {
		if a = strings.TrimSpace(a); a != "" {
			op.addrs = append(op.addrs, a)
		}
	}
	if sub == "list" {
		if fs.NArg() != 0 {
			return usageError{"mailarc user list takes no arguments"}
		}
	} else if fs.NArg() != 1 {
		return usageError{"mailarc user " + sub + ": exactly one user NAME expected"}
	} else {
		op.name = fs.Arg(0)
	}
	if sub == "set" {
		if !given["role"] && !given["addresses"] {
			return usageError{"mailarc user set: nothing to change: give --role and/or --addresses"}
		}
		if given["role"] {
			op.change.Role = &op.role
		}
		if given["addresses"] {
			list := append([]string{}, op.addrs...)
			op.change.Addresses = &list
		}
	}
	if sub == "add" || sub == "passwd" {
		pw, err := readPassword(*pwFile)
		if err != nil {
			return err
		}
		op.password = pw
	}
	if f.server != "" {
		return op.remote(ctx, f.client())
	}
	return op.local(ctx, &f)
}

// userOp is one `mailarc user` command, run on the data directory or
// through a running node's API.
type userOp struct {
	sub, name, password string
	role                auth.Role
	addrs               []string
	change              auth.UserChange
}

// local runs the command on the data directory. Every change is recorded
// in the audit log like the API's (same actions), by local:OSUSER with
// "via":"cli"; the log is opened before anything changes, and a change
// whose entry cannot be written fails the command.
func (op *userOp) local(ctx context.Context, f *nodeFlags) error {
	n, err := f.openLocal(ctx)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())
	if op.sub == "list" {
		us, err := n.Auth.List(ctx)
		if err != nil {
			return err
		}
		return printUsers(us)
	}
	al, err := n.AuditLog(ctx)
	if err != nil {
		return fmt.Errorf("open the audit log (nothing changed): %w", err)
	}
	record := func(action string, detail map[string]any) error {
		detail["via"] = "cli"
		if _, err := al.Record(ctx, localActor(), action, detail); err != nil {
			return fmt.Errorf("user %s was changed, but its audit entry could not be written: %w", op.name, err)
		}
		return nil
	}
	switch op.sub {
	case "del":
		if err := n.Auth.DeleteUser(ctx, op.name); err != nil {
			return err
		}
		if err := record(audit.ActionUserDelete, map[string]any{"name": op.name}); err != nil {
			return err
		}
	case "passwd":
		if err := n.Auth.SetPassword(ctx, op.name, op.password); err != nil {
			return err
		}
		if err := record(audit.ActionUserPassword, map[string]any{"name": op.name}); err != nil {
			return err
		}
	case "add":
		if err := n.Auth.AddUser(ctx, op.name, op.password, op.role, op.addrs); err != nil {
			return err
		}
		if err := record(audit.ActionUserAdd, map[string]any{"name": op.name, "role": op.role, "addresses": nonNil(op.addrs)}); err != nil {
			return err
		}
	case "set":
		before, after, err := n.Auth.UpdateUser(ctx, op.name, op.change)
		if err != nil {
			return err
		}
		op.role, op.addrs = after.Role, after.Addresses
		if err := record(audit.ActionUserUpdate, web.UserUpdateDetail(before, after)); err != nil {
			return err
		}
	}
	op.done()
	return nil
}

// remote runs the command through the API (which audits it as the
// logged-in user).
func (op *userOp) remote(ctx context.Context, c *apiClient) error {
	path := "/api/v1/users/" + url.PathEscape(op.name)
	switch op.sub {
	case "list":
		var res struct {
			Users []auth.User `json:"users"`
		}
		if err := c.getJSON(ctx, "/api/v1/users", &res); err != nil {
			return err
		}
		return printUsers(res.Users)
	case "del":
		if err := c.sendJSON(ctx, http.MethodDelete, path, nil, nil); err != nil {
			return err
		}
	case "passwd":
		if err := c.sendJSON(ctx, http.MethodPut, path+"/password", map[string]string{"password": op.password}, nil); err != nil {
			return err
		}
	case "add":
		in := map[string]any{"name": op.name, "password": op.password, "role": op.role, "addresses": nonNil(op.addrs)}
		if err := c.sendJSON(ctx, http.MethodPost, "/api/v1/users", in, nil); err != nil {
			return err
		}
	case "set":
		in := map[string]any{}
		if op.change.Role != nil {
			in["role"] = *op.change.Role
		}
		if op.change.Addresses != nil {
			in["addresses"] = nonNil(*op.change.Addresses)
		}
		var after auth.User
		if err := c.sendJSON(ctx, http.MethodPatch, path, in, &after); err != nil {
			return err
		}
		op.role, op.addrs = after.Role, after.Addresses
	}
	op.done()
	return nil
}

// done reports a change that was made.
func (op *userOp) done() {
	switch op.sub {
	case "del":
		fmt.Printf("deleted user %s\n", op.name)
	case "passwd":
		fmt.Printf("changed the password of %s\n", op.name)
	case "add":
		fmt.Printf("added %s user %s\n", op.role, op.name)
	case "set":
		fmt.Printf("user %s: role %s, addresses %s\n", op.name, op.role, strings.Join(op.addrs, ","))
	}
}

func printUsers(us []auth.User) error {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tROLE\tSOURCE\tADDRESSES\tCREATED")
	for _, u := range us {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", u.Name, u.Role, u.Source, strings.Join(u.Addresses, ","), u.Created.Format("2006-01-02"))
	}
	return tw.Flush()
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// sendJSON sends in (nil: no body) as JSON and decodes the answer into out
// (nil: discarded).
func (c *apiClient) sendJSON(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	ctype := ""
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode the request to %s %s: %w", method, path, err)
		}
		body, ctype = bytes.NewReader(b), "application/json"
	}
	resp, err := c.do(ctx, method, path, body, ctype)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if out == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		return err
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("bad answer to %s %s: %w", method, path, err)
	}
	return nil
}

// readPassword takes a new password from a file, MAILARC_NEW_PASSWORD, a
// terminal prompt (twice) or one line of standard input.
func readPassword(file string) (string, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(b), "\r\n"), nil
	}
	if pw := os.Getenv("MAILARC_NEW_PASSWORD"); pw != "" {
		return pw, nil
	}
	if term.IsTerminal(int(os.Stdin.Fd())) {
		fmt.Fprint(os.Stderr, "New password: ")
		a, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", err
		}
		fmt.Fprint(os.Stderr, "Again: ")
		b, err := term.ReadPassword(int(os.Stdin.Fd()))
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return "", err
		}
		if string(a) != string(b) {
			return "", fmt.Errorf("the passwords differ")
		}
		return string(a), nil
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && line == "" {
		return "", fmt.Errorf("no password given (use --password-file, MAILARC_NEW_PASSWORD or standard input)")
	}
	return strings.TrimRight(line, "\r\n"), nil
}
