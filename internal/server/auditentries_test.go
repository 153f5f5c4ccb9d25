package server_test

import (
	"context"
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/mailarc/mailarc/internal/audit"
)

// auditEntries returns the entries of one action (newest first).
func (nd *node) auditEntries(t *testing.T, action string) []audit.Entry {
	t.Helper()
	c, b := nd.admin(t, "GET", "/api/v1/audit?limit=1000&action="+url.QueryEscape(action), nil)
	var res struct {
		Entries []audit.Entry `json:"entries"`
	}
	if err := json.Unmarshal(b, &res); c != 200 || err != nil {
		t.Fatalf("audit %s: %d %v %s", action, c, err, b)
	}
	return res.Entries
}

// hasEntry reports whether one of es is by user with a detail holding
// every want field (compared as JSON text).
func hasEntry(es []audit.Entry, user string, want map[string]any) bool {
	for _, e := range es {
		if e.User != user {
			continue
		}
		var d map[string]any
		if json.Unmarshal(e.Detail, &d) != nil {
			continue
		}
		ok := true
		for k, v := range want {
			a, _ := json.Marshal(d[k])
			b, _ := json.Marshal(v)
			if string(a) != string(b) {
				ok = false
			}
		}
		if ok {
			return true
		}
	}
	return false
}

// TestAuditedUserAndTokenChanges: the bootstrap admin, user changes
// (password, role and addresses, deletion) and token changes are on
// record with who did them, and a role change takes effect at once
// without re-creating the account (its tokens keep working).
func TestAuditedUserAndTokenChanges(t *testing.T) {
	nd := start(t, t.TempDir())
	if !hasEntry(nd.auditEntries(t, audit.ActionUserAdd), "system", map[string]any{"name": "admin", "role": "admin", "bootstrap": true}) {
		t.Error("the bootstrap admin is not on record as a user.add by system")
	}
	theirs := nd.post(t, mail("bob@corp.example", "y@corp.example", "bravo report", "Mon, 2 Mar 2020 11:00:00 +0000", "shared word"))
	nd.waitIndexed(t, 1)
	if c, b := nd.admin(t, "POST", "/api/v1/users", []byte(`{"name":"carol","password":"carol-pass-1","role":"user","addresses":["carol@corp.example"]}`)); c != 201 {
		t.Fatalf("add: %d %s", c, b)
	}
	// carol makes a token for herself, the admin one for her too.
	c, b, _ := nd.req(t, "POST", "/api/v1/tokens", "carol", "carol-pass-1", []byte(`{"name":"script"}`))
	var tok struct{ Token, ID string }
	if err := json.Unmarshal(b, &tok); c != 201 || err != nil || tok.Token == "" {
		t.Fatalf("token: %d %v %s", c, err, b)
	}
	c, b = nd.admin(t, "POST", "/api/v1/tokens", []byte(`{"name":"for carol","user":"carol"}`))
	var tok2 struct{ ID string }
	if err := json.Unmarshal(b, &tok2); c != 201 || err != nil {
		t.Fatalf("admin token for carol: %d %v %s", c, err, b)
	}
	bearer := "Bearer " + tok.Token
	if c, _, _ := nd.req(t, "GET", "/api/v1/messages/"+theirs, bearer, "", nil); c != 404 {
		t.Fatalf("a user reads bob's mail: %d", c)
	}
	// Role and addresses change in place; the token now sees everything.
	if c, b := nd.admin(t, "PATCH", "/api/v1/users/carol", []byte(`{"role":"auditor","addresses":["carol@corp.example","c.lee@corp.example"]}`)); c != 200 || !strings.Contains(string(b), `"role":"auditor"`) {
		t.Fatalf("update: %d %s", c, b)
	}
	if c, b, _ := nd.req(t, "GET", "/api/v1/messages/"+theirs, bearer, "", nil); c != 200 {
		t.Fatalf("auditor token after the role change: %d %s", c, b)
	}
	for _, tc := range []struct{ user, body string }{
		{"carol", `{"role":"root"}`}, {"carol", `{"addresses":["@corp.example"]}`}, {"carol", `{}`}, {"admin", `{"role":"user"}`},
	} {
		if c, b := nd.admin(t, "PATCH", "/api/v1/users/"+tc.user, []byte(tc.body)); c != 400 {
			t.Errorf("PATCH %s %s: %d %s", tc.user, tc.body, c, b)
		}
	}
	if c, _ := nd.admin(t, "PATCH", "/api/v1/users/nobody", []byte(`{"role":"user"}`)); c != 404 {
		t.Errorf("PATCH unknown user: %d", c)
	}
	if c, _, _ := nd.req(t, "PATCH", "/api/v1/users/carol", bearer, "", []byte(`{"role":"admin"}`)); c != 403 {
		t.Errorf("an auditor changes roles: %d", c)
	}
	if c, b, _ := nd.req(t, "PUT", "/api/v1/users/carol/password", "carol", "carol-pass-1", []byte(`{"password":"carol-pass-2"}`)); c != 204 {
		t.Fatalf("own password: %d %s", c, b)
	}
	if c, b, _ := nd.req(t, "DELETE", "/api/v1/tokens/"+tok.ID, "carol", "carol-pass-2", nil); c != 204 {
		t.Fatalf("revoke own token: %d %s", c, b)
	}
	if c, _ := nd.admin(t, "DELETE", "/api/v1/tokens/"+tok2.ID, nil); c != 204 {
		t.Fatalf("admin revokes carol's token: %d", c)
	}
	if c, _ := nd.admin(t, "DELETE", "/api/v1/users/carol", nil); c != 204 {
		t.Fatalf("delete: %d", c)
	}
	for _, w := range []struct {
		action, user string
		detail       map[string]any
	}{
		{audit.ActionUserAdd, "admin", map[string]any{"name": "carol", "role": "user", "addresses": []string{"carol@corp.example"}}},
		{audit.ActionTokenCreate, "carol", map[string]any{"id": tok.ID, "user": "carol", "name": "script"}},
		{audit.ActionTokenCreate, "admin", map[string]any{"id": tok2.ID, "user": "carol", "name": "for carol"}},
		{audit.ActionUserUpdate, "admin", map[string]any{"name": "carol", "role": "auditor", "addresses": []string{"carol@corp.example", "c.lee@corp.example"},
			"before": map[string]any{"role": "user", "addresses": []string{"carol@corp.example"}}}},
		{audit.ActionUserPassword, "carol", map[string]any{"name": "carol"}},
		{audit.ActionTokenRevoke, "carol", map[string]any{"id": tok.ID}},
		{audit.ActionTokenRevoke, "admin", map[string]any{"id": tok2.ID}},
		{audit.ActionUserDelete, "admin", map[string]any{"name": "carol"}},
	} {
		if !hasEntry(nd.auditEntries(t, w.action), w.user, w.detail) {
			t.Errorf("no %s entry by %s with %v", w.action, w.user, w.detail)
		}
	}
	// Refused changes leave no entry.
	if n := len(nd.auditEntries(t, audit.ActionUserUpdate)); n != 1 {
		t.Errorf("%d user.update entries, want 1", n)
	}
	if rep, err := audit.Verify(context.Background(), nd.n.Catalog); err != nil || !rep.OK() {
		t.Errorf("audit verify: %+v %v", rep, err)
	}
}

// TestAuditedHoldAndPolicyChanges: policy changes, hold creation and
// release are on record; an auditor may create a hold but not release it.
func TestAuditedHoldAndPolicyChanges(t *testing.T) {
	nd := start(t, t.TempDir())
	if c, b := nd.admin(t, "POST", "/api/v1/users", []byte(`{"name":"audrey","password":"audrey-pass-1","role":"auditor"}`)); c != 201 {
		t.Fatalf("add auditor: %d %s", c, b)
	}
	auditor := func(method, path, body string) (int, []byte) {
		c, b, _ := nd.req(t, method, path, "audrey", "audrey-pass-1", []byte(body))
		return c, b
	}
	if c, b := nd.admin(t, "PUT", "/api/v1/retention", []byte(`{"default":"10y","policies":[{"name":"junk","query":"from:junk.example","keep":"30d"}]}`)); c != 200 {
		t.Fatalf("put retention: %d %s", c, b)
	}
	if c, b := auditor("PUT", "/api/v1/retention", `{"default":"1d"}`); c != 403 {
		t.Errorf("auditor changes the policy: %d %s", c, b)
	}
	c, b := auditor("POST", "/api/v1/holds", `{"name":"Case 7","query":"from:ceo@corp.example","description":"merger"}`)
	var h struct{ ID string }
	if err := json.Unmarshal(b, &h); c != 201 || err != nil || h.ID == "" {
		t.Fatalf("auditor creates a hold: %d %v %s", c, err, b)
	}
	if c, b := auditor("DELETE", "/api/v1/holds/"+h.ID, ""); c != 403 || errCode(b) != "forbidden" {
		t.Errorf("auditor releases a hold: %d %s", c, b)
	}
	if len(nd.auditEntries(t, audit.ActionHoldRelease)) != 0 {
		t.Error("a refused release is on record as a release")
	}
	if c, b := nd.admin(t, "DELETE", "/api/v1/holds/"+h.ID, nil); c != 204 {
		t.Fatalf("admin releases: %d %s", c, b)
	}
	if !hasEntry(nd.auditEntries(t, audit.ActionPolicyChange), "admin", map[string]any{"version": 1}) {
		t.Errorf("no retention.policy entry for version 1: %+v", nd.auditEntries(t, audit.ActionPolicyChange))
	}
	if es := nd.auditEntries(t, audit.ActionPolicyChange); len(es) != 1 || !strings.Contains(string(es[0].Detail), "from:junk.example") {
		t.Errorf("policy entries: %+v", es)
	}
	if !hasEntry(nd.auditEntries(t, audit.ActionHoldCreate), "audrey", map[string]any{"id": h.ID, "name": "Case 7", "query": "from:ceo@corp.example"}) {
		t.Errorf("no hold.create entry by audrey: %+v", nd.auditEntries(t, audit.ActionHoldCreate))
	}
	if !hasEntry(nd.auditEntries(t, audit.ActionHoldRelease), "admin", map[string]any{"id": h.ID, "name": "Case 7"}) {
		t.Errorf("no hold.release entry by admin: %+v", nd.auditEntries(t, audit.ActionHoldRelease))
	}
}
