package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"time"

	"github.com/mailarc/mailarc/internal/archive"
)

// retryPolicy is how `import --server` treats a node that cannot take a
// message right now (429, 502, 503, 504, connection refused or reset, as
// while the node restarts): wait, doubling from first up to max (or the
// node's Retry-After, capped at max), and try again, for at most giveUp per
// message. Retrying is safe because an ingest is idempotent: bytes stored
// by an attempt whose answer was lost come back as a duplicate.
type retryPolicy struct {
	first, max time.Duration
	giveUp     time.Duration
	// onRetry, when set, is called before each wait (tests).
	onRetry func(err error, wait time.Duration)
}

// errGaveUp marks a message that still could not be delivered when the
// policy's giveUp ran out.
var errGaveUp = errors.New("the node did not take the message")

// do calls f until it succeeds, fails permanently, or the policy gives up.
func (p retryPolicy) do(ctx context.Context, f func() error) error {
	start := time.Now()
	wait := p.first
	for {
		err := f()
		if err == nil {
			return nil
		}
		again, hint := temporary(err)
		if !again || ctx.Err() != nil {
			return err
		}
		d := max(wait, min(hint, p.max))
		if time.Since(start)+d > p.giveUp {
			return fmt.Errorf("%w within %s: %w", errGaveUp, p.giveUp, err)
		}
		if p.onRetry != nil {
			p.onRetry(err, d)
		}
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait = min(2*wait, p.max)
	}
}

// temporary reports whether err is worth retrying, with the node's
// Retry-After hint if it sent one.
func temporary(err error) (bool, time.Duration) {
	var ae *apiError
	if errors.As(err, &ae) {
		switch ae.Status {
		case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
			return true, ae.RetryAfter
		}
		return false, 0
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false, 0
	}
	// The node is down or went away mid-request.
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF), 0
}

// authRefusal returns a clear error when err is the node refusing the
// credentials (401) or the role (403): no further message would be taken,
// so the import stops instead of failing every file.
func authRefusal(err error, user string) error {
	var ae *apiError
	if !errors.As(err, &ae) {
		return nil
	}
	switch ae.Status {
	case http.StatusUnauthorized:
		return fmt.Errorf("the node refused the credentials (%d %s): give the user with --user or MAILARC_USER and its password with MAILARC_PASSWORD (or an API token in MAILARC_TOKEN)", ae.Status, ae.Code)
	case http.StatusForbidden:
		return fmt.Errorf("user %q may not archive messages (%d %s): importing needs an admin account", user, ae.Status, ae.Code)
	}
	return nil
}

// remoteIngest returns an ingest function posting to the node's API with
// origin "import", retrying as rp says.
func remoteIngest(c *apiClient, rp retryPolicy) func(ctx context.Context, raw []byte) (archive.Result, error) {
	return func(ctx context.Context, raw []byte) (archive.Result, error) {
		var res archive.Result
		err := rp.do(ctx, func() error {
			resp, err := c.do(ctx, http.MethodPost, "/api/v1/messages?origin=import", bytes.NewReader(raw), "message/rfc822", idempotent)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			var out struct {
				ID        string `json:"id"`
				Duplicate bool   `json:"duplicate"`
			}
			if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
				return fmt.Errorf("bad answer from the node: %w", err)
			}
			res = archive.Result{ID: out.ID, Duplicate: out.Duplicate}
			return nil
		})
		return res, err
	}
}
