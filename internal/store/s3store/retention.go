package s3store

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/mailarc/mailarc/internal/store"
)

// detectObjectLock sets s.lock according to Options.ObjectLock and the
// bucket's Object Lock configuration.
func (s *Store) detectObjectLock(ctx context.Context) error {
	if s.opt.ObjectLock == ObjectLockOff {
		return nil
	}
	out, err := s.cli.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: &s.bucket})
	enabled := err == nil && out.ObjectLockConfiguration != nil &&
		out.ObjectLockConfiguration.ObjectLockEnabled == types.ObjectLockEnabledEnabled
	if err != nil {
		switch apiCode(err) {
		case "ObjectLockConfigurationNotFoundError", "ObjectLockConfigurationNotFound", "NotImplemented", "InvalidBucketState", "InvalidRequest":
			// No Object Lock on this bucket or server.
		default:
			if s.opt.ObjectLock == ObjectLockOn {
				return fmt.Errorf("s3store: object lock configuration of %s: %w", s.bucket, err)
			}
			s.log.Warn("s3store: cannot read the bucket's object lock configuration; continuing without object lock", "bucket", s.bucket, "err", err)
		}
	}
	if !enabled && s.opt.ObjectLock == ObjectLockOn {
		return fmt.Errorf("s3store: object_lock = \"on\" but bucket %s does not have S3 Object Lock enabled (it can only be enabled when the bucket is created, or on AWS afterwards with versioning)", s.bucket)
	}
	s.lock = enabled
	if enabled {
		s.log.Info("s3store: object lock enabled", "bucket", s.bucket, "mode", string(s.mode))
	}
	return nil
}

// SetRetention sets the blob's retain-until date (Object Lock retention in
// the configured mode). Extending is always allowed. Shortening, or
// clearing with a zero until, is possible only in GOVERNANCE mode and needs
// the s3:BypassGovernanceRetention permission, which this request asks to
// use; in COMPLIANCE mode the object store refuses it. Without Object Lock
// it returns an error wrapping store.ErrNoRetention.
func (s *Store) SetRetention(ctx context.Context, id string, until time.Time) error {
	if _, err := store.ParseID(id); err != nil {
		return fmt.Errorf("s3store: set retention: %w", err)
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	if !s.lock {
		return fmt.Errorf("s3store: set retention of %s: %w (bucket %s has no Object Lock)", id, store.ErrNoRetention, s.bucket)
	}
	key := s.blobKey(id)
	// An empty Retention element clears it (GOVERNANCE with bypass, as AWS
	// documents; some servers, e.g. versitygw 1.8, only accept a date).
	in := &s3.PutObjectRetentionInput{Bucket: &s.bucket, Key: &key, Retention: &types.ObjectLockRetention{}}
	if !until.IsZero() {
		in.Retention.Mode = s.mode
		in.Retention.RetainUntilDate = aws.Time(until.UTC())
	}
	if s.mode == types.ObjectLockRetentionModeGovernance {
		in.BypassGovernanceRetention = aws.Bool(true)
	}
	if _, err := s.cli.PutObjectRetention(ctx, in); err != nil {
		if isNotFound(err) {
			return fmt.Errorf("s3store: set retention of %s: %w", id, store.ErrNotFound)
		}
		return fmt.Errorf("s3store: set retention of %s: %w", id, err)
	}
	return nil
}

// SetLegalHold places (on) or lifts (!on) an S3 legal hold on the blob.
// Without Object Lock it returns an error wrapping store.ErrNoRetention.
func (s *Store) SetLegalHold(ctx context.Context, id string, on bool) error {
	if _, err := store.ParseID(id); err != nil {
		return fmt.Errorf("s3store: set legal hold: %w", err)
	}
	if err := s.begin(); err != nil {
		return err
	}
	defer s.end()
	if !s.lock {
		return fmt.Errorf("s3store: set legal hold of %s: %w (bucket %s has no Object Lock)", id, store.ErrNoRetention, s.bucket)
	}
	status := types.ObjectLockLegalHoldStatusOff
	if on {
		status = types.ObjectLockLegalHoldStatusOn
	}
	key := s.blobKey(id)
	_, err := s.cli.PutObjectLegalHold(ctx, &s3.PutObjectLegalHoldInput{
		Bucket: &s.bucket, Key: &key, LegalHold: &types.ObjectLockLegalHold{Status: status},
	})
	if err != nil {
		if isNotFound(err) {
			return fmt.Errorf("s3store: set legal hold of %s: %w", id, store.ErrNotFound)
		}
		return fmt.Errorf("s3store: set legal hold of %s: %w", id, err)
	}
	return nil
}

// LockState is the Object Lock state of one blob object.
type LockState struct {
	Mode        string    // "GOVERNANCE", "COMPLIANCE" or "" (no retention)
	RetainUntil time.Time // zero without retention
	LegalHold   bool
}

// Lock returns the blob's current Object Lock state, for drift checks
// between governance and the bucket. Without Object Lock it returns an
// error wrapping store.ErrNoRetention.
func (s *Store) Lock(ctx context.Context, id string) (LockState, error) {
	var st LockState
	if _, err := store.ParseID(id); err != nil {
		return st, fmt.Errorf("s3store: lock state: %w", err)
	}
	if err := s.begin(); err != nil {
		return st, err
	}
	defer s.end()
	if !s.lock {
		return st, fmt.Errorf("s3store: lock state of %s: %w", id, store.ErrNoRetention)
	}
	key := s.blobKey(id)
	r, err := s.cli.GetObjectRetention(ctx, &s3.GetObjectRetentionInput{Bucket: &s.bucket, Key: &key})
	switch {
	case err == nil && r.Retention != nil:
		st.Mode = string(r.Retention.Mode)
		st.RetainUntil = aws.ToTime(r.Retention.RetainUntilDate)
	case err != nil && isNotFound(err) && apiCode(err) != "NoSuchObjectLockConfiguration":
		return st, fmt.Errorf("s3store: lock state of %s: %w", id, store.ErrNotFound)
	case err != nil && apiCode(err) != "NoSuchObjectLockConfiguration":
		return st, fmt.Errorf("s3store: retention of %s: %w", id, err)
	}
	h, err := s.cli.GetObjectLegalHold(ctx, &s3.GetObjectLegalHoldInput{Bucket: &s.bucket, Key: &key})
	switch {
	case err == nil && h.LegalHold != nil:
		st.LegalHold = h.LegalHold.Status == types.ObjectLockLegalHoldStatusOn
	case err != nil && apiCode(err) != "NoSuchObjectLockConfiguration":
		return st, fmt.Errorf("s3store: legal hold of %s: %w", id, err)
	}
	return st, nil
}

// ExtendRetention sets the blob's retain-until date to until unless the
// date in force is later: it never shortens or clears one. The request
// does not ask to bypass GOVERNANCE retention (so it needs no
// s3:BypassGovernanceRetention permission, and the object store itself
// refuses a shorter date); when it is refused, the date in force is read
// back and, if it is at least until, returned as success. It returns the
// retain-until date in force afterwards. Without Object Lock it returns an
// error wrapping store.ErrNoRetention.
func (s *Store) ExtendRetention(ctx context.Context, id string, until time.Time) (time.Time, error) {
	if _, err := store.ParseID(id); err != nil {
		return time.Time{}, fmt.Errorf("s3store: extend retention: %w", err)
	}
	if until.IsZero() {
		return time.Time{}, fmt.Errorf("s3store: extend retention of %s: no date", id)
	}
	if err := s.begin(); err != nil {
		return time.Time{}, err
	}
	if !s.lock {
		s.end()
		return time.Time{}, fmt.Errorf("s3store: extend retention of %s: %w (bucket %s has no Object Lock)", id, store.ErrNoRetention, s.bucket)
	}
	key := s.blobKey(id)
	until = until.UTC()
	_, err := s.cli.PutObjectRetention(ctx, &s3.PutObjectRetentionInput{Bucket: &s.bucket, Key: &key,
		Retention: &types.ObjectLockRetention{Mode: s.mode, RetainUntilDate: aws.Time(until)}})
	s.end()
	if err == nil {
		return until, nil
	}
	if isNotFound(err) {
		return time.Time{}, fmt.Errorf("s3store: extend retention of %s: %w", id, store.ErrNotFound)
	}
	// Refused: perhaps because a later date (or COMPLIANCE) is in force.
	st, lerr := s.Lock(ctx, id)
	if lerr == nil && !st.RetainUntil.Before(until) {
		return st.RetainUntil, nil
	}
	return time.Time{}, fmt.Errorf("s3store: extend retention of %s: %w", id, err)
}
