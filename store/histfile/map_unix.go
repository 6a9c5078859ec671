//go:build unix

package histfile

import (
	"os"
	"syscall"
)

// mapPrivate maps a whole file privately: reads come from the page cache, and
// a write (a deleted row's time, say) copies only the page it touches and
// never reaches the file.
func mapPrivate(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() == 0 {
		return []byte{}, nil
	}
	return syscall.Mmap(int(f.Fd()), 0, int(st.Size()), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE)
}

func unmapFile(b []byte) {
	if len(b) > 0 {
		syscall.Munmap(b)
	}
}
