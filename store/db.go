package store

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tidwall/buntdb"

	"github.com/firstpartyhq/firstparty/store/histfile"
)

// SyncPolicy says how often the log is fsynced. Either way a commit has
// reached the operating system before Append returns, so killing the
// process loses nothing; the policy matters for power loss.
type SyncPolicy string

// Sync policies.
const (
	SyncAlways      SyncPolicy = "always"
	SyncEverySecond SyncPolicy = "everysecond"
)

// Options tune a DB. The zero value is usable.
type Options struct {
	// Sync is the fsync policy; default SyncEverySecond.
	Sync SyncPolicy
	// Now is the clock; default time.Now.
	Now func() time.Time
	// BlockEvents is how many events the compactor puts in one block;
	// default 2048.
	BlockEvents int
	// CompactAfter is how many rows sit in uncompressed blocks before the
	// compactor runs; default 8192. It also runs every CompactEvery.
	CompactAfter int
	// CompactEvery is the compactor's period; default 10s.
	CompactEvery time.Duration
	// OnError reports background failures (compaction, retention).
	OnError func(error)
	// OnMergeRefused is called once for every ingested link event that the
	// merge rule refused (SPEC §4: a link never joins two identified
	// persons), with its site; not while the log is replayed at start.
	OnMergeRefused func(site string)
	// HistoryAfter is how many rows must follow a chunk of rows in the log
	// before it moves into a history file; default 65,536 (one chunk).
	// Negative: as soon as the chunk is whole.
	HistoryAfter int
	// NoHistory keeps every event and recording in the log (and in memory).
	NoHistory bool
	// RecordingIdle is how long a recording must have had no new event
	// before its chunks move from the log into a recording file; default
	// 30 minutes.
	RecordingIdle time.Duration
	// OnDamage reports, once Open has recovered, what it found damaged
	// in the file and what it set aside; not called for a clean file.
	OnDamage func(DamageReport)
}

// DamageReport says what Open found damaged and what it did about it: the
// intact records were kept, the damaged file was kept beside the database,
// and the store serves on.
type DamageReport struct {
	Path string // the database file
	// DamagedCopy is the damaged file, kept beside: <db>.damaged-<UTC time>.
	// Offsets in Regions are offsets in the damaged file. When the only
	// damage was a torn tail, the file was cut there and DamagedCopy holds
	// only the torn bytes, those from offset CopyFrom on.
	DamagedCopy string
	CopyFrom    int64
	// Kept is how many intact records of the file were kept.
	Kept int
	// Regions are the damaged byte ranges of the file; their records are
	// lost.
	Regions []Damage
	// Values are the keys of records that were whole in the file but whose
	// values did not decode; they were removed from the log.
	Values []string
	// LostHistory are the history files that were missing or could not
	// be read (each kept aside as <file>.damaged-<time> when present): their
	// rows are lost, everything else is served.
	LostHistory []string
	// Took is how long Open spent checking and recovering.
	Took time.Duration

	size int64 // of the damaged file
}

// Lost is how many records were lost, at least (a region's count comes
// from the record headers that survive in it).
func (r DamageReport) Lost() int {
	c := FileCheck{Damage: r.Regions}
	return c.Lost() + len(r.Values)
}

// EstimatedLost is Lost with the damaged regions' records estimated from
// their size (see FileCheck.EstimatedLost).
func (r DamageReport) EstimatedLost() int {
	c := FileCheck{Damage: r.Regions, Records: r.Kept, Size: r.size}
	return c.EstimatedLost() + len(r.Values)
}

// DB is the embedded Store: a buntdb log of event blocks plus in-memory
// columnar tables.
type DB struct {
	path string
	opts Options
	db   *buntdb.DB
	lock *fileLock // nil for ":memory:"

	mu        sync.RWMutex // guards tables, sites and retention
	tables    map[string]*table
	sites     map[string]bool
	retention map[string]time.Duration

	// maint serialises whatever rewrites existing blocks (compaction,
	// deletion, retention, lazy columns reading them).
	maint sync.Mutex

	commits   chan *commitReq
	seq       uint64        // next block sequence; owned by the committer
	seqSeen   atomic.Uint64 // seq, for the mover
	pending   atomic.Int64  // rows committed since the last compaction
	nCommits  atomic.Uint64 // group commits so far
	compactCh chan struct{}
	// retentionDue asks the compactor to apply retention now.
	retentionDue atomic.Bool
	stop         chan struct{}
	done         sync.WaitGroup
	closeOnce    sync.Once
	closed       chan struct{}

	live  liveHub
	hist  histState // history files (history.go)
	bc    blockCache
	recs  recordings
	defs  definitions // actions and cohorts
	salt  daySalt     // cookieless counting's salt of the day
	flags flagState   // feature flags and experiments (flags.go)
}

// Open opens (creating if needed) the database at path; ":memory:" keeps
// everything in memory. The log is replayed into the in-memory tables.
//
// The file is locked while open: another Open of it, in this process or
// another, fails with a *LockedError naming the holder. path is resolved
// through symlinks first, so every name of a file takes the same lock.
//
// A damaged file does not make Open fail. Before replaying, Open checks the
// whole log (CheckFile); when part of it is damaged it copies every intact
// record, in order, to a fresh file that takes the database's place and
// keeps the damaged file beside it (<db>.damaged-<UTC time>). Records whose
// values do not decode are set aside the same way. This runs synchronously,
// inside Open, and is reported through OnDamage.
func Open(path string, opts Options) (db *DB, err error) {
	if opts.Sync == "" {
		opts.Sync = SyncEverySecond
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.BlockEvents <= 0 {
		opts.BlockEvents = 2048
	}
	if opts.CompactAfter <= 0 {
		opts.CompactAfter = 8192
	}
	if opts.CompactEvery <= 0 {
		opts.CompactEvery = 10 * time.Second
	}
	if opts.HistoryAfter == 0 {
		opts.HistoryAfter = chunkSize
	} else if opts.HistoryAfter < 0 {
		opts.HistoryAfter = 0
	}
	if opts.RecordingIdle <= 0 {
		opts.RecordingIdle = 30 * time.Minute
	}
	if opts.OnError == nil {
		opts.OnError = func(error) {}
	}
	start := time.Now()
	var lock *fileLock
	var report DamageReport
	records := 0 // intact records of the file
	if path != ":memory:" {
		real, err := CanonicalPath(path)
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", path, err)
		}
		path = real
		if lock, err = lockDB(path); err != nil {
			return nil, err
		}
		defer func() {
			if err != nil {
				lock.release()
			}
		}()
		check, damaged, from, err := recoverFile(path, opts.Now())
		if err != nil {
			return nil, fmt.Errorf("opening %s: %w", path, err)
		}
		records = check.Records
		if damaged != "" {
			report = DamageReport{Path: path, DamagedCopy: damaged, CopyFrom: from, Kept: check.Records, Regions: check.Damage, size: check.Size}
		}
	}
	bdb, err := buntdb.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	var cfg buntdb.Config
	if err := bdb.ReadConfig(&cfg); err != nil {
		bdb.Close()
		return nil, err
	}
	switch opts.Sync {
	case SyncAlways:
		cfg.SyncPolicy = buntdb.Always
	case SyncEverySecond:
		cfg.SyncPolicy = buntdb.EverySecond
	default:
		bdb.Close()
		return nil, fmt.Errorf("unknown sync policy %q", opts.Sync)
	}
	// buntdb rewrites its file once it has grown past twice the live data
	// (and 32 MB). Moved and compacted blocks leave most of what a busy log
	// wrote dead, so that rewrite ran every few seconds under load; now it
	// waits for 3× the live data and 128 MB (a deletion still rewrites at
	// once: shrink).
	cfg.AutoShrinkPercentage = 200
	cfg.AutoShrinkMinSize = 128 << 20
	if err := bdb.SetConfig(cfg); err != nil {
		bdb.Close()
		return nil, err
	}
	s := &DB{
		path:      path,
		opts:      opts,
		db:        bdb,
		lock:      lock,
		tables:    make(map[string]*table),
		sites:     make(map[string]bool),
		commits:   make(chan *commitReq, 1024),
		compactCh: make(chan struct{}, 1),
		stop:      make(chan struct{}),
		closed:    make(chan struct{}),
	}
	s.bc.init(8)
	s.hist.files = make(map[uint64]*histfile.File)
	s.hist.recs = make(map[uint64]*histfile.RecFile)
	s.hist.recNames = make(map[uint64]string)
	if path != ":memory:" && !opts.NoHistory {
		s.hist.dir = HistoryDir(path)
	}
	err = s.loadHistory()
	var badBlocks []string
	if err == nil {
		badBlocks, err = s.load()
	}
	if err == nil {
		err = s.setAside(badBlocks, records, &report)
	}
	if err == nil {
		err = s.loadRecordings()
	}
	if err == nil {
		err = s.loadDefinitions()
	}
	if err == nil {
		err = s.loadDocIDs()
	}
	if err != nil {
		s.closeHistory()
		bdb.Close()
		return nil, fmt.Errorf("loading %s: %w", path, err)
	}
	if len(s.hist.lost) > 0 {
		report.Path, report.LostHistory = path, s.hist.lost
	}
	if report.Path != "" && opts.OnDamage != nil {
		report.Took = time.Since(start)
		opts.OnDamage(report)
	}
	s.seqSeen.Store(s.seq)
	s.done.Add(2)
	go s.committer()
	go s.compactor()
	return s, nil
}

// Close stops the background work and closes the log.
func (s *DB) Close() error {
	var err error
	s.closeOnce.Do(func() {
		close(s.stop)
		s.done.Wait()
		close(s.closed)
		s.live.closeAll()
		s.maint.Lock()
		defer s.maint.Unlock()
		s.mu.RLock()
		for _, t := range s.tables {
			t.mu.Lock()
			t.release()
			t.closed = true
			t.mu.Unlock()
		}
		s.mu.RUnlock()
		s.closeHistory()
		err = s.db.Close()
		if lerr := s.lock.release(); err == nil {
			err = lerr
		}
	})
	return err
}

// AddSite makes site known.
func (s *DB) AddSite(site string) {
	s.mu.Lock()
	s.sites[site] = true
	s.mu.Unlock()
}

// Sites lists the sites that are configured or have events.
func (s *DB) Sites() []string {
	s.mu.RLock()
	out := make([]string, 0, len(s.sites))
	for k := range s.sites {
		out = append(out, k)
	}
	s.mu.RUnlock()
	sort.Strings(out)
	return out
}

// Count returns the number of stored events of site.
func (s *DB) Count(site string) int {
	t := s.table(site)
	if t == nil || t.rlock() != nil {
		return 0
	}
	defer t.mu.RUnlock()
	return t.live
}

// table returns the table of site, or nil.
func (s *DB) table(site string) *table {
	s.mu.RLock()
	t := s.tables[site]
	s.mu.RUnlock()
	return t
}

// tableFor returns the table of site, creating it.
func (s *DB) tableFor(site string) *table {
	if t := s.table(site); t != nil {
		return t
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.tables[site]
	if t == nil {
		t = newTable(site)
		t.hist.on = s.hist.dir != ""
		s.tables[site] = t
		s.sites[site] = true
	}
	return t
}

func blockKey(seq uint64) string {
	var b [18]byte
	b[0], b[1] = 'e', ':'
	v := strconv.AppendUint(b[2:2], seq, 16)
	// zero-pad to 16 digits so that key order is sequence order
	pad := 16 - len(v)
	copy(b[2+pad:], v)
	for i := 2; i < 2+pad; i++ {
		b[i] = '0'
	}
	return string(b[:])
}

func parseBlockKey(k string) (uint64, bool) {
	if len(k) != 18 || k[:2] != "e:" {
		return 0, false
	}
	v, err := strconv.ParseUint(k[2:], 16, 64)
	return v, err == nil
}

// ctxDone reports whether ctx is cancelled.
func ctxDone(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	default:
		return false
	}
}

// Now is the store's clock (Options.Now), which LiveCount reads; a
// backend that answers LiveCount elsewhere reads the same clock.
func (s *DB) Now() time.Time { return s.opts.Now() }
