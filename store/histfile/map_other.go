//go:build !unix

package histfile

import "os"

// mapPrivate reads the whole file where mapping is not available.
func mapPrivate(path string) ([]byte, error) { return os.ReadFile(path) }

func unmapFile([]byte) {}
