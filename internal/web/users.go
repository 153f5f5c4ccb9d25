package web

import (
	"encoding/json"
	"errors"
	"net/http"

	"github.com/mailarc/mailarc/internal/audit"
	"github.com/mailarc/mailarc/internal/auth"
)

func decodeJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errf(http.StatusBadRequest, "bad_json", "invalid JSON body: "+err.Error())
	}
	return nil
}

func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) error {
	us, err := s.d.Auth.List(r.Context())
	if err != nil {
		return err
	}
	if us == nil {
		us = []auth.User{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": us})
	return nil
}

func (s *Server) addUser(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name      string   `json:"name"`
		Password  string   `json:"password"`
		Role      string   `json:"role"`
		Addresses []string `json:"addresses"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	if in.Role == "" {
		in.Role = string(auth.RoleUser)
	}
	err := s.d.Auth.AddUser(r.Context(), in.Name, in.Password, auth.Role(in.Role), in.Addresses)
	if errors.Is(err, auth.ErrExists) {
		return errf(http.StatusConflict, "exists", "a user with that name exists")
	}
	if err != nil {
		return errf(http.StatusBadRequest, "invalid", err.Error())
	}
	if err := s.record(r, audit.ActionUserAdd, map[string]any{"name": in.Name, "role": in.Role, "addresses": nonNil(in.Addresses)}); err != nil {
		return err
	}
	u, err := s.d.Auth.Get(r.Context(), in.Name)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, u)
	return nil
}

func (s *Server) deleteUser(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if name == userFrom(r).Name {
		return errf(http.StatusBadRequest, "invalid", "you cannot delete your own account")
	}
	err := s.d.Auth.DeleteUser(r.Context(), name)
	if errors.Is(err, auth.ErrNoUser) {
		return errf(http.StatusNotFound, "not_found", "no such user")
	}
	if err != nil {
		return err
	}
	if err := s.record(r, audit.ActionUserDelete, map[string]string{"name": name}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// updateUser changes an account's role and addresses in place (PATCH
// /api/v1/users/{name}; fields left out stay as they are). Tokens, sessions
// and the password are kept.
func (s *Server) updateUser(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	var in struct {
		Role      *auth.Role `json:"role"`
		Addresses *[]string  `json:"addresses"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	if in.Role == nil && in.Addresses == nil {
		return errf(http.StatusBadRequest, "invalid", "nothing to change: give role and/or addresses")
	}
	if in.Role != nil && *in.Role != auth.RoleAdmin && name == userFrom(r).Name {
		return errf(http.StatusBadRequest, "invalid", "you cannot take the admin role from your own account")
	}
	before, after, err := s.d.Auth.UpdateUser(r.Context(), name, auth.UserChange{Role: in.Role, Addresses: in.Addresses})
	if errors.Is(err, auth.ErrNoUser) {
		return errf(http.StatusNotFound, "not_found", "no such user")
	}
	if err != nil {
		return errf(http.StatusBadRequest, "invalid", err.Error())
	}
	if err := s.record(r, audit.ActionUserUpdate, UserUpdateDetail(before, after)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, after)
	return nil
}

// UserUpdateDetail is the detail of a user.update audit entry: the new
// role and addresses and what they were. The API and `mailarc user set` on
// a data directory record the same form.
func UserUpdateDetail(before, after *auth.User) map[string]any {
	return map[string]any{"name": after.Name, "role": after.Role, "addresses": nonNil(after.Addresses),
		"before": map[string]any{"role": before.Role, "addresses": nonNil(before.Addresses)}}
}

func (s *Server) setPassword(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	u := userFrom(r)
	if u.Name != name && u.Role != auth.RoleAdmin {
		return errf(http.StatusForbidden, "forbidden", "only an admin may change another user's password")
	}
	var in struct {
		Password string `json:"password"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	err := s.d.Auth.SetPassword(r.Context(), name, in.Password)
	if errors.Is(err, auth.ErrNoUser) {
		return errf(http.StatusNotFound, "not_found", "no such user")
	}
	if err != nil {
		return errf(http.StatusBadRequest, "invalid", err.Error())
	}
	if err := s.record(r, audit.ActionUserPassword, map[string]string{"name": name}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) listTokens(w http.ResponseWriter, r *http.Request) error {
	u := userFrom(r)
	who := u.Name
	if u.Role == auth.RoleAdmin && r.URL.Query().Get("all") == "true" {
		who = ""
	}
	ts, err := s.d.Auth.Tokens(r.Context(), who)
	if err != nil {
		return err
	}
	if ts == nil {
		ts = []auth.Token{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": ts})
	return nil
}

func (s *Server) createToken(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Name string `json:"name"`
		User string `json:"user"`
	}
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &in); err != nil {
			return err
		}
	}
	u := userFrom(r)
	owner := u.Name
	if in.User != "" && in.User != u.Name {
		if u.Role != auth.RoleAdmin {
			return errf(http.StatusForbidden, "forbidden", "only an admin may create tokens for another user")
		}
		owner = in.User
	}
	secret, t, err := s.d.Auth.CreateToken(r.Context(), owner, in.Name)
	if errors.Is(err, auth.ErrNoUser) {
		return errf(http.StatusNotFound, "not_found", "no such user")
	}
	if err != nil {
		return err
	}
	if err := s.record(r, audit.ActionTokenCreate, map[string]string{"id": t.ID, "user": t.User, "name": t.Name}); err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"token": secret, "id": t.ID, "user": t.User, "name": t.Name, "created": t.Created})
	return nil
}

func (s *Server) revokeToken(w http.ResponseWriter, r *http.Request) error {
	if err := s.d.Auth.RevokeToken(r.Context(), userFrom(r), r.PathValue("id")); err != nil {
		return errf(http.StatusNotFound, "not_found", "no such token")
	}
	if err := s.record(r, audit.ActionTokenRevoke, map[string]string{"id": r.PathValue("id")}); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) error {
	if s.d.Status == nil {
		return errf(http.StatusNotImplemented, "unavailable", "status not available")
	}
	st, err := s.d.Status(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, st)
	return nil
}
