//go:build !unix

package store

import (
	"fmt"
	"os"
)

// lockDir creates the lock file; on this platform it does not lock it.
func lockDir(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: lock: %w", err)
	}
	return f, nil
}
