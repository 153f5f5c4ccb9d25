package store

import (
	"bytes"
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// LocalOptions configures OpenLocal.
type LocalOptions struct {
	// Key is the AES-256-GCM key (32 bytes, see LoadKeyFile); nil stores
	// blobs unencrypted. A store written with a key can only be opened with
	// the same key, and one written without a key cannot be opened with one.
	Key []byte
	// MaxPackSize rolls to a new pack file once a pack would grow beyond it
	// (default 1 GiB). A single blob larger than this still gets a pack.
	MaxPackSize int64
	// ZstdLevel is the compression level (default zstd.SpeedDefault).
	ZstdLevel zstd.EncoderLevel
	// NoCompress stores blobs without compression.
	NoCompress bool
	// NoSync skips fsync. Only for tests and benchmarks: acknowledged blobs
	// can then be lost in a crash.
	NoSync bool
	// Logger receives recovery warnings (torn tails, corrupt records found at
	// open). Nil means slog.Default(). Blob contents are never logged.
	Logger *slog.Logger
}

// DefaultMaxPackSize is the default LocalOptions.MaxPackSize.
const DefaultMaxPackSize = 1 << 30

// compactChunk bounds the bytes copied per step of a compaction, so that Put
// and Delete are never blocked for long.
const compactChunk = 8 << 20

// minRecompress is the smallest blob whose plain record Recompress
// compresses: below it the saving is not worth a rewrite.
const minRecompress = 256

// deferRoll: before it appends a record encoded with Deferred to an active pack
// that already holds more than this many bytes, mostly compressed, the store
// starts a new pack, so that Recompress afterwards rewrites the burst and
// not the older records it would otherwise share a pack with. (Local's
// deferRoll field; tests lower it.)
const deferRoll = 64 << 20

// wantRecompress reports whether Recompress rewrites p: when plain records
// make up a tenth or more of its live bytes. A pack written during a burst
// is nearly all plain; one written otherwise holds a plain record only for
// a blob that does not compress, and is left alone. Caller holds Local.mu.
func wantRecompress(p *pack) bool {
	return p.plainStored > 0 && p.plainStored*10 >= p.liveStored
}

// loc is where a record lives. 24 bytes; with the 32-byte key a map entry
// costs roughly 60-70 bytes, so 1M blobs need well under 100 MB.
type loc struct {
	off    int64
	pack   uint32
	recLen uint32
	rawLen uint32
}

type locKey struct {
	pack uint32
	off  int64
}

// pack is one open pack file.
type pack struct {
	id   uint32
	f    *os.File
	refs sync.WaitGroup // readers currently using f; Add only under Local.mu with the pack in Local.packs

	// Guarded by Local.wmu (they change only for the active pack).
	size    int64
	idx     *os.File // index file of the active pack; nil for sealed packs or after an index write error
	idxSize int64
	// unsynced is set while records appended by Append are not yet
	// fsynced; their index entries wait in pendingIdx until they are.
	unsynced   bool
	pendingIdx []byte

	// Guarded by Local.mu.
	liveCount  int64
	liveRaw    int64
	liveStored int64
	deadStored int64
	// plainStored is the part of liveStored in records whose payload is not
	// compressed although the store compresses: written with Deferred, to
	// be compressed by Recompress (see plain).
	plainStored int64
}

// addLive counts lc, a live record of p. Caller holds Local.mu.
func (l *Local) addLive(p *pack, lc loc) {
	p.liveCount++
	p.liveRaw += int64(lc.rawLen)
	p.liveStored += int64(lc.recLen)
	if l.plain(lc) {
		p.plainStored += int64(lc.recLen)
	}
}

// killLive counts lc, a record of p, as dead. Caller holds Local.mu.
func (l *Local) killLive(p *pack, lc loc) {
	p.liveCount--
	p.liveRaw -= int64(lc.rawLen)
	p.liveStored -= int64(lc.recLen)
	p.deadStored += int64(lc.recLen)
	if l.plain(lc) {
		p.plainStored -= int64(lc.recLen)
	}
}

// plain reports whether the record at lc holds its blob uncompressed in a
// store that compresses, told from the lengths alone: its payload is the
// blob itself (plus the GCM nonce and tag when encrypted). Such records
// were written with Deferred, or hold a blob that zstd does not shrink
// (Encode then keeps it as it is; a rewrite by Recompress keeps it
// compressed regardless, so that it is rewritten once at most). Blobs under
// minRecompress bytes are not counted.
func (l *Local) plain(lc loc) bool {
	if l.codec.enc == nil || lc.rawLen < minRecompress {
		return false
	}
	over := int64(recordHeaderSize)
	if l.codec.aead != nil {
		over += gcmNonceSize + gcmTagSize
	}
	return int64(lc.recLen) == over+int64(lc.rawLen)
}

// badRegion is a stretch of a pack that does not hold a valid record, found
// while scanning at open; Verify reports it.
type badRegion struct {
	pack uint32
	off  int64
	id   string // from the record header when it parses, else ""
	err  error
}

// Local is the local pack-file Store. See the package comment for the
// on-disk layout. It is safe for concurrent use.
type Local struct {
	dir     string
	packDir string
	opt     LocalOptions
	log     *slog.Logger
	codec   codec
	meta    *metaFile
	lock    *os.File

	cmu sync.Mutex // one compaction at a time; Close takes it too

	deferRoll int64 // see the constant deferRoll

	wmu      sync.Mutex // serialises appends to packs and to the deletion log
	active   *pack      // guarded by wmu; read under mu for stats
	dead     *os.File   // deletion log, guarded by wmu
	deadSize int64      // guarded by wmu
	broken   error      // sticky write failure, guarded by wmu
	wbuf     []byte     // write buffer, guarded by wmu

	mu     sync.RWMutex
	m      map[[32]byte]loc
	packs  map[uint32]*pack
	bad    []badRegion
	closed bool
}

var _ Store = (*Local)(nil)

func packName(id uint32) string { return fmt.Sprintf("%08d.pack", id) }
func idxName(id uint32) string  { return fmt.Sprintf("%08d.idx", id) }

const deadName = "deleted.log"

// OpenLocal opens (creating if needed) the store in dir. It takes an
// exclusive lock on the directory, checks the encryption key, rebuilds the
// in-memory index from the pack index files, and recovers from a crash:
// a torn record at the tail of a pack is truncated away.
func OpenLocal(dir string, opt LocalOptions) (*Local, error) {
	if opt.MaxPackSize <= 0 {
		opt.MaxPackSize = DefaultMaxPackSize
	}
	if opt.ZstdLevel == 0 {
		opt.ZstdLevel = zstd.SpeedDefault
	}
	l := &Local{
		dir:       dir,
		packDir:   filepath.Join(dir, "packs"),
		opt:       opt,
		deferRoll: deferRoll,
		log:       opt.Logger,
		m:         make(map[[32]byte]loc),
		packs:     make(map[uint32]*pack),
	}
	if l.log == nil {
		l.log = slog.Default()
	}
	if opt.Key != nil {
		aead, err := newAEAD(opt.Key)
		if err != nil {
			return nil, err
		}
		l.codec.aead = aead
	}
	if err := os.MkdirAll(l.packDir, 0o700); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	lock, err := lockDir(filepath.Join(dir, "LOCK"))
	if err != nil {
		return nil, err
	}
	l.lock = lock
	ok := false
	defer func() {
		if !ok {
			l.closeFiles()
		}
	}()

	ids, err := l.listPacks()
	if err != nil {
		return nil, err
	}
	if l.meta, err = loadOrCreateMeta(dir, l.codec.aead, len(ids) > 0, opt.NoSync); err != nil {
		return nil, err
	}
	if !opt.NoCompress {
		l.codec.enc, err = zstd.NewWriter(nil, zstd.WithEncoderLevel(opt.ZstdLevel), zstd.WithEncoderCRC(false))
		if err != nil {
			return nil, fmt.Errorf("store: zstd: %w", err)
		}
	}
	l.codec.dec, err = zstd.NewReader(nil,
		zstd.WithDecoderConcurrency(0),
		zstd.WithDecodeAllCapLimit(true),
		zstd.WithDecoderMaxMemory(MaxBlobSize))
	if err != nil {
		return nil, fmt.Errorf("store: zstd: %w", err)
	}

	deadSet, err := l.openDeadLog()
	if err != nil {
		return nil, err
	}
	var extraDead []deadEntry
	for _, id := range ids {
		if err := l.loadPack(id, deadSet, &extraDead); err != nil {
			return nil, err
		}
	}
	if len(extraDead) > 0 {
		// Two live copies of a blob (a compaction interrupted between copying
		// and logging): keep the newest, log the others as dead so a later
		// Delete cannot leave one behind.
		if err := l.appendDead(extraDead); err != nil {
			return nil, err
		}
	}
	if len(ids) == 0 {
		if err := l.newActive(1); err != nil {
			return nil, err
		}
	} else {
		p := l.packs[ids[len(ids)-1]]
		if err := l.activate(p); err != nil {
			return nil, err
		}
		if p.size >= opt.MaxPackSize {
			if err := l.newActive(p.id + 1); err != nil {
				return nil, err
			}
		}
	}
	ok = true
	return l, nil
}

// InstanceID returns the random id given to the store when it was created.
func (l *Local) InstanceID() string { return l.meta.InstanceID }

// Dir returns the store directory.
func (l *Local) Dir() string { return l.dir }

// listPacks returns the pack ids in ascending order and removes leftovers:
// temporary files and index files whose pack is gone.
func (l *Local) listPacks() ([]uint32, error) {
	ents, err := os.ReadDir(l.packDir)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	packs := map[uint32]bool{}
	var idxs []uint32
	for _, e := range ents {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			if err := os.Remove(filepath.Join(l.packDir, name)); err != nil {
				return nil, fmt.Errorf("store: %w", err)
			}
			continue
		}
		base, ext, _ := strings.Cut(name, ".")
		n, err := strconv.ParseUint(base, 10, 32)
		if err != nil || len(base) != 8 {
			continue
		}
		switch ext {
		case "pack":
			packs[uint32(n)] = true
		case "idx":
			idxs = append(idxs, uint32(n))
		}
	}
	for _, id := range idxs {
		if !packs[id] {
			if err := os.Remove(filepath.Join(l.packDir, idxName(id))); err != nil {
				return nil, fmt.Errorf("store: %w", err)
			}
		}
	}
	ids := make([]uint32, 0, len(packs))
	for id := range packs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids, nil
}

// openDeadLog opens (creating) the deletion log, truncates a torn tail and
// returns its entries by location.
func (l *Local) openDeadLog() (map[locKey][32]byte, error) {
	path := filepath.Join(l.dir, deadName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	l.dead = f
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("store: read %s: %w", path, err)
	}
	if len(b) < fileHeaderSize {
		if len(b) > 0 {
			l.log.Warn("store: rewriting torn deletion log header", "file", path)
		}
		if err := l.resetFile(f, fileHeader(deadMagic, 0)); err != nil {
			return nil, err
		}
		l.deadSize = fileHeaderSize
		return map[locKey][32]byte{}, nil
	}
	if _, err := parseFileHeader(b, deadMagic); err != nil {
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	set := map[locKey][32]byte{}
	off := fileHeaderSize
	for ; off+deadEntrySize <= len(b); off += deadEntrySize {
		e, ok := parseDeadEntry(b[off:])
		if !ok {
			break
		}
		set[locKey{e.pack, e.off}] = e.id
	}
	if off != len(b) {
		// A torn append (the delete was never acknowledged): cut it off so
		// later appends stay aligned.
		l.log.Warn("store: truncating torn deletion log tail", "file", path, "offset", off, "size", len(b))
		if err := f.Truncate(int64(off)); err != nil {
			return nil, fmt.Errorf("store: truncate %s: %w", path, err)
		}
		if err := l.sync(f); err != nil {
			return nil, err
		}
	}
	l.deadSize = int64(off)
	return set, nil
}

// resetFile replaces the content of f with b and syncs it.
func (l *Local) resetFile(f *os.File, b []byte) error {
	if err := f.Truncate(0); err != nil {
		return fmt.Errorf("store: truncate %s: %w", f.Name(), err)
	}
	if _, err := f.WriteAt(b, 0); err != nil {
		return fmt.Errorf("store: write %s: %w", f.Name(), err)
	}
	return l.sync(f)
}

func (l *Local) sync(f *os.File) error {
	if l.opt.NoSync {
		return nil
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("store: sync %s: %w", f.Name(), err)
	}
	return nil
}

func (l *Local) syncDir(dir string) error {
	if l.opt.NoSync {
		return nil
	}
	return syncDir(dir)
}

// loadPack opens pack id, adds its records to the map (skipping those in
// deadSet and resolving duplicates into *extraDead), repairs its index file
// and truncates a torn tail.
func (l *Local) loadPack(id uint32, deadSet map[locKey][32]byte, extraDead *[]deadEntry) error {
	path := filepath.Join(l.packDir, packName(id))
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	p := &pack{id: id, f: f}
	l.packs[id] = p // closed by closeFiles on error
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	size := st.Size()
	hdr := make([]byte, fileHeaderSize)
	if size < fileHeaderSize {
		// Crash while the pack was being created: it holds no records.
		l.log.Warn("store: rewriting torn pack header", "file", path)
		if err := l.resetFile(f, fileHeader(packMagic, id)); err != nil {
			return err
		}
		size = fileHeaderSize
	} else {
		if _, err := f.ReadAt(hdr, 0); err != nil {
			return fmt.Errorf("store: read %s: %w", path, err)
		}
		hid, err := parseFileHeader(hdr, packMagic)
		if err != nil {
			return fmt.Errorf("store: pack %s: %w", path, err)
		}
		if hid != id {
			return fmt.Errorf("store: pack %s: header names pack %d", path, hid)
		}
	}

	add := func(e idxEntry) {
		lc := loc{off: e.off, pack: id, recLen: e.recLen, rawLen: e.rawLen}
		if did, ok := deadSet[locKey{id, e.off}]; ok && did == e.id {
			p.deadStored += int64(e.recLen)
			return
		}
		if old, dup := l.m[e.id]; dup {
			// Keep the copy written last; the other one becomes dead.
			if old.pack > id || old.pack == id && old.off > e.off {
				*extraDead = append(*extraDead, deadEntry{pack: id, off: e.off, id: e.id})
				p.deadStored += int64(e.recLen)
				return
			}
			*extraDead = append(*extraDead, deadEntry{pack: old.pack, off: old.off, id: e.id})
			l.killLive(l.packs[old.pack], old)
		}
		l.m[e.id] = lc
		l.addLive(p, lc)
	}

	// The index file covers a prefix of the pack.
	ipath := filepath.Join(l.packDir, idxName(id))
	ib, err := os.ReadFile(ipath)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("store: %w", err)
	}
	covered := int64(fileHeaderSize)
	nValid := 0
	headerOK := false
	if len(ib) >= fileHeaderSize {
		if hid, err := parseFileHeader(ib, idxMagic); err == nil && hid == id {
			headerOK = true
			for o := fileHeaderSize; o+idxEntrySize <= len(ib); o += idxEntrySize {
				e, ok := parseIdxEntry(ib[o:])
				if !ok || e.off != covered || covered+int64(e.recLen) > size {
					break
				}
				add(e)
				covered += int64(e.recLen)
				nValid++
			}
		}
	}
	idxValidLen := fileHeaderSize + nValid*idxEntrySize

	// Scan what the index does not cover.
	var scanned []idxEntry
	newSize, err := l.scanTail(p, covered, size, func(e idxEntry) { scanned = append(scanned, e); add(e) })
	if err != nil {
		return err
	}
	p.size = newSize

	if !headerOK || len(ib) != idxValidLen || len(scanned) > 0 {
		buf := fileHeader(idxMagic, id)
		if headerOK {
			buf = append(buf, ib[fileHeaderSize:idxValidLen]...)
		}
		for _, e := range scanned {
			buf = appendIdxEntry(buf, e)
		}
		// The index is a cache validated at every open; no sync needed.
		if err := os.WriteFile(ipath, buf, 0o600); err != nil {
			return fmt.Errorf("store: rewrite index: %w", err)
		}
	}
	return nil
}

// scanTail reads records of p from off to size, calling add for each valid
// one. A bad stretch followed by a valid record is remembered as a bad region
// (corruption, reported by Verify); a bad stretch running to the end is a torn
// tail and is truncated. It returns the resulting pack size.
func (l *Local) scanTail(p *pack, off, size int64, add func(idxEntry)) (int64, error) {
	for off < size {
		e, err := readRecordAt(p.f, off, size)
		if err == nil {
			add(e)
			off += int64(e.recLen)
			continue
		}
		next, ferr := findNextRecord(p.f, off+1, size)
		if ferr != nil {
			return 0, fmt.Errorf("store: scan pack %08d: %w", p.id, ferr)
		}
		if next < 0 {
			l.log.Warn("store: truncating torn tail of pack", "pack", packName(p.id), "offset", off, "bytes", size-off, "reason", err.Error())
			if err := p.f.Truncate(off); err != nil {
				return 0, fmt.Errorf("store: truncate pack %08d: %w", p.id, err)
			}
			if err := l.sync(p.f); err != nil {
				return 0, err
			}
			return off, nil
		}
		r := badRegion{pack: p.id, off: off, err: err}
		hb := make([]byte, recordHeaderSize)
		if _, rerr := p.f.ReadAt(hb, off); rerr == nil {
			if h, herr := parseHeader(hb); herr == nil {
				r.id = hex.EncodeToString(h.id[:])
			}
		}
		l.log.Warn("store: corrupt record in pack", "pack", packName(p.id), "offset", off, "bytes", next-off, "reason", err.Error())
		l.bad = append(l.bad, r)
		off = next
	}
	return off, nil
}

// readRecordAt reads and CRC-checks the record at off, returning its index entry.
func readRecordAt(r io.ReaderAt, off, size int64) (idxEntry, error) {
	var e idxEntry
	if size-off < recordHeaderSize {
		return e, fmt.Errorf("%w: %d bytes left, less than a header", errBadRecord, size-off)
	}
	hb := make([]byte, recordHeaderSize)
	if _, err := r.ReadAt(hb, off); err != nil {
		return e, fmt.Errorf("read header: %w", err)
	}
	h, err := parseHeader(hb)
	if err != nil {
		return e, err
	}
	if off+h.recordLen() > size {
		return e, fmt.Errorf("%w: record runs past the end of the pack", errBadRecord)
	}
	rec := make([]byte, h.recordLen())
	if _, err := r.ReadAt(rec, off); err != nil {
		return e, fmt.Errorf("read record: %w", err)
	}
	if err := checkCRC(rec, &h); err != nil {
		return e, err
	}
	return idxEntry{id: h.id, off: off, recLen: uint32(h.recordLen()), rawLen: uint32(h.rawLen)}, nil
}

// findNextRecord returns the offset of the first valid record at or after
// off, or -1 if there is none.
func findNextRecord(r io.ReaderAt, off, size int64) (int64, error) {
	const chunk = 1 << 20
	buf := make([]byte, chunk+len(recordMagic)-1)
	for off < size {
		n := min(int64(len(buf)), size-off)
		if _, err := r.ReadAt(buf[:n], off); err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		b := buf[:n]
		for i := 0; ; {
			j := bytes.Index(b[i:], []byte(recordMagic))
			if j < 0 {
				break
			}
			cand := off + int64(i+j)
			if _, err := readRecordAt(r, cand, size); err == nil {
				return cand, nil
			}
			i += j + 1
		}
		if n < int64(len(buf)) {
			break
		}
		off += chunk
	}
	return -1, nil
}

// activate makes p the pack new records are appended to.
func (l *Local) activate(p *pack) error {
	path := filepath.Join(l.packDir, idxName(p.id))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("store: %w", err)
	}
	p.idx, p.idxSize = f, st.Size()
	if p.idxSize < fileHeaderSize {
		if _, err := f.WriteAt(fileHeader(idxMagic, p.id), 0); err != nil {
			f.Close()
			return fmt.Errorf("store: %w", err)
		}
		p.idxSize = fileHeaderSize
	}
	l.mu.Lock()
	l.active = p
	l.mu.Unlock()
	return nil
}

// newActive creates pack id and makes it the active pack. Caller holds wmu
// (or is OpenLocal).
func (l *Local) newActive(id uint32) error {
	if l.active != nil {
		// Sealing: records Append left unsynced are synced first.
		if err := l.syncActive(); err != nil {
			return err
		}
	}
	path := filepath.Join(l.packDir, packName(id))
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("store: create pack: %w", err)
	}
	if _, err := f.Write(fileHeader(packMagic, id)); err != nil {
		f.Close()
		return fmt.Errorf("store: write %s: %w", path, err)
	}
	if err := l.sync(f); err != nil {
		f.Close()
		return err
	}
	if err := l.syncDir(l.packDir); err != nil {
		f.Close()
		return err
	}
	p := &pack{id: id, f: f, size: fileHeaderSize}
	old := l.active
	l.mu.Lock()
	l.packs[id] = p
	l.mu.Unlock()
	if err := l.activate(p); err != nil {
		return err
	}
	if old != nil && old.idx != nil {
		if err := old.idx.Close(); err != nil {
			l.log.Warn("store: close index", "pack", packName(old.id), "err", err)
		}
		old.idx = nil
	}
	return nil
}

// pendingRec is an encoded record waiting to be appended.
type pendingRec struct {
	id       [32]byte
	rec      []byte
	rawLen   uint32
	deferred bool // written with Deferred (Append starts a new pack for a burst)
}

// appendRecords appends records to the active pack (rolling to new packs as
// needed) and returns the records' locations. It does not touch the map.
// With durable set it syncs every pack it wrote to before returning;
// otherwise the active pack is left unsynced until syncActive (a pack is
// always synced before it is sealed by a roll). Index entries are written
// only once their records are durable. On error the returned locations are
// those of the records already written (a prefix of recs, when the batch
// spanned a pack roll); with durable set they are durable too. Caller holds
// wmu.
func (l *Local) appendRecords(recs []pendingRec, durable bool) (locs []loc, err error) {
	if l.broken != nil {
		return nil, l.broken
	}
	locs = make([]loc, 0, len(recs))
	for len(recs) > 0 {
		p := l.active
		if p.size > fileHeaderSize && p.size+int64(len(recs[0].rec)) > l.opt.MaxPackSize {
			if err := l.newActive(p.id + 1); err != nil {
				return locs, err
			}
			continue
		}
		// Take as many records as fit (at least one).
		buf := l.wbuf[:0]
		n := 0
		for n < len(recs) && (n == 0 || p.size+int64(len(buf)+len(recs[n].rec)) <= l.opt.MaxPackSize) {
			buf = append(buf, recs[n].rec...)
			n++
		}
		l.wbuf = buf
		if _, err := p.f.WriteAt(buf, p.size); err != nil {
			werr := fmt.Errorf("store: write pack %08d: %w", p.id, err)
			if terr := p.f.Truncate(p.size); terr != nil {
				l.broken = fmt.Errorf("%w (and truncating it back failed: %v); reopen the store", werr, terr)
				return locs, l.broken
			}
			return locs, werr
		}
		off := p.size
		for _, r := range recs[:n] {
			lc := loc{off: off, pack: p.id, recLen: uint32(len(r.rec)), rawLen: r.rawLen}
			locs = append(locs, lc)
			p.pendingIdx = appendIdxEntry(p.pendingIdx, idxEntry{id: r.id, off: off, recLen: lc.recLen, rawLen: r.rawLen})
			off += int64(len(r.rec))
		}
		p.size = off
		p.unsynced = true
		if durable {
			if err := l.syncActive(); err != nil {
				return locs[:len(locs)-n], err
			}
		}
		recs = recs[n:]
	}
	if cap(l.wbuf) > 64<<20 {
		l.wbuf = nil // do not keep a huge buffer after a huge blob
	}
	return locs, nil
}

// syncActive fsyncs the active pack if records were appended to it since
// its last sync, then writes their index entries. Caller holds wmu.
func (l *Local) syncActive() error {
	p := l.active
	if p == nil || !p.unsynced {
		return nil
	}
	if l.broken != nil {
		return l.broken
	}
	if err := l.sync(p.f); err != nil {
		// After a failed fsync the page cache state is unknown; refuse
		// further writes until the store is reopened and recovered.
		l.broken = fmt.Errorf("%w; reopen the store", err)
		return l.broken
	}
	p.unsynced = false
	ib := p.pendingIdx
	p.pendingIdx = p.pendingIdx[:0]
	if cap(p.pendingIdx) > 1<<20 {
		p.pendingIdx = nil
	}
	if p.idx != nil && len(ib) > 0 {
		// The index is a cache of the pack (validated and rebuilt at
		// open), so it is written after the pack is durable and not synced.
		if _, err := p.idx.WriteAt(ib, p.idxSize); err != nil {
			l.log.Warn("store: index write failed; it will be rebuilt at next open", "pack", packName(p.id), "err", err)
			p.idx.Close()
			p.idx = nil
		} else {
			p.idxSize += int64(len(ib))
		}
	}
	return nil
}

// appendDead appends entries to the deletion log and syncs it. Caller holds
// wmu (or is OpenLocal).
func (l *Local) appendDead(entries []deadEntry) error {
	if l.broken != nil {
		return l.broken
	}
	var b []byte
	for _, e := range entries {
		b = appendDeadEntry(b, e)
	}
	if _, err := l.dead.WriteAt(b, l.deadSize); err != nil {
		werr := fmt.Errorf("store: write deletion log: %w", err)
		if terr := l.dead.Truncate(l.deadSize); terr != nil {
			l.broken = fmt.Errorf("%w (and truncating it back failed: %v); reopen the store", werr, terr)
			return l.broken
		}
		return werr
	}
	if err := l.sync(l.dead); err != nil {
		l.broken = fmt.Errorf("%w; reopen the store", err)
		return l.broken
	}
	l.deadSize += int64(len(b))
	return nil
}

func (l *Local) checkOpen() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	return nil
}

// Put implements Store: Append, then Sync.
func (l *Local) Put(ctx context.Context, blobs []Blob) error {
	if err := l.Append(ctx, blobs); err != nil {
		return err
	}
	return l.Sync(ctx)
}

// Sync makes every blob appended so far durable: it fsyncs the active pack
// if Append wrote to it since the last sync (at most one fsync, however
// many Appends it covers).
func (l *Local) Sync(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.checkOpen(); err != nil {
		return err
	}
	return l.syncActive()
}

// Append is the first half of Put: it checks and writes the blobs that are
// not stored yet and makes them readable (Get, Has) at once, but does not
// fsync; they are durable only after the next Sync (or Put) returns. A
// crash before that may lose them. The archive appends a group's blobs,
// then syncs them while the catalog commits, so the two waits overlap.
func (l *Local) Append(ctx context.Context, blobs []Blob) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := l.checkOpen(); err != nil {
		return err
	}
	keys := make([][32]byte, len(blobs))
	total := 0
	for i, b := range blobs {
		k, err := parseID(b.ID)
		if err != nil {
			return fmt.Errorf("store: put blob %d: %w", i, err)
		}
		if len(b.Data) > MaxBlobSize {
			return fmt.Errorf("store: put %s: blob is %d bytes, more than the %d limit", b.ID, len(b.Data), MaxBlobSize)
		}
		keys[i] = k
		total += len(b.Data)
	}
	if i := firstMismatch(blobs, keys, total); i >= 0 {
		return fmt.Errorf("store: put %s: content does not match the id (sha256 mismatch); nothing stored", blobs[i].ID)
	}
	todo := l.absent(keys)
	if len(todo) == 0 {
		// Nothing to write, but a store that can no longer write must say
		// so: the caller is about to rely on these blobs.
		l.wmu.Lock()
		defer l.wmu.Unlock()
		return l.broken
	}
	// Encode outside the write lock (so concurrent Puts compress in
	// parallel), spread over the CPUs for large batches; blobs that Encode
	// prepared are used as they are.
	var fresh []int
	for _, i := range todo {
		if blobs[i].record == nil {
			fresh = append(fresh, i)
		}
	}
	encodedFresh, err := l.encodeAll(ctx, keys, blobs, fresh)
	if err != nil {
		return err
	}
	encoded := make([][]byte, len(todo))
	for j, i := range todo {
		if blobs[i].record != nil {
			encoded[j] = blobs[i].record
		} else {
			encoded[j], encodedFresh = encodedFresh[0], encodedFresh[1:]
		}
	}
	if err := ctx.Err(); err != nil {
		return err
	}

	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.checkOpen(); err != nil {
		return err
	}
	recs := make([]pendingRec, 0, len(todo))
	l.mu.RLock()
	for j, i := range todo {
		if _, ok := l.m[keys[i]]; ok {
			continue // stored by a concurrent Put meanwhile
		}
		recs = append(recs, pendingRec{id: keys[i], rec: encoded[j], rawLen: uint32(len(blobs[i].Data)), deferred: blobs[i].deferred && blobs[i].record != nil})
	}
	rollFirst := false
	if l.active.size > l.deferRoll && !wantRecompress(l.active) {
		rollFirst = slices.ContainsFunc(recs, func(r pendingRec) bool { return r.deferred })
	}
	l.mu.RUnlock()
	if rollFirst && l.broken == nil {
		if err := l.newActive(l.active.id + 1); err != nil {
			return err
		}
	}
	locs, err := l.appendRecords(recs, false)
	l.mu.Lock()
	for i, r := range recs[:len(locs)] {
		lc := locs[i]
		l.m[r.id] = lc
		l.addLive(l.packs[lc.pack], lc)
	}
	l.mu.Unlock()
	return err
}

// Level chooses when Encode compresses.
type Level int

const (
	// Smaller compresses now, with the store's zstd level
	// (LocalOptions.ZstdLevel).
	Smaller Level = iota
	// Deferred writes the blob uncompressed, for Recompress to compress
	// later. The archive uses it while ingest is bursting, so the CPU goes
	// to acknowledging mail (docs/benchmarks.md, 2026-12-07 (late)).
	Deferred
)

// Encode prepares b for Put: it computes b's id when b.ID is empty (and
// otherwise checks it against b.Data), and compresses (and encrypts) b's
// record now, in the caller's goroutine, so that Put only has to append
// it. The archive encodes each message on its request's goroutine, so the
// work spreads over the CPUs instead of waiting for the group commit, and
// the message is hashed once for its id and the store's check. A blob the
// store already holds is left without a record (Put skips it). b.Data
// must not change between Encode and Put: Put does not hash an encoded
// blob again. On an error other than a wrong id, b.ID is set and Put
// encodes and checks as usual. lvl chooses whether to compress now or
// leave it to Recompress (see Level).
func (l *Local) Encode(b *Blob, lvl Level) error {
	if len(b.Data) > MaxBlobSize {
		return fmt.Errorf("store: encode %s: blob is %d bytes, more than the %d limit", b.ID, len(b.Data), MaxBlobSize)
	}
	k := sha256.Sum256(b.Data)
	if b.ID == "" {
		b.ID = hex.EncodeToString(k[:])
	} else if want, err := parseID(b.ID); err != nil {
		return fmt.Errorf("store: encode: %w", err)
	} else if want != k {
		return fmt.Errorf("store: encode %s: content does not match the id (sha256 mismatch)", b.ID)
	}
	b.verified = true
	l.mu.RLock()
	_, held := l.m[k]
	l.mu.RUnlock()
	if held {
		return nil
	}
	enc := l.codec.enc
	if lvl == Deferred && enc != nil {
		enc = nil
		b.deferred = true
	}
	rec, err := l.codec.encodeRecordWith(enc, make([]byte, 0, len(b.Data)*65/64+recordHeaderSize+gcmNonceSize+gcmTagSize+64), k, b.Data, false)
	if err != nil {
		return fmt.Errorf("store: encode %s: %w", b.ID, err)
	}
	b.record = rec
	return nil
}

// firstMismatch re-hashes every blob Encode has not checked against its
// key, spread over the CPUs for large batches (Put runs on the archive's
// commit path), and returns the index of the first blob whose content does
// not match, or -1.
func firstMismatch(blobs []Blob, keys [][32]byte, total int) int {
	bad := make([]bool, len(blobs))
	workers := min(runtime.GOMAXPROCS(0), len(blobs), 1+total/(256<<10))
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(blobs); i += workers {
				bad[i] = !blobs[i].verified && sha256.Sum256(blobs[i].Data) != keys[i]
			}
		}()
	}
	wg.Wait()
	for i, b := range bad {
		if b {
			return i
		}
	}
	return -1
}

// encodeAll encodes blobs[todo[j]] into records, using up to GOMAXPROCS
// goroutines when there is enough work.
func (l *Local) encodeAll(ctx context.Context, keys [][32]byte, blobs []Blob, todo []int) ([][]byte, error) {
	out := make([][]byte, len(todo))
	total := 0
	for _, i := range todo {
		total += len(blobs[i].Data)
	}
	workers := min(runtime.GOMAXPROCS(0), len(todo), 1+total/(256<<10))
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Each worker takes every workers-th blob, encoding into one buffer.
			size := 0
			for j := w; j < len(todo); j += workers {
				size += len(blobs[todo[j]].Data)*65/64 + recordHeaderSize + gcmNonceSize + gcmTagSize + 64
			}
			buf := make([]byte, 0, size)
			for j := w; j < len(todo); j += workers {
				if err := ctx.Err(); err != nil {
					errs[w] = err
					return
				}
				start := len(buf)
				var err error
				buf, err = l.codec.encodeRecord(buf, keys[todo[j]], blobs[todo[j]].Data)
				if err != nil {
					errs[w] = err
					return
				}
				out[j] = buf[start:len(buf):len(buf)]
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// absent returns the indexes of keys not in the store, without duplicates.
func (l *Local) absent(keys [][32]byte) []int {
	todo := make([]int, 0, len(keys))
	seen := make(map[[32]byte]struct{}, len(keys))
	l.mu.RLock()
	defer l.mu.RUnlock()
	for i, k := range keys {
		if _, ok := l.m[k]; ok {
			continue
		}
		if _, ok := seen[k]; ok {
			continue
		}
		seen[k] = struct{}{}
		todo = append(todo, i)
	}
	return todo
}

// Get implements Store.
func (l *Local) Get(ctx context.Context, id string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	k, err := parseID(id)
	if err != nil {
		return nil, fmt.Errorf("%v: %w", err, ErrNotFound)
	}
	return l.get(k)
}

func (l *Local) get(k [32]byte) ([]byte, error) {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return nil, ErrClosed
	}
	lc, ok := l.m[k]
	if !ok {
		l.mu.RUnlock()
		return nil, fmt.Errorf("store: get %x: %w", k, ErrNotFound)
	}
	p := l.packs[lc.pack]
	p.refs.Add(1)
	l.mu.RUnlock()
	defer p.refs.Done()

	rec := make([]byte, lc.recLen)
	if _, err := p.f.ReadAt(rec, lc.off); err != nil {
		return nil, fmt.Errorf("store: get %x: read pack %08d at %d: %w: %w", k, lc.pack, lc.off, ErrCorrupt, err)
	}
	h, data, err := l.codec.decodeRecord(rec)
	if err == nil && h.id != k {
		err = fmt.Errorf("%w: record holds blob %x", errBadRecord, h.id)
	}
	if err != nil {
		return nil, fmt.Errorf("store: get %x: pack %08d offset %d: %w: %w", k, lc.pack, lc.off, ErrCorrupt, err)
	}
	return data, nil
}

// Has implements Store.
func (l *Local) Has(ctx context.Context, id string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	k, err := parseID(id)
	if err != nil {
		return false, nil
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return false, ErrClosed
	}
	_, ok := l.m[k]
	return ok, nil
}

// Delete implements Store. The deletion is written to the deletion log and
// synced before Delete returns; the bytes stay in the packs until Compact.
func (l *Local) Delete(ctx context.Context, ids []string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	keys := make([][32]byte, 0, len(ids))
	for _, id := range ids {
		k, err := parseID(id)
		if err != nil {
			return fmt.Errorf("store: delete: %w", err)
		}
		keys = append(keys, k)
	}
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.checkOpen(); err != nil {
		return err
	}
	var entries []deadEntry
	seen := map[[32]byte]bool{}
	l.mu.RLock()
	for _, k := range keys {
		if lc, ok := l.m[k]; ok && !seen[k] {
			seen[k] = true
			entries = append(entries, deadEntry{pack: lc.pack, off: lc.off, id: k})
		}
	}
	l.mu.RUnlock()
	if len(entries) == 0 {
		return nil
	}
	// The deletion log names only durable records: sync records Append
	// left unsynced (a no-op when there are none).
	if err := l.syncActive(); err != nil {
		return err
	}
	if err := l.appendDead(entries); err != nil {
		return err
	}
	l.mu.Lock()
	for _, e := range entries {
		lc := l.m[e.id] // unchanged: moves happen only under wmu
		delete(l.m, e.id)
		l.killLive(l.packs[lc.pack], lc)
	}
	l.mu.Unlock()
	return nil
}

// Compact implements Store. It seals the active pack if it holds deleted
// records, then for every pack with deleted records copies its live records
// to the active pack (in chunks, interleaving with Put), logs the old copies
// as dead, removes the old pack and its index, and finally rewrites the
// deletion log without entries for removed packs.
func (l *Local) Compact(ctx context.Context) error {
	l.cmu.Lock()
	defer l.cmu.Unlock()
	_, err := l.compactWhere(ctx, func(p *pack) bool { return p.deadStored > 0 }, nil)
	return err
}

// compactWhere rewrites, with compactPack, every pack for which want holds
// (sealing the active pack first if want holds for it) and every sealed
// pack left with no live record (a crash before the end of an earlier
// rewrite; it only needs removing), oldest first. want is called under
// Local.mu. With yield set it stops when yield reports true (done false).
// Caller holds cmu.
func (l *Local) compactWhere(ctx context.Context, want func(*pack) bool, yield func() bool) (done bool, err error) {
	if err := l.checkOpen(); err != nil {
		return false, err
	}
	if yield != nil && yield() {
		return false, nil // do not seal the pack a burst is writing to
	}
	l.wmu.Lock()
	l.mu.RLock()
	roll := want(l.active)
	l.mu.RUnlock()
	if roll {
		if err = l.broken; err == nil {
			err = l.newActive(l.active.id + 1)
		}
	}
	l.wmu.Unlock()
	if err != nil {
		return false, err
	}
	l.mu.RLock()
	var cands []*pack
	for _, p := range l.packs {
		if p != l.active && (want(p) || p.liveCount == 0) {
			cands = append(cands, p)
		}
	}
	l.mu.RUnlock()
	slices.SortFunc(cands, func(a, b *pack) int { return cmp.Compare(a.id, b.id) })
	for _, p := range cands {
		if done, err := l.compactPack(ctx, p, yield); !done || err != nil {
			return false, err
		}
	}
	return true, nil
}

// Recompress compresses, with the store's level, the records written
// uncompressed with Deferred: it starts a new active pack if the current
// one holds enough of them, then rewrites every sealed pack that does
// (wantRecompress) the way Compact does, compressing its plain records on
// the way, and removes it. Between steps of at most compactChunk bytes it
// calls yield, and stops (done false, nil error) when yield reports true:
// the archive passes its Busy, so a burst of mail takes the CPU back. A
// later call carries on. A store without compression has nothing to do.
// A plain record that cannot be compressed (damaged, which Verify reports,
// or whose compressed form is exactly as long) stays plain and pending, so
// a caller should call again only once PendingRecompress has grown.
func (l *Local) Recompress(ctx context.Context, yield func() bool) (done bool, err error) {
	if l.codec.enc == nil {
		return true, nil
	}
	l.cmu.Lock()
	defer l.cmu.Unlock()
	return l.compactWhere(ctx, wantRecompress, yield)
}

// PendingRecompress returns the stored bytes of plain records that
// Recompress would compress (in packs where wantRecompress holds).
func (l *Local) PendingRecompress() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var n int64
	for _, p := range l.packs {
		if wantRecompress(p) {
			n += p.plainStored
		}
	}
	return n
}

type liveRec struct {
	id [32]byte
	lc loc
}

// compactPack moves p's live records to the active pack, compressing the
// plain ones (plain), and removes p. With yield set it stops before a step
// when yield reports true, and returns done false.
func (l *Local) compactPack(ctx context.Context, p *pack, yield func() bool) (done bool, err error) {
	var live []liveRec
	l.mu.RLock()
	for k, lc := range l.m {
		if lc.pack == p.id {
			live = append(live, liveRec{k, lc})
		}
	}
	l.mu.RUnlock()
	slices.SortFunc(live, func(a, b liveRec) int { return cmp.Compare(a.lc.off, b.lc.off) })

	for len(live) > 0 {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		if err := l.checkOpen(); err != nil {
			return false, err
		}
		if yield != nil && yield() {
			return false, nil
		}
		n, size := 0, 0
		for n < len(live) && (n == 0 || size+int(live[n].lc.recLen) <= compactChunk) {
			size += int(live[n].lc.recLen)
			n++
		}
		chunk := live[:n]
		live = live[n:]
		// p is sealed and only this compaction (holding cmu) removes it, so
		// reading without a reference is safe. Records are copied verbatim
		// (the CRC does not depend on the location), except plain ones,
		// which are compressed.
		recs := make([]pendingRec, 0, len(chunk))
		for _, r := range chunk {
			b := make([]byte, r.lc.recLen)
			if _, err := p.f.ReadAt(b, r.lc.off); err != nil {
				return false, fmt.Errorf("store: compact: read pack %08d at %d: %w", p.id, r.lc.off, err)
			}
			if l.plain(r.lc) {
				b = l.compressRecord(p, r, b)
			}
			recs = append(recs, pendingRec{id: r.id, rec: b, rawLen: r.lc.rawLen})
		}
		if err := l.moveRecords(p, chunk, recs); err != nil {
			return false, err
		}
	}

	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.mu.Lock()
	if p.liveCount != 0 {
		l.mu.Unlock()
		return false, fmt.Errorf("store: compact: pack %08d still has %d live blobs", p.id, p.liveCount)
	}
	delete(l.packs, p.id)
	l.bad = slices.DeleteFunc(l.bad, func(r badRegion) bool { return r.pack == p.id })
	l.mu.Unlock()
	p.refs.Wait()
	if err := p.f.Close(); err != nil {
		return false, fmt.Errorf("store: compact: %w", err)
	}
	for _, name := range []string{packName(p.id), idxName(p.id)} {
		if err := os.Remove(filepath.Join(l.packDir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return false, fmt.Errorf("store: compact: %w", err)
		}
	}
	if err := l.syncDir(l.packDir); err != nil {
		return false, err
	}
	return true, l.rewriteDeadLog()
}

// compressRecord returns the record rec (r, read from p) with its blob
// compressed, or rec itself when it does not check out (Verify reports it
// where it lands; compaction never changes a damaged record's bytes).
func (l *Local) compressRecord(p *pack, r liveRec, rec []byte) []byte {
	_, data, err := l.codec.decodeRecord(rec)
	if err == nil {
		var out []byte
		if out, err = l.codec.encodeRecordWith(l.codec.enc, make([]byte, 0, len(rec)), r.id, data, true); err == nil {
			return out
		}
	}
	l.log.Warn("store: record left uncompressed", "pack", packName(p.id), "offset", r.lc.off, "err", err)
	return rec
}

// moveRecords appends copies of chunk (records of p) to the active pack,
// logs the old locations as dead and points the map at the copies. Records
// deleted meanwhile are skipped.
func (l *Local) moveRecords(p *pack, chunk []liveRec, recs []pendingRec) error {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	if err := l.checkOpen(); err != nil {
		return err
	}
	keep := recs[:0]
	var olds []liveRec
	l.mu.RLock()
	for i, r := range chunk {
		if cur, ok := l.m[r.id]; ok && cur == r.lc {
			keep = append(keep, recs[i])
			olds = append(olds, r)
		}
	}
	l.mu.RUnlock()
	if len(keep) == 0 {
		return nil
	}
	locs, err := l.appendRecords(keep, true)
	olds = olds[:len(locs)]
	if len(olds) == 0 {
		return err
	}
	dead := make([]deadEntry, len(olds))
	for i, r := range olds {
		dead[i] = deadEntry{pack: p.id, off: r.lc.off, id: r.id}
	}
	// If we crash before this is durable, both copies are live at the next
	// open, which keeps the newer and logs the older as dead.
	if derr := l.appendDead(dead); derr != nil {
		// The copies are durable but the originals are not logged dead: a
		// Delete now would leave a copy behind. Stop writing until reopen,
		// which resolves the duplicates.
		if l.broken == nil {
			l.broken = fmt.Errorf("store: compact: %w; reopen the store", derr)
		}
		return errors.Join(err, l.broken)
	}
	l.mu.Lock()
	for i, r := range olds {
		nl := locs[i]
		l.m[r.id] = nl
		l.killLive(p, r.lc)
		l.addLive(l.packs[nl.pack], nl)
	}
	l.mu.Unlock()
	return err
}

// rewriteDeadLog replaces the deletion log by one without entries for packs
// that no longer exist. Caller holds wmu.
func (l *Local) rewriteDeadLog() error {
	b := make([]byte, l.deadSize)
	if _, err := l.dead.ReadAt(b, 0); err != nil {
		return fmt.Errorf("store: read deletion log: %w", err)
	}
	out := fileHeader(deadMagic, 0)
	l.mu.RLock()
	for off := fileHeaderSize; off+deadEntrySize <= len(b); off += deadEntrySize {
		e, ok := parseDeadEntry(b[off:])
		if !ok {
			break
		}
		if _, exists := l.packs[e.pack]; exists {
			out = append(out, b[off:off+deadEntrySize]...)
		}
	}
	l.mu.RUnlock()
	if err := writeFileAtomic(l.dir, deadName, out, l.opt.NoSync); err != nil {
		l.broken = fmt.Errorf("store: rewrite deletion log: %w; reopen the store", err)
		return l.broken
	}
	f, err := os.OpenFile(filepath.Join(l.dir, deadName), os.O_RDWR, 0)
	if err != nil {
		l.broken = fmt.Errorf("store: reopen deletion log: %w; reopen the store", err)
		return l.broken
	}
	old := l.dead
	l.dead, l.deadSize = f, int64(len(out))
	if err := old.Close(); err != nil {
		return fmt.Errorf("store: close deletion log: %w", err)
	}
	return nil
}

// Walk implements Store. It walks a snapshot taken when it starts, in id order.
func (l *Local) Walk(ctx context.Context, fn func(id string, size int64) error) error {
	type ent struct {
		id   [32]byte
		size uint32
	}
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	snap := make([]ent, 0, len(l.m))
	for k, lc := range l.m {
		snap = append(snap, ent{k, lc.rawLen})
	}
	l.mu.RUnlock()
	slices.SortFunc(snap, func(a, b ent) int { return bytes.Compare(a.id[:], b.id[:]) })
	for i, e := range snap {
		if i%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		if err := fn(hex.EncodeToString(e.id[:]), int64(e.size)); err != nil {
			return err
		}
	}
	return nil
}

// Verify implements Store. It checks a snapshot of the live blobs in pack
// order, then reports the corrupt stretches found when the store was opened.
func (l *Local) Verify(ctx context.Context, fn func(id string, err error) error) error {
	l.mu.RLock()
	if l.closed {
		l.mu.RUnlock()
		return ErrClosed
	}
	snap := make([]liveRec, 0, len(l.m))
	for k, lc := range l.m {
		snap = append(snap, liveRec{k, lc})
	}
	bad := slices.Clone(l.bad)
	l.mu.RUnlock()
	slices.SortFunc(snap, func(a, b liveRec) int {
		if c := cmp.Compare(a.lc.pack, b.lc.pack); c != 0 {
			return c
		}
		return cmp.Compare(a.lc.off, b.lc.off)
	})
	for _, r := range snap {
		if err := ctx.Err(); err != nil {
			return err
		}
		_, err := l.get(r.id)
		if errors.Is(err, ErrNotFound) {
			continue // deleted since the snapshot
		}
		if errors.Is(err, ErrClosed) {
			return err
		}
		if err := fn(hex.EncodeToString(r.id[:]), err); err != nil {
			return err
		}
	}
	for _, r := range bad {
		err := fmt.Errorf("store: pack %08d offset %d: unreadable record: %w: %w", r.pack, r.off, ErrCorrupt, r.err)
		if err := fn(r.id, err); err != nil {
			return err
		}
	}
	return nil
}

// Stats implements Store. StoredBytes counts the live records (header and
// payload); pack and index headers are not counted.
func (l *Local) Stats(ctx context.Context) (Stats, error) {
	if err := ctx.Err(); err != nil {
		return Stats{}, err
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return Stats{}, ErrClosed
	}
	var s Stats
	for _, p := range l.packs {
		s.Blobs += p.liveCount
		s.RawBytes += p.liveRaw
		s.StoredBytes += p.liveStored
		s.DeletedBytes += p.deadStored
	}
	s.Packs = len(l.packs)
	return s, nil
}

// Close implements Store. It waits for a running compaction to stop at its
// next step and for in-flight reads and writes to finish.
func (l *Local) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	l.cmu.Lock()
	defer l.cmu.Unlock()
	l.wmu.Lock()
	defer l.wmu.Unlock()
	serr := l.syncActive() // records appended but never synced
	return errors.Join(serr, l.closeFiles())
}

// closeFiles releases every resource; used by Close and by a failed OpenLocal.
func (l *Local) closeFiles() error {
	var errs []error
	for _, p := range l.packs {
		p.refs.Wait()
		if p.idx != nil {
			errs = append(errs, p.idx.Close())
			p.idx = nil
		}
		errs = append(errs, p.f.Close())
	}
	if l.dead != nil {
		errs = append(errs, l.dead.Close())
	}
	if l.codec.enc != nil {
		errs = append(errs, l.codec.enc.Close())
	}
	if l.codec.dec != nil {
		l.codec.dec.Close()
	}
	if l.lock != nil {
		errs = append(errs, l.lock.Close()) // releases the flock
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("store: close: %w", err)
	}
	return nil
}
