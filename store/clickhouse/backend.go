// Package clickhouse is the ClickHouse backend of SPEC §7: the embedded
// store stays the local log (every event is committed there first, exactly
// as without ClickHouse), and a background shipper sends the committed
// events, in order and at least once, to ClickHouse, which answers the
// reports.
package clickhouse

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

// Options configure the backend (the Caddyfile's clickhouse block).
type Options struct {
	// URLs are the HTTP interfaces of the servers. Queries and inserts go
	// to the first that answers; with Cluster, the tables are created on
	// every one (the cluster's shards).
	URLs     []string
	Database string // default "firstparty"; created if missing
	User     string
	Password string
	Cluster  string        // remote_servers cluster name; "" for one server
	Batch    int           // most rows in one insert; default 10000
	Flush    time.Duration // longest wait before a batch ships; default 1s
	Keep     time.Duration // how long shipped events stay in the local log (see README)

	// OnError is told every shipping failure (logged by the caller).
	OnError func(error)
	// OnShipped is told how many events of a site reached ClickHouse.
	OnShipped func(site string, n int)
}

// Backend is a store.Store whose reports come from ClickHouse. Methods it
// does not override are the local store's.
type Backend struct {
	*store.DB
	opts    Options
	servers []*Client

	mu       sync.Mutex
	seq      uint64         // next outbox key
	arrival  uint64         // last arrival sequence given (row.Seq: µs, strictly increasing)
	backlog  map[string]int // events per site waiting in the outbox
	shipped  map[string]int64
	lastErr  string
	lastTime time.Time
	persons  map[string]string // site\x00distinct id -> person id shipped
	deleted  map[string]bool   // site\x00distinct id of persons deleted here
	schemaOK bool
	ver      uint64 // last person row version
	tombVer  uint64 // newest tombstone syncDeletions applied (ship goroutine only)
	// shippedSeq is one past the last outbox key shipped: every key below
	// it is in ClickHouse.
	shippedSeq uint64

	inSQL, inLocal sync.Map // report name -> *atomic.Int64

	// bf is the backfill of events that never went through the outbox
	// (backfill.go); appending is held (read) by Append from its commit
	// to its outbox write.
	bf        backfillState
	appending sync.RWMutex

	rec  *recShipper  // recordings (recordings.go)
	reps replicaState // tables per server, replicas (replicas.go)

	wake chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

var _ store.Store = (*Backend)(nil)

// outboxPrefix keys the events waiting to ship, in the local log's meta
// space: "ch:out:<seq, 20 digits>" → their rows as JSONEachRow. The
// outbox is the shipping cursor: a key is deleted once its rows are in
// ClickHouse, so a restart resumes at the first key left.
const outboxPrefix = "ch:out:"

// New wraps db and starts shipping.
func New(db *store.DB, o Options) (*Backend, error) {
	if len(o.URLs) == 0 {
		return nil, errors.New("clickhouse: no url")
	}
	if o.Database == "" {
		o.Database = "firstparty"
	}
	if o.Batch <= 0 {
		o.Batch = 10000
	}
	if o.Flush <= 0 {
		o.Flush = time.Second
	}
	b := &Backend{DB: db, opts: o, backlog: map[string]int{}, shipped: map[string]int64{},
		persons: map[string]string{}, deleted: map[string]bool{}, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	hc := &http.Client{Timeout: 5 * time.Minute}
	for _, u := range o.URLs {
		b.servers = append(b.servers, &Client{URL: u, User: o.User, Password: o.Password, Database: o.Database, HTTP: hc})
	}
	// The outbox left by the last run: its size per site, and the next key.
	err := db.ScanMeta(outboxPrefix, func(k, v string) bool {
		n, _ := strconv.ParseUint(k[len(outboxPrefix):], 10, 64)
		b.seq = max(b.seq, n+1)
		for _, row := range strings.Split(strings.TrimSpace(v), "\n") {
			if r, ok := rowHead(row); ok && r.Site != "" {
				b.backlog[r.Site]++
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if err := b.startBackfill(); err != nil {
		return nil, err
	}
	if b.rec, err = b.startRecordings(); err != nil {
		return nil, err
	}
	go b.ship()
	b.nudge()
	return b, nil
}

// client is the server that answers queries and inserts.
func (b *Backend) client() *Client { return b.pick() }

// row is one event as ClickHouse stores it.
type row struct {
	Site       string   `json:"site"`
	UUID       string   `json:"uuid"`
	Name       string   `json:"name"`
	DistinctID string   `json:"distinct_id"`
	TS         int64    `json:"ts"`
	T          string   `json:"t"`
	Session    string   `json:"session"`
	Seq        uint64   `json:"seq"`
	Keys       []string `json:"prop_keys"`
	Vals       []string `json:"prop_vals"`
	Kinds      []int    `json:"prop_kinds"`    // not []uint8, which JSON writes as base64
	Raw        string   `json:"raw,omitempty"` // no longer filled: never read, and it doubled every insert
	Ver        uint64   `json:"ver"`
	// The hot properties (schema.go's hotProps, in its order), as
	// prop_vals has them.
	PDatacenter      string `json:"p_datacenter"`
	PPathname        string `json:"p_pathname"`
	PCurrentURL      string `json:"p_current_url"`
	PReferrer        string `json:"p_referrer,omitempty"`
	PReferringDomain string `json:"p_referring_domain,omitempty"`
	PUTMSource       string `json:"p_utm_source,omitempty"`
	PUTMMedium       string `json:"p_utm_medium,omitempty"`
	PUTMCampaign     string `json:"p_utm_campaign,omitempty"`
	PUTMTerm         string `json:"p_utm_term,omitempty"`
	PUTMContent      string `json:"p_utm_content,omitempty"`
	PBrowser         string `json:"p_browser,omitempty"`
	POS              string `json:"p_os,omitempty"`
	PDeviceType      string `json:"p_device_type,omitempty"`
	PCountry         string `json:"p_country,omitempty"`
	PEventType       string `json:"p_event_type,omitempty"`
	PClickX          string `json:"p_click_x,omitempty"`
	PClickY          string `json:"p_click_y,omitempty"`
	PViewportWidth   string `json:"p_viewport_width,omitempty"`
	PPrevPathname    string `json:"p_prev_pathname,omitempty"`
	PPrevMaxContent  string `json:"p_prev_max_content,omitempty"`
	PRevenue         string `json:"p_revenue,omitempty"`
	PDRevenue        string `json:"p_drevenue,omitempty"`
	PCurrency        string `json:"p_currency,omitempty"`
	PDCurrency       string `json:"p_dcurrency,omitempty"`
	PStatus          string `json:"p_status,omitempty"`
	PServerMs        string `json:"p_server_ms,omitempty"`
	PFeedReader      string `json:"p_feed_reader,omitempty"`
	PFeedSubscribers string `json:"p_feed_subscribers,omitempty"`
}

// hotFields are row's hot property fields, in hotProps' order.
func (r *row) hotFields() []*string {
	return []*string{&r.PDatacenter, &r.PPathname, &r.PCurrentURL,
		&r.PReferrer, &r.PReferringDomain, &r.PUTMSource, &r.PUTMMedium, &r.PUTMCampaign, &r.PUTMTerm, &r.PUTMContent,
		&r.PBrowser, &r.POS, &r.PDeviceType, &r.PCountry,
		&r.PEventType, &r.PClickX, &r.PClickY, &r.PViewportWidth, &r.PPrevPathname, &r.PPrevMaxContent,
		&r.PRevenue, &r.PDRevenue, &r.PCurrency, &r.PDCurrency,
		&r.PStatus, &r.PServerMs, &r.PFeedReader, &r.PFeedSubscribers}
}

// fillHot sets the hot property columns from the arrays (the first value
// of a key, as indexOf finds it).
func (r *row) fillHot() {
	f := r.hotFields()
	set := make([]bool, len(f))
	for i, k := range r.Keys {
		if j, ok := hotIndex[k]; ok && !set[j] && i < len(r.Vals) {
			*f[j], set[j] = r.Vals[i], true
		}
	}
}

// Append commits events to the local log, then puts the stored ones (and
// repeats of stored ones, so that a crash between the two writes cannot
// keep an event from shipping: the client resends what got no 200) in the
// outbox before it returns.
func (b *Backend) Append(ctx context.Context, events []*store.Event) ([]store.Outcome, error) {
	b.appending.RLock() // the backfill's cursor moves past what is in the outbox
	defer b.appending.RUnlock()
	out, err := b.DB.Append(ctx, events)
	if err != nil {
		return out, err
	}
	// The first copy of a uuid wins (the highest ver): copies appended
	// later, in this call or another, get lower ones.
	ver := uint64(math.MaxUint64) - uint64(time.Now().UnixNano())*64
	var buf []byte
	sites := map[string]int{}
	b.mu.Lock() // the outbox key and seq follow the order of the appends
	defer b.mu.Unlock()
	seq := b.seq
	for i, ev := range events {
		j, err := json.Marshal(newRow(ev, b.nextArrival(), ver-uint64(i)))
		if err != nil {
			continue
		}
		buf = append(append(buf, j...), '\n')
		sites[ev.Site]++
	}
	if len(buf) == 0 {
		return out, nil
	}
	key := outboxPrefix + pad20(seq)
	b.seq++
	err = b.DB.PutMeta(key, string(buf))
	if err == nil {
		for s, n := range sites {
			b.backlog[s] += n
		}
	}
	if err != nil {
		return nil, err // the client resends; the log keeps the first copy
	}
	b.nudge()
	return out, nil
}

// newRow is ev as ClickHouse stores it, with its arrival sequence and
// version.
func newRow(ev *store.Event, seq, ver uint64) row {
	r := row{Site: ev.Site, UUID: ev.UUID, Name: ev.Name, DistinctID: ev.DistinctID, TS: ev.Time,
		T: time.UnixMilli(ev.Time).UTC().Format(time.DateTime), Session: ev.Props.Str("$session_id"), Seq: seq,
		Keys: make([]string, 0, len(ev.Props)), Vals: make([]string, 0, len(ev.Props)), Kinds: make([]int, 0, len(ev.Props)), Ver: ver}
	if r.TS < 0 {
		r.T = "1970-01-01 00:00:00"
	}
	for _, p := range ev.Props {
		r.Keys = append(r.Keys, p.Key)
		r.Vals = append(r.Vals, p.Val.String())
		r.Kinds = append(r.Kinds, int(p.Val.Kind))
	}
	r.fillHot()
	return r
}

// nextArrival is an event's arrival sequence (row.Seq), called with b.mu
// held in commit order: the arrival time in µs, strictly increasing, so
// that it is this node's commit order and orders the events of several
// nodes by arrival (persons.go's evKey).
func (b *Backend) nextArrival() uint64 {
	b.arrival = max(b.arrival+1, uint64(time.Now().UnixMicro()))
	return b.arrival
}

func pad20(n uint64) string {
	s := strconv.FormatUint(n, 10)
	return strings.Repeat("0", 20-len(s)) + s
}

func (b *Backend) nudge() {
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// Status is the shipping state for /api/settings. Backlog counts the
// events the backfill has still to read from the log (backfill.go).
type Status struct {
	Backlog   int       `json:"backlog"`
	Shipped   int64     `json:"shipped"`
	LastError string    `json:"last_error,omitempty"`
	ErrorAt   time.Time `json:"last_error_at,omitzero"`
}

// URLs are the servers the backend ships to and reads from.
func (b *Backend) URLs() []string { return append([]string(nil), b.opts.URLs...) }

// Status returns the shipping state of a site.
func (b *Backend) Status(site string) Status {
	b.mu.Lock()
	defer b.mu.Unlock()
	return Status{Backlog: b.backlog[site] + b.backfillLeft(site), Shipped: b.shipped[site], LastError: b.lastErr, ErrorAt: b.lastTime}
}

// Backlogs returns the events waiting to ship, by site (the backfill's
// included).
func (b *Backend) Backlogs() map[string]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[string]int, len(b.backlog))
	for s, n := range b.backlog {
		out[s] = n
	}
	for s := range b.bf.end {
		if n := b.backfillLeft(s); n > 0 {
			out[s] += n
		}
	}
	return out
}

// Close stops shipping (what is left ships at the next start) and closes
// the local store.
func (b *Backend) Close() error {
	b.Stop()
	return b.DB.Close()
}

// Stop stops shipping without closing the local store (which may be
// shared).
func (b *Backend) Stop() {
	b.once.Do(func() { close(b.stop) })
	<-b.done
	<-b.rec.done
	if err := b.advanceBackfill(); err != nil && !errors.Is(err, store.ErrClosed) {
		b.noteErr(err)
	}
}

// Flush ships until the outbox is empty or ctx ends.
func (b *Backend) Flush(ctx context.Context) error {
	if err := b.flushRecordings(ctx); err != nil {
		return err
	}
	if _, err := b.shipImported(ctx); err != nil {
		return err
	}
	for {
		n := 0
		for _, v := range b.Backlogs() {
			n += v
		}
		if n == 0 {
			return nil
		}
		b.nudge()
		select {
		case <-ctx.Done():
			b.mu.Lock()
			e := b.lastErr
			b.mu.Unlock()
			if e == "" {
				return ctx.Err()
			}
			return fmt.Errorf("%w (last shipping error: %s)", ctx.Err(), e)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Answered returns how many calls of each report ClickHouse answered and
// how many the local store answered (what is not in SQL yet).
func (b *Backend) Answered() (inSQL, inLocal map[string]int64) {
	read := func(m *sync.Map) map[string]int64 {
		out := map[string]int64{}
		m.Range(func(k, v any) bool {
			out[k.(string)] = v.(*atomic.Int64).Load()
			return true
		})
		return out
	}
	return read(&b.inSQL), read(&b.inLocal)
}

func (b *Backend) count(m *sync.Map, report string) {
	v, _ := m.LoadOrStore(report, new(atomic.Int64))
	v.(*atomic.Int64).Add(1)
}
