package pull

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/mailarc/mailarc/internal/config"
)

// State keys of an IMAP source (one set per folder, NAME is the folder).
const (
	keyIMAPCursor = "imap.cursor." // "UIDVALIDITY:UID": every message up to UID is handled
	keyIMAPDone   = "imap.done."   // UIDs above the cursor already archived
	keyIMAPSkip   = "imap.skip."   // UIDs skipped for good (never deleted)
)

type imapSession struct {
	r      *runner
	c      *imapclient.Client
	wd     *watchdogConn
	stop   func() bool
	exists chan struct{}
	idle   bool
	closed bool
}

// dialIMAP connects and authenticates; notify, when non-nil, is signalled
// on every unilateral EXISTS. The returned watchdog bounds every wait for
// the server by Options.CommandTimeout.
func dialIMAP(ctx context.Context, m *Manager, src config.Source, notify chan struct{}) (*imapclient.Client, *watchdogConn, func() bool, error) {
	if err := checkTransport(src); err != nil {
		return nil, nil, nil, err
	}
	pw, err := secret(src)
	if err != nil {
		return nil, nil, nil, err
	}
	tc, err := m.tlsConfig(src)
	if err != nil {
		return nil, nil, nil, err
	}
	raw, err := dialConn(ctx, src, tc, m.opt)
	if err != nil {
		return nil, nil, nil, err
	}
	conn := newWatchdogConn(raw, m.opt.CommandTimeout)
	opts := &imapclient.Options{TLSConfig: tc}
	if notify != nil {
		opts.UnilateralDataHandler = &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					select {
					case notify <- struct{}{}:
					default:
					}
				}
			},
		}
	}
	// Bound the greeting, STARTTLS and authentication; ctx ends it all.
	deadline := time.AfterFunc(m.opt.DialTimeout, func() { conn.Close() })
	defer deadline.Stop()
	stopCtx := context.AfterFunc(ctx, func() { conn.Close() })
	var c *imapclient.Client
	if src.TLS == "starttls" {
		c, err = imapclient.NewStartTLS(conn, opts)
		if err != nil {
			stopCtx()
			conn.Close()
			return nil, nil, nil, fmt.Errorf("imap starttls %s (server name %q): %w", src.Host, tc.ServerName, err)
		}
	} else {
		c = imapclient.New(conn, opts)
		if err := c.WaitGreeting(); err != nil {
			stopCtx()
			c.Close()
			return nil, nil, nil, fmt.Errorf("imap greeting from %s: %w", src.Host, err)
		}
	}
	if err := imapAuth(c, src, pw); err != nil {
		stopCtx()
		c.Close()
		return nil, nil, nil, err
	}
	if !deadline.Stop() {
		stopCtx()
		c.Close()
		return nil, nil, nil, fmt.Errorf("imap %s: timed out during login", src.Host)
	}
	return c, conn, stopCtx, nil
}

func imapAuth(c *imapclient.Client, src config.Source, pw string) error {
	var err error
	switch {
	case src.Auth == "xoauth2":
		a := &xoauth2Client{user: src.User, token: pw}
		err = c.Authenticate(a)
		if err != nil && a.failure != "" {
			err = fmt.Errorf("%w (server said %q)", err, a.failure)
		}
	case src.Auth == "plain" && c.Caps().Has(imap.AuthCap(sasl.Plain)):
		err = c.Authenticate(sasl.NewPlainClient("", src.User, pw))
	default:
		err = c.Login(src.User, pw).Wait()
	}
	if err != nil {
		return fmt.Errorf("imap authentication as %s (%s) failed: %w", src.User, src.Auth, err)
	}
	return nil
}

func (r *runner) connectIMAP(ctx context.Context) (session, error) {
	s := &imapSession{r: r, exists: make(chan struct{}, 1)}
	c, wd, stop, err := dialIMAP(ctx, r.m, r.src, s.exists)
	if err != nil {
		return nil, err
	}
	s.c, s.wd, s.stop = c, wd, stop
	if r.src.Mode == "delete" && !c.Caps().Has(imap.CapUIDPlus) {
		s.close()
		return nil, fmt.Errorf("imap server %s lacks UIDPLUS: delete mode needs UID EXPUNGE to remove only archived messages", r.src.Host)
	}
	s.idle = c.Caps().Has(imap.CapIdle) && len(r.src.Folders) == 1 && r.src.Folders[0] != "*"
	return s, nil
}

func (s *imapSession) close() {
	if s.closed {
		return
	}
	s.closed = true
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.c.Logout().Wait()
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
	}
	s.c.Close()
	s.stop()
}

func (s *imapSession) canWait() bool { return s.idle }

// wait IDLEs on the (single) selected folder until new mail, a trigger, the
// re-IDLE interval or the end of ctx.
func (s *imapSession) wait(ctx context.Context) error {
	// IDLE is renewed with a poll every poll interval (at most
	// IdleRestart): a server that does not report mail delivered between
	// the last poll and the start of IDLE (some do not flush pending
	// updates when IDLE begins; proxies drop them) then delays it by one
	// poll interval, not by the whole IDLE period.
	every := min(s.r.m.opt.IdleRestart, time.Duration(s.r.src.Poll))
	s.r.setNext(time.Now().Add(every))
	select {
	case <-s.exists:
		return nil
	default:
	}
	// The server may stay silent during IDLE; the watchdog resumes with
	// DONE, which must be answered in time.
	s.wd.hold()
	idle, err := s.c.Idle()
	if err != nil {
		s.wd.release()
		return fmt.Errorf("start IDLE: %w", err)
	}
	t := time.NewTimer(every)
	select {
	case <-ctx.Done():
	case <-s.r.trigger:
	case <-s.exists:
	case <-t.C:
	case <-s.c.Closed():
		// The server or the network dropped the connection.
		t.Stop()
		s.wd.release()
		return errors.New("connection closed during IDLE")
	}
	t.Stop()
	s.wd.release()
	if err := idle.Close(); err != nil {
		return fmt.Errorf("stop IDLE: %w", err)
	}
	if err := idle.Wait(); err != nil {
		return fmt.Errorf("IDLE: %w", err)
	}
	return ctx.Err()
}

// folders expands "*" into every selectable folder (except move_to).
func (s *imapSession) folders() ([]string, error) {
	if !slices.Contains(s.r.src.Folders, "*") {
		return s.r.src.Folders, nil
	}
	return listFolders(s.c, s.r.src.MoveTo)
}

func listFolders(c *imapclient.Client, exclude string) ([]string, error) {
	list, err := c.List("", "*", nil).Collect()
	if err != nil {
		return nil, fmt.Errorf("list folders: %w", err)
	}
	var out []string
	for _, l := range list {
		if slices.Contains(l.Attrs, imap.MailboxAttrNoSelect) || slices.Contains(l.Attrs, imap.MailboxAttrNonExistent) {
			continue
		}
		if exclude != "" && l.Mailbox == exclude {
			continue
		}
		out = append(out, l.Mailbox)
	}
	slices.Sort(out)
	return out, nil
}

func (s *imapSession) poll(ctx context.Context) error {
	folders, err := s.folders()
	if err != nil {
		return err
	}
	var cursors []string
	for _, f := range folders {
		cur, err := s.pollFolder(ctx, f)
		if err != nil {
			return fmt.Errorf("folder %s: %w", f, err)
		}
		cursors = append(cursors, f+"="+cur)
	}
	s.r.setCursor(strings.Join(cursors, " "))
	return nil
}

// folderState is one folder's persisted position.
type folderState struct {
	name     string
	validity uint32
	cursor   imap.UID
	done     uidSet
	skip     uidSet
}

func (fs *folderState) encode() map[string]string {
	return map[string]string{
		keyIMAPCursor + fs.name: fmt.Sprintf("%d:%d", fs.validity, fs.cursor),
		keyIMAPDone + fs.name:   fs.done.String(),
		keyIMAPSkip + fs.name:   fs.skip.String(),
	}
}

func (s *imapSession) loadFolder(ctx context.Context, name string) (*folderState, error) {
	s.wd.hold()
	st, err := s.r.m.st.SourceState(ctx, s.r.src.Name)
	s.wd.release()
	if err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	fs := &folderState{name: name}
	if fs.validity, fs.cursor, err = parseCursor(st[keyIMAPCursor+name]); err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	if fs.done, err = parseUIDSet(st[keyIMAPDone+name]); err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	if fs.skip, err = parseUIDSet(st[keyIMAPSkip+name]); err != nil {
		return nil, fmt.Errorf("load state: %w", err)
	}
	return fs, nil
}

func (s *imapSession) save(ctx context.Context, fs *folderState) error {
	s.wd.hold() // local work: no command in flight
	defer s.wd.release()
	if err := s.r.m.st.SetSourceState(ctx, s.r.src.Name, fs.encode()); err != nil {
		return fmt.Errorf("save cursor: %w", err)
	}
	s.r.m.met.cursorUID.WithLabelValues(s.r.src.Name, fs.name).Set(float64(fs.cursor))
	return nil
}

// pollFolder imports a folder's new messages and returns the cursor summary.
func (s *imapSession) pollFolder(ctx context.Context, name string) (string, error) {
	del := s.r.src.Mode == "delete"
	sel, err := s.c.Select(name, &imap.SelectOptions{ReadOnly: !del}).Wait()
	if err != nil {
		return "", fmt.Errorf("select: %w", err)
	}
	fs, err := s.loadFolder(ctx, name)
	if err != nil {
		return "", err
	}
	if fs.validity != sel.UIDValidity {
		if fs.validity != 0 {
			s.r.m.log.Info("pull folder UIDVALIDITY changed; rescanning it (already archived messages deduplicate)",
				"source", s.r.src.Name, "folder", name, "old", fs.validity, "new", sel.UIDValidity)
		}
		fs = &folderState{name: name, validity: sel.UIDValidity, done: uidSet{}, skip: uidSet{}}
		if err := s.save(ctx, fs); err != nil {
			return "", err
		}
	}
	summary := func() string {
		s.r.m.met.cursorUID.WithLabelValues(s.r.src.Name, name).Set(float64(fs.cursor))
		return fmt.Sprintf("%d:%d", fs.validity, fs.cursor)
	}
	if sel.NumMessages == 0 {
		if len(fs.done) > 0 { // archived, then removed
			advance(fs, nil, del)
			if err := s.save(ctx, fs); err != nil {
				return summary(), err
			}
		}
		return summary(), nil
	}
	if del {
		if err := s.cleanup(ctx, fs); err != nil {
			return summary(), err
		}
	}
	// Every message above the cursor, oldest first.
	res, err := s.c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{{{Start: fs.cursor + 1, Stop: 0}}}}, nil).Wait()
	if err != nil {
		return summary(), fmt.Errorf("search new messages: %w", err)
	}
	var present, todo []imap.UID
	for _, u := range res.AllUIDs() {
		if u <= fs.cursor {
			continue // "N:*" also matches the highest UID when it is below N
		}
		present = append(present, u)
		if !fs.done.has(u) && !fs.skip.has(u) {
			todo = append(todo, u)
		}
	}
	slices.Sort(present)
	slices.Sort(todo)
	for len(todo) > 0 {
		n := min(len(todo), s.r.m.opt.BatchSize)
		batch := todo[:n]
		todo = todo[n:]
		archived, ferr := s.fetchBatch(ctx, fs, batch)
		advance(fs, present, del)
		if err := s.save(ctx, fs); err != nil {
			return summary(), err
		}
		if del && len(archived) > 0 {
			if err := s.remove(archived); err != nil {
				return summary(), err
			}
		}
		if ferr != nil {
			return summary(), ferr
		}
	}
	if len(fs.done) > 0 {
		advance(fs, present, del)
		if err := s.save(ctx, fs); err != nil {
			return summary(), err
		}
	}
	return summary(), nil
}

// advance moves the cursor over the handled prefix of the UIDs above it:
// those present on the server, and those archived (done) whether still
// present or not (delete mode removes them). UIDs only grow, so no message
// can later appear below the cursor. Done UIDs it passes are forgotten.
func advance(fs *folderState, present []imap.UID, del bool) {
	uids := slices.Clone(present)
	for u := range fs.done {
		if u > fs.cursor {
			uids = append(uids, u)
		} else {
			delete(fs.done, u)
		}
	}
	slices.Sort(uids)
	uids = slices.Compact(uids)
	for _, u := range uids {
		if u <= fs.cursor {
			continue
		}
		switch {
		case fs.done.has(u):
			delete(fs.done, u)
		case fs.skip.has(u):
			if !del {
				delete(fs.skip, u) // in keep mode the cursor suffices
			}
		default:
			return
		}
		fs.cursor = u
	}
}

// cleanup removes messages archived in an earlier session whose deletion
// did not happen (crash, lost connection): every UID up to the cursor and
// in the done set, minus the skipped ones.
func (s *imapSession) cleanup(ctx context.Context, fs *folderState) error {
	var set imap.UIDSet
	if fs.cursor > 0 {
		set.AddRange(1, fs.cursor)
	}
	set = append(set, toIMAPSet(fs.done.sorted())...)
	if len(set) == 0 {
		return nil
	}
	res, err := s.c.UIDSearch(&imap.SearchCriteria{UID: []imap.UIDSet{set}}, nil).Wait()
	if err != nil {
		return fmt.Errorf("search archived messages: %w", err)
	}
	var gone []imap.UID
	keepSkip := uidSet{}
	for _, u := range res.AllUIDs() {
		if fs.skip.has(u) {
			keepSkip[u] = struct{}{}
			continue
		}
		gone = append(gone, u)
	}
	// Forget skipped messages below the cursor that someone removed.
	for u := range fs.skip {
		if u > fs.cursor {
			keepSkip[u] = struct{}{}
		}
	}
	if len(keepSkip) != len(fs.skip) {
		fs.skip = keepSkip
		if err := s.save(ctx, fs); err != nil {
			return err
		}
	}
	if len(gone) == 0 {
		return nil
	}
	slices.Sort(gone)
	return s.remove(gone)
}

// remove deletes (or moves to move_to) exactly the given UIDs, all of which
// are durably archived.
func (s *imapSession) remove(uids []imap.UID) error {
	if !s.r.mayDestroy() {
		return errLeaseLost
	}
	set := toIMAPSet(uids)
	if s.r.src.MoveTo != "" {
		if _, err := s.c.Move(set, s.r.src.MoveTo).Wait(); err != nil {
			return fmt.Errorf("move %d archived messages to %s: %w", len(uids), s.r.src.MoveTo, err)
		}
		return nil
	}
	store := &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}
	if err := s.c.Store(set, store, nil).Close(); err != nil {
		return fmt.Errorf("flag %d archived messages deleted: %w", len(uids), err)
	}
	if err := s.c.UIDExpunge(set).Close(); err != nil {
		return fmt.Errorf("expunge %d archived messages: %w", len(uids), err)
	}
	return nil
}

// fetchBatch fetches and ingests batch (sorted UIDs), one message in memory
// at a time. It marks handled UIDs in fs and returns those archived. A
// temporary ingest error stops the batch and is returned; messages the
// server does not deliver are retried on later polls and skipped after
// maxServerFailures.
func (s *imapSession) fetchBatch(ctx context.Context, fs *folderState, batch []imap.UID) ([]imap.UID, error) {
	maxSize := s.r.m.opt.MaxMessageSize
	opts := &imap.FetchOptions{
		UID:         true,
		RFC822Size:  true,
		BodySection: []*imap.FetchItemBodySection{{Peek: true}},
	}
	cmd := s.c.Fetch(toIMAPSet(batch), opts)
	seen := map[imap.UID]bool{}
	var archived []imap.UID
	var stopErr error
	for {
		msg := cmd.Next()
		if msg == nil {
			break
		}
		var (
			uid     imap.UID
			body    []byte
			got     bool
			size    int64
			readErr error
		)
		for {
			item := msg.Next()
			if item == nil {
				break
			}
			switch it := item.(type) {
			case imapclient.FetchItemDataUID:
				uid = it.UID
			case imapclient.FetchItemDataRFC822Size:
				size = it.Size
			case imapclient.FetchItemDataBodySection:
				if it.Literal == nil || stopErr != nil {
					continue
				}
				if it.Literal.Size() > maxSize {
					size = it.Literal.Size()
					continue // the client discards the unread literal
				}
				body, readErr = readCapped(it.Literal, maxSize)
				got = readErr == nil
			}
		}
		if uid == 0 || !slices.Contains(batch, uid) || stopErr != nil {
			continue
		}
		seen[uid] = true
		what := fmt.Sprintf("%s UID %d (UIDVALIDITY %d)", fs.name, uid, fs.validity)
		if readErr != nil {
			stopErr = fmt.Errorf("read %s: %w", what, readErr)
			continue
		}
		if !got && size > maxSize {
			fs.skip[uid] = struct{}{}
			s.r.skip(what, fmt.Sprintf("%d bytes exceeds the %d byte limit", size, maxSize))
			continue
		}
		if !got {
			seen[uid] = false
			continue
		}
		// Archiving is local work: the server may rightly be silent.
		s.wd.hold()
		out, err := s.r.ingest(ctx, body, what)
		s.wd.release()
		body = nil
		if err != nil {
			stopErr = err
			continue
		}
		delete(s.r.failures, key(fs, uid))
		if out == outSkipped {
			fs.skip[uid] = struct{}{}
			continue
		}
		fs.done[uid] = struct{}{}
		archived = append(archived, uid)
	}
	ferr := cmd.Close()
	if stopErr != nil {
		return archived, stopErr
	}
	var imapErr *imap.Error
	if ferr != nil && !errors.As(ferr, &imapErr) {
		return archived, fmt.Errorf("fetch: %w", ferr)
	}
	for _, u := range batch {
		if seen[u] {
			continue
		}
		// The server did not deliver it (expunged meanwhile, or a server
		// error). Retry on later polls; give up after a few.
		k := key(fs, u)
		s.r.failures[k]++
		if s.r.failures[k] >= maxServerFailures {
			delete(s.r.failures, k)
			fs.skip[u] = struct{}{}
			why := "the server did not deliver it"
			if ferr != nil {
				why += ": " + ferr.Error()
			}
			s.r.skip(fmt.Sprintf("%s UID %d", fs.name, u), fmt.Sprintf("%s (%d attempts)", why, maxServerFailures))
		}
	}
	if ferr != nil {
		s.r.noteError(fmt.Sprintf("fetch in %s: %v", fs.name, ferr))
	}
	return archived, nil
}

func key(fs *folderState, u imap.UID) string {
	return fmt.Sprintf("%s/%d/%d", fs.name, fs.validity, u)
}

// readCapped reads r fully, failing when it exceeds max bytes.
func readCapped(r io.Reader, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("message exceeds %d bytes", max)
	}
	return b, nil
}
