// Package version holds the mailarc release version.
//
// Mirrored nodes must run the same release (DESIGN §6); the value is set at
// build time with
//
//	-ldflags "-X github.com/mailarc/mailarc/internal/version.Version=1.2.3"
package version

// Version is the release version of this binary. It is a variable only so
// the linker can set it; nothing assigns to it at run time.
var Version = "0.1.0-dev"
