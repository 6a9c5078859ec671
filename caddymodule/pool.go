package caddymodule

import (
	"fmt"
	"os"
	"path/filepath"
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

type pooledStore struct{ *store.DB }

func (p pooledStore) Destruct() error { return p.DB.Close() }

// openStore returns the shared database at path and its pool key.
func openStore(path string, sync store.SyncPolicy, logger *zap.Logger) (*store.DB, string, error) {
	key := path
	if path != ":memory:" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return nil, "", fmt.Errorf("analytics db %s: %w", path, err)
		}
		key = abs
	}
	v, _, err := storePool.LoadOrNew(key, func() (caddy.Destructor, error) {
		if key != ":memory:" {
			if err := os.MkdirAll(filepath.Dir(key), 0o700); err != nil {
				return nil, fmt.Errorf("analytics db %s: %w", key, err)
			}
		}
		start := time.Now()
		db, err := store.Open(key, store.Options{
			Sync: sync,
			OnError: func(err error) {
				logger.Error("analytics store", zap.String("db", key), zap.Error(err))
				noteStoreError(key, err) // ops: for GET /analytics/health
			},
		})
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
