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
