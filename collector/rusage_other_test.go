//go:build !unix

package collector

func cpuTime() int64 { return 0 }
