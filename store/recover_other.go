//go:build !unix

package store

import "os"

// mapFile reads the file at path into memory.
func mapFile(path string) ([]byte, func(), error) {
	b, err := os.ReadFile(path)
	return b, func() {}, err
}
