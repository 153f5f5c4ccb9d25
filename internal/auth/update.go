package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// UserChange is a change of an account's role and addresses; a nil field
// is left as it is.
type UserChange struct {
	Role      *Role
	Addresses *[]string
}

// ErrLastAdmin refuses a change that would leave no admin account.
var ErrLastAdmin = errors.New("auth: the last admin account must stay an admin")

// UpdateUser changes a local account's role and addresses in place (its
// password, tokens and sessions stay), returning the account before and
// after. Logins remembered for it are dropped, and sessions and tokens see
// the new role and addresses at their next request. A directory account's
// role and addresses come from the directory and are refused here; so is
// demoting the last admin.
func (s *Service) UpdateUser(ctx context.Context, name string, ch UserChange) (before, after *User, err error) {
	before, _, err = s.load(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	if before.Source == SourceLDAP {
		return nil, nil, fmt.Errorf("auth: %s is a directory (LDAP) account: its role and addresses come from the directory", name)
	}
	role, addrs := before.Role, before.Addresses
	if ch.Role != nil {
		if !ValidRole(*ch.Role) {
			return nil, nil, fmt.Errorf("auth: unknown role %q (admin, auditor or user)", *ch.Role)
		}
		role = *ch.Role
	}
	if ch.Addresses != nil {
		if err := ValidAddresses(*ch.Addresses); err != nil {
			return nil, nil, err
		}
		addrs = *ch.Addresses
	}
	demote := before.Role == RoleAdmin && role != RoleAdmin
	if demote {
		var admins int
		if err := s.r.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE role=?`, string(RoleAdmin)).Scan(&admins); err != nil {
			return nil, nil, fmt.Errorf("auth: count admins: %w", err)
		}
		if admins <= 1 {
			return nil, nil, ErrLastAdmin
		}
	}
	// The row is changed only if it is still the local account that was
	// read (a directory login cannot turn it into another source), and a
	// demotion only while another admin remains, checked in the statement
	// itself so that two admins demoting each other at once cannot both
	// succeed on SQLite's single writer.
	r, err := s.w.ExecContext(ctx, `UPDATE users SET role=?, addresses=?, updated=? WHERE name=? AND source<>?
		AND (role<>? OR ?=? OR (SELECT count(*) FROM users WHERE role=?) > 1)`,
		string(role), addrJSON(addrs), s.now().Unix(), name, SourceLDAP,
		string(RoleAdmin), string(role), string(RoleAdmin), string(RoleAdmin))
	if err != nil {
		return nil, nil, fmt.Errorf("auth: update user %s: %w", name, err)
	}
	if n, _ := r.RowsAffected(); n == 0 {
		if demote {
			return nil, nil, ErrLastAdmin
		}
		return nil, nil, fmt.Errorf("%w: %s", ErrNoUser, name)
	}
	s.dropCache(name)
	s.changed()
	after, _, err = s.load(ctx, name)
	return before, after, err
}

// ValidAddresses checks a user's addresses: each must be a whole address,
// local@domain, without spaces or angle brackets (surrounding spaces and
// case do not matter). A domain alone ("@corp.example") is refused: the
// visibility rule matches whole addresses only.
func ValidAddresses(addrs []string) error {
	for _, a := range addrs {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		at := strings.LastIndexByte(a, '@')
		if at <= 0 || at == len(a)-1 || strings.ContainsAny(a, " \t\r\n<>,;\"") {
			return fmt.Errorf("auth: %q is not an e-mail address (want local@domain)", a)
		}
	}
	return nil
}
