package caddymodule

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/firstpartyhq/firstparty/collector"
	"github.com/firstpartyhq/firstparty/store"
)

// storePool holds the open databases by file, so that site blocks naming the
// same db share it and a config reload keeps it open: the new config takes a
// reference before the old one lets go.
var storePool = caddy.NewUsagePool()

// sharedUAParser caches User-Agent parses across sites and reloads.
var sharedUAParser = collector.NewUAParser(8192)

// datacenter is the embedded table of hosting networks' addresses (SPEC
// §8), opened once for every site and reload.
var datacenter = sync.OnceValues(collector.OpenDatacenter)

type pooledStore struct{ *store.DB }

func (p pooledStore) Destruct() error { return p.DB.Close() }

// openStore returns the shared database at path and its pool key. The key
// is the file's path with symlinks resolved, so that two blocks naming one
// file by different names share one store; the store's own lock keeps other
// processes out.
func openStore(path string, sync store.SyncPolicy, logger *zap.Logger) (*store.DB, string, error) {
	key := path
	if path != ":memory:" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, "", fmt.Errorf("analytics db %s: %w", path, err)
		}
		if err := os.MkdirAll(filepath.Dir(abs), 0o700); err != nil {
			return nil, "", fmt.Errorf("analytics db %s: %w", path, err)
		}
		if key, err = store.CanonicalPath(abs); err != nil {
			return nil, "", fmt.Errorf("analytics db %s: %w", path, err)
		}
	}
	v, _, err := storePool.LoadOrNew(key, func() (caddy.Destructor, error) {
		start := time.Now()
		initMetrics()
		db, err := store.Open(key, store.Options{
			Sync: sync,
			OnError: func(err error) {
				logger.Error("analytics store", zap.String("db", key), zap.Error(err))
				noteStoreError(key, err) // ops: for GET /analytics/health
			},
			OnDamage: func(r store.DamageReport) { logDamage(logger, r) },
			OnMergeRefused: func(site string) {
				analyticsMetrics.rejected.WithLabelValues(site, "merge_refused").Inc()
			},
		})
		if _, locked := errors.AsType[*store.LockedError](err); locked {
			return nil, fmt.Errorf("analytics db %w", err) // "analytics db /x/a.db: in use by pid ..."
		}
		if err != nil {
			return nil, fmt.Errorf("analytics db: %w", err)
		}
		events := 0
		for _, site := range db.Sites() {
			events += db.Count(site)
		}
		logger.Info("analytics store opened", zap.String("db", key), zap.Int("events", events), zap.Duration("took", time.Since(start)))
		return pooledStore{db}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return v.(pooledStore).DB, key, nil
}

// logDamage says what recovery found in a damaged file and where it kept
// it. The site serves on; this is for its operator.
func logDamage(logger *zap.Logger, r store.DamageReport) {
	offsets := make([]int64, 0, len(r.Regions))
	var bytes int64
	for _, d := range r.Regions {
		offsets = append(offsets, d.Offset)
		bytes += d.Length
	}
	if len(r.LostHistory) > 0 {
		logger.Error("analytics history files could not be read: their events are lost, everything else is served",
			zap.String("db", r.Path), zap.Strings("files", r.LostHistory))
		if r.DamagedCopy == "" && len(r.Regions) == 0 && len(r.Values) == 0 {
			return
		}
	}
	msg, level := "analytics db was damaged: intact records recovered, damaged file kept beside it", zap.ErrorLevel
	if r.CopyFrom > 0 {
		// what a crash in the middle of a write leaves
		msg, level = "analytics db ended in a torn record: cut off, its bytes kept beside the db", zap.WarnLevel
	}
	logger.Log(level, msg,
		zap.String("db", r.Path),
		zap.String("damaged_copy", r.DamagedCopy),
		zap.Int64("damaged_copy_from", r.CopyFrom),
		zap.Int("records_kept", r.Kept),
		zap.Int("records_lost_at_least", r.Lost()),
		zap.Int("records_lost_estimated", r.EstimatedLost()),
		zap.Int64s("damaged_offsets", offsets),
		zap.Int64("damaged_bytes", bytes),
		zap.Strings("undecodable_keys", r.Values),
		zap.Duration("took", r.Took))
}
