package auth_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/mailarc/mailarc/internal/auth"
	"github.com/mailarc/mailarc/internal/catalog/catalogtest"
)

func TestUpdateUser(t *testing.T) {
	catalogtest.ForEach(t, &pg, testUpdateUser)
}

// testUpdateUser: role and addresses change in place (tokens and password
// kept, the new values seen at once), bad values and the last admin's
// demotion are refused, directory accounts are left to the directory.
func testUpdateUser(t *testing.T, b catalogtest.Backend) {
	ctx := context.Background()
	s := service(t, b)
	if err := s.AddUser(ctx, "admin", "admin-password", auth.RoleAdmin, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.AddUser(ctx, "bob", "bob-password", auth.RoleUser, []string{"bob@corp.example"}); err != nil {
		t.Fatal(err)
	}
	secret, _, err := s.CreateToken(ctx, "bob", "script")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Login(ctx, "bob", "bob-password", "10.0.0.1"); err != nil {
		t.Fatal(err)
	}
	auditor := auth.RoleAuditor
	addrs := []string{" Bob@Corp.Example ", "robert@corp.example"}
	before, after, err := s.UpdateUser(ctx, "bob", auth.UserChange{Role: &auditor, Addresses: &addrs})
	if err != nil {
		t.Fatal(err)
	}
	if before.Role != auth.RoleUser || !slices.Equal(before.Addresses, []string{"bob@corp.example"}) ||
		after.Role != auth.RoleAuditor || !slices.Equal(after.Addresses, []string{"bob@corp.example", "robert@corp.example"}) {
		t.Fatalf("before %+v after %+v", before, after)
	}
	// The remembered login and the token see the change; both still work.
	if u, err := s.Login(ctx, "bob", "bob-password", "10.0.0.1"); err != nil || u.Role != auth.RoleAuditor {
		t.Fatalf("login after update: %+v %v", u, err)
	}
	if u, err := s.TokenUser(ctx, secret); err != nil || u.Role != auth.RoleAuditor || len(u.Addresses) != 2 {
		t.Fatalf("token after update: %+v %v", u, err)
	}
	// Only the addresses: the role stays.
	none := []string{}
	if _, after, err = s.UpdateUser(ctx, "bob", auth.UserChange{Addresses: &none}); err != nil || after.Role != auth.RoleAuditor || len(after.Addresses) != 0 {
		t.Fatalf("clear addresses: %+v %v", after, err)
	}
	bad := auth.Role("root")
	domain := []string{"@corp.example"}
	for name, ch := range map[string]auth.UserChange{"role": {Role: &bad}, "address": {Addresses: &domain}} {
		if _, _, err := s.UpdateUser(ctx, "bob", ch); err == nil {
			t.Errorf("bad %s accepted", name)
		}
	}
	if _, _, err := s.UpdateUser(ctx, "nobody", auth.UserChange{Role: &auditor}); !errors.Is(err, auth.ErrNoUser) {
		t.Errorf("unknown user: %v", err)
	}
	if _, _, err := s.UpdateUser(ctx, "admin", auth.UserChange{Role: &auditor}); !errors.Is(err, auth.ErrLastAdmin) {
		t.Errorf("demoting the last admin: %v", err)
	}
	if err := s.AddUser(ctx, "carol", "carol-password", auth.RoleUser, []string{"@corp.example"}); err == nil {
		t.Error("AddUser accepted a domain as an address")
	}
	// A directory account's role and addresses belong to the directory.
	d := &fakeDirectory{users: map[string]fakeEntry{}}
	d.set([]string{"dora"}, "dir-password", auth.DirectoryUser{Name: "dora", DN: "uid=dora", Role: auth.RoleUser, Addresses: []string{"dora@corp.example"}})
	s.SetDirectory(d)
	if _, err := s.Login(ctx, "dora", "dir-password", "10.0.0.2"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.UpdateUser(ctx, "dora", auth.UserChange{Role: &auditor}); err == nil {
		t.Error("directory account updated locally")
	}
}

// TestMutualDemotion: two admins demoting each other at the same moment
// leave at least one admin (the count is checked inside the UPDATE).
func TestMutualDemotion(t *testing.T) {
	ctx := context.Background()
	s := service(t, catalogtest.SQLiteBackend())
	for _, n := range []string{"ann", "ben"} {
		if err := s.AddUser(ctx, n, n+"-password", auth.RoleAdmin, nil); err != nil {
			t.Fatal(err)
		}
	}
	for round := 0; round < 20; round++ {
		user := auth.RoleUser
		errs := make(chan error, 2)
		for _, n := range []string{"ann", "ben"} {
			go func() {
				_, _, err := s.UpdateUser(ctx, n, auth.UserChange{Role: &user})
				errs <- err
			}()
		}
		var refused int
		for range 2 {
			if err := <-errs; errors.Is(err, auth.ErrLastAdmin) {
				refused++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		if refused != 1 {
			t.Fatalf("round %d: %d of 2 demotions refused, want exactly 1", round, refused)
		}
		us, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		admins := 0
		for _, u := range us {
			if u.Role == auth.RoleAdmin {
				admins++
			}
		}
		if admins != 1 {
			t.Fatalf("round %d: %d admins left", round, admins)
		}
		admin := auth.RoleAdmin
		for _, n := range []string{"ann", "ben"} {
			if _, _, err := s.UpdateUser(ctx, n, auth.UserChange{Role: &admin}); err != nil {
				t.Fatal(err)
			}
		}
	}
}
