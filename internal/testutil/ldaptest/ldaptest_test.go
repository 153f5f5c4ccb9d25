package ldaptest_test

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/mailarc/mailarc/internal/certs"
	"github.com/mailarc/mailarc/internal/testutil/ldaptest"
)

// TestServer checks what the helper promises: users bind with their
// password, the memberof overlay fills memberOf, anonymous clients read
// nothing, TLS works with the CA and Stop stops the server.
func TestServer(t *testing.T) {
	s := ldaptest.Start(t, ldaptest.Options{TLS: true})
	s.Apply(t, ldaptest.User("alice", "alice-pass", "alice@example.org", "a@example.org"))
	s.Apply(t, ldaptest.Group("admins", ldaptest.UserDN("alice")))

	pool, err := certs.LoadPool(s.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	tc := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}

	c, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(tc))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetTimeout(10 * time.Second)
	// Anonymous clients see nothing (slapd answers "no such object").
	res, err := c.Search(ldap.NewSearchRequest(ldaptest.Suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(uid=alice)", []string{"mail"}, nil))
	if err == nil && len(res.Entries) != 0 {
		t.Fatalf("an anonymous client read %d entries", len(res.Entries))
	}
	if err := c.Bind(ldaptest.UserDN("alice"), "wrong"); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		t.Fatalf("wrong password: %v", err)
	}
	if err := c.Bind(ldaptest.UserDN("alice"), "alice-pass"); err != nil {
		t.Fatal(err)
	}
	res, err = c.Search(ldap.NewSearchRequest(ldaptest.Suffix, ldap.ScopeWholeSubtree, 0, 0, 0, false, "(uid=alice)", []string{"memberOf", "proxyAddresses"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("search: %v %+v", err, res)
	}
	if got := res.Entries[0].GetAttributeValue("memberOf"); got != ldaptest.GroupDN("admins") {
		t.Fatalf("memberOf = %q", got)
	}
	if got := res.Entries[0].GetAttributeValues("proxyAddresses"); len(got) != 2 || got[0] != "SMTP:alice@example.org" {
		t.Fatalf("proxyAddresses = %q", got)
	}

	// StartTLS on the plain port.
	p, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.StartTLS(tc); err != nil {
		t.Fatalf("StartTLS: %v", err)
	}

	s.Stop(t)
	if c, err := ldap.DialURL(s.URL); err == nil {
		c.Close()
		t.Fatal("the server still answers after Stop")
	}
}
