package server

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailarc/mailarc/internal/fsutil"
)

// markerName is the file whose presence proves a data directory holds a
// mailarc archive. A directory with a catalog but no marker is refused: it
// is far more likely a damaged or wrongly mounted volume than a new archive.
const markerName = "MAILARC"

// Marker is the content of the marker file.
type Marker struct {
	Format   int       `json:"format"`
	Instance string    `json:"store_instance"`
	Created  time.Time `json:"created"`
}

// DataDir is an opened, locked data directory.
type DataDir struct {
	Path   string
	Marker Marker
	lock   *os.File
}

// ErrLocked means another process holds the data directory.
var ErrLocked = errors.New("data directory is in use")

// OpenDataDir creates or opens dir, checks its marker and takes an
// exclusive lock on it (released by Close or process exit).
func OpenDataDir(dir string) (*DataDir, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("data dir %s: %w", abs, err)
	}
	lf, err := os.OpenFile(filepath.Join(abs, "lock"), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("data dir %s: lock file: %w", abs, err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid, _ := os.ReadFile(lf.Name())
		lf.Close()
		who := strings.TrimSpace(string(pid))
		if who == "" {
			who = "another process"
		} else {
			who = "mailarc pid " + who
		}
		return nil, fmt.Errorf("%w: %s is held by %s; stop it, or use --server URL to work through the running node", ErrLocked, abs, who)
	}
	if err := lf.Truncate(0); err == nil {
		_, _ = lf.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	d := &DataDir{Path: abs, lock: lf}
	if err := d.checkMarker(); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (d *DataDir) checkMarker() error {
	mp := filepath.Join(d.Path, markerName)
	b, err := os.ReadFile(mp)
	if err == nil {
		if err := json.Unmarshal(b, &d.Marker); err != nil || d.Marker.Instance == "" {
			return fmt.Errorf("data dir %s: marker file %s is damaged; refusing to start", d.Path, mp)
		}
		return nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("data dir %s: %w", d.Path, err)
	}
	// No marker: only an empty (fresh) directory may be initialised.
	for _, f := range []string{"catalog.db", "store", "index.db"} {
		if _, err := os.Stat(filepath.Join(d.Path, f)); err == nil {
			return fmt.Errorf("data dir %s holds archive data (%s) but no %s marker file: refusing to start rather than begin an empty archive over it; check the volume is mounted correctly, or restore the marker from a backup", d.Path, f, markerName)
		}
	}
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return fmt.Errorf("data dir: instance id: %w", err)
	}
	d.Marker = Marker{Format: 1, Instance: hex.EncodeToString(id), Created: time.Now().UTC().Truncate(time.Second)}
	b, _ = json.MarshalIndent(d.Marker, "", "  ")
	return fsutil.WriteFileAtomic(mp, append(b, '\n'), 0o640)
}

// SetInstance records a new store instance id in the marker (a data
// directory joining a shared archive adopts the archive's id).
func (d *DataDir) SetInstance(id string) error {
	m := d.Marker
	m.Instance = id
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := fsutil.WriteFileAtomic(filepath.Join(d.Path, markerName), append(b, '\n'), 0o640); err != nil {
		return fmt.Errorf("data dir %s: marker: %w", d.Path, err)
	}
	d.Marker = m
	return nil
}

// Close releases the lock.
func (d *DataDir) Close() error {
	if d.lock == nil {
		return nil
	}
	err := d.lock.Close()
	d.lock = nil
	return err
}

// Join returns a path inside the data directory.
func (d *DataDir) Join(elem ...string) string {
	return filepath.Join(append([]string{d.Path}, elem...)...)
}
