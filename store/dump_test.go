package store

import (
	"strings"
	"testing"

	"github.com/tidwall/buntdb"
)

// dumpStore opens a closed store's file with buntdb alone and returns every
// key and every value in readable form: event blocks decoded to their
// strings, recording chunks decompressed, anything else as stored. A
// string absent from it is absent from the store, compressed or not.
func dumpStore(t *testing.T, path string) string {
	t.Helper()
	bdb, err := buntdb.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	var out strings.Builder
	err = bdb.View(func(tx *buntdb.Tx) error {
		return tx.Ascend("", func(k, v string) bool {
			out.WriteString(k)
			out.WriteByte('\n')
			switch {
			case strings.HasPrefix(k, "e:"):
				d, err := decodeBlock(v)
				if err != nil {
					t.Errorf("block %q: %v", k, err)
					return false
				}
				for _, s := range d.strs {
					out.WriteString(s)
					out.WriteByte('\n')
				}
			case strings.HasPrefix(k, "r:"):
				h, err := decodeChunkHeader(v)
				if err != nil {
					t.Errorf("chunk %q: %v", k, err)
					return false
				}
				data, err := zstdDec.DecodeAll([]byte(v[h.dataAt:]), nil)
				if err != nil {
					t.Errorf("chunk %q: %v", k, err)
					return false
				}
				out.WriteString(h.distinctID + "\n" + h.windowID + "\n")
				out.Write(data)
			default:
				out.WriteString(v)
			}
			out.WriteByte('\n')
			return true
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out.String()
}
