package auth_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/auth"
	"github.com/mailarc/mailarc/internal/catalog/catalogtest"
	"github.com/mailarc/mailarc/internal/testutil"
)

// fakeDirectory is an in-memory auth.Directory: accounts by login name
// (several names may lead to one account, as a uid and a mail address do).
type fakeDirectory struct {
	mu       sync.Mutex
	users    map[string]fakeEntry
	down     bool
	requests []string // names asked for
}

type fakeEntry struct {
	password string
	user     auth.DirectoryUser
}

func (d *fakeDirectory) Authenticate(_ context.Context, name, password string) (*auth.DirectoryUser, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.requests = append(d.requests, name)
	if d.down {
		return nil, errors.New("ldap: connect ldaps://dc1: connection refused")
	}
	e, ok := d.users[name]
	if !ok || e.password != password {
		return nil, auth.ErrBadCredentials
	}
	u := e.user
	return &u, nil
}

func (d *fakeDirectory) set(names []string, password string, u auth.DirectoryUser) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, n := range names {
		d.users[n] = fakeEntry{password, u}
	}
}

func TestDirectoryAccounts(t *testing.T) {
	catalogtest.ForEach(t, &pg, testDirectoryAccounts)
}

func testDirectoryAccounts(t *testing.T, b catalogtest.Backend) {
	ctx := context.Background()
	w, r := b.New(t).DB()
	s := auth.New(w, r)
	if _, _, err := s.EnsureAdmin(ctx, "admin-pass-1"); err != nil {
		t.Fatal(err)
	}
	d := &fakeDirectory{users: map[string]fakeEntry{}}
	s.SetDirectory(d)
	changes := 0
	s.OnChange(func() { changes++ })

	alice := auth.DirectoryUser{Name: "alice", DN: "uid=alice,ou=people,dc=example,dc=org", Role: auth.RoleUser,
		Addresses: []string{"Alice@Example.org", "a@example.org"}}
	d.set([]string{"alice", "alice@example.org"}, "alice-pass", alice)

	// A directory login creates the account, under the directory's name
	// whatever name was typed.
	u, err := s.Login(ctx, "alice@example.org", "alice-pass", "10.0.0.1")
	if err != nil || u.Name != "alice" || u.Source != auth.SourceLDAP || u.Role != auth.RoleUser ||
		!slices.Equal(u.Addresses, []string{"alice@example.org", "a@example.org"}) {
		t.Fatalf("directory login: %+v %v", u, err)
	}
	if changes != 1 {
		t.Fatalf("%d change notifications after creating the account, want 1", changes)
	}
	if u, err := s.Login(ctx, "alice", "alice-pass", "10.0.0.1"); err != nil || u.Name != "alice" {
		t.Fatalf("second login: %+v %v", u, err)
	}
	if changes != 1 {
		t.Fatalf("an unchanged directory account was rewritten (%d notifications)", changes)
	}
	us, err := s.List(ctx)
	if err != nil || len(us) != 2 || us[0].Source != auth.SourceLocal || us[1].Name != "alice" || us[1].Source != auth.SourceLDAP {
		t.Fatalf("list: %+v %v", us, err)
	}

	// A changed directory entry is refreshed at the next login that
	// reaches the directory.
	alice.Role, alice.Addresses = auth.RoleAuditor, []string{"alice@example.org"}
	d.set([]string{"alice", "alice@example.org"}, "alice-pass-2", alice)
	if u, err := s.Login(ctx, "alice", "alice-pass-2", "10.0.0.1"); err != nil || u.Role != auth.RoleAuditor || len(u.Addresses) != 1 {
		t.Fatalf("refreshed login: %+v %v", u, err)
	}
	if got, _ := s.Get(ctx, "alice"); got.Role != auth.RoleAuditor || len(got.Addresses) != 1 {
		t.Fatalf("stored after refresh: %+v", got)
	}

	// No local password: neither set nor usable.
	if err := s.SetPassword(ctx, "alice", "local-pass-1"); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Fatalf("set password of a directory account: %v", err)
	}
	s.SetDirectory(nil)
	if _, err := s.Login(ctx, "alice", "alice-pass-2", "10.0.0.9"); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("directory account without a directory: %v", err)
	}
	s.SetDirectory(d)

	// An empty password never reaches the directory (anonymous bind).
	d.requests = nil
	if _, err := s.Login(ctx, "alice", "", "10.0.0.2"); !errors.Is(err, auth.ErrBadCredentials) || len(d.requests) != 0 {
		t.Fatalf("empty password: %v, directory asked %q", err, d.requests)
	}

	// Local accounts log in locally only, and a directory entry with a
	// local account's name is refused, not merged.
	d.set([]string{"admin", "boss@example.org"}, "dir-pass", auth.DirectoryUser{Name: "admin", DN: "uid=admin,dc=example,dc=org", Role: auth.RoleAdmin})
	d.requests = nil
	if _, err := s.Login(ctx, "admin", "dir-pass", "10.0.0.3"); !errors.Is(err, auth.ErrBadCredentials) || len(d.requests) != 0 {
		t.Fatalf("local name with the directory's password: %v, directory asked %q", err, d.requests)
	}
	if _, err := s.Login(ctx, "boss@example.org", "dir-pass", "10.0.0.3"); !errors.Is(err, auth.ErrDirectory) || !strings.Contains(err.Error(), "local account admin") {
		t.Fatalf("directory entry named like a local account: %v", err)
	}
	if u, err := s.Login(ctx, "admin", "admin-pass-1", "10.0.0.3"); err != nil || u.Source != auth.SourceLocal {
		t.Fatalf("local admin after the collision: %+v %v", u, err)
	}

	// Wrong passwords count towards the throttle like local ones.
	for i := 0; i < 5; i++ {
		if _, err := s.Login(ctx, "carol", "guess", "10.0.0.4"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := s.Login(ctx, "Carol", "guess", "10.0.0.5"); !errors.Is(err, auth.ErrThrottled) {
		t.Fatalf("after 5 failures (name in another case): %v, want throttled", err)
	}

	// A directory that cannot answer: a distinct error, not counted as a
	// failed password; local accounts still log in.
	d.mu.Lock()
	d.down = true
	d.mu.Unlock()
	for i := 0; i < 6; i++ {
		if _, err := s.Login(ctx, "dave", "dave-pass", "10.0.0.6"); !errors.Is(err, auth.ErrDirectory) || errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("directory down, attempt %d: %v", i, err)
		}
	}
	if _, err := s.Login(ctx, "admin", "admin-pass-1", "10.0.0.6"); err != nil {
		t.Fatalf("local admin with the directory down: %v", err)
	}
}

// TestDirectoryAccountReplication: a directory account travels to a
// mirrored peer without a password hash and stays a directory account
// there; a forged record with both is refused.
func TestDirectoryAccountReplication(t *testing.T) {
	catalogtest.ForEach(t, &pg, func(t *testing.T, b catalogtest.Backend) {
		ctx := context.Background()
		a, peer := service(t, b), service(t, b)
		d := &fakeDirectory{users: map[string]fakeEntry{}}
		d.set([]string{"alice"}, "alice-pass", auth.DirectoryUser{Name: "alice", DN: "uid=alice", Role: auth.RoleUser, Addresses: []string{"alice@example.org"}})
		a.SetDirectory(d)
		if _, err := a.Login(ctx, "alice", "alice-pass", "10.0.0.1"); err != nil {
			t.Fatal(err)
		}
		data, err := a.ExportUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if n, err := peer.MergeUsers(ctx, data); err != nil || n != 1 {
			t.Fatalf("merge: %d %v", n, err)
		}
		u, err := peer.Get(ctx, "alice")
		if err != nil || u.Source != auth.SourceLDAP || u.Addresses[0] != "alice@example.org" {
			t.Fatalf("replicated: %+v %v", u, err)
		}
		if _, err := peer.Login(ctx, "alice", "", "10.0.0.1"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("replicated directory account, empty password: %v", err)
		}
		forged, _ := json.Marshal([]auth.Record{{Name: "mallory", Source: auth.SourceLDAP, PasswordHash: "$argon2id$x", Role: auth.RoleAdmin, Updated: 1}})
		if n, err := peer.MergeUsers(ctx, forged); err != nil || n != 0 {
			t.Fatalf("forged record: %d %v", n, err)
		}
	})
}

// gateDirectory answers every request as a fakeDirectory would, but only
// once open is closed, and counts the requests.
type gateDirectory struct {
	fakeDirectory
	open  chan struct{}
	calls atomic.Int64
	err   error // returned instead of an answer when set
}

func (d *gateDirectory) Authenticate(ctx context.Context, name, password string) (*auth.DirectoryUser, error) {
	d.calls.Add(1)
	<-d.open
	if d.err != nil {
		return nil, d.err
	}
	return d.fakeDirectory.Authenticate(ctx, name, password)
}

// TestConcurrentLoginsCheckOnce: logins with the same name and password
// arriving together (a client opening many connections with HTTP Basic)
// share one check, for a right and for a wrong password alike, and for a
// directory that times out (its deadline is its own: the others do not
// each try again).
func TestConcurrentLoginsCheckOnce(t *testing.T) {
	ctx := context.Background()
	w, r := catalogtest.SQLiteBackend().New(t).DB()
	s := auth.New(w, r)
	timeout := fmt.Errorf("ldap: dial tcp 192.0.2.1:636: %w", context.DeadlineExceeded)
	for _, pw := range []string{"right", "wrong", "timeout"} {
		d := &gateDirectory{fakeDirectory: fakeDirectory{users: map[string]fakeEntry{}}, open: make(chan struct{})}
		if pw == "timeout" {
			d.err = timeout
		}
		d.set([]string{"bob"}, "right", auth.DirectoryUser{Name: "bob", Role: auth.RoleUser})
		s.SetDirectory(d)
		const n = 16
		var done sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			done.Add(1)
			go func() {
				defer done.Done()
				_, errs[i] = s.Login(ctx, "bob", pw, fmt.Sprint("192.0.2.", i))
			}()
		}
		// Every login must have joined the check before it ends: one that
		// arrives after a failed check rightly checks again.
		testutil.Eventually(t, 10*time.Second, "all logins waiting on one check", func() bool {
			return d.calls.Load() > 0 && s.LoginWaiters("bob", pw) == n-1
		})
		close(d.open)
		done.Wait()
		if c := d.calls.Load(); c != 1 {
			t.Errorf("%s password: %d directory requests for %d concurrent logins, want 1", pw, c, n)
		}
		for i, err := range errs {
			if pw == "right" && err != nil || pw == "wrong" && !errors.Is(err, auth.ErrBadCredentials) ||
				pw == "timeout" && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("%s password: login %d: %v", pw, i, err)
			}
		}
	}
}
