package store

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/tidwall/buntdb"
)

// Documents are the small per-site definitions the dashboard saves —
// goals, annotations, saved insights and dashboards — kept as JSON in the
// log under o:<kind>\x00<site>\x00<id>. The store keeps them whole; the
// dashboard checks their shape. Ids are unique across sites and kinds.

// Document kinds.
const (
	DocGoal       = "goal"
	DocAnnotation = "annotation"
	DocInsight    = "insight"
	DocDashboard  = "dashboard"
)

// maxDocs bounds the documents of one kind per site, and maxDocBytes one
// document.
const (
	maxDocs     = 1000
	maxDocBytes = 64 << 10
)

// Doc is one saved document.
type Doc struct {
	ID   int64
	Body json.RawMessage
}

func docKey(kind, site string, id int64) string {
	return "o:" + kind + "\x00" + site + "\x00" + strconv.FormatInt(id, 10)
}

func docPrefix(kind, site string) string { return "o:" + kind + "\x00" + site + "\x00" }

func validDocKind(kind string) error {
	switch kind {
	case DocGoal, DocAnnotation, DocInsight, DocDashboard:
		return nil
	}
	return badQuery("unknown document kind %q", kind)
}

// Docs lists a site's documents of a kind by id.
func (s *DB) Docs(ctx context.Context, site, kind string) ([]Doc, error) {
	if err := validDocKind(kind); err != nil {
		return nil, err
	}
	var out []Doc
	prefix := docPrefix(kind, site)
	err := s.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendGreaterOrEqual("", prefix, func(k, v string) bool {
			if !strings.HasPrefix(k, prefix) {
				return false
			}
			id, err := strconv.ParseInt(k[len(prefix):], 10, 64)
			if err == nil {
				out = append(out, Doc{ID: id, Body: json.RawMessage(v)})
			}
			return true
		})
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// Doc returns one document.
func (s *DB) Doc(ctx context.Context, site, kind string, id int64) (Doc, error) {
	if err := validDocKind(kind); err != nil {
		return Doc{}, err
	}
	var d Doc
	err := s.db.View(func(tx *buntdb.Tx) error {
		v, err := tx.Get(docKey(kind, site, id))
		if err != nil {
			return ErrNotFound
		}
		d = Doc{ID: id, Body: json.RawMessage(v)}
		return nil
	})
	return d, err
}

// SaveDoc creates (ID 0) or replaces a document; body is its JSON without
// the id, which the store adds as "id".
func (s *DB) SaveDoc(ctx context.Context, site, kind string, d Doc) (Doc, error) {
	if err := validDocKind(kind); err != nil {
		return d, err
	}
	if len(d.Body) > maxDocBytes {
		return d, badQuery("a %s may be at most %d bytes", kind, maxDocBytes)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(d.Body, &fields); err != nil {
		return d, badQuery("a %s must be a JSON object", kind)
	}
	defs := &s.defs
	defs.mu.Lock()
	defer defs.mu.Unlock()
	n := 0
	exists := false
	prefix := docPrefix(kind, site)
	s.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendGreaterOrEqual("", prefix, func(k, _ string) bool {
			if !strings.HasPrefix(k, prefix) {
				return false
			}
			n++
			if d.ID != 0 && k == docKey(kind, site, d.ID) {
				exists = true
			}
			return true
		})
	})
	switch {
	case d.ID == 0 && n >= maxDocs:
		return d, badQuery("a site may have at most %d of kind %s", maxDocs, kind)
	case d.ID == 0:
		d.ID = defs.lastID + 1
	case !exists:
		return d, ErrNotFound
	}
	fields["id"] = json.RawMessage(strconv.FormatInt(d.ID, 10))
	body, err := json.Marshal(fields)
	if err != nil {
		return d, fmt.Errorf("encoding %s: %w", kind, err)
	}
	if err := s.setDef(docKey(kind, site, d.ID), string(body)); err != nil {
		return d, err
	}
	defs.lastID = max(defs.lastID, d.ID)
	d.Body = body
	return d, nil
}

// DeleteDoc removes a document.
func (s *DB) DeleteDoc(ctx context.Context, site, kind string, id int64) error {
	if _, err := s.Doc(ctx, site, kind, id); err != nil {
		return err
	}
	s.defs.mu.Lock()
	defer s.defs.mu.Unlock()
	return s.setDef(docKey(kind, site, id), "")
}

// loadDocIDs keeps document ids from being given out again after a restart.
func (s *DB) loadDocIDs() error {
	return s.db.View(func(tx *buntdb.Tx) error {
		return tx.AscendKeys("o:*", func(k, _ string) bool {
			if i := strings.LastIndexByte(k, 0); i >= 0 {
				if id, err := strconv.ParseInt(k[i+1:], 10, 64); err == nil {
					s.defs.lastID = max(s.defs.lastID, id)
				}
			}
			return true
		})
	})
}
