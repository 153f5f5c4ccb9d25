// Package auth holds users, roles, password hashing, API tokens and the
// per-user visibility rule.
//
// Accounts live in the catalog's users table (name, argon2id password hash
// in PHC format, role, JSON list of addresses); API tokens in the tokens
// table, stored only as the SHA-256 of the token (the token itself is shown
// once, at creation). Roles: admin (everything), auditor (search and export
// all mail, manage holds), user (only mail where one of their addresses is a
// sender or recipient, envelope included).
//
// Verifying an argon2id hash costs tens of milliseconds by design, so a
// successful (user, password) check is cached in memory for a few minutes
// as a SHA-256 of the pair, and concurrent logins with the same pair wait
// for one check instead of each hashing; failed logins are throttled per
// user and per client address.
//
// # Directory accounts
//
// With a Directory set (package ldapauth: LDAP or Active Directory), a
// login name that is not a local account is checked against the directory.
// On success the account is kept in the users table with source "ldap",
// an empty password hash (no local password can match it) and the role and
// addresses the directory gave, refreshed at every login that reaches the
// directory; tokens, sessions, the visibility rule and the audit log then
// treat it like any other account. A local account always logs in locally
// and is never replaced by a directory entry of the same name.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

// Role is a user's role.
type Role string

// The roles.
const (
	RoleAdmin   Role = "admin"
	RoleAuditor Role = "auditor"
	RoleUser    Role = "user"
)

// Account sources (users.source).
const (
	SourceLocal = "local" // password hash in the users table
	SourceLDAP  = "ldap"  // checked against the directory at login
)

// ValidRole reports whether r is a known role.
func ValidRole(r Role) bool { return r == RoleAdmin || r == RoleAuditor || r == RoleUser }

// Errors.
var (
	ErrBadCredentials = errors.New("auth: invalid credentials")
	ErrThrottled      = errors.New("auth: too many failed attempts, try again later")
	ErrNoUser         = errors.New("auth: no such user")
	ErrExists         = errors.New("auth: user already exists")
	// ErrDirectory wraps a directory login that failed for another reason
	// than the credentials (directory unreachable, misconfigured, or an
	// entry whose name is a local account's).
	ErrDirectory = errors.New("auth: directory login failed")
)

// User is an account.
type User struct {
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Addresses []string  `json:"addresses"`
	Created   time.Time `json:"created"`
	// Source is SourceLocal or SourceLDAP (a directory account).
	Source string `json:"source"`
}

// SeesAll reports whether the user may see every message.
func (u *User) SeesAll() bool { return u.Role == RoleAdmin || u.Role == RoleAuditor }

// Service manages accounts over the catalog's tables.
type Service struct {
	w, r *sql.DB
	now  func() time.Time

	onChange atomic.Pointer[func()]
	dir      atomic.Pointer[dirHolder]

	mu       sync.Mutex
	cache    map[[32]byte]cached
	inflight map[[32]byte]*loginCall // password checks under way, by cache key
	failures map[string]*failure
}

// loginCall is one password check that concurrent logins with the same
// name and password wait for instead of each paying for argon2id (a client
// opening 16 connections at once with HTTP Basic would otherwise cost 16
// hashes before the first result is cached).
type loginCall struct {
	name string
	done chan struct{}
	u    *User
	err  error
	// abandoned: the first caller's own context ended during the check,
	// so its error says nothing about the others, who check again.
	abandoned bool
	waiters   int // callers sharing this check (guarded by Service.mu)
}

// errLoginAborted is what waiters see if the check they waited for ended
// without a result (it panicked).
var errLoginAborted = errors.New("auth: login check aborted")

type cached struct {
	login   string // the name given at login
	user    string // the account (differs for a directory login by e-mail address)
	u       *User
	expires time.Time
}

type failure struct {
	count int
	until time.Time
	last  time.Time
}

// Directory checks logins against an external directory (package ldapauth).
type Directory interface {
	// Authenticate checks name and password in the directory. It returns
	// ErrBadCredentials (possibly wrapped) when the directory has no such
	// user or refuses the password, and any other error when it could not
	// decide (unreachable, misconfigured).
	Authenticate(ctx context.Context, name, password string) (*DirectoryUser, error)
}

// DirectoryUser is an account as the directory describes it.
type DirectoryUser struct {
	Name      string // account name in mailarc (the directory's name attribute)
	DN        string
	Role      Role
	Addresses []string
}

type dirHolder struct{ d Directory }

// SetDirectory makes logins that are not local accounts go to d (nil turns
// directory logins off). Remembered logins are forgotten.
func (s *Service) SetDirectory(d Directory) {
	if d == nil {
		s.dir.Store(nil)
	} else {
		s.dir.Store(&dirHolder{d})
	}
	s.mu.Lock()
	clear(s.cache)
	s.mu.Unlock()
}

// New returns a Service using the catalog's writer and reader handles.
func New(writer, reader *sql.DB) *Service {
	return &Service{w: writer, r: reader, now: time.Now, cache: map[[32]byte]cached{},
		inflight: map[[32]byte]*loginCall{}, failures: map[string]*failure{}}
}

// argon2id parameters (OWASP's recommended minimum: m=19 MiB, t=2, p=1).
const (
	argonTime    = 2
	argonMemory  = 19 * 1024
	argonThreads = 1
	argonKeyLen  = 32
)

// HashPassword returns an argon2id PHC string for pw.
func HashPassword(pw string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("auth: salt: %w", err)
	}
	key := argon2.IDKey([]byte(pw), salt, argonTime, argonMemory, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=19$m=%d,t=%d,p=%d$%s$%s", argonMemory, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// CheckPassword reports whether pw matches the PHC hash.
func CheckPassword(hash, pw string) bool {
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var m, t uint32
	var p uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &m, &t, &p); err != nil {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || m > 1<<22 || t > 64 || p == 0 {
		return false
	}
	got := argon2.IDKey([]byte(pw), salt, t, m, p, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// AddUser creates an account.
func (s *Service) AddUser(ctx context.Context, name, password string, role Role, addresses []string) error {
	if err := validName(name); err != nil {
		return err
	}
	if !ValidRole(role) {
		return fmt.Errorf("auth: unknown role %q (admin, auditor or user)", role)
	}
	if err := ValidAddresses(addresses); err != nil {
		return err
	}
	if len(password) < 8 {
		return errors.New("auth: password must have at least 8 characters")
	}
	h, err := HashPassword(password)
	if err != nil {
		return err
	}
	now := s.now().Unix()
	res, err := s.w.ExecContext(ctx, `INSERT INTO users(name, password_hash, role, addresses, created, updated, source) VALUES (?,?,?,?,?,?,?)
		ON CONFLICT(name) DO NOTHING`,
		name, h, string(role), addrJSON(addresses), now, now, SourceLocal)
	if err != nil {
		return fmt.Errorf("auth: add user %s: %w", name, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("auth: add user %s: %w", name, err)
	} else if n == 0 {
		return fmt.Errorf("%w: %s", ErrExists, name)
	}
	s.changed()
	return nil
}

// SetPassword changes a user's password and drops cached logins. A
// directory account's password is the directory's and is refused here.
func (s *Service) SetPassword(ctx context.Context, name, password string) error {
	u, _, err := s.load(ctx, name)
	if err != nil {
		return err
	}
	if u.Source == SourceLDAP {
		return fmt.Errorf("auth: %s is a directory (LDAP) account: change its password in the directory", name)
	}
	if len(password) < 8 {
		return errors.New("auth: password must have at least 8 characters")
	}
	h, err := HashPassword(password)
	if err != nil {
		return err
	}
	r, err := s.w.ExecContext(ctx, `UPDATE users SET password_hash=?, updated=? WHERE name=? AND source<>?`, h, s.now().Unix(), name, SourceLDAP)
	if err != nil {
		return fmt.Errorf("auth: set password %s: %w", name, err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	s.dropCache(name)
	s.changed()
	return nil
}

// DeleteUser removes an account and its tokens.
func (s *Service) DeleteUser(ctx context.Context, name string) error {
	r, err := s.w.ExecContext(ctx, `DELETE FROM users WHERE name=?`, name)
	if err != nil {
		return fmt.Errorf("auth: delete user %s: %w", name, err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	if _, err := s.w.ExecContext(ctx, `DELETE FROM tokens WHERE "user"=?`, name); err != nil {
		return fmt.Errorf("auth: delete tokens of %s: %w", name, err)
	}
	// The deletion is remembered so mirrored peers delete the account too
	// instead of sending it back (replication.go).
	if err := s.setMeta(ctx, userDeletedMeta+name, strconv.FormatInt(s.now().Unix(), 10)); err != nil {
		return err
	}
	s.dropCache(name)
	s.changed()
	return nil
}

// Get returns one user.
func (s *Service) Get(ctx context.Context, name string) (*User, error) {
	u, _, err := s.load(ctx, name)
	return u, err
}

// List returns every user, by name.
func (s *Service) List(ctx context.Context) ([]User, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, role, addresses, created, source FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("auth: list users: %w", err)
	}
	defer rows.Close()
	var out []User
	for rows.Next() {
		var u User
		var addrs string
		var created int64
		if err := rows.Scan(&u.Name, &u.Role, &addrs, &created, &u.Source); err != nil {
			return nil, fmt.Errorf("auth: list users: %w", err)
		}
		_ = json.Unmarshal([]byte(addrs), &u.Addresses)
		u.Created = time.Unix(created, 0).UTC()
		out = append(out, u)
	}
	return out, rows.Err()
}

// Count returns the number of accounts.
func (s *Service) Count(ctx context.Context) (int, error) {
	var n int
	if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n); err != nil {
		return 0, fmt.Errorf("auth: count users: %w", err)
	}
	return n, nil
}

func (s *Service) load(ctx context.Context, name string) (*User, string, error) {
	var u User
	var addrs, hash string
	var created int64
	err := s.r.QueryRowContext(ctx, `SELECT name, role, addresses, created, password_hash, source FROM users WHERE name=?`, name).
		Scan(&u.Name, &u.Role, &addrs, &created, &hash, &u.Source)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	if err != nil {
		return nil, "", fmt.Errorf("auth: load user %s: %w", name, err)
	}
	_ = json.Unmarshal([]byte(addrs), &u.Addresses)
	u.Created = time.Unix(created, 0).UTC()
	return &u, hash, nil
}

// Throttling: after maxFailures failed logins for a key (user or client
// address) within failureWindow, further attempts are refused until a lock
// that doubles with each further failure (capped) has passed.
const (
	maxFailures   = 5
	failureWindow = 15 * time.Minute
	maxLock       = 15 * time.Minute
	cacheTTL      = 5 * time.Minute
)

// Login checks a user name and password from client (an IP address, for
// throttling) and returns the user.
//
// A local account is checked against its password hash. Any other name
// goes to the directory when one is set (SetDirectory); a directory
// account that logs in is created or refreshed in the users table. Wrong
// passwords and unknown names, local or in the directory, count towards
// the same throttle and return ErrBadCredentials. A directory that cannot
// answer returns an error wrapping ErrDirectory, which is not counted (the
// caller logs it; local accounts keep working).
func (s *Service) Login(ctx context.Context, name, password, client string) (*User, error) {
	now := s.now()
	key := loginKey(name, password)
	// Directory names are matched without regard to case, so the per-user
	// throttle is too.
	throttleKeys := []string{"u:" + strings.ToLower(name), "c:" + client}
	s.mu.Lock()
	for _, k := range throttleKeys {
		if f := s.failures[k]; f != nil && now.Before(f.until) {
			s.mu.Unlock()
			return nil, ErrThrottled
		}
	}
	if c, ok := s.cache[key]; ok && c.login == name && now.Before(c.expires) {
		s.mu.Unlock()
		u := *c.u
		return &u, nil
	}
	if call, ok := s.inflight[key]; ok && call.name == name {
		call.waiters++
		s.mu.Unlock()
		select {
		case <-call.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if call.abandoned {
			return s.Login(ctx, name, password, client)
		}
		if call.err != nil {
			return nil, call.err
		}
		s.mu.Lock()
		for _, k := range throttleKeys { // this client logged in too
			delete(s.failures, k)
		}
		s.mu.Unlock()
		u := *call.u
		return &u, nil
	}
	call := &loginCall{name: name, done: make(chan struct{}), err: errLoginAborted}
	s.inflight[key] = call
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.inflight, key)
		s.mu.Unlock()
		close(call.done)
	}()
	u, err := s.check(ctx, name, password, key, throttleKeys, now)
	call.u, call.err, call.abandoned = u, err, err != nil && ctx.Err() != nil
	if err != nil {
		return nil, err
	}
	cp := *u
	return &cp, nil
}

// loginKey is the cache and in-flight key of a name and password.
func loginKey(name, password string) [32]byte {
	return sha256.Sum256([]byte(name + "\x00" + password))
}

// check verifies name and password (locally or in the directory), counts
// a failure towards the throttle or caches a success, and returns the
// user (shared with the cache: callers copy it).
func (s *Service) check(ctx context.Context, name, password string, key [32]byte, throttleKeys []string, now time.Time) (*User, error) {
	u, hash, err := s.load(ctx, name)
	if err != nil && !errors.Is(err, ErrNoUser) {
		return nil, err
	}
	ok := false
	dir := s.dir.Load()
	switch {
	case u != nil && u.Source != SourceLDAP:
		ok = CheckPassword(hash, password)
	case dir != nil:
		u, err = s.directoryLogin(ctx, dir.d, name, password)
		if err != nil && !errors.Is(err, ErrBadCredentials) {
			return nil, err
		}
		ok = err == nil
	default:
		CheckPassword(dummyHash, password) // same cost whether or not the user exists
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok {
		// A lock runs from the answer, not from the request: the password
		// hash (or the directory) may have taken a while.
		failed := s.now()
		for _, k := range throttleKeys {
			f := s.failures[k]
			if f == nil || failed.Sub(f.last) > failureWindow {
				f = &failure{}
				s.failures[k] = f
			}
			f.count++
			f.last = failed
			if f.count >= maxFailures {
				lock := time.Second << min(f.count-maxFailures, 10)
				f.until = failed.Add(min(lock, maxLock))
			}
		}
		return nil, ErrBadCredentials
	}
	for _, k := range throttleKeys {
		delete(s.failures, k)
	}
	if len(s.cache) > 10000 {
		clear(s.cache)
	}
	s.cache[key] = cached{login: name, user: u.Name, u: u, expires: now.Add(cacheTTL)}
	return u, nil
}

// directoryLogin checks name and password in the directory and stores the
// account it describes.
func (s *Service) directoryLogin(ctx context.Context, d Directory, name, password string) (*User, error) {
	if name == "" || password == "" {
		// An LDAP simple bind with an empty password is an anonymous bind,
		// which many servers accept: never ask.
		return nil, ErrBadCredentials
	}
	du, err := d.Authenticate(ctx, name, password)
	if errors.Is(err, ErrBadCredentials) {
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDirectory, err)
	}
	return s.storeDirectoryUser(ctx, du)
}

// storeDirectoryUser creates or refreshes a directory account from du and
// returns it. A local account of the same name is left alone and the login
// refused.
func (s *Service) storeDirectoryUser(ctx context.Context, du *DirectoryUser) (*User, error) {
	if err := validName(du.Name); err != nil {
		return nil, fmt.Errorf("%w: directory entry %s: %w", ErrDirectory, du.DN, err)
	}
	if !ValidRole(du.Role) {
		return nil, fmt.Errorf("%w: directory entry %s: unknown role %q", ErrDirectory, du.DN, du.Role)
	}
	now := s.now().Unix()
	addrs := addrJSON(du.Addresses)
	// Insert, or update a directory account whose role or addresses
	// changed; a local account of that name is not touched.
	res, err := s.w.ExecContext(ctx, `INSERT INTO users(name, password_hash, role, addresses, created, updated, source) VALUES (?,'',?,?,?,?,?)
		ON CONFLICT(name) DO UPDATE SET role=excluded.role, addresses=excluded.addresses, updated=excluded.updated
		WHERE users.source=excluded.source AND (users.role<>excluded.role OR users.addresses<>excluded.addresses)`,
		du.Name, string(du.Role), addrs, now, now, SourceLDAP)
	if err != nil {
		return nil, fmt.Errorf("auth: store directory account %s: %w", du.Name, err)
	}
	u, _, err := s.load(ctx, du.Name)
	if err != nil {
		return nil, err
	}
	if u.Source != SourceLDAP {
		return nil, fmt.Errorf("%w: directory entry %s has the name of the local account %s; refusing it (rename or delete one of them)", ErrDirectory, du.DN, du.Name)
	}
	if n, err := res.RowsAffected(); err == nil && n > 0 {
		s.dropCache(du.Name)
		s.changed()
	}
	return u, nil
}

var dummyHash = func() string {
	h, _ := HashPassword("not a real password")
	return h
}()

func (s *Service) dropCache(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, c := range s.cache {
		if c.user == name {
			delete(s.cache, k)
		}
	}
}

// Token is an API token's metadata (the secret is never stored).
type Token struct {
	ID       string    `json:"id"`
	User     string    `json:"user"`
	Name     string    `json:"name"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used,omitempty"`
}

const tokenPrefix = "mla_"

// CreateToken makes a new API token for user and returns the secret (shown
// once) and its metadata.
func (s *Service) CreateToken(ctx context.Context, user, name string) (string, Token, error) {
	if _, err := s.Get(ctx, user); err != nil {
		return "", Token{}, err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", Token{}, fmt.Errorf("auth: token: %w", err)
	}
	secret := tokenPrefix + base64.RawURLEncoding.EncodeToString(b)
	idb := make([]byte, 8)
	if _, err := rand.Read(idb); err != nil {
		return "", Token{}, fmt.Errorf("auth: token: %w", err)
	}
	t := Token{ID: hex.EncodeToString(idb), User: user, Name: name, Created: s.now().UTC().Truncate(time.Second)}
	_, err := s.w.ExecContext(ctx, `INSERT INTO tokens(hash, id, "user", name, created) VALUES (?,?,?,?,?)`,
		tokenHash(secret), t.ID, user, name, t.Created.Unix())
	if err != nil {
		return "", Token{}, fmt.Errorf("auth: store token: %w", err)
	}
	return secret, t, nil
}

// Tokens lists a user's tokens (all users' when user is "").
func (s *Service) Tokens(ctx context.Context, user string) ([]Token, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT id, "user", name, created, last_used FROM tokens WHERE ?='' OR "user"=? ORDER BY created`, user, user)
	if err != nil {
		return nil, fmt.Errorf("auth: list tokens: %w", err)
	}
	defer rows.Close()
	var out []Token
	for rows.Next() {
		var t Token
		var c, l int64
		if err := rows.Scan(&t.ID, &t.User, &t.Name, &c, &l); err != nil {
			return nil, fmt.Errorf("auth: list tokens: %w", err)
		}
		t.Created = time.Unix(c, 0).UTC()
		if l > 0 {
			t.LastUsed = time.Unix(l, 0).UTC()
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// RevokeToken deletes token id; only its owner or an admin may (by is the
// acting user).
func (s *Service) RevokeToken(ctx context.Context, by *User, id string) error {
	q := `DELETE FROM tokens WHERE id=? AND "user"=?`
	args := []any{id, by.Name}
	if by.Role == RoleAdmin {
		q = `DELETE FROM tokens WHERE id=?`
		args = args[:1]
	}
	r, err := s.w.ExecContext(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("auth: revoke token: %w", err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		return fmt.Errorf("auth: no such token %s", id)
	}
	return nil
}

// TokenUser returns the user owning the API token secret.
func (s *Service) TokenUser(ctx context.Context, secret string) (*User, error) {
	if !strings.HasPrefix(secret, tokenPrefix) {
		return nil, ErrBadCredentials
	}
	var user string
	err := s.r.QueryRowContext(ctx, `SELECT "user" FROM tokens WHERE hash=?`, tokenHash(secret)).Scan(&user)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrBadCredentials
	}
	if err != nil {
		return nil, fmt.Errorf("auth: token lookup: %w", err)
	}
	return s.Get(ctx, user)
}

// EnsureAdmin creates the bootstrap account "admin" when no user exists.
// With password empty a random one is generated and returned (to be shown
// once); created reports whether an account was made.
func (s *Service) EnsureAdmin(ctx context.Context, password string) (created bool, generated string, err error) {
	n, err := s.Count(ctx)
	if err != nil || n > 0 {
		return false, "", err
	}
	if password == "" {
		b := make([]byte, 15)
		if _, err := rand.Read(b); err != nil {
			return false, "", fmt.Errorf("auth: generate password: %w", err)
		}
		password = base64.RawURLEncoding.EncodeToString(b)
		generated = password
	}
	if err := s.AddUser(ctx, "admin", password, RoleAdmin, nil); err != nil {
		if errors.Is(err, ErrExists) {
			return false, "", nil // another node sharing the catalog created it first
		}
		return false, "", err
	}
	return true, generated, nil
}

func tokenHash(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

func validName(name string) error {
	if name == "" || len(name) > 128 {
		return errors.New("auth: user name must have 1 to 128 characters")
	}
	for _, r := range name {
		if r <= ' ' || r == ':' || r == '/' || r == 0x7f {
			return fmt.Errorf("auth: user name %q may not contain spaces, ':' or '/'", name)
		}
	}
	return nil
}

func addrJSON(a []string) string {
	out := make([]string, 0, len(a))
	for _, s := range a {
		if s = strings.ToLower(strings.TrimSpace(s)); s != "" {
			out = append(out, s)
		}
	}
	b, _ := json.Marshal(out)
	return string(b)
}

// Account replication between mirrored peers (package mirror calls
// ExportUsers and MergeUsers over its authenticated TLS link).
//
// Each account travels as a Record: the users row (with its argon2id hash)
// and its session generation. The newer record wins, by the users.updated
// time (Unix seconds; ties go to the larger password hash, so both sides
// pick the same). A deletion is remembered in the meta table under
// "user_deleted:NAME" (its time) and wins over a record updated at or
// before it. Session generations (logout) merge by maximum.

const userDeletedMeta = "user_deleted:"

// maxRecords caps a peer's account list.
const maxRecords = 100000

// Record is one replicated account (or deletion).
type Record struct {
	Name         string   `json:"name"`
	PasswordHash string   `json:"password_hash,omitempty"`
	Role         Role     `json:"role,omitempty"`
	Addresses    []string `json:"addresses,omitempty"`
	Created      int64    `json:"created,omitempty"`
	Updated      int64    `json:"updated"`
	Deleted      bool     `json:"deleted,omitempty"`
	SessionGen   int64    `json:"session_gen,omitempty"`
	// Source is SourceLDAP for a directory account (no password hash);
	// empty means local.
	Source string `json:"source,omitempty"`
}

// OnChange registers fn to run after every local account change (the
// server wires it to the mirror, which then sends the accounts to peers).
func (s *Service) OnChange(fn func()) {
	s.onChange.Store(&fn)
}

func (s *Service) changed() {
	if f := s.onChange.Load(); f != nil && *f != nil {
		(*f)()
	}
}

func (s *Service) setMeta(ctx context.Context, key, value string) error {
	if _, err := s.w.ExecContext(ctx, `INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value`, key, value); err != nil {
		return fmt.Errorf("auth: store %s: %w", key, err)
	}
	return nil
}

func (s *Service) metaInt(ctx context.Context, key string) (int64, error) {
	var v string
	err := s.r.QueryRowContext(ctx, `SELECT value FROM meta WHERE key=?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("auth: read %s: %w", key, err)
	}
	n, _ := strconv.ParseInt(v, 10, 64)
	return n, nil
}

// Records returns every account and remembered deletion.
func (s *Service) Records(ctx context.Context) ([]Record, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT name, password_hash, role, addresses, created, updated, source FROM users ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("auth: export users: %w", err)
	}
	var out []Record
	for rows.Next() {
		var r Record
		var addrs string
		if err := rows.Scan(&r.Name, &r.PasswordHash, &r.Role, &addrs, &r.Created, &r.Updated, &r.Source); err != nil {
			rows.Close()
			return nil, fmt.Errorf("auth: export users: %w", err)
		}
		_ = json.Unmarshal([]byte(addrs), &r.Addresses)
		if r.Source == SourceLocal {
			r.Source = ""
		}
		out = append(out, r)
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("auth: export users: %w", err)
	}
	rows, err = s.r.QueryContext(ctx, `SELECT key, value FROM meta WHERE key >= ? AND key < ?`, userDeletedMeta, userDeletedMeta+"\x7f")
	if err != nil {
		return nil, fmt.Errorf("auth: export deletions: %w", err)
	}
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("auth: export deletions: %w", err)
		}
		t, _ := strconv.ParseInt(v, 10, 64)
		out = append(out, Record{Name: strings.TrimPrefix(k, userDeletedMeta), Updated: t, Deleted: true})
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("auth: export deletions: %w", err)
	}
	for i := range out {
		if out[i].SessionGen, err = s.metaInt(ctx, sessionGenMeta+out[i].Name); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ExportUsers is Records as JSON (mirror.UserSync).
func (s *Service) ExportUsers(ctx context.Context) ([]byte, error) {
	rs, err := s.Records(ctx)
	if err != nil {
		return nil, err
	}
	if rs == nil {
		rs = []Record{}
	}
	b, err := json.Marshal(rs)
	if err != nil {
		return nil, fmt.Errorf("auth: export users: %w", err)
	}
	return b, nil
}

// MergeUsers applies a peer's records (JSON) with MergeRecords.
func (s *Service) MergeUsers(ctx context.Context, data []byte) (int, error) {
	var rs []Record
	if err := json.Unmarshal(data, &rs); err != nil {
		return 0, fmt.Errorf("auth: peer accounts: %w", err)
	}
	return s.MergeRecords(ctx, rs)
}

// valid checks a record received from a peer.
func (r *Record) valid() error {
	if err := validName(r.Name); err != nil {
		return err
	}
	if r.Deleted {
		return nil
	}
	if !ValidRole(r.Role) {
		return fmt.Errorf("auth: peer account %s: unknown role %q", r.Name, r.Role)
	}
	switch r.Source {
	case "", SourceLocal:
		if !strings.HasPrefix(r.PasswordHash, "$argon2id$") || len(r.PasswordHash) > 512 {
			return fmt.Errorf("auth: peer account %s: not an argon2id hash", r.Name)
		}
	case SourceLDAP:
		if r.PasswordHash != "" {
			return fmt.Errorf("auth: peer account %s: a directory account with a password hash", r.Name)
		}
	default:
		return fmt.Errorf("auth: peer account %s: unknown source %q", r.Name, r.Source)
	}
	if len(r.Addresses) > 1000 {
		return fmt.Errorf("auth: peer account %s: too many addresses", r.Name)
	}
	return nil
}

// MergeRecords applies records, last writer wins, and returns how many
// accounts changed. Invalid records are skipped.
func (s *Service) MergeRecords(ctx context.Context, rs []Record) (int, error) {
	if len(rs) > maxRecords {
		return 0, fmt.Errorf("auth: %d peer accounts (limit %d)", len(rs), maxRecords)
	}
	changed := 0
	for i := range rs {
		r := &rs[i]
		if r.valid() != nil {
			continue
		}
		if r.SessionGen > 0 {
			cur, err := s.metaInt(ctx, sessionGenMeta+r.Name)
			if err != nil {
				return changed, err
			}
			if r.SessionGen > cur {
				if err := s.setMeta(ctx, sessionGenMeta+r.Name, strconv.FormatInt(r.SessionGen, 10)); err != nil {
					return changed, err
				}
			}
		}
		deletedAt, err := s.metaInt(ctx, userDeletedMeta+r.Name)
		if err != nil {
			return changed, err
		}
		var hash string
		var updated int64
		err = s.r.QueryRowContext(ctx, `SELECT password_hash, updated FROM users WHERE name=?`, r.Name).Scan(&hash, &updated)
		exists := err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return changed, fmt.Errorf("auth: merge account %s: %w", r.Name, err)
		}
		if r.Deleted {
			if r.Updated > deletedAt {
				if err := s.setMeta(ctx, userDeletedMeta+r.Name, strconv.FormatInt(r.Updated, 10)); err != nil {
					return changed, err
				}
			}
			if exists && updated <= r.Updated {
				if _, err := s.w.ExecContext(ctx, `DELETE FROM users WHERE name=?`, r.Name); err != nil {
					return changed, fmt.Errorf("auth: merge account %s: %w", r.Name, err)
				}
				if _, err := s.w.ExecContext(ctx, `DELETE FROM tokens WHERE "user"=?`, r.Name); err != nil {
					return changed, fmt.Errorf("auth: merge account %s: %w", r.Name, err)
				}
				s.dropCache(r.Name)
				changed++
			}
			continue
		}
		if r.Updated <= deletedAt {
			continue // deleted after this version was written
		}
		if exists && (updated > r.Updated || (updated == r.Updated && hash >= r.PasswordHash)) {
			continue
		}
		src := r.Source
		if src == "" {
			src = SourceLocal
		}
		_, err = s.w.ExecContext(ctx, `INSERT INTO users(name, password_hash, role, addresses, created, updated, source) VALUES (?,?,?,?,?,?,?)
			ON CONFLICT(name) DO UPDATE SET password_hash=excluded.password_hash, role=excluded.role,
			addresses=excluded.addresses, created=excluded.created, updated=excluded.updated, source=excluded.source`,
			r.Name, r.PasswordHash, string(r.Role), addrJSON(r.Addresses), r.Created, r.Updated, src)
		if err != nil {
			return changed, fmt.Errorf("auth: merge account %s: %w", r.Name, err)
		}
		s.dropCache(r.Name)
		changed++
	}
	return changed, nil
}
