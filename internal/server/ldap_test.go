package server_test

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/config"
	"github.com/mailarc/mailarc/internal/testutil/ldaptest"
)

// TestLDAPLogin serves a node with [ldap] on a real slapd (StartTLS with
// the test CA): directory users log in over HTTP, get their role from
// their groups and see exactly the mail of their directory addresses;
// with the directory gone, the local admin still logs in.
func TestLDAPLogin(t *testing.T) {
	dir := ldaptest.Start(t, ldaptest.Options{TLS: true})
	dir.Apply(t, "dn: cn=mailarc,"+ldaptest.Suffix+"\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\ncn: mailarc\nuserPassword: service-secret-7\n")
	dir.Apply(t, ldaptest.User("bob", "bob-pass", "bob@corp.example", "b.smith@corp.example"))
	dir.Apply(t, ldaptest.User("alice", "alice-pass", "alice@corp.example"))
	dir.Apply(t, ldaptest.User("carol", "carol-pass", "carol@corp.example"))
	dir.Apply(t, ldaptest.Group("archive-admins", ldaptest.UserDN("alice")))

	data := t.TempDir()
	pw := filepath.Join(t.TempDir(), "ldap.pw")
	if err := os.WriteFile(pw, []byte("service-secret-7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(data)
	if err := config.Parse(strings.NewReader(`
[ldap]
enabled            = true
url                = "`+dir.URL+`"
start_tls          = true
ca_file            = "`+dir.CAFile+`"
bind_dn            = "cn=mailarc,`+ldaptest.Suffix+`"
bind_password_file = "`+pw+`"
base_dn            = "`+ldaptest.People+`"
admin_groups       = ["`+ldaptest.GroupDN("archive-admins")+`"]
`), &cfg); err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	nd := startConfig(t, cfg)

	toBob := nd.post(t, mail("Vendor <sales@vendor.example>", "Bob Smith <b.smith@corp.example>", "zebra quote", "Mon, 2 Mar 2020 10:00:00 +0000", "zebra"))
	other := nd.post(t, mail("sales@vendor.example", "dave@corp.example", "zebra offer", "Mon, 2 Mar 2020 11:00:00 +0000", "zebra"))
	nd.waitIndexed(t, 2)

	// bob (a user: no admin group) sees the message to his proxyAddresses
	// alias, and nothing else.
	c, b, _ := nd.req(t, "GET", "/api/v1/search?q=zebra", "bob", "bob-pass", nil)
	if c != 200 || !strings.Contains(string(b), `"total":1`) || !strings.Contains(string(b), toBob) || strings.Contains(string(b), other) {
		t.Fatalf("bob's search: %d %s", c, b)
	}
	if c, b, _ := nd.req(t, "GET", "/api/v1/messages/"+toBob+"/raw", "bob", "bob-pass", nil); c != 200 || !strings.Contains(string(b), "zebra quote") {
		t.Errorf("bob's own message: %d %s", c, b)
	}
	if c, b, _ := nd.req(t, "GET", "/api/v1/messages/"+other, "bob", "bob-pass", nil); c != 404 {
		t.Errorf("bob fetched another's message: %d %s", c, b)
	}
	if c, _, _ := nd.req(t, "GET", "/api/v1/users", "bob", "bob-pass", nil); c != 403 {
		t.Errorf("bob listed users: %d", c)
	}
	// An API token of a directory account works like any other.
	c, b, _ = nd.req(t, "POST", "/api/v1/tokens", "bob", "bob-pass", []byte(`{"name":"script"}`))
	var tok struct{ Token string }
	if err := json.Unmarshal(b, &tok); c != 201 || err != nil || tok.Token == "" {
		t.Fatalf("bob's token: %d %s", c, b)
	}
	if c, b, _ := nd.req(t, "GET", "/api/v1/search?q="+url.QueryEscape("zebra"), "Bearer "+tok.Token, "", nil); c != 200 || !strings.Contains(string(b), `"total":1`) {
		t.Errorf("bob's token search: %d %s", c, b)
	}

	// alice is in the admin group: everything.
	if c, b, _ := nd.req(t, "GET", "/api/v1/search?q=zebra", "alice", "alice-pass", nil); c != 200 || !strings.Contains(string(b), `"total":2`) {
		t.Errorf("alice's search: %d %s", c, b)
	}
	if c, b, _ := nd.req(t, "GET", "/api/v1/users", "alice", "alice-pass", nil); c != 200 {
		t.Errorf("alice (directory admin) listing users: %d %s", c, b)
	}

	// The admin's user list marks the directory accounts; their password
	// is not mailarc's to change.
	c, b = nd.admin(t, "GET", "/api/v1/users", nil)
	var list struct {
		Users []struct {
			Name, Role, Source string
			Addresses          []string
		}
	}
	if err := json.Unmarshal(b, &list); c != 200 || err != nil {
		t.Fatalf("users: %d %s", c, b)
	}
	got := map[string]string{}
	for _, u := range list.Users {
		got[u.Name] = u.Role + "/" + u.Source + "/" + strings.Join(u.Addresses, ",")
	}
	want := map[string]string{
		"admin": "admin/local/",
		"alice": "admin/ldap/alice@corp.example",
		"bob":   "user/ldap/bob@corp.example,b.smith@corp.example",
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("user %s: %q, want %q (all: %v)", name, got[name], w, got)
		}
	}
	if c, b := nd.admin(t, "PUT", "/api/v1/users/bob/password", []byte(`{"password":"local-pass-1"}`)); c != 400 || !strings.Contains(string(b), "directory") {
		t.Errorf("set a directory account's password: %d %s", c, b)
	}

	// Refusals (four: a fifth failure from this client address would
	// throttle the admin's requests below too).
	for _, cred := range [][2]string{{"bob", "wrong"}, {"bob", ""}, {"*)(uid=*", "bob-pass"}, {"b*", "bob-pass"}} {
		if c, _, _ := nd.req(t, "GET", "/api/v1/status", cred[0], cred[1], nil); c != 401 {
			t.Errorf("login %q/%q: %d, want 401", cred[0], cred[1], c)
		}
	}

	// The directory goes away: a directory login fails, the local admin
	// is not affected.
	dir.Stop(t)
	start := time.Now()
	if c, _, _ := nd.req(t, "GET", "/api/v1/status", "carol", "carol-pass", nil); c != 401 {
		t.Errorf("carol with the directory down: %d", c)
	}
	if time.Since(start) > 10*time.Second {
		t.Errorf("a login with the directory down took %s", time.Since(start))
	}
	if c, b := nd.admin(t, "GET", "/api/v1/status", nil); c != 200 {
		t.Errorf("local admin with the directory down: %d %s", c, b)
	}
}
