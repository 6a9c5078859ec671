//go:build !unix

package store

// Without mmap the arrays stay on the Go heap.

func osAlloc(n int) []byte { return make([]byte, n) }

func osFree([]byte) {}
