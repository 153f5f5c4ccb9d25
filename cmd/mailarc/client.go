package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"time"
)

// apiClient talks to a running node's HTTP API.
type apiClient struct {
	base, user, pass, token string
	hc                      http.Client
}

// apiError is an error answer of the API.
type apiError struct {
	Status  int
	Code    string `json:"code"`
	Message string `json:"message"`
	// RetryAfter is the answer's Retry-After (seconds form), if any.
	RetryAfter time.Duration `json:"-"`
}

func (e *apiError) Error() string {
	return fmt.Sprintf("server answered %d %s: %s", e.Status, e.Code, e.Message)
}

// requestOpt is an option of apiClient.do.
type requestOpt int

// idempotent: storing a message is (content-addressed: a second copy is a
// duplicate), so net/http may resend the POST on a fresh connection when
// the node closed the idle one it was sent on (as a node shutting down
// does); without it that POST fails with "server closed idle connection".
const idempotent requestOpt = 1

func (c *apiClient) do(ctx context.Context, method, path string, body io.Reader, contentType string, opts ...requestOpt) (*http.Response, error) {
	if c.base == "" {
		return nil, usageError{"--server URL is required"}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return nil, err
	}
	if slices.Contains(opts, idempotent) {
		// An empty value: the transport treats the request as replayable
		// and does not send the header.
		req.Header["Idempotency-Key"] = nil
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	switch {
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	case c.user != "":
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		defer resp.Body.Close()
		var e struct {
			Error apiError `json:"error"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if json.Unmarshal(b, &e) != nil || e.Error.Code == "" {
			e.Error = apiError{Code: http.StatusText(resp.StatusCode), Message: string(b)}
		}
		e.Error.Status = resp.StatusCode
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			e.Error.RetryAfter = time.Duration(secs) * time.Second
		}
		return nil, &e.Error
	}
	return resp, nil
}

func (c *apiClient) getJSON(ctx context.Context, path string, v any) error {
	resp, err := c.do(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return json.NewDecoder(resp.Body).Decode(v)
}
