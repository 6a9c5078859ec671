// Package histfile is the on-disk format of the embedded store's history
// files (.fph) and recording files (.fpr): their headers, the writer that
// lays them out, the atomic write (temporary file, fsync, rename), and the
// reader that maps a file (MAP_PRIVATE, so its pages are page cache, not
// process memory) and checks its header.
//
// A history file holds one chunk of Rows rows of a site's table: sections
// of column arrays, dictionary strings and event blocks, named by a JSON
// header. A recording file holds recording chunks under their log keys.
// The package knows nothing of tables, the log or queries: store/ decides
// what goes into a file, lists it in the log and maps its columns into a
// table (store/history.go, store/recfiles.go). docs/storage.md describes
// the format byte by byte.
package histfile
