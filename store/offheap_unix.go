//go:build unix

package store

import (
	"fmt"
	"syscall"
)

func osAlloc(n int) []byte {
	b, err := syscall.Mmap(-1, 0, n, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		panic(fmt.Sprintf("store: allocating %d bytes: %v", n, err))
	}
	return b
}

func osFree(b []byte) {
	if err := syscall.Munmap(b); err != nil {
		panic(fmt.Sprintf("store: freeing %d bytes: %v", len(b), err))
	}
}
