package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDefaultsAreValid(t *testing.T) {
	c := Default()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "./mailarc-data" || c.HTTP.Listen != "127.0.0.1:8080" || c.SMTP.Listen[0] != "127.0.0.1:2525" || c.MaxMessageSize != 100<<20 {
		t.Fatalf("defaults differ from DESIGN §5: %+v", c)
	}
}

func TestParseEnvAndPrecedence(t *testing.T) {
	c := Default()
	err := Parse(strings.NewReader(`
node_name = "arc-a"
max_message_size = "20MB"
[http]
listen = "0.0.0.0:9000"
[smtp]
recipients = ["journal@corp.example", "@archive.example"]
command_timeout = "30s"
[[mirror.peers]]
name = "arc-b"
url = "https://arc-b:8443"
`), &c)
	if err != nil {
		t.Fatal(err)
	}
	if err := ApplyEnv(&c, []string{"MAILARC_HTTP_LISTEN=127.0.0.1:1", "MAILARC_SMTP_ALLOWED_NETWORKS=10.0.0.0/8, 127.0.0.0/8", "OTHER=x"}); err != nil {
		t.Fatal(err)
	}
	if c.NodeName != "arc-a" || c.MaxMessageSize != 20<<20 || c.HTTP.Listen != "127.0.0.1:1" ||
		len(c.SMTP.AllowedNetworks) != 2 || c.SMTP.AllowedNetworks[1] != "127.0.0.0/8" ||
		time.Duration(c.SMTP.CommandTimeout) != 30*time.Second || c.Mirror.Peers[0].Name != "arc-b" {
		t.Fatalf("parsed %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestUnknownKeyAndFieldErrors(t *testing.T) {
	c := Default()
	if err := Parse(strings.NewReader("[smtp]\nlisen = [\"x\"]\n"), &c); err == nil || !strings.Contains(err.Error(), "smtp.lisen") {
		t.Fatalf("typo not reported: %v", err)
	}
	c = Default()
	c.LogLevel = "loud"
	c.SMTP.AllowedNetworks = []string{"nonsense"}
	c.Sources = []Source{{Name: "j", Type: "smtp", Host: "h"}}
	err := c.Validate()
	var fe *FieldError
	if !errors.As(err, &fe) {
		t.Fatalf("want field errors, got %v", err)
	}
	for _, key := range []string{"log_level", "smtp.allowed_networks", "sources[0].type"} {
		if !strings.Contains(err.Error(), key) {
			t.Errorf("error lacks %s: %v", key, err)
		}
	}
	if err := ApplyEnv(&c, []string{"MAILARC_SMTP_MAX_CONNECTIONS=many"}); err == nil || !strings.Contains(err.Error(), "MAILARC_SMTP_MAX_CONNECTIONS") {
		t.Fatalf("bad env value: %v", err)
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]int64{"100MB": 100 << 20, "512k": 512 << 10, "2GiB": 2 << 30, "1048576": 1 << 20, " 3 m ": 3 << 20} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("ParseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "MB", "-1", "1.5m", "ten"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("ParseSize(%q) accepted", bad)
		}
	}
}

func TestCatalogBackend(t *testing.T) {
	c := Default()
	if err := Parse(strings.NewReader("[catalog]\nbackend = \"postgres\"\ndsn_file = \"/etc/mailarc/pg.dsn\"\n"), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil || c.Catalog.Backend != "postgres" || c.Catalog.DSNFile != "/etc/mailarc/pg.dsn" {
		t.Fatalf("postgres catalog: %+v %v", c.Catalog, err)
	}
	if err := ApplyEnv(&c, []string{"MAILARC_CATALOG_DSN_FILE=/run/secrets/dsn"}); err != nil || c.Catalog.DSNFile != "/run/secrets/dsn" {
		t.Fatalf("env override: %+v %v", c.Catalog, err)
	}
	for _, tc := range []struct {
		cat  Catalog
		want string
	}{
		{Catalog{Backend: "postgres"}, "catalog.dsn_file: must name a file"},
		{Catalog{Backend: "sqlite", DSNFile: "x"}, "catalog.dsn_file: is only used with backend \"postgres\""},
		{Catalog{Backend: "mysql"}, "catalog.backend: must be \"sqlite\" or \"postgres\", not \"mysql\""},
	} {
		c := Default()
		c.Catalog = tc.cat
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.cat, err, tc.want)
		}
	}
}

func TestLDAP(t *testing.T) {
	c := Default()
	if err := Parse(strings.NewReader(`
[ldap]
enabled            = true
url                = "ldaps://dc1.corp.example"
bind_dn            = "CN=mailarc,OU=Service,DC=corp,DC=example"
bind_password_file = "/etc/mailarc/ldap.pw"
base_dn            = "DC=corp,DC=example"
user_filter        = "(sAMAccountName=%s)"
name_attribute     = "sAMAccountName"
admin_groups       = ["CN=Archive Admins,OU=Groups,DC=corp,DC=example"]
`), &c); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.LDAP.GroupFilter != "(member=%s)" || len(c.LDAP.AddressAttributes) != 2 || time.Duration(c.LDAP.Timeout) != 10*time.Second ||
		c.LDAP.AdminGroups[0] != "CN=Archive Admins,OU=Groups,DC=corp,DC=example" {
		t.Fatalf("defaults not kept: %+v", c.LDAP)
	}
	if err := ApplyEnv(&c, []string{"MAILARC_LDAP_URL=ldaps://dc2.corp.example:3269"}); err != nil || c.LDAP.URL != "ldaps://dc2.corp.example:3269" {
		t.Fatalf("env: %v %q", err, c.LDAP.URL)
	}
	// Group DNs contain commas: a comma-separated environment list would
	// cut them apart, so the environment may not set them.
	if err := ApplyEnv(&c, []string{"MAILARC_LDAP_ADMIN_GROUPS=cn=a,dc=example"}); err == nil || !strings.Contains(err.Error(), "MAILARC_LDAP_ADMIN_GROUPS") {
		t.Fatalf("admin_groups from the environment: %v", err)
	}

	base := c.LDAP
	for _, tc := range []struct {
		edit func(l *LDAP)
		want string
	}{
		{func(l *LDAP) { l.URL = "" }, "ldap.url: must be set"},
		{func(l *LDAP) { l.URL = "https://dc1" }, "ldap.url: must be an ldap:// or ldaps:// URL"},
		{func(l *LDAP) { l.URL = "ldap://dc1/dc=corp?uid" }, "ldap.url: must hold only scheme, host and port"},
		{func(l *LDAP) { l.URL = "ldap://dc1.corp.example" }, "would send passwords unencrypted to dc1.corp.example"},
		{func(l *LDAP) { l.StartTLS = true }, "ldap.start_tls: is for ldap:// URLs"},
		{func(l *LDAP) { l.BindPasswordFile = "" }, "ldap.bind_password_file: bind_dn and bind_password_file must be set together"},
		{func(l *LDAP) { l.BaseDN = " " }, "ldap.base_dn: must be set"},
		{func(l *LDAP) { l.UserFilter = "sAMAccountName=%s" }, "ldap.user_filter: must be a parenthesised LDAP filter"},
		{func(l *LDAP) { l.UserFilter = "(uid=alice)" }, "ldap.user_filter: must be a parenthesised LDAP filter"},
		{func(l *LDAP) { l.GroupBaseDN = "ou=groups"; l.GroupFilter = "(member=x)" }, "ldap.group_filter"},
		{func(l *LDAP) { l.NameAttribute = "" }, "ldap.name_attribute"},
		{func(l *LDAP) { l.AddressAttributes = nil }, "ldap.address_attributes"},
		{func(l *LDAP) { l.Timeout = 0 }, "ldap.timeout: must be positive"},
	} {
		c := Default()
		c.LDAP = base
		tc.edit(&c.LDAP)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", c.LDAP, err, tc.want)
		}
	}
	// Clear text is allowed to a loopback host, or with allow_insecure.
	for _, edit := range []func(l *LDAP){
		func(l *LDAP) { l.URL = "ldap://127.0.0.1:3389" },
		func(l *LDAP) { l.URL = "ldap://[::1]" },
		func(l *LDAP) { l.URL = "ldap://localhost" },
		func(l *LDAP) { l.URL = "ldap://dc1.corp.example"; l.StartTLS = true },
		func(l *LDAP) { l.URL = "ldap://dc1.corp.example"; l.AllowInsecure = true },
	} {
		c := Default()
		c.LDAP = base
		edit(&c.LDAP)
		if err := c.Validate(); err != nil {
			t.Errorf("%s start_tls=%v allow_insecure=%v: %v", c.LDAP.URL, c.LDAP.StartTLS, c.LDAP.AllowInsecure, err)
		}
	}
	// Disabled, the section is not checked.
	c = Default()
	c.LDAP.URL = "nonsense"
	if err := c.Validate(); err != nil {
		t.Fatalf("disabled [ldap] validated: %v", err)
	}
}
