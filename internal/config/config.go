// Package config defines mailarc's configuration: the TOML file format of
// DESIGN §5, its embedded defaults, environment overrides and validation.
//
// Precedence, lowest to highest: Default(), the TOML file given with
// --config, then environment variables MAILARC_<SECTION>_<KEY> (top-level keys
// as MAILARC_<KEY>, e.g. MAILARC_NODE_NAME, MAILARC_HTTP_LISTEN,
// MAILARC_SMTP_MAX_MESSAGE_SIZE). List values in the environment are
// comma-separated.
package config

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is the whole configuration of a node.
type Config struct {
	// NodeName is unique among mirrored nodes. Default: the host name.
	NodeName string `toml:"node_name"`
	// DataDir holds the store, catalog, index and keys. Default ./mailarc-data.
	DataDir string `toml:"data_dir"`
	// LogLevel is debug, info, warn or error.
	LogLevel string `toml:"log_level"`
	// MaxMessageSize caps any message from any source (default 100MB).
	MaxMessageSize Size `toml:"max_message_size"`
	// MinFreeSpace is the free-space reserve of data_dir's file system
	// (default 1GB; 0 disables): below it every ingest path answers a
	// temporary failure (SMTP 452 4.3.1, HTTP 503, pull sources back off)
	// instead of letting the disk fill up.
	MinFreeSpace Size `toml:"min_free_space"`

	Store     Store     `toml:"store"`
	Catalog   Catalog   `toml:"catalog"`
	HTTP      HTTP      `toml:"http"`
	SMTP      SMTP      `toml:"smtp"`
	Index     Index     `toml:"index"`
	Retention Retention `toml:"retention"`
	Mirror    Mirror    `toml:"mirror"`
	LDAP      LDAP      `toml:"ldap"`
	Sources   []Source  `toml:"sources"`
}

// Store configures the blob store.
type Store struct {
	// Backend is "local" (append-only packs under data_dir/store) or "s3"
	// (one object per message in an S3-compatible bucket, docs/scale-out.md).
	Backend string `toml:"backend"`
	// EncryptionKeyFile, when set, enables AES-256-GCM at rest with the key
	// in that file (32 raw bytes, 64 hex digits or base64).
	EncryptionKeyFile string `toml:"encryption_key_file"`
	// MaxPackSize rolls pack files beyond this size (default 1GB; local only).
	MaxPackSize Size `toml:"max_pack_size"`

	// The settings below apply to backend "s3" only.

	// Endpoint is the S3 endpoint URL (http or https); empty means AWS S3
	// in Region.
	Endpoint string `toml:"endpoint"`
	// Region is the signing region (default us-east-1).
	Region string `toml:"region"`
	// Bucket holds the blobs; it must exist.
	Bucket string `toml:"bucket"`
	// Prefix is prepended to every object key (e.g. "mailarc/").
	Prefix string `toml:"prefix"`
	// PathStyle addresses ENDPOINT/BUCKET/KEY instead of BUCKET.ENDPOINT/KEY
	// (most self-hosted S3 servers need it).
	PathStyle bool `toml:"path_style"`
	// CredentialsFile is an AWS shared credentials file (profile from
	// AWS_PROFILE, else "default"). When empty, the standard AWS chain is
	// used (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, ~/.aws, instance
	// roles). Secrets never go in this config file.
	CredentialsFile string `toml:"credentials_file"`
	// ObjectLock is "auto" (default: use S3 Object Lock when the bucket has
	// it), "on" (refuse to start without it) or "off".
	ObjectLock string `toml:"object_lock"`
}

// Catalog configures the metadata database.
type Catalog struct {
	// Backend is "sqlite" (default: data_dir/catalog.db) or "postgres"
	// (a PostgreSQL database that several nodes may share).
	Backend string `toml:"backend"`
	// DSNFile is, for backend "postgres", a file holding the connection
	// string (libpq keyword/value form or a postgres:// URL, password
	// included), so that no secret sits in this config file. Required for
	// "postgres", refused for "sqlite".
	DSNFile string `toml:"dsn_file"`
}

// HTTP configures the API and web UI listener.
type HTTP struct {
	// Listen is the address of the HTTP API and UI (default 127.0.0.1:8080).
	Listen string `toml:"listen"`
	// TLSCert and TLSKey, when both set, serve HTTPS.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// SecureCookies marks session cookies Secure even without TLS here
	// (set it behind a TLS-terminating proxy or load balancer).
	SecureCookies bool `toml:"secure_cookies"`
	// SessionTTL is how long a web session lasts (default 12h).
	SessionTTL Duration `toml:"session_ttl"`
}

// SMTP configures the SMTP (journaling) listener.
type SMTP struct {
	// Listen addresses; empty list disables SMTP. Default ["127.0.0.1:2525"].
	Listen []string `toml:"listen"`
	// LMTPListen addresses (tcp host:port or unix:/path); empty disables LMTP.
	LMTPListen []string `toml:"lmtp_listen"`
	// Hostname announced in the greeting. Default: node_name.
	Hostname string `toml:"hostname"`
	// Recipients accepted in RCPT TO: exact addresses or "@domain"; empty accepts all.
	Recipients []string `toml:"recipients"`
	// AllowedNetworks (CIDRs) may connect; empty allows all.
	AllowedNetworks []string `toml:"allowed_networks"`
	// MaxMessageSize for SMTP (default: the global max_message_size).
	MaxMessageSize Size `toml:"max_message_size"`
	// MaxConnections concurrently open (default 200).
	MaxConnections int `toml:"max_connections"`
	// MaxRecipients per message (default 10000).
	MaxRecipients int `toml:"max_recipients"`
	// MaxLineLength caps one command or message line (default 1MB).
	MaxLineLength Size `toml:"max_line_length"`
	// CommandTimeout and DataTimeout (defaults 5m and 10m).
	CommandTimeout Duration `toml:"command_timeout"`
	DataTimeout    Duration `toml:"data_timeout"`
	// TLSCert/TLSKey for STARTTLS; when empty a self-signed certificate is
	// generated on first start under data_dir.
	TLSCert string `toml:"tls_cert"`
	TLSKey  string `toml:"tls_key"`
	// AuthFile holds "user:password" lines; empty means no AUTH offered.
	AuthFile string `toml:"auth_file"`
	// AuthRequired refuses MAIL before AUTH.
	AuthRequired bool `toml:"auth_required"`
	// RequireTLS allows AUTH only after STARTTLS.
	RequireTLS bool `toml:"require_tls"`
}

// Index configures the full-text indexer.
type Index struct {
	// BatchSize is the number of messages per index transaction (default 1000).
	BatchSize int `toml:"batch_size"`
	// Workers parsing and extracting text (default 2).
	Workers int `toml:"workers"`
}

// Retention configures the retention sweeper (policies themselves are set
// through the API or UI and kept in the catalog).
type Retention struct {
	// SweepInterval is how often the scheduled sweep runs (default 1h). It
	// purges only under a policy version an admin has confirmed.
	SweepInterval Duration `toml:"sweep_interval"`
}

// Mirror configures mirroring (DESIGN §6).
type Mirror struct {
	Listen           string `toml:"listen"`
	SharedSecretFile string `toml:"shared_secret_file"`
	Peers            []Peer `toml:"peers"`
	// AntiEntropyInterval is the period of anti-entropy passes with each
	// peer (0 = default 24h). Passes also run on first contact, when a peer
	// was rebuilt or restored, and on demand (`mailarc peers sync NAME`).
	AntiEntropyInterval Duration `toml:"anti_entropy_interval"`
	// PurgeRequiresPeers (default true; unset = true) defers retention
	// purges of a message until every configured peer has acknowledged it.
	PurgeRequiresPeers *bool `toml:"purge_requires_peers"`
}

// Peer is a mirrored node.
type Peer struct {
	Name string `toml:"name"`
	URL  string `toml:"url"`
}

// LDAP configures optional login against an LDAP directory or Active
// Directory (search with a service account, then bind as the user found;
// docs/configuration.md). Accounts that log in this way are kept in the
// users table as directory accounts, their role and addresses refreshed
// from the directory at every login.
type LDAP struct {
	// Enabled turns directory logins on; the other keys are checked only
	// then.
	Enabled bool `toml:"enabled"`
	// URL is ldap://host[:port] (default port 389) or ldaps://host[:port]
	// (TLS from the start, default port 636).
	URL string `toml:"url"`
	// StartTLS upgrades an ldap:// connection with StartTLS before any
	// password is sent.
	StartTLS bool `toml:"start_tls"`
	// CAFile holds PEM certificates trusted for the directory's TLS
	// certificate instead of the system's roots.
	CAFile string `toml:"ca_file"`
	// InsecureSkipVerify accepts any TLS certificate (tests only: a
	// man in the middle then sees every password).
	InsecureSkipVerify bool `toml:"insecure_skip_verify"`
	// AllowInsecure permits ldap:// without start_tls to a host that is not
	// a loopback address (passwords cross the network in clear text).
	AllowInsecure bool `toml:"allow_insecure"`
	// BindDN and BindPasswordFile are the service account that searches
	// for users (the password only ever comes from the file, re-read at
	// every login). Both empty: anonymous search.
	BindDN           string `toml:"bind_dn"`
	BindPasswordFile string `toml:"bind_password_file"`
	// BaseDN is where users are searched (whole subtree).
	BaseDN string `toml:"base_dn"`
	// UserFilter finds the entry of a login name; every %s is replaced by
	// the name, escaped for LDAP filters. Default (|(uid=%s)(mail=%s));
	// Active Directory: (sAMAccountName=%s).
	UserFilter string `toml:"user_filter"`
	// NameAttribute holds the account name used in mailarc (lowercased):
	// default uid; Active Directory: sAMAccountName.
	NameAttribute string `toml:"name_attribute"`
	// AddressAttributes hold the user's mail addresses (default mail and
	// proxyAddresses; "smtp:" prefixes are removed, other address types
	// such as "x500:" ignored).
	AddressAttributes []string `toml:"address_attributes"`
	// GroupBaseDN, when set, is searched (whole subtree) with GroupFilter
	// for the groups the user is a member of, in addition to the user's
	// memberOf attribute.
	GroupBaseDN string `toml:"group_base_dn"`
	// GroupFilter finds a user's groups; every %s is replaced by the user's
	// DN, escaped. Default (member=%s).
	GroupFilter string `toml:"group_filter"`
	// AdminGroups and AuditorGroups are group DNs whose members get the
	// admin or auditor role (admin wins); everyone else is a user. DNs
	// contain commas, so these are set in the file only.
	AdminGroups   []string `toml:"admin_groups" env:"-"`
	AuditorGroups []string `toml:"auditor_groups" env:"-"`
	// Timeout bounds one login's whole exchange with the directory
	// (connect, TLS, binds and searches). Default 10s.
	Timeout Duration `toml:"timeout"`
}

// Source is a journal mailbox polled over IMAP or POP3.
type Source struct {
	Name          string   `toml:"name"`
	Type          string   `toml:"type"`
	Host          string   `toml:"host"`
	Port          int      `toml:"port"`
	TLS           string   `toml:"tls"`
	CAFile        string   `toml:"ca_file"` // PEM certificates trusted instead of the system's roots
	AllowInsecure bool     `toml:"allow_insecure"`
	User          string   `toml:"user"`
	PasswordFile  string   `toml:"password_file"`
	TokenFile     string   `toml:"token_file"`
	Auth          string   `toml:"auth"`
	Folders       []string `toml:"folders"`
	Poll          Duration `toml:"poll"`
	Mode          string   `toml:"mode"`
	MoveTo        string   `toml:"move_to"`
	Owner         string   `toml:"owner"`
	Standby       []string `toml:"standby"`
	TakeoverAfter Duration `toml:"takeover_after"`
	Enabled       *bool    `toml:"enabled"`
}

// Default returns the embedded defaults: `mailarc serve` with no config.
func Default() Config {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "mailarc"
	}
	return Config{
		NodeName:       host,
		DataDir:        "./mailarc-data",
		LogLevel:       "info",
		MaxMessageSize: 100 << 20,
		MinFreeSpace:   1 << 30,
		Store:          Store{Backend: "local", MaxPackSize: 1 << 30},
		Catalog:        Catalog{Backend: "sqlite"},
		HTTP:           HTTP{Listen: "127.0.0.1:8080", SessionTTL: Duration(12 * time.Hour)},
		SMTP: SMTP{
			Listen:         []string{"127.0.0.1:2525"},
			MaxConnections: 200,
			MaxRecipients:  10000,
			CommandTimeout: Duration(5 * time.Minute),
			DataTimeout:    Duration(10 * time.Minute),
		},
		Index:     Index{BatchSize: 1000, Workers: 2},
		Retention: Retention{SweepInterval: Duration(time.Hour)},
		LDAP: LDAP{
			UserFilter:        "(|(uid=%s)(mail=%s))",
			NameAttribute:     "uid",
			AddressAttributes: []string{"mail", "proxyAddresses"},
			GroupFilter:       "(member=%s)",
			Timeout:           Duration(10 * time.Second),
		},
	}
}

// Load reads the TOML file at path (empty path: defaults only) and applies
// environment overrides from environ (KEY=VALUE pairs, as os.Environ()).
func Load(path string, environ []string) (Config, error) {
	cfg := Default()
	if path != "" {
		f, err := os.Open(path)
		if err != nil {
			return cfg, fmt.Errorf("config: %w", err)
		}
		defer f.Close()
		if err := Parse(f, &cfg); err != nil {
			return cfg, fmt.Errorf("config %s: %w", path, err)
		}
	}
	if err := ApplyEnv(&cfg, environ); err != nil {
		return cfg, err
	}
	return cfg, cfg.Validate()
}

// Parse decodes TOML from r over cfg (fields absent from r keep their
// values) and refuses unknown keys, which are nearly always typos.
func Parse(r io.Reader, cfg *Config) error {
	md, err := toml.NewDecoder(r).Decode(cfg)
	if err != nil {
		return err
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return fmt.Errorf("unknown keys: %s", strings.Join(keys, ", "))
	}
	return nil
}

// ApplyEnv sets fields from MAILARC_<SECTION>_<KEY> variables. Only scalar
// and string-list fields of the top level and of its sections are settable
// this way; tables of arrays (peers, sources) need the file.
func ApplyEnv(cfg *Config, environ []string) error {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, "MAILARC_") {
			env[k] = v
		}
	}
	var errs []error
	var walk func(v reflect.Value, prefix string)
	walk = func(v reflect.Value, prefix string) {
		t := v.Type()
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name := f.Tag.Get("toml")
			if name == "" || name == "-" {
				continue
			}
			key := prefix + strings.ToUpper(name)
			fv := v.Field(i)
			if fv.Kind() == reflect.Struct && fv.Type() != reflect.TypeOf(Duration(0)) {
				walk(fv, key+"_")
				continue
			}
			val, ok := env[key]
			if !ok {
				continue
			}
			if f.Tag.Get("env") == "-" {
				errs = append(errs, fmt.Errorf("%s: not settable from the environment; set %s in the config file", key, name))
				continue
			}
			if err := setField(fv, val); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", key, err))
			}
		}
	}
	walk(reflect.ValueOf(cfg).Elem(), "MAILARC_")
	return errors.Join(errs...)
}

func setField(fv reflect.Value, val string) error {
	switch p := fv.Addr().Interface().(type) {
	case *string:
		*p = val
	case *int:
		n, err := strconv.Atoi(val)
		if err != nil {
			return err
		}
		*p = n
	case *bool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return err
		}
		*p = b
	case **bool:
		b, err := strconv.ParseBool(val)
		if err != nil {
			return err
		}
		*p = &b
	case *Size:
		return p.UnmarshalText([]byte(val))
	case *Duration:
		return p.UnmarshalText([]byte(val))
	case *[]string:
		*p = nil
		for _, s := range strings.Split(val, ",") {
			if s = strings.TrimSpace(s); s != "" {
				*p = append(*p, s)
			}
		}
	default:
		return fmt.Errorf("not settable from the environment")
	}
	return nil
}

// FieldError names the config key that is wrong.
type FieldError struct {
	Key string
	Msg string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Msg }

// Validate checks the configuration and returns every problem found, each
// as a *FieldError.
func (c *Config) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, &FieldError{Key: key, Msg: fmt.Sprintf(format, a...)})
	}
	if c.NodeName == "" {
		bad("node_name", "must not be empty")
	}
	if c.DataDir == "" {
		bad("data_dir", "must not be empty")
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		bad("log_level", "must be debug, info, warn or error, not %q", c.LogLevel)
	}
	if c.MaxMessageSize <= 0 {
		bad("max_message_size", "must be positive")
	}
	switch c.Store.Backend {
	case "local":
	case "s3":
		if c.Store.Bucket == "" {
			bad("store.bucket", "must be set for backend \"s3\"")
		}
		if e := c.Store.Endpoint; e != "" {
			if u, err := url.Parse(e); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad("store.endpoint", "must be an http:// or https:// URL, not %q", e)
			}
		}
		if strings.HasPrefix(c.Store.Prefix, "/") {
			bad("store.prefix", "must not start with /")
		}
		switch c.Store.ObjectLock {
		case "", "auto", "on", "off":
		default:
			bad("store.object_lock", "must be auto, on or off, not %q", c.Store.ObjectLock)
		}
	default:
		bad("store.backend", "must be \"local\" or \"s3\", not %q", c.Store.Backend)
	}
	switch c.Catalog.Backend {
	case "sqlite":
		if c.Catalog.DSNFile != "" {
			bad("catalog.dsn_file", "is only used with backend \"postgres\" (the SQLite catalog lives in data_dir)")
		}
	case "postgres":
		if c.Catalog.DSNFile == "" {
			bad("catalog.dsn_file", "must name a file holding the PostgreSQL connection string for backend \"postgres\" (the DSN itself never goes in the config)")
		}
	default:
		bad("catalog.backend", "must be \"sqlite\" or \"postgres\", not %q", c.Catalog.Backend)
	}
	if (c.HTTP.TLSCert == "") != (c.HTTP.TLSKey == "") {
		bad("http.tls_cert", "tls_cert and tls_key must be set together")
	}
	for _, n := range c.SMTP.AllowedNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			bad("smtp.allowed_networks", "%q is not a CIDR prefix", n)
		}
	}
	for _, r := range c.SMTP.Recipients {
		if !strings.Contains(r, "@") {
			bad("smtp.recipients", "%q is neither an address nor @domain", r)
		}
	}
	if c.Index.BatchSize <= 0 {
		bad("index.batch_size", "must be positive")
	}
	if c.Index.Workers <= 0 {
		bad("index.workers", "must be positive")
	}
	if c.LDAP.Enabled {
		c.LDAP.validate(bad)
	}
	names := map[string]bool{}
	for i, s := range c.Sources {
		key := fmt.Sprintf("sources[%d]", i)
		if s.Name == "" {
			bad(key+".name", "must not be empty")
		} else if names[s.Name] {
			bad(key+".name", "duplicate source name %q", s.Name)
		}
		names[s.Name] = true
		if s.Type != "imap" && s.Type != "pop3" {
			bad(key+".type", "must be imap or pop3, not %q", s.Type)
		}
		if s.Host == "" {
			bad(key+".host", "must not be empty")
		}
		switch s.TLS {
		case "", "implicit", "starttls", "none":
		default:
			bad(key+".tls", "must be implicit, starttls or none, not %q", s.TLS)
		}
		switch s.Mode {
		case "", "keep", "delete":
		default:
			bad(key+".mode", "must be keep or delete, not %q", s.Mode)
		}
	}
	return errors.Join(errs...)
}

// validate reports the problems of an enabled [ldap] section.
func (l *LDAP) validate(bad func(key, format string, a ...any)) {
	u, err := url.Parse(l.URL)
	switch {
	case l.URL == "":
		bad("ldap.url", "must be set (ldap://host or ldaps://host)")
	case err != nil || (u.Scheme != "ldap" && u.Scheme != "ldaps") || u.Hostname() == "":
		bad("ldap.url", "must be an ldap:// or ldaps:// URL with a host, not %q", l.URL)
	case (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil:
		bad("ldap.url", "must hold only scheme, host and port (the base DN and filter go in base_dn and user_filter), not %q", l.URL)
	case u.Scheme == "ldaps" && l.StartTLS:
		bad("ldap.start_tls", "is for ldap:// URLs; ldaps:// is TLS from the start")
	case u.Scheme == "ldap" && !l.StartTLS && !l.AllowInsecure && !isLoopback(u.Hostname()):
		bad("ldap.url", "ldap:// without start_tls would send passwords unencrypted to %s; use ldaps:// or start_tls = true, or set allow_insecure = true", u.Hostname())
	}
	if (l.BindDN == "") != (l.BindPasswordFile == "") {
		bad("ldap.bind_password_file", "bind_dn and bind_password_file must be set together (leave both empty for an anonymous search)")
	}
	if strings.TrimSpace(l.BaseDN) == "" {
		bad("ldap.base_dn", "must be set (where users are searched, e.g. \"ou=people,dc=example,dc=org\")")
	}
	checkFilter := func(key, f, what string) {
		if !strings.HasPrefix(f, "(") || !strings.HasSuffix(f, ")") || !strings.Contains(f, "%s") {
			bad(key, "must be a parenthesised LDAP filter with %%s where the %s goes, not %q", what, f)
		}
	}
	checkFilter("ldap.user_filter", l.UserFilter, "login name")
	if l.GroupBaseDN != "" {
		checkFilter("ldap.group_filter", l.GroupFilter, "user's DN")
	}
	if strings.TrimSpace(l.NameAttribute) == "" {
		bad("ldap.name_attribute", "must name the attribute holding the account name (uid, or sAMAccountName in Active Directory)")
	}
	if len(l.AddressAttributes) == 0 {
		bad("ldap.address_attributes", "must name at least one attribute (directory users see only mail to and from these addresses)")
	}
	if l.Timeout <= 0 {
		bad("ldap.timeout", "must be positive")
	}
}

// isLoopback reports whether host is "localhost" or a loopback IP address.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.IsLoopback()
}

// Size is a byte count written as "100MB", "512k", "2GiB" or a plain number.
type Size int64

// UnmarshalText parses a size with an optional unit (k, m, g, t; an
// optional "i" and "b"; powers of 1024).
func (s *Size) UnmarshalText(b []byte) error {
	n, err := ParseSize(string(b))
	if err != nil {
		return err
	}
	*s = Size(n)
	return nil
}

// MarshalText writes the size as a plain byte count.
func (s Size) MarshalText() ([]byte, error) { return []byte(strconv.FormatInt(int64(s), 10)), nil }

// ParseSize parses "100MB", "10k", "2g", "1048576".
func ParseSize(v string) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(v))
	t = strings.TrimSuffix(t, "b")
	t = strings.TrimSuffix(t, "i")
	mult := int64(1)
	if t != "" {
		switch t[len(t)-1] {
		case 'k':
			mult = 1 << 10
		case 'm':
			mult = 1 << 20
		case 'g':
			mult = 1 << 30
		case 't':
			mult = 1 << 40
		}
		if mult != 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(t), 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("invalid size %q (want e.g. 100MB, 512k, 1048576)", v)
	}
	return n * mult, nil
}

// Duration is a time.Duration written as "30s", "5m", "1h".
type Duration time.Duration

// UnmarshalText parses a Go duration string.
func (d *Duration) UnmarshalText(b []byte) error {
	v, err := time.ParseDuration(strings.TrimSpace(string(b)))
	if err != nil {
		return fmt.Errorf("invalid duration %q (want e.g. 30s, 5m)", string(b))
	}
	*d = Duration(v)
	return nil
}

// MarshalText writes the duration in Go syntax.
func (d Duration) MarshalText() ([]byte, error) { return []byte(time.Duration(d).String()), nil }
