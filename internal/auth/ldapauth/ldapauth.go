// Package ldapauth checks mailarc logins against an LDAP directory or
// Active Directory ([ldap] in the configuration). It implements
// auth.Directory.
//
// One login is one connection, closed afterwards:
//
//  1. connect (ldaps://, or ldap:// upgraded with StartTLS; clear text only
//     where the configuration allows it) and bind as the service account
//     (bind_dn, password read from bind_password_file at every login), or
//     search anonymously when no bind_dn is set;
//  2. search base_dn (subtree) with user_filter, every %s replaced by the
//     login name escaped for filters (RFC 4515), so "*)(uid=*" matches
//     nothing; no entry, or more than one, refuses the login;
//  3. collect the entry's groups: its memberOf values, and when
//     group_base_dn is set the DNs of the groups group_filter finds there
//     (every %s replaced by the entry's escaped DN);
//  4. bind as the entry's DN with the password given. An empty password is
//     refused before anything is sent: to LDAP it means an anonymous bind,
//     which servers accept.
//
// The account name is the entry's name_attribute, lowercased; the
// addresses come from address_attributes (Exchange's proxyAddresses values
// "SMTP:a@x" and "smtp:b@x" become a@x and b@x, other address types are
// skipped); the role is admin for a member of an admin group, else auditor
// for a member of an auditor group, else user. Group DNs are compared as
// DNs (case and spacing do not matter).
//
// Errors never contain a password. An unknown name or a refused password is
// auth.ErrBadCredentials; anything else (unreachable, service account
// refused, entry without a name) is another error for the caller to log.
package ldapauth

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/mailarc/mailarc/internal/auth"
	"github.com/mailarc/mailarc/internal/certs"
	"github.com/mailarc/mailarc/internal/config"
)

// Directory is a configured LDAP directory.
type Directory struct {
	cfg      config.LDAP
	log      *slog.Logger
	addr     string      // host:port
	tls      *tls.Config // nil: clear text
	startTLS bool
	timeout  time.Duration

	adminGroups, auditorGroups []*ldap.DN
	attrs                      []string // requested from a user entry
}

// New checks cfg (an enabled, validated [ldap] section) and returns the
// directory. It does not connect; see Check.
func New(cfg config.LDAP, log *slog.Logger) (*Directory, error) {
	if log == nil {
		log = slog.Default()
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Hostname() == "" {
		return nil, fmt.Errorf("ldap.url: want ldap://host or ldaps://host, not %q", cfg.URL)
	}
	d := &Directory{cfg: cfg, log: log, timeout: time.Duration(cfg.Timeout), startTLS: cfg.StartTLS}
	if d.timeout <= 0 {
		d.timeout = 10 * time.Second
	}
	port := u.Port()
	if port == "" {
		port = "389"
		if u.Scheme == "ldaps" {
			port = "636"
		}
	}
	d.addr = net.JoinHostPort(u.Hostname(), port)
	if u.Scheme == "ldaps" || cfg.StartTLS {
		d.tls = &tls.Config{MinVersion: tls.VersionTLS12, ServerName: u.Hostname(), InsecureSkipVerify: cfg.InsecureSkipVerify} //nolint:gosec // an explicit, documented opt-out
		if cfg.CAFile != "" {
			if d.tls.RootCAs, err = certs.LoadPool(cfg.CAFile); err != nil {
				return nil, fmt.Errorf("ldap.ca_file: %w", err)
			}
		}
	}
	if _, err := ldap.ParseDN(cfg.BaseDN); err != nil {
		return nil, fmt.Errorf("ldap.base_dn %q: %w", cfg.BaseDN, err)
	}
	if cfg.BindDN != "" {
		if _, err := ldap.ParseDN(cfg.BindDN); err != nil {
			return nil, fmt.Errorf("ldap.bind_dn %q: %w", cfg.BindDN, err)
		}
	}
	if _, err := ldap.CompileFilter(substitute(cfg.UserFilter, "probe")); err != nil {
		return nil, fmt.Errorf("ldap.user_filter %q: %w", cfg.UserFilter, err)
	}
	if cfg.GroupBaseDN != "" {
		if _, err := ldap.ParseDN(cfg.GroupBaseDN); err != nil {
			return nil, fmt.Errorf("ldap.group_base_dn %q: %w", cfg.GroupBaseDN, err)
		}
		if _, err := ldap.CompileFilter(substitute(cfg.GroupFilter, "cn=probe")); err != nil {
			return nil, fmt.Errorf("ldap.group_filter %q: %w", cfg.GroupFilter, err)
		}
	}
	for _, g := range []struct {
		key  string
		in   []string
		into *[]*ldap.DN
	}{{"ldap.admin_groups", cfg.AdminGroups, &d.adminGroups}, {"ldap.auditor_groups", cfg.AuditorGroups, &d.auditorGroups}} {
		for _, s := range g.in {
			dn, err := ldap.ParseDN(s)
			if err != nil || len(dn.RDNs) == 0 {
				return nil, fmt.Errorf("%s: %q is not a DN", g.key, s)
			}
			*g.into = append(*g.into, dn)
		}
	}
	d.attrs = append([]string{cfg.NameAttribute, "memberOf"}, cfg.AddressAttributes...)
	return d, nil
}

// substitute puts the escaped value v wherever filter has %s.
func substitute(filter, v string) string {
	return strings.ReplaceAll(filter, "%s", ldap.EscapeFilter(v))
}

// conn opens a connection for one login, bound as the service account (or
// anonymous), and closes it when ctx ends.
func (d *Directory) conn(ctx context.Context) (*ldap.Conn, error) {
	dialer := &net.Dialer{}
	var c net.Conn
	var err error
	if d.tls != nil && !d.startTLS {
		c, err = (&tls.Dialer{NetDialer: dialer, Config: d.tls}).DialContext(ctx, "tcp", d.addr)
	} else {
		c, err = dialer.DialContext(ctx, "tcp", d.addr)
	}
	if err != nil {
		return nil, fmt.Errorf("ldap: connect %s: %w", d.cfg.URL, err)
	}
	lc := ldap.NewConn(c, d.tls != nil && !d.startTLS)
	lc.Start()
	if dl, ok := ctx.Deadline(); ok {
		lc.SetTimeout(time.Until(dl))
	}
	stop := context.AfterFunc(ctx, func() { lc.Close() })
	ok := false
	defer func() {
		if !ok {
			stop()
			lc.Close()
		}
	}()
	if d.startTLS {
		if err := lc.StartTLS(d.tls); err != nil {
			return nil, fmt.Errorf("ldap: StartTLS with %s: %w", d.cfg.URL, err)
		}
	}
	if d.cfg.BindDN != "" {
		pw, err := d.bindPassword()
		if err != nil {
			return nil, err
		}
		if err := lc.Bind(d.cfg.BindDN, pw); err != nil {
			return nil, fmt.Errorf("ldap: bind as the service account %s (check ldap.bind_dn and ldap.bind_password_file): %w", d.cfg.BindDN, err)
		}
	}
	ok = true
	return lc, nil
}

// bindPassword reads the service account's password (trailing line breaks
// removed) from its file, at every login so a rotated password is used.
func (d *Directory) bindPassword() (string, error) {
	b, err := os.ReadFile(d.cfg.BindPasswordFile)
	if err != nil {
		return "", fmt.Errorf("ldap.bind_password_file: %w", err)
	}
	pw := strings.TrimRight(string(b), "\r\n")
	if pw == "" {
		return "", fmt.Errorf("ldap.bind_password_file %s is empty", d.cfg.BindPasswordFile)
	}
	return pw, nil
}

// Check connects and binds as the service account (or searches the base
// DN anonymously), to report a misconfiguration at start.
func (d *Directory) Check(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	lc, err := d.conn(ctx)
	if err != nil {
		return err
	}
	defer lc.Close()
	_, err = lc.Search(ldap.NewSearchRequest(d.cfg.BaseDN, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, d.timeLimit(), false,
		"(objectClass=*)", []string{"1.1"}, nil))
	if err != nil {
		return fmt.Errorf("ldap: read base_dn %s: %w", d.cfg.BaseDN, err)
	}
	return nil
}

// timeLimit is the server-side time limit of a search, in seconds.
func (d *Directory) timeLimit() int { return max(1, int(d.timeout/time.Second)) }

// Authenticate implements auth.Directory.
func (d *Directory) Authenticate(ctx context.Context, name, password string) (*auth.DirectoryUser, error) {
	if name == "" || password == "" || len(name) > 256 || strings.ContainsRune(name, 0) {
		return nil, auth.ErrBadCredentials
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	lc, err := d.conn(ctx)
	if err != nil {
		return nil, err
	}
	defer lc.Close()

	res, err := lc.Search(ldap.NewSearchRequest(d.cfg.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 2, d.timeLimit(), false,
		substitute(d.cfg.UserFilter, name), d.attrs, nil))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultSizeLimitExceeded) || (err == nil && len(res.Entries) > 1) {
		d.log.Warn("ldap: the login name matches several directory entries; refusing it (make user_filter match one entry)", "name", name)
		return nil, auth.ErrBadCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("ldap: search for %q under %s: %w", name, d.cfg.BaseDN, err)
	}
	if len(res.Entries) == 0 || res.Entries[0].DN == "" {
		d.log.Debug("ldap: no directory entry for the login name", "name", name)
		return nil, auth.ErrBadCredentials
	}
	e := res.Entries[0]
	u := &auth.DirectoryUser{DN: e.DN, Addresses: addresses(e, d.cfg.AddressAttributes)}
	for _, v := range e.GetEqualFoldAttributeValues(d.cfg.NameAttribute) {
		if v = strings.ToLower(strings.TrimSpace(v)); v != "" {
			u.Name = v
			break
		}
	}
	if u.Name == "" {
		return nil, fmt.Errorf("ldap: entry %s has no %s attribute (set ldap.name_attribute)", e.DN, d.cfg.NameAttribute)
	}
	groups := e.GetEqualFoldAttributeValues("memberOf")
	if d.cfg.GroupBaseDN != "" {
		gr, err := lc.Search(ldap.NewSearchRequest(d.cfg.GroupBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases, 0, d.timeLimit(), false,
			substitute(d.cfg.GroupFilter, e.DN), []string{"1.1"}, nil))
		if err != nil {
			return nil, fmt.Errorf("ldap: search the groups of %s under %s: %w", e.DN, d.cfg.GroupBaseDN, err)
		}
		for _, g := range gr.Entries {
			groups = append(groups, g.DN)
		}
	}
	u.Role = d.role(groups)

	// Last, the password: every fact above came from the service account,
	// and a refused bind discards them.
	if err := lc.Bind(e.DN, password); err != nil {
		var le *ldap.Error
		if errors.As(err, &le) && le.ResultCode < ldap.ErrorNetwork {
			// A result from the server: wrong password (49), or an
			// account the server will not let in (disabled, expired).
			d.log.Debug("ldap: bind refused", "dn", e.DN, "code", le.ResultCode, "diagnostic", le.Err)
			return nil, auth.ErrBadCredentials
		}
		return nil, fmt.Errorf("ldap: bind as %s: %w", e.DN, err)
	}
	d.log.Debug("ldap: login", "name", name, "account", u.Name, "dn", e.DN, "role", u.Role, "addresses", len(u.Addresses))
	return u, nil
}

// role maps group DNs to the user's role.
func (d *Directory) role(groups []string) auth.Role {
	role := auth.RoleUser
	for _, g := range groups {
		dn, err := ldap.ParseDN(g)
		if err != nil {
			continue
		}
		for _, a := range d.adminGroups {
			if a.EqualFold(dn) {
				return auth.RoleAdmin
			}
		}
		for _, a := range d.auditorGroups {
			if a.EqualFold(dn) {
				role = auth.RoleAuditor
			}
		}
	}
	return role
}

// addresses returns the entry's mail addresses from attrs, lowercased and
// without duplicates, in the order found. Values with an address type
// prefix (proxyAddresses: "SMTP:", "smtp:", "X500:", "SIP:") are kept only
// for type smtp, without the prefix.
func addresses(e *ldap.Entry, attrs []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, a := range attrs {
		for _, v := range e.GetEqualFoldAttributeValues(a) {
			v = strings.TrimSpace(v)
			if typ, rest, ok := strings.Cut(v, ":"); ok && !strings.Contains(typ, "@") {
				if !strings.EqualFold(typ, "smtp") {
					continue
				}
				v = strings.TrimSpace(rest)
			}
			v = strings.ToLower(v)
			if strings.Count(v, "@") != 1 || strings.HasPrefix(v, "@") || strings.HasSuffix(v, "@") || seen[v] {
				continue
			}
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
