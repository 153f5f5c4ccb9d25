package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/mailarc/mailarc/internal/auth"
)

func runUser(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usageError{"usage: mailarc user add|list|passwd|del [flags] [NAME]"}
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("user "+sub, "user "+sub+" [--data DIR] ...")
	var f nodeFlags
	f.register(fs, false)
	role := fs.String("role", "user", "role for add: admin, auditor or user")
	addrs := fs.String("addresses", "", "comma-separated addresses for add (a user sees mail to or from them)")
	pwFile := fs.String("password-file", "", "read the password from this file instead of prompting (or MAILARC_NEW_PASSWORD)")
	if err := parse(fs, args); err != nil {
		return err
	}
	n, err := f.openLocal(ctx)
	if err != nil {
		return err
	}
	defer n.Close(context.Background())
	switch sub {
	case "list":
		us, err := n.Auth.List(ctx)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tADDRESSES\tCREATED")
		for _, u := range us {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", u.Name, u.Role, strings.Join(u.Addresses, ","), u.Created.Format("2006-01-02"))
		}
		return tw.Flush()
	case "add", "passwd", "del":
		if fs.NArg() != 1 {
			return usageError{"mailarc user " + sub + ": exactly one user NAME expected"}
		}
		name := fs.Arg(0)
		if sub == "del" {
			if err := n.Auth.DeleteUser(ctx, name); err != nil {
				return err
			}
			fmt.Printf("deleted user %s\n", name)
			return nil
		}
		pw, err := readPassword(*pwFile)
		if err != nil {
			return err
		}
		if sub == "passwd" {
			if err := n.Auth.SetPassword(ctx, name, pw); err != nil {
				return err
			}
			fmt.Printf("changed the password of %s\n", name)
			return nil
		}
		var list []string
		for _, a := range strings.Split(*addrs, ",") {
			if a = strings.TrimSpace(a); a != "" {
				list = append(list, a)
			}
		}
		if err := n.Auth.AddUser(ctx, name, pw, auth.Role(*role), list); err != nil {
			return err
		}
		fmt.Printf("added %s user %s\n", *role, name)
		return nil
	default:
		return usageError{"unknown user subcommand " + sub + ": want add, list, passwd or del"}
	}
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
