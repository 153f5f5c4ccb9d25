package pull

import (
	"bytes"
	"compress/flate"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/mailarc/mailarc/internal/config"
)

// State keys of a POP3 source.
const (
	keyPOP3UIDLs = "pop3.uidls" // archived UIDLs still on the server
	keyPOP3Skip  = "pop3.skip"  // UIDLs skipped for good (never deleted)
)

// maxUIDLSetBytes bounds a decoded UIDL set.
const maxUIDLSetBytes = 512 << 20

// encodeUIDLs stores a set compactly: "z1:" + base64(deflate(sorted UIDLs
// joined by "\n")). UIDLs are 1-70 printable characters without spaces.
func encodeUIDLs(set map[string]struct{}) string {
	if len(set) == 0 {
		return ""
	}
	list := make([]string, 0, len(set))
	for u := range set {
		list = append(list, u)
	}
	slices.Sort(list)
	var buf bytes.Buffer
	zw, _ := flate.NewWriter(&buf, flate.BestCompression) // level is valid
	_, _ = zw.Write([]byte(strings.Join(list, "\n")))
	_ = zw.Close()
	return "z1:" + base64.RawStdEncoding.EncodeToString(buf.Bytes())
}

func decodeUIDLs(s string) (map[string]struct{}, error) {
	set := map[string]struct{}{}
	if s == "" {
		return set, nil
	}
	data, ok := strings.CutPrefix(s, "z1:")
	if !ok {
		return nil, errors.New("unknown UIDL set encoding")
	}
	raw, err := base64.RawStdEncoding.DecodeString(data)
	if err != nil {
		return nil, fmt.Errorf("UIDL set: %w", err)
	}
	plain, err := io.ReadAll(io.LimitReader(flate.NewReader(bytes.NewReader(raw)), maxUIDLSetBytes+1))
	if err != nil {
		return nil, fmt.Errorf("UIDL set: %w", err)
	}
	if len(plain) > maxUIDLSetBytes {
		return nil, errors.New("UIDL set too large")
	}
	for _, u := range strings.Split(string(plain), "\n") {
		if u != "" {
			set[u] = struct{}{}
		}
	}
	return set, nil
}

// dialPOP3 connects and authenticates.
func dialPOP3(ctx context.Context, m *Manager, src config.Source) (*pop3Client, func() bool, error) {
	if err := checkTransport(src); err != nil {
		return nil, nil, err
	}
	pw, err := secret(src)
	if err != nil {
		return nil, nil, err
	}
	tc, err := m.tlsConfig(src)
	if err != nil {
		return nil, nil, err
	}
	conn, err := dialConn(ctx, src, tc, m.opt)
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	c := newPOP3Client(conn)
	c.timeout = m.opt.DialTimeout // each step up to the login
	fail := func(err error) (*pop3Client, func() bool, error) {
		stop()
		c.close()
		return nil, nil, err
	}
	if err := c.greeting(); err != nil {
		return fail(fmt.Errorf("pop3 %s: %w", src.Host, err))
	}
	if err := c.capa(); err != nil {
		return fail(fmt.Errorf("pop3 %s: %w", src.Host, err))
	}
	if src.TLS == "starttls" {
		if _, ok := c.caps["STLS"]; !ok {
			return fail(fmt.Errorf("pop3 %s does not offer STLS (tls = \"starttls\")", src.Host))
		}
		if err := c.stls(tc); err != nil {
			return fail(fmt.Errorf("pop3 %s (server name %q): %w", src.Host, tc.ServerName, err))
		}
	}
	switch {
	case src.Auth == "xoauth2":
		err = c.auth("XOAUTH2", xoauth2String(src.User, pw))
	case src.Auth == "plain" && c.hasSASL("PLAIN"):
		err = c.auth("PLAIN", []byte("\x00"+src.User+"\x00"+pw))
	default:
		err = c.userPass(src.User, pw)
	}
	if err != nil {
		return fail(fmt.Errorf("pop3 authentication as %s (%s) failed: %w", src.User, src.Auth, err))
	}
	c.timeout = m.opt.CommandTimeout
	return c, stop, nil
}

type pop3Session struct {
	r      *runner
	c      *pop3Client
	stop   func() bool
	closed bool
}

func (r *runner) connectPOP3(ctx context.Context) (session, error) {
	c, stop, err := dialPOP3(ctx, r.m, r.src)
	if err != nil {
		return nil, err
	}
	return &pop3Session{r: r, c: c, stop: stop}, nil
}

func (s *pop3Session) canWait() bool                  { return false }
func (s *pop3Session) wait(ctx context.Context) error { return nil }

func (s *pop3Session) close() {
	if s.closed {
		return
	}
	s.closed = true
	s.c.close()
	s.stop()
}

func (s *pop3Session) save(ctx context.Context, have, skip map[string]struct{}) error {
	err := s.r.m.st.SetSourceState(ctx, s.r.src.Name, map[string]string{
		keyPOP3UIDLs: encodeUIDLs(have),
		keyPOP3Skip:  encodeUIDLs(skip),
	})
	if err != nil {
		return fmt.Errorf("save UIDL set: %w", err)
	}
	s.r.setCursor(fmt.Sprintf("uidls=%d skipped=%d", len(have), len(skip)))
	s.r.m.met.uidls.WithLabelValues(s.r.src.Name).Set(float64(len(have)))
	return nil
}

// poll imports new messages, DELEs archived ones in delete mode and QUITs,
// which commits the deletions.
func (s *pop3Session) poll(ctx context.Context) error {
	msgs, err := s.c.list()
	if err != nil {
		return fmt.Errorf("list maildrop (the server must support UIDL): %w", err)
	}
	st, err := s.r.m.st.SourceState(ctx, s.r.src.Name)
	if err != nil {
		return fmt.Errorf("load state: %w", err)
	}
	have, err := decodeUIDLs(st[keyPOP3UIDLs])
	if err != nil {
		return fmt.Errorf("load state: %w", err)
	}
	skip, err := decodeUIDLs(st[keyPOP3Skip])
	if err != nil {
		return fmt.Errorf("load state: %w", err)
	}
	// Prune UIDLs no longer on the server.
	on := make(map[string]struct{}, len(msgs))
	for _, m := range msgs {
		on[m.uidl] = struct{}{}
	}
	for u := range have {
		if _, ok := on[u]; !ok {
			delete(have, u)
		}
	}
	for u := range skip {
		if _, ok := on[u]; !ok {
			delete(skip, u)
		}
	}
	del := s.r.src.Mode == "delete"
	maxSize := s.r.m.opt.MaxMessageSize
	pending := 0
	var stopErr error
	for _, m := range msgs {
		if ctx.Err() != nil {
			stopErr = ctx.Err()
			break
		}
		if _, ok := have[m.uidl]; ok {
			if del {
				if !s.r.mayDestroy() {
					stopErr = errLeaseLost
					break
				}
				if err := s.c.dele(m.num); err != nil {
					stopErr = err
					break
				}
			}
			continue
		}
		if _, ok := skip[m.uidl]; ok {
			continue
		}
		what := fmt.Sprintf("message %d (UIDL %s)", m.num, m.uidl)
		if m.size > maxSize {
			skip[m.uidl] = struct{}{}
			s.r.skip(what, fmt.Sprintf("%d bytes exceeds the %d byte limit", m.size, maxSize))
			continue
		}
		raw, err := s.c.retr(ctx, m.num, maxSize)
		var pe *pop3Error
		switch {
		case errors.Is(err, errPOP3TooLarge):
			skip[m.uidl] = struct{}{}
			s.r.skip(what, fmt.Sprintf("exceeds the %d byte limit", maxSize))
			continue
		case errors.As(err, &pe):
			k := "pop3/" + m.uidl
			s.r.failures[k]++
			s.r.noteError(err.Error())
			if s.r.failures[k] >= maxServerFailures {
				delete(s.r.failures, k)
				skip[m.uidl] = struct{}{}
				s.r.skip(what, fmt.Sprintf("the server did not deliver it (%d attempts): %v", maxServerFailures, err))
			}
			continue
		case err != nil:
			stopErr = err
		}
		if stopErr != nil {
			break
		}
		out, err := s.r.ingest(ctx, raw, what)
		if err != nil {
			stopErr = err
			break
		}
		delete(s.r.failures, "pop3/"+m.uidl)
		if out == outSkipped {
			skip[m.uidl] = struct{}{}
			continue
		}
		have[m.uidl] = struct{}{}
		pending++
		if pending >= s.r.m.opt.BatchSize {
			if err := s.save(ctx, have, skip); err != nil {
				return err
			}
			pending = 0
		}
		if del {
			if !s.r.mayDestroy() {
				stopErr = errLeaseLost
				break
			}
			// Takes effect only at QUIT, after the state is saved.
			if err := s.c.dele(m.num); err != nil {
				stopErr = err
				break
			}
		}
	}
	if err := s.save(ctx, have, skip); err != nil {
		return err
	}
	if del && !s.r.mayDestroy() {
		// Another node holds a higher lease epoch: leave without QUIT so
		// the server commits none of our DELEs.
		s.close()
		if stopErr == nil {
			stopErr = errLeaseLost
		}
		return stopErr
	}
	if stopErr != nil {
		// Still commit the DELEs of messages archived so far; a broken
		// connection just fails here and they are retried next poll.
		_ = s.c.quit()
		return stopErr
	}
	if err := s.c.quit(); err != nil {
		return fmt.Errorf("%w (deletions not committed; they are retried next poll)", err)
	}
	s.close()
	return nil
}
