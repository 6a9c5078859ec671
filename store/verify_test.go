package store

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVerifyFile: a good file verifies with its event count; a torn tail
// and a damaged block are reported at the offset of their record.
func TestVerifyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "v.db")
	db, err := Open(path, Options{Sync: SyncAlways})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		var evs []*Event
		for j := 0; j < 100; j++ {
			evs = append(evs, &Event{Site: "v.example", Name: "e", DistinctID: "d", Time: int64(1e12 + i*1000 + j)})
		}
		if _, err := db.Append(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	rep, err := VerifyFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.OK() || rep.Events != 500 {
		t.Fatalf("good file: %+v", rep)
	}
	data, _ := os.ReadFile(path)

	// Torn: cut inside the last record.
	last := strings.LastIndex(string(data), "*3\r\n")
	torn := filepath.Join(dir, "torn.db")
	os.WriteFile(torn, data[:len(data)-5], 0o600)
	rep, _ = VerifyFile(torn)
	if rep.OK() || rep.Damage[0].Offset != int64(last) || !strings.Contains(rep.Damage[0].Msg, "torn") {
		t.Fatalf("torn file: %+v (last record at %d)", rep, last)
	}

	// A block whose bytes are changed but whose framing is intact.
	first := strings.Index(string(data), "*3\r\n$3\r\nset\r\n$18\r\ne:")
	if first < 0 {
		t.Fatal("no block record")
	}
	bad := append([]byte(nil), data...)
	v := first + len("*3\r\n$3\r\nset\r\n$18\r\ne:0000000000000000\r\n")
	nl := strings.Index(string(bad[v:]), "\r\n")
	bad[v+nl+2] = 'Z' // the block's magic byte
	badPath := filepath.Join(dir, "bad.db")
	os.WriteFile(badPath, bad, 0o600)
	rep, _ = VerifyFile(badPath)
	if rep.OK() || rep.Damage[0].Offset != int64(first) {
		t.Fatalf("damaged block: %+v (record at %d)", rep, first)
	}
}

// TestBackupRestore: a backup restored over a database gives the backup's
// events and keeps the replaced file beside it; a damaged backup is refused.
func TestBackupRestore(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "r.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	add := func(name string, n int) {
		var evs []*Event
		for i := 0; i < n; i++ {
			evs = append(evs, &Event{Site: "r.example", Name: name, DistinctID: "d", Time: int64(1e12 + i)})
		}
		if _, err := db.Append(context.Background(), evs); err != nil {
			t.Fatal(err)
		}
	}
	add("before", 30)
	backup := filepath.Join(dir, "b.db")
	if _, err := db.BackupTo(backup); err != nil {
		t.Fatal(err)
	}
	add("after", 20)
	db.Close()

	bad := filepath.Join(dir, "bad.db")
	data, _ := os.ReadFile(backup)
	os.WriteFile(bad, data[:len(data)-3], 0o600)
	if _, err := Restore(bad, path); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("restoring a torn backup: %v", err)
	}

	kept, err := Restore(backup, path)
	if err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]int{path: 30, kept: 50} {
		db, err := Open(file, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if got := db.Count("r.example"); got != want {
			t.Fatalf("%s: %d events, want %d", file, got, want)
		}
		db.Close()
	}
}
