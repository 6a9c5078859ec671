package histfile

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// sample lays out a history file of one chunk with every kind of section:
// fixed columns, a code column of width 2, one of width 0, a dictionary, a
// journal, and three blocks (one emptied by deletion).
func sample() (w *Writer, ts []int64, names []uint16) {
	w = &Writer{}
	w.Grow(1 << 20)
	w.Header.Site, w.Header.Chunk, w.Header.Rows = "example.com", 3, Rows
	ts = make([]int64, Rows)
	names = make([]uint16, Rows)
	for i := range ts {
		ts[i] = 1_700_000_000_000 + int64(i)*1000
		names[i] = uint16(i % 7)
	}
	uuid := make([]byte, 16*Rows)
	for i := range uuid {
		uuid[i] = byte(i * 31)
	}
	w.Section("ts", 8, AsBytes(ts))
	w.Section("uuid", 16, uuid)
	w.Section("did", 4, make([]byte, 4*Rows))
	w.Section("name", 2, AsBytes(names))
	w.Section("c:$pathname", 0, nil)
	w.Section("server", 0, make([]byte, Rows/8))
	w.Section("hidden", 0, make([]byte, Rows/8))
	w.Section("d:name", 0, DictBytes([]string{"$pageview", "secret", "$autocapture", ""}, func(i int) bool { return i == 1 }))
	w.Header.Dicts = []DictRange{{Col: "name", From: 1, To: 5}}
	w.Section("journal", 0, []byte("journal block"))
	w.Header.Journal = []int32{5, 9}
	w.Block(BlockMeta{First: 3 * Rows, N: 2048}, "first block")
	w.Block(BlockMeta{First: 3*Rows + 2048, N: 10, Skips: []int32{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}}, "")
	w.Block(BlockMeta{First: 3*Rows + 2058, N: 5, Skips: []int32{2}}, "third, odd length")
	return w, ts, names
}

func write(t testing.TB, w *Writer) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), Name(42))
	head, body := w.Parts()
	if err := WriteFileAtomic(path, head, body, func(string) {}); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRoundTrip(t *testing.T) {
	w, ts, names := sample()
	path := write(t, w)
	if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
		t.Fatalf("directory holds %d entries, want only the file", len(ents))
	}
	hf, err := Open(42, path)
	if err != nil {
		t.Fatal(err)
	}
	defer hf.Close()
	if err := hf.Check(); err != nil {
		t.Fatal(err)
	}
	if hf.ID != 42 || hf.Path != path || !reflect.DeepEqual(hf.Header, w.Header) {
		t.Fatalf("header read back differs:\n%+v\n%+v", hf.Header, w.Header)
	}
	raw, _ := os.ReadFile(path)
	if !bytes.Equal(hf.Bytes(), raw) {
		t.Fatal("Bytes is not the file")
	}
	if string(raw[:8]) != "FPHIST01" {
		t.Fatalf("magic %q", raw[:8])
	}
	hl := binary.LittleEndian.Uint64(raw[8:])
	start := alignUp(16+int(hl), 4096)
	if start%4096 != 0 || int64(len(raw)-start) != hf.Header.Body {
		t.Fatalf("body at %d, %d bytes; header says %d", start, len(raw)-start, hf.Header.Body)
	}
	for _, s := range hf.Header.Sections {
		if s.Off%Align != 0 {
			t.Errorf("section %s at %d, not aligned", s.Name, s.Off)
		}
	}
	for _, b := range hf.Header.Blocks {
		if b.Off%Align != 0 {
			t.Errorf("block at row %d at %d, not aligned", b.First, b.Off)
		}
	}
	if got := AsSlice[int64](hf.Section("ts")); !reflect.DeepEqual(got, ts) {
		t.Fatal("ts section differs")
	}
	if hf.Section("nothing") != nil {
		t.Fatal("a missing section is not nil")
	}
	wd, b, ok, err := hf.Column("name")
	if err != nil || !ok || wd != 2 || !reflect.DeepEqual(AsSlice[uint16](b), names) {
		t.Fatalf("name column: width %d, ok %v, %v", wd, ok, err)
	}
	if wd, b, ok, err := hf.Column("c:$pathname"); err != nil || !ok || wd != 0 || b != nil {
		t.Fatalf("zero-width column: %d %v %v %v", wd, b != nil, ok, err)
	}
	if _, _, ok, err := hf.Column("c:$browser"); ok || err != nil {
		t.Fatalf("missing column: ok %v, %v", ok, err)
	}
	strs, err := hf.DictStrings("name")
	if err != nil || !reflect.DeepEqual(strs, []string{"$pageview", "", "$autocapture", ""}) {
		t.Fatalf("dictionary: %q, %v", strs, err)
	}
	if strings.Contains(string(raw), "secret") {
		t.Fatal("a blanked string reached the file")
	}
	for i, want := range []string{"first block", "", "third, odd length"} {
		if got := hf.BlockValue(i); got != want {
			t.Errorf("block %d: %q, want %q", i, got, want)
		}
	}
	if string(hf.Section("journal")) != "journal block" {
		t.Fatalf("journal %q", hf.Section("journal"))
	}
}

// TestDamaged: every way a file can be wrong is ErrDamaged, at Open or
// (for the body's bytes) at Check.
func TestDamaged(t *testing.T) {
	w, _, _ := sample()
	good, err := os.ReadFile(write(t, w))
	if err != nil {
		t.Fatal(err)
	}
	hl := int(binary.LittleEndian.Uint64(good[8:]))
	start := alignUp(16+hl, 4096)
	// withHeader is the sample file with its header (length and checksum
	// set) edited.
	withHeader := func(edit func(h *Header)) []byte {
		w, _, _ := sample()
		_, body := w.Parts()
		h := w.Header
		edit(&h)
		hj, err := json.Marshal(&h)
		if err != nil {
			t.Fatal(err)
		}
		return append(frameHead(histMagic, hj), body...)
	}
	cases := map[string][]byte{
		"empty":          {},
		"bad magic":      append([]byte("FPHIST02"), good[8:]...),
		"recording":      append([]byte(recMagic), good[8:]...),
		"truncated":      good[:len(good)-1],
		"longer":         append(append([]byte{}, good...), 0),
		"head only":      good[:start],
		"header length":  append(append(append([]byte{}, good[:8]...), 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0), good[16:]...),
		"bad json":       append(append(append([]byte{}, good[:16]...), '!'), good[17:]...),
		"rows":           withHeader(func(h *Header) { h.Rows = 1024 }),
		"section range":  withHeader(func(h *Header) { h.Sections[0].Len = h.Body }),
		"section align":  withHeader(func(h *Header) { h.Sections[1].Off += 8 }),
		"negative":       withHeader(func(h *Header) { h.Sections[2].Off = -64 }),
		"block range":    withHeader(func(h *Header) { h.Blocks[2].Size = h.Body }),
		"no ts":          withHeader(func(h *Header) { h.Sections[0].Name = "tz" }),
		"short hidden":   withHeader(func(h *Header) { h.Sections[6].Len -= 8 }),
		"body too short": withHeader(func(h *Header) { h.Body++ }),
	}
	dir := t.TempDir()
	for name, data := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(name, " ", "-"))
		os.WriteFile(path, data, 0o600)
		hf, err := Open(1, path)
		if err == nil {
			hf.Close()
			t.Errorf("%s: opened", name)
		} else if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: %v", name, err)
		}
	}
	flipped := append([]byte{}, good...)
	flipped[start+100]++
	path := filepath.Join(dir, "flipped")
	os.WriteFile(path, flipped, 0o600)
	hf, err := Open(1, path)
	if err != nil {
		t.Fatalf("a flipped body byte is found by Check, not Open: %v", err)
	}
	if err := hf.Check(); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Check: %v", err)
	}
	hf.Close()
	if _, err := Open(1, filepath.Join(dir, "missing")); !os.IsNotExist(err) {
		t.Fatalf("a missing file: %v", err)
	}
	bad := withHeader(func(h *Header) { h.Sections[3].W = 3; h.Sections[3].Len = 2 * Rows })
	os.WriteFile(path, bad, 0o600)
	if hf, err = Open(1, path); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := hf.Column("name"); !errors.Is(err, ErrDamaged) {
		t.Fatalf("a column of width 3: %v", err)
	}
	hf.Close()
}

// TestWriteFileAtomicPoints: at "write" only the temporary file exists,
// half written; at "rename" it is whole and synced, and the file's name is
// still free; a write that fails leaves nothing behind.
func TestWriteFileAtomicPoints(t *testing.T) {
	w, _, _ := sample()
	head, body := w.Parts()
	path := filepath.Join(t.TempDir(), Name(7))
	var seen []string
	err := WriteFileAtomic(path, head, body, func(point string) {
		seen = append(seen, point)
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("at %s the file exists already (%v)", point, err)
		}
		st, err := os.Stat(path + ".tmp")
		if err != nil {
			t.Fatalf("at %s: %v", point, err)
		}
		switch point {
		case "write":
			if st.Size() != int64(len(head)+len(body)/2) {
				t.Errorf("at write: %d bytes written, want head and half the body", st.Size())
			}
		case "rename":
			hf, err := Open(7, path+".tmp")
			if err != nil {
				t.Fatalf("at rename: %v", err)
			}
			if err := hf.Check(); err != nil {
				t.Errorf("at rename: %v", err)
			}
			hf.Close()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(seen, ",") != "write,rename" {
		t.Fatalf("crash points %v", seen)
	}
	if _, err := os.Stat(path + ".tmp"); !os.IsNotExist(err) {
		t.Fatalf("temporary file left: %v", err)
	}
	if err := WriteFileAtomic(filepath.Join(t.TempDir(), "no", "such", "dir", Name(8)), head, body, func(string) {}); err == nil {
		t.Fatal("writing into a missing directory succeeded")
	}
}

func TestRecordingFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, RecName(9))
	if filepath.Ext(path) != RecExt || filepath.Ext(Name(9)) != histExt || Name(9) == RecName(9) {
		t.Fatalf("names %s %s", Name(9), RecName(9))
	}
	keys := []string{"r:s\x00a\x001", "r:s\x00a\x002", "r:s\x00b\x003"}
	vals := []string{"R first chunk", "", "R third"}
	if err := WriteRec(path, keys, vals, func(string) {}); err != nil {
		t.Fatal(err)
	}
	rf, err := OpenRec(9, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := rf.Check(); err != nil {
		t.Fatal(err)
	}
	if rf.ID != 9 || rf.Path != path || len(rf.Header.Chunks) != len(keys) {
		t.Fatalf("%+v", rf.Header)
	}
	for i := range keys {
		if rf.Header.Chunks[i].Key != keys[i] || rf.Value(i) != vals[i] {
			t.Errorf("chunk %d: %q %q", i, rf.Header.Chunks[i].Key, rf.Value(i))
		}
	}
	raw := append([]byte{}, rf.Bytes()...)
	rf.Close()
	if string(raw[:8]) != "FPRECS01" {
		t.Fatalf("magic %q", raw[:8])
	}
	// A history file is not a recording file, nor the other way round.
	w, _, _ := sample()
	hpath := write(t, w)
	if _, err := OpenRec(1, hpath); !errors.Is(err, ErrDamaged) {
		t.Fatalf("a history file opened as a recording file: %v", err)
	}
	if _, err := Open(1, path); !errors.Is(err, ErrDamaged) {
		t.Fatalf("a recording file opened as a history file: %v", err)
	}
	raw[len(raw)-1]++
	os.WriteFile(path, raw, 0o600)
	rf, err = OpenRec(9, path)
	if err != nil {
		t.Fatal(err)
	}
	if err := rf.Check(); !errors.Is(err, ErrDamaged) {
		t.Fatalf("Check of a flipped byte: %v", err)
	}
	rf.Close()
	var h RecHeader
	h.Chunks = []RecChunk{{Key: "k", Off: 0, Size: 99}}
	h.Body = 10
	hj, _ := json.Marshal(&h)
	os.WriteFile(path, append(frameHead(recMagic, hj), make([]byte, 10)...), 0o600)
	if _, err := OpenRec(9, path); !errors.Is(err, ErrDamaged) {
		t.Fatalf("a chunk past the body: %v", err)
	}
}

// FuzzOpen: whatever a file holds, Open and every read of what it opened
// return or fail; none panics or reads outside the file.
func FuzzOpen(f *testing.F) {
	w, _, _ := sample()
	head, body := w.Parts()
	good := append(append([]byte{}, head...), body...)
	f.Add(good)
	f.Add(good[:len(head)])
	f.Add(good[:100])
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		path := filepath.Join(dir, "f")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if hf, err := Open(1, path); err == nil {
			hf.Check()
			for _, s := range hf.Header.Sections {
				hf.Section(s.Name)
				hf.Column(s.Name)
			}
			for _, d := range hf.Header.Dicts {
				hf.DictStrings(d.Col)
			}
			for i := range hf.Header.Blocks {
				hf.BlockValue(i)
			}
			hf.Close()
		} else if !errors.Is(err, ErrDamaged) {
			t.Fatalf("not ErrDamaged: %v", err)
		}
		if rf, err := OpenRec(1, path); err == nil {
			rf.Check()
			for i := range rf.Header.Chunks {
				rf.Value(i)
			}
			rf.Close()
		}
	})
}

func TestViews(t *testing.T) {
	s := []uint32{1, 2, 0xdeadbeef}
	b := AsBytes(s)
	if len(b) != 12 || binary.LittleEndian.Uint32(b[8:]) != 0xdeadbeef {
		t.Fatalf("%x", b)
	}
	if back := AsSlice[uint32](b); !reflect.DeepEqual(back, s) || &back[0] != &s[0] {
		t.Fatal("AsSlice is not a view of the same memory")
	}
	if AsBytes[uint64](nil) != nil || AsSlice[uint64](nil) != nil {
		t.Fatal("empty views are not nil")
	}
}
