package store

import (
	"sync/atomic"
	"unsafe"
)

// The columns are most of a table's memory and hold no pointers, so large
// arrays of them live outside the Go heap (anonymous mmap where the system
// has it). The collector then neither scans them nor counts them when it
// sets its next goal: with GOGC=100 the heap may grow to twice what is live
// before a collection, and that doubling now applies to the small part
// (block values, dictionaries) instead of to everything.
//
// Rules: T must hold no pointers; every array of offHeapMin bytes or more
// comes from makeSlice and goes back through freeSlice, once, when nothing
// refers to it any more (the table's write lock guarantees that).

// offHeapBytes counts the bytes allocated off the heap now.
var offHeapBytes atomic.Int64

// offHeapMin is the smallest array kept off the heap.
const offHeapMin = 64 << 10

func elemSize[T any]() int {
	var z T
	return int(unsafe.Sizeof(z))
}

// makeSlice returns a slice of length n and capacity c.
func makeSlice[T any](n, c int) []T {
	size := elemSize[T]()
	if c*size < offHeapMin {
		return make([]T, n, c)
	}
	b := osAlloc(c * size)
	offHeapBytes.Add(int64(c * size))
	return unsafe.Slice((*T)(unsafe.Pointer(unsafe.SliceData(b))), c)[:n]
}

// freeSlice releases an array made by makeSlice.
func freeSlice[T any](s []T) {
	size := elemSize[T]()
	if cap(s)*size < offHeapMin {
		return
	}
	offHeapBytes.Add(-int64(cap(s) * size))
	osFree(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(s[:1]))), cap(s)*size))
}
