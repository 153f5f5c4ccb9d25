package ldapauth_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/auth"
	"github.com/mailarc/mailarc/internal/auth/ldapauth"
	"github.com/mailarc/mailarc/internal/catalog/catalogtest"
	"github.com/mailarc/mailarc/internal/config"
	"github.com/mailarc/mailarc/internal/testutil"
	"github.com/mailarc/mailarc/internal/testutil/ldaptest"
)

const (
	serviceDN = "cn=mailarc,dc=example,dc=org"
	servicePW = "service-secret-7"
)

// directory starts slapd with the service account and these people:
//
//	alice  admin (groupOfNames "archive-admins", via memberOf)
//	bob    user; addresses Bob@Example.org (mail and SMTP:), smtp:b.smith@example.org,
//	       and X500: and sip: proxyAddresses that are not mail addresses
//	carol  auditor (groupOfUniqueNames "auditors": only the group search finds it)
//	dup1, dup2  both have mail shared@example.org
func directory(t *testing.T, opt ldaptest.Options) *ldaptest.Server {
	t.Helper()
	s := ldaptest.Start(t, opt)
	s.Apply(t, "dn: "+serviceDN+"\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: mailarc\nuserPassword: "+servicePW+"\n")
	s.Apply(t, ldaptest.User("alice", "alice-pass", "alice@example.org"))
	s.Apply(t, ldaptest.User("bob", "bob-pass", "Bob@Example.org", "b.smith@example.org"))
	s.Apply(t, "dn: "+ldaptest.UserDN("bob")+"\nchangetype: modify\nadd: proxyAddresses\nproxyAddresses: X500:/o=Example/ou=Exchange/cn=Recipients/cn=bob\nproxyAddresses: sip:bob@example.org\n")
	s.Apply(t, ldaptest.User("carol", "carol-pass", "carol@example.org"))
	s.Apply(t, ldaptest.User("dup1", "dup-pass", "shared@example.org"))
	s.Apply(t, ldaptest.User("dup2", "dup-pass", "shared@example.org"))
	s.Apply(t, ldaptest.Group("archive-admins", ldaptest.UserDN("alice")))
	s.Apply(t, "dn: cn=auditors,"+ldaptest.Groups+"\nobjectClass: groupOfUniqueNames\ncn: auditors\nuniqueMember: "+ldaptest.UserDN("carol")+"\n")
	return s
}

// ldapConfig is an [ldap] section for s as an OpenLDAP administrator would
// write it (defaults for filters and attributes).
func ldapConfig(t *testing.T, s *ldaptest.Server) config.LDAP {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "ldap.pw")
	if err := os.WriteFile(pw, []byte(servicePW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := config.Default().LDAP
	c.Enabled = true
	c.URL = s.URL
	c.BindDN = serviceDN
	c.BindPasswordFile = pw
	c.BaseDN = ldaptest.People
	c.GroupBaseDN = ldaptest.Groups
	c.GroupFilter = "(|(member=%s)(uniqueMember=%s))"
	c.AdminGroups = []string{"CN=Archive-Admins, OU=Groups, DC=Example, DC=Org"} // DN matching ignores case and spaces
	c.AuditorGroups = []string{"cn=auditors," + ldaptest.Groups}
	c.Timeout = config.Duration(10 * time.Second)
	return c
}

func open(t *testing.T, c config.LDAP, log *slog.Logger) *ldapauth.Directory {
	t.Helper()
	cfg := config.Default()
	cfg.LDAP = c
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config: %v", err)
	}
	d, err := ldapauth.New(c, log)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestAuthenticate(t *testing.T) {
	s := directory(t, ldaptest.Options{})
	var logBuf testutil.SyncBuffer
	d := open(t, ldapConfig(t, s), slog.New(slog.NewTextHandler(&logBuf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	ctx := context.Background()
	if err := d.Check(ctx); err != nil {
		t.Fatalf("check: %v", err)
	}

	for _, tc := range []struct {
		login, password string
		name            string
		role            auth.Role
		addrs           []string
	}{
		{"alice", "alice-pass", "alice", auth.RoleAdmin, []string{"alice@example.org"}},
		{"ALICE", "alice-pass", "alice", auth.RoleAdmin, []string{"alice@example.org"}},
		{"bob@example.org", "bob-pass", "bob", auth.RoleUser, []string{"bob@example.org", "b.smith@example.org"}},
		{"carol", "carol-pass", "carol", auth.RoleAuditor, []string{"carol@example.org"}},
	} {
		u, err := d.Authenticate(ctx, tc.login, tc.password)
		if err != nil {
			t.Errorf("%s: %v", tc.login, err)
			continue
		}
		if u.Name != tc.name || u.Role != tc.role || !slices.Equal(u.Addresses, tc.addrs) || !strings.HasPrefix(u.DN, "uid="+tc.name+",") {
			t.Errorf("%s: got %+v, want %s %s %v", tc.login, u, tc.name, tc.role, tc.addrs)
		}
	}

	// Refused: wrong, empty and whitespace passwords, unknown names, names
	// matching several entries, and filter injection. "ali*" with alice's
	// password would log in as alice if the name reached the filter
	// unescaped.
	for _, tc := range []struct{ login, password string }{
		{"alice", "wrong"},
		{"alice", ""},
		{"alice", " "},
		{"", "alice-pass"},
		{"nobody", "alice-pass"},
		{"shared@example.org", "dup-pass"},
		{"ali*", "alice-pass"},
		{"*", "alice-pass"},
		{"*)(uid=*", "alice-pass"},
		{"alice)(uid=*", "alice-pass"},
		{"alice\x00", "alice-pass"},
	} {
		if u, err := d.Authenticate(ctx, tc.login, tc.password); !errors.Is(err, auth.ErrBadCredentials) {
			t.Errorf("login %q password %q: %+v %v, want ErrBadCredentials", tc.login, tc.password, u, err)
		}
	}
	if !strings.Contains(logBuf.String(), "several directory entries") {
		t.Errorf("ambiguous name not logged:\n%s", logBuf.String())
	}
	if strings.Contains(logBuf.String(), "alice-pass") || strings.Contains(logBuf.String(), servicePW) {
		t.Errorf("a password reached the log:\n%s", logBuf.String())
	}
}

// TestActiveDirectoryStyle uses the configuration documented for Active
// Directory: sAMAccountName, proxyAddresses only, roles from memberOf.
func TestActiveDirectoryStyle(t *testing.T) {
	s := directory(t, ldaptest.Options{})
	c := ldapConfig(t, s)
	c.BaseDN = ldaptest.Suffix
	c.UserFilter = "(&(objectClass=person)(sAMAccountName=%s))"
	c.NameAttribute = "sAMAccountName"
	c.AddressAttributes = []string{"proxyAddresses"}
	c.GroupBaseDN, c.GroupFilter = "", ""
	d := open(t, c, nil)
	u, err := d.Authenticate(context.Background(), "Bob", "bob-pass")
	if err != nil || u.Name != "bob" || u.Role != auth.RoleUser || !slices.Equal(u.Addresses, []string{"bob@example.org", "b.smith@example.org"}) {
		t.Fatalf("bob: %+v %v", u, err)
	}
	if u, err := d.Authenticate(context.Background(), "alice", "alice-pass"); err != nil || u.Role != auth.RoleAdmin {
		t.Fatalf("alice via memberOf: %+v %v", u, err)
	}
	// Without the group search, carol's groupOfUniqueNames is not seen.
	if u, err := d.Authenticate(context.Background(), "carol", "carol-pass"); err != nil || u.Role != auth.RoleUser {
		t.Fatalf("carol without group search: %+v %v", u, err)
	}
}

// TestTLS: StartTLS and ldaps:// with ca_file; an unknown CA fails (as an
// error, not a wrong password) unless insecure_skip_verify.
func TestTLS(t *testing.T) {
	s := directory(t, ldaptest.Options{TLS: true})
	ctx := context.Background()
	base := ldapConfig(t, s)
	base.CAFile = s.CAFile
	for name, edit := range map[string]func(c *config.LDAP){
		"starttls": func(c *config.LDAP) { c.StartTLS = true },
		"ldaps":    func(c *config.LDAP) { c.URL = s.LDAPSURL },
	} {
		c := base
		edit(&c)
		if u, err := open(t, c, nil).Authenticate(ctx, "bob", "bob-pass"); err != nil || u.Name != "bob" {
			t.Errorf("%s: %+v %v", name, u, err)
		}
	}
	c := base
	c.URL, c.CAFile = s.LDAPSURL, ""
	_, err := open(t, c, nil).Authenticate(ctx, "bob", "bob-pass")
	if err == nil || errors.Is(err, auth.ErrBadCredentials) || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("unknown CA: %v", err)
	}
	c.InsecureSkipVerify = true
	if _, err := open(t, c, nil).Authenticate(ctx, "bob", "bob-pass"); err != nil {
		t.Errorf("insecure_skip_verify: %v", err)
	}
}

// TestDirectoryFailures: a refused service account and a stopped server
// are errors (for the log), never "wrong password", and carry no secret.
func TestDirectoryFailures(t *testing.T) {
	s := directory(t, ldaptest.Options{})
	ctx := context.Background()
	c := ldapConfig(t, s)
	if err := os.WriteFile(c.BindPasswordFile, []byte("not-the-service-password"), 0o600); err != nil {
		t.Fatal(err)
	}
	d := open(t, c, nil)
	_, err := d.Authenticate(ctx, "bob", "bob-pass")
	if err == nil || errors.Is(err, auth.ErrBadCredentials) || !strings.Contains(err.Error(), "service account") ||
		strings.Contains(err.Error(), "not-the-service-password") || strings.Contains(err.Error(), "bob-pass") {
		t.Fatalf("wrong service password: %v", err)
	}
	if err := d.Check(ctx); err == nil {
		t.Fatal("check passed with a wrong service password")
	}
	s.Stop(t)
	d = open(t, ldapConfig(t, s), nil)
	start := time.Now()
	if _, err := d.Authenticate(ctx, "bob", "bob-pass"); err == nil || errors.Is(err, auth.ErrBadCredentials) || !strings.Contains(err.Error(), "connect") {
		t.Fatalf("directory down: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatalf("a refused connection took %s", time.Since(start))
	}
}

// TestServiceLogin runs directory logins through auth.Service on a
// catalog: the account is stored as a directory account, refreshed when
// the directory changes, and the directory being down leaves local
// accounts working.
func TestServiceLogin(t *testing.T) {
	s := directory(t, ldaptest.Options{})
	ctx := context.Background()
	w, r := catalogtest.SQLiteBackend().New(t).DB()
	svc := func() *auth.Service {
		a := auth.New(w, r)
		a.SetDirectory(open(t, ldapConfig(t, s), nil))
		return a
	}
	a := svc()
	if _, _, err := a.EnsureAdmin(ctx, "admin-pass-1"); err != nil {
		t.Fatal(err)
	}
	u, err := a.Login(ctx, "bob", "bob-pass", "10.0.0.1")
	if err != nil || u.Source != auth.SourceLDAP || u.Role != auth.RoleUser || !slices.Equal(u.Addresses, []string{"bob@example.org", "b.smith@example.org"}) {
		t.Fatalf("bob: %+v %v", u, err)
	}
	for _, bad := range []struct{ name, pw string }{{"bob", "wrong"}, {"bob", ""}, {"nobody", "x"}, {"b*", "bob-pass"}} {
		if _, err := a.Login(ctx, bad.name, bad.pw, "10.0.0.2"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Errorf("login %q/%q: %v", bad.name, bad.pw, err)
		}
	}

	// The directory changes: bob gets a new address, loses one, and joins
	// the admins. The next login that reaches the directory (here through
	// another Service, as another node or after the success cache expired)
	// stores it.
	s.Apply(t, `dn: `+ldaptest.UserDN("bob")+`
changetype: modify
replace: proxyAddresses
proxyAddresses: SMTP:robert@example.org
proxyAddresses: smtp:bob@example.org
-
replace: mail
mail: robert@example.org

dn: `+ldaptest.GroupDN("archive-admins")+`
changetype: modify
add: member
member: `+ldaptest.UserDN("bob")+`
`)
	u, err = svc().Login(ctx, "bob", "bob-pass", "10.0.0.1")
	if err != nil || u.Role != auth.RoleAdmin || !slices.Equal(u.Addresses, []string{"robert@example.org", "bob@example.org"}) {
		t.Fatalf("bob after the directory changed: %+v %v", u, err)
	}
	if got, err := a.Get(ctx, "bob"); err != nil || got.Role != auth.RoleAdmin || len(got.Addresses) != 2 {
		t.Fatalf("stored bob: %+v %v", got, err)
	}

	// The directory goes away: directory logins fail with ErrDirectory,
	// the local admin still logs in.
	s.Stop(t)
	a = svc()
	if _, err := a.Login(ctx, "carol", "carol-pass", "10.0.0.3"); !errors.Is(err, auth.ErrDirectory) {
		t.Fatalf("directory down: %v", err)
	}
	if u, err := a.Login(ctx, "admin", "admin-pass-1", "10.0.0.3"); err != nil || u.Source != auth.SourceLocal {
		t.Fatalf("local admin with the directory down: %+v %v", u, err)
	}
}

func TestNewRefusesBadConfig(t *testing.T) {
	good := config.Default().LDAP
	good.Enabled, good.URL, good.BaseDN = true, "ldap://127.0.0.1", "dc=example,dc=org"
	for name, edit := range map[string]func(c *config.LDAP){
		"base_dn":      func(c *config.LDAP) { c.BaseDN = "not a dn" },
		"user_filter":  func(c *config.LDAP) { c.UserFilter = "(uid=%s" },
		"admin_groups": func(c *config.LDAP) { c.AdminGroups = []string{"admins"} },
		"ca_file":      func(c *config.LDAP) { c.URL = "ldaps://127.0.0.1"; c.CAFile = "/nonexistent/ca.pem" },
	} {
		c := good
		edit(&c)
		if _, err := ldapauth.New(c, nil); err == nil || !strings.Contains(err.Error(), "ldap."+name) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if _, err := ldapauth.New(good, nil); err != nil {
		t.Fatal(err)
	}
}
