package histfile

import (
	"encoding/json"
	"fmt"
	"hash/crc32"
	"unsafe"
)

const (
	// recMagic starts every recording file.
	recMagic = "FPRECS01"
	// RecExt is the recording files' name extension.
	RecExt = ".fpr"
)

// RecHeader is a recording file's table of contents (JSON, at its start).
type RecHeader struct {
	Chunks  []RecChunk `json:"chunks"`
	Body    int64      `json:"body"`
	BodyCRC uint32     `json:"body_crc"`
}

// RecChunk is one recording chunk: its log key and where its value is.
type RecChunk struct {
	Key  string `json:"key"`
	Off  int64  `json:"off"`
	Size int64  `json:"size"`
}

// RecName is the file name of recording file id.
func RecName(id uint64) string { return fmt.Sprintf("%016x%s", id, RecExt) }

// RecFile is an open (mapped) recording file.
type RecFile struct {
	ID     uint64
	Path   string
	Header RecHeader
	data   []byte
	body   []byte
}

// WriteRec writes the chunks vals, under their log keys, to a recording
// file at path (atomically: see WriteFileAtomic, which calls crash).
func WriteRec(path string, keys []string, vals []string, crash func(string)) error {
	var hdr RecHeader
	var body []byte
	for i, k := range keys {
		hdr.Chunks = append(hdr.Chunks, RecChunk{Key: k, Off: int64(len(body)), Size: int64(len(vals[i]))})
		body = append(body, vals[i]...)
	}
	hdr.Body, hdr.BodyCRC = int64(len(body)), crc32.ChecksumIEEE(body)
	hj, _ := json.Marshal(&hdr)
	return WriteFileAtomic(path, frameHead(recMagic, hj), body, crash)
}

// OpenRec maps the recording file at path and checks its header (not the
// body's checksum: see Check).
func OpenRec(id uint64, path string) (*RecFile, error) {
	data, err := mapPrivate(path)
	if err != nil {
		return nil, err
	}
	rf := &RecFile{ID: id, Path: path, data: data}
	bad := func(why string) (*RecFile, error) {
		unmapFile(data)
		return nil, fmt.Errorf("%w: %s: %s", ErrDamaged, path, why)
	}
	body, err := unframe(data, recMagic, &rf.Header, func() int64 { return rf.Header.Body })
	if err != nil {
		return bad(err.Error())
	}
	rf.body = body
	for _, c := range rf.Header.Chunks {
		if c.Off < 0 || c.Size < 0 || c.Off+c.Size > rf.Header.Body {
			return bad("chunk out of range")
		}
	}
	return rf, nil
}

// Close unmaps the file; nothing read from it may be used after.
func (rf *RecFile) Close() { unmapFile(rf.data) }

// Bytes is the whole file as mapped.
func (rf *RecFile) Bytes() []byte { return rf.data }

// Check verifies the body's checksum.
func (rf *RecFile) Check() error {
	if crc32.ChecksumIEEE(rf.body) != rf.Header.BodyCRC {
		return fmt.Errorf("%w: %s: checksum mismatch", ErrDamaged, rf.Path)
	}
	return nil
}

// Value returns chunk i's stored value (a view into the mapping).
func (rf *RecFile) Value(i int) string {
	c := rf.Header.Chunks[i]
	if c.Size == 0 {
		return ""
	}
	return unsafe.String(&rf.body[c.Off], int(c.Size))
}
