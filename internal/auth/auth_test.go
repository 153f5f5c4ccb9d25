package auth_test

import (
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/mailarc/mailarc/internal/auth"
	"github.com/mailarc/mailarc/internal/catalog/catalogtest"
	"github.com/mailarc/mailarc/internal/testutil/pgtest"
)

// pg is the PostgreSQL cluster of this package's tests, started on first
// use; the catalog-backed tests run on SQLite and on PostgreSQL.
var pg pgtest.Shared

func TestMain(m *testing.M) { os.Exit(pg.Main(m)) }

func service(t *testing.T, b catalogtest.Backend) *auth.Service {
	t.Helper()
	w, r := b.New(t).DB()
	return auth.New(w, r)
}

func TestPasswordHash(t *testing.T) {
	h, err := auth.HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	if !auth.CheckPassword(h, "correct horse") || auth.CheckPassword(h, "correct horsE") || auth.CheckPassword("garbage", "x") {
		t.Fatal("argon2id check wrong")
	}
	h2, _ := auth.HashPassword("correct horse")
	if h == h2 {
		t.Fatal("salt not random")
	}
}

func TestUsersLoginThrottleTokens(t *testing.T) {
	catalogtest.ForEach(t, &pg, testUsersLoginThrottleTokens)
}

func testUsersLoginThrottleTokens(t *testing.T, b catalogtest.Backend) {
	s := service(t, b)
	ctx := context.Background()
	created, pw, err := s.EnsureAdmin(ctx, "")
	if err != nil || !created || len(pw) < 16 {
		t.Fatalf("bootstrap: %v %v %q", created, err, pw)
	}
	if again, _, _ := s.EnsureAdmin(ctx, ""); again {
		t.Fatal("bootstrap admin created twice")
	}
	if err := s.AddUser(ctx, "bob", "short", auth.RoleUser, nil); err == nil {
		t.Fatal("short password accepted")
	}
	if err := s.AddUser(ctx, "bob", "bob-password", auth.RoleUser, []string{" Bob@Corp.Example "}); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser(ctx, "bob", "bob-password", auth.RoleUser, nil); !errors.Is(err, auth.ErrExists) {
		t.Fatalf("duplicate user: %v", err)
	}
	u, err := s.Login(ctx, "bob", "bob-password", "10.0.0.1")
	if err != nil || u.Role != auth.RoleUser || u.Addresses[0] != "bob@corp.example" {
		t.Fatalf("login: %+v %v", u, err)
	}
	for i := 0; i < 5; i++ {
		if _, err := s.Login(ctx, "bob", "wrong", "10.0.0.2"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("attempt %d: %v", i, err)
		}
	}
	if _, err := s.Login(ctx, "bob", "bob-password", "10.0.0.3"); !errors.Is(err, auth.ErrThrottled) {
		t.Fatalf("after 5 failures: %v, want throttled", err)
	}
	if _, err := s.Login(ctx, "admin", "nope", "10.0.0.2"); !errors.Is(err, auth.ErrThrottled) {
		t.Fatalf("throttle per client address: %v", err)
	}
	secret, tok, err := s.CreateToken(ctx, "admin", "ci")
	if err != nil {
		t.Fatal(err)
	}
	if u, err := s.TokenUser(ctx, secret); err != nil || u.Name != "admin" {
		t.Fatalf("token user: %v %v", u, err)
	}
	bob, _ := s.Get(ctx, "bob")
	if err := s.RevokeToken(ctx, bob, tok.ID); err == nil {
		t.Fatal("a user revoked another user's token")
	}
	admin, _ := s.Get(ctx, "admin")
	if err := s.RevokeToken(ctx, admin, tok.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.TokenUser(ctx, secret); !errors.Is(err, auth.ErrBadCredentials) {
		t.Fatalf("revoked token: %v", err)
	}
	if err := s.DeleteUser(ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "bob"); !errors.Is(err, auth.ErrNoUser) {
		t.Fatalf("deleted user: %v", err)
	}
}

// slowDirectory refuses every login after moving the test's clock on by
// took, as a directory that answers slowly would be seen to.
type slowDirectory struct {
	clock *fakeClock
	took  time.Duration
}

func (d slowDirectory) Authenticate(context.Context, string, string) (*auth.DirectoryUser, error) {
	d.clock.advance(d.took)
	return nil, auth.ErrBadCredentials
}

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// TestThrottleLockRunsFromAnswer: the lock after the fifth failure lasts
// its second from when that failure was answered, however long the check
// took (here a directory that takes 5 s to refuse).
func TestThrottleLockRunsFromAnswer(t *testing.T) {
	s := service(t, catalogtest.SQLiteBackend())
	ctx := context.Background()
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	s.SetClock(clock.Now)
	s.SetDirectory(slowDirectory{clock: clock, took: 5 * time.Second})
	for i := 0; i < 5; i++ {
		if _, err := s.Login(ctx, "carol", "wrong", "10.0.0.2"); !errors.Is(err, auth.ErrBadCredentials) {
			t.Fatalf("attempt %d: %v", i+1, err)
		}
	}
	clock.advance(500 * time.Millisecond)
	if _, err := s.Login(ctx, "carol", "wrong", "10.0.0.2"); !errors.Is(err, auth.ErrThrottled) {
		t.Fatalf("0.5 s after the fifth failure was answered (5.5 s after it was asked): %v, want throttled", err)
	}
}
