package store

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

// KeySize is the length of an encryption key (AES-256).
const KeySize = 32

// keyCheckPlain is sealed with the store key into store.json, so that opening
// with a different key can be refused before any blob is touched.
const keyCheckPlain = "mailarc store key check v1"

// LoadKeyFile reads an AES-256 key from path. The file holds either exactly 32
// raw bytes, or 64 hexadecimal characters, or the standard base64 encoding of
// 32 bytes; a trailing newline (LF or CRLF) after the text forms is ignored.
// Errors never include the file's contents.
func LoadKeyFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("store: key file: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return nil, fmt.Errorf("store: key file %s: %w", path, err)
	}
	key, err := parseKey(b)
	if err != nil {
		return nil, fmt.Errorf("store: key file %s: %w", path, err)
	}
	return key, nil
}

func parseKey(b []byte) ([]byte, error) {
	if len(b) == KeySize {
		return bytes.Clone(b), nil
	}
	t := bytes.TrimSuffix(b, []byte("\n"))
	t = bytes.TrimSuffix(t, []byte("\r"))
	switch {
	case len(t) == 0:
		return nil, errors.New("file is empty; want 32 raw bytes, 64 hex characters or base64 of 32 bytes")
	case len(t) == KeySize:
		return bytes.Clone(t), nil
	case len(t) == 2*KeySize:
		k, err := hex.DecodeString(string(t))
		if err != nil {
			return nil, errors.New("64 characters but not valid hexadecimal")
		}
		return k, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(string(t)); err == nil {
			if len(k) != KeySize {
				return nil, fmt.Errorf("base64 decodes to %d bytes; want %d", len(k), KeySize)
			}
			return k, nil
		}
	}
	return nil, fmt.Errorf("%d bytes is neither 32 raw bytes, 64 hex characters nor base64 of 32 bytes", len(b))
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("store: encryption key is %d bytes; want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return aead, nil
}

// metaFile is the JSON content of store.json.
type metaFile struct {
	Format     int       `json:"format"`
	InstanceID string    `json:"instance_id"`
	Created    time.Time `json:"created"`
	Encryption string    `json:"encryption"`          // "none" or "aes-256-gcm"
	KeyCheck   []byte    `json:"key_check,omitempty"` // nonce || GCM-sealed keyCheckPlain
}

const (
	metaName      = "store.json"
	encNone       = "none"
	encAES256GCM  = "aes-256-gcm"
	metaFormatVer = 1
)

// loadOrCreateMeta reads store.json, creating it for a new store, and checks
// that the configured key (aead, nil = none) matches how the store was written.
func loadOrCreateMeta(dir string, aead cipher.AEAD, hasPacks, noSync bool) (*metaFile, error) {
	path := filepath.Join(dir, metaName)
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		if hasPacks {
			return nil, fmt.Errorf("store: %s holds pack files but no %s; refusing to guess its encryption", dir, metaName)
		}
		return createMeta(dir, aead, noSync)
	}
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	var m metaFile
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("store: %s: %w", path, err)
	}
	if m.Format != metaFormatVer {
		return nil, fmt.Errorf("store: %s: unsupported format %d (this build reads %d)", path, m.Format, metaFormatVer)
	}
	switch m.Encryption {
	case encNone:
		if aead != nil {
			return nil, fmt.Errorf("store: %s was written without encryption but an encryption key is configured; remove the key setting or use a new directory", dir)
		}
	case encAES256GCM:
		if aead == nil {
			return nil, fmt.Errorf("store: %s is encrypted; an encryption key (encryption_key_file) is required to open it", dir)
		}
		if len(m.KeyCheck) < gcmNonceSize+gcmTagSize {
			return nil, fmt.Errorf("store: %s: key check value is missing", path)
		}
		plain, err := aead.Open(nil, m.KeyCheck[:gcmNonceSize], m.KeyCheck[gcmNonceSize:], []byte(m.InstanceID))
		if err != nil || string(plain) != keyCheckPlain {
			return nil, fmt.Errorf("store: the configured encryption key is not the key %s was written with", dir)
		}
	default:
		return nil, fmt.Errorf("store: %s: unknown encryption %q", path, m.Encryption)
	}
	return &m, nil
}

func createMeta(dir string, aead cipher.AEAD, noSync bool) (*metaFile, error) {
	var rnd [16]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("store: instance id: %w", err)
	}
	m := &metaFile{
		Format:     metaFormatVer,
		InstanceID: hex.EncodeToString(rnd[:]),
		Created:    time.Now().UTC().Truncate(time.Second),
		Encryption: encNone,
	}
	if aead != nil {
		m.Encryption = encAES256GCM
		nonce := make([]byte, gcmNonceSize)
		if _, err := rand.Read(nonce); err != nil {
			return nil, fmt.Errorf("store: nonce: %w", err)
		}
		m.KeyCheck = aead.Seal(nonce, nonce, []byte(keyCheckPlain), []byte(m.InstanceID))
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := writeFileAtomic(dir, metaName, append(b, '\n'), noSync); err != nil {
		return nil, err
	}
	return m, nil
}

// writeFileAtomic writes name in dir through a synced temporary file, a
// rename and a sync of the directory (no syncs with noSync, for tests).
func writeFileAtomic(dir, name string, data []byte, noSync bool) error {
	tmp := filepath.Join(dir, name+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("store: write %s: %w", tmp, err)
	}
	if !noSync {
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("store: sync %s: %w", tmp, err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if noSync {
		return nil
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("store: %w", err)
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("store: sync dir %s: %w", dir, err)
	}
	if err := d.Close(); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}
