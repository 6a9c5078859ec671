package store

import (
	"context"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
)

// ServerReport is what only the server sees (SPEC §8), over a query's
// range and filters: every server pageview counts here, confirmed or not.
type ServerReport struct {
	// ServerPageviews is the number of server pageviews; JSShare the share
	// a snippet pageview confirmed (0 without server pageviews).
	ServerPageviews int     `json:"server_pageviews"`
	JSShare         float64 `json:"js_share"`
	// NotFound are the paths answered 404 or 410, most requested first,
	// with the referrers that led there.
	NotFound []NotFoundRow `json:"not_found"`
	// Slow are the pages slowest to produce, by p90 of $server_ms.
	Slow []SlowRow `json:"slow"`
	// Feeds are the feeds fetched, with their subscribers.
	Feeds []FeedRow `json:"feeds"`
}

// NotFoundRow is one path answered 404 or 410.
type NotFoundRow struct {
	Path      string         `json:"path"`
	Count     int            `json:"count"`
	Referrers []BreakdownRow `json:"referrers"`
}

// SlowRow is one page's time to first byte.
type SlowRow struct {
	Path     string  `json:"path"`
	Count    int     `json:"count"`
	MedianMs float64 `json:"median_ms"`
	P90Ms    float64 `json:"p90_ms"`
}

// FeedRow is one feed: subscribers are the sum over feed readers of the
// largest count each reported in range (aggregators say how many of their
// users follow the feed), plus the most distinct other fetchers (desktop
// readers, each one subscriber) seen on one day.
type FeedRow struct {
	Path        string `json:"path"`
	Subscribers int    `json:"subscribers"`
	Fetches     int    `json:"fetches"`
}

// Feed fetch properties.
const (
	FeedFetch       = "$feed_fetch"
	FeedReader      = "$feed_reader"
	FeedSubscribers = "$feed_subscribers"
	Download        = "$download"
)

// serverShare counts the server pageviews of the run's range (filters and
// cohort applied) and the share of them confirmed.
func (r *run) serverShare() (n int, share float64) {
	lp := &r.t.loads
	if lp.nServer == 0 {
		return 0, 0
	}
	was := r.withHidden
	r.withHidden = true
	defer func() { r.withHidden = was }()
	confirmed := 0
	r.chunks(func(ci int, rows []int32) {
		base := ci << chunkBits
		for _, off := range rows {
			row := base + int(off)
			if lp.server.has(row) {
				n++
				if lp.hidden.has(row) {
					confirmed++
				}
			}
		}
	})
	if n > 0 {
		share = float64(confirmed) / float64(n)
	}
	return n, share
}

// Server computes the server report of q; limit bounds each list.
func (s *DB) Server(ctx context.Context, q Query, limit int) (ServerReport, error) {
	out := ServerReport{NotFound: []NotFoundRow{}, Slow: []SlowRow{}, Feeds: []FeedRow{}}
	if limit <= 0 {
		limit = 10
	}
	r, _, err := s.begin(ctx, q, nil, "$pathname", "$status", "$server_ms", "$referrer", FeedReader, FeedSubscribers)
	if err != nil {
		return out, err
	}
	defer r.end()
	out.ServerPageviews, out.JSShare = r.serverShare()

	lp := &r.t.loads
	path, status, ms := r.t.lookupColumn("$pathname"), r.t.lookupColumn("$status"), r.t.lookupColumn("$server_ms")
	ref, reader, subs := r.t.lookupColumn("$referrer"), r.t.lookupColumn(FeedReader), r.t.lookupColumn(FeedSubscribers)
	feedCode := r.nameCode(FeedFetch)
	paths, statuses, mss := newColReader(path), newColReader(status), newColReader(ms)
	refs, readers, subss, names := newColReader(ref), newColReader(reader), newColReader(subs), newColReader(r.t.name)

	type nf struct {
		count int
		refs  map[uint32]int
	}
	notFound := map[uint32]*nf{}
	times := map[uint32][]float64{}
	type feed struct {
		fetches int
		readers map[uint32]int            // reader → largest count
		direct  map[int64]map[uint32]bool // day → distinct ids
	}
	feeds := map[uint32]*feed{}
	msValue := map[uint32]float64{}
	statusNotFound := map[uint32]bool{}
	for c, v := range status.dict.strs {
		if v == "404" || v == "410" {
			statusNotFound[uint32(c)] = true
		}
	}

	r.withHidden = true
	r.chunks(func(ci int, rows []int32) {
		base := ci << chunkBits
		pc, sc, mc, nc := paths.chunk(ci), statuses.chunk(ci), mss.chunk(ci), names.chunk(ci)
		var rc []uint32
		for _, off := range rows {
			row := base + int(off)
			if nc[off] == feedCode && feedCode != noCode {
				f := feeds[pc[off]]
				if f == nil {
					f = &feed{readers: map[uint32]int{}, direct: map[int64]map[uint32]bool{}}
					feeds[pc[off]] = f
				}
				f.fetches++
				rd, sb := readers.chunk(ci)[off], subss.chunk(ci)[off]
				if n, err := strconv.Atoi(subs.dict.str(sb)); err == nil && rd != 0 && sb != 0 {
					f.readers[rd] = max(f.readers[rd], n)
				} else {
					day := r.t.ts.at(row) / msPerDay
					if f.direct[day] == nil {
						f.direct[day] = map[uint32]bool{}
					}
					f.direct[day][r.roots[r.t.did.at(row)]] = true
				}
				continue
			}
			if !lp.server.has(row) {
				continue
			}
			if statusNotFound[sc[off]] {
				e := notFound[pc[off]]
				if e == nil {
					e = &nf{refs: map[uint32]int{}}
					notFound[pc[off]] = e
				}
				e.count++
				if rc == nil {
					rc = refs.chunk(ci)
				}
				if rc[off] != 0 {
					e.refs[rc[off]]++
				}
				continue
			}
			if m := mc[off]; m != 0 {
				v, ok := msValue[m]
				if !ok {
					v = ServerMs(ms.dict.str(m))
					msValue[m] = v
				}
				times[pc[off]] = append(times[pc[off]], v)
			}
		}
	})
	r.withHidden = false

	for p, e := range notFound {
		row := NotFoundRow{Path: path.dict.str(p), Count: e.count}
		for rc, n := range e.refs {
			row.Referrers = append(row.Referrers, BreakdownRow{Value: ref.dict.str(rc), Count: n})
		}
		out.NotFound = append(out.NotFound, row)
	}

	for p, ts := range times {
		out.Slow = append(out.Slow, SlowPage(path.dict.str(p), ts))
	}

	for p, f := range feeds {
		row := FeedRow{Path: path.dict.str(p), Fetches: f.fetches}
		for _, n := range f.readers {
			row.Subscribers += n
		}
		most := 0
		for _, ids := range f.direct {
			most = max(most, len(ids))
		}
		row.Subscribers += most
		out.Feeds = append(out.Feeds, row)
	}
	out.Rank(limit)
	return out, nil
}

// Rank orders the report's lists, largest first (ties by path), keeps
// limit rows of each and a 404 page's five most frequent referrers. Both
// stores build the rows in any order and rank them with it.
func (r *ServerReport) Rank(limit int) {
	for k := range r.NotFound {
		refs := r.NotFound[k].Referrers
		sort.Slice(refs, func(i, j int) bool {
			a, b := refs[i], refs[j]
			return a.Count > b.Count || a.Count == b.Count && a.Value < b.Value
		})
		r.NotFound[k].Referrers = refs[:min(len(refs), 5)]
	}
	sort.Slice(r.NotFound, func(i, j int) bool {
		a, b := r.NotFound[i], r.NotFound[j]
		return a.Count > b.Count || a.Count == b.Count && a.Path < b.Path
	})
	r.NotFound = r.NotFound[:min(len(r.NotFound), limit)]
	sort.Slice(r.Slow, func(i, j int) bool {
		a, b := r.Slow[i], r.Slow[j]
		return a.P90Ms > b.P90Ms || a.P90Ms == b.P90Ms && a.Path < b.Path
	})
	r.Slow = r.Slow[:min(len(r.Slow), limit)]
	sort.Slice(r.Feeds, func(i, j int) bool {
		a, b := r.Feeds[i], r.Feeds[j]
		return a.Subscribers > b.Subscribers || a.Subscribers == b.Subscribers && a.Path < b.Path
	})
	r.Feeds = r.Feeds[:min(len(r.Feeds), limit)]
}

// SlowPage is a page's row of the slow pages from its $server_ms values
// (sorted here): their count, median and p90. The ClickHouse backend
// builds its rows with it too.
func SlowPage(path string, ms []float64) SlowRow {
	slices.Sort(ms)
	return SlowRow{Path: path, Count: len(ms), MedianMs: quantile(ms, 0.5), P90Ms: quantile(ms, 0.9)}
}

// quantile of sorted values, by linear interpolation between closest ranks.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	pos := q * float64(len(sorted)-1)
	i := int(pos)
	if i+1 >= len(sorted) {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (sorted[i+1]-sorted[i])*(pos-float64(i))
}

// feedSubscribersRE finds the subscriber count feed readers put in their
// User-Agent: "Feedly/1.0 (...; 43 subscribers; ...)", "NewsBlur Feed
// Fetcher - 7 subscribers - ...", "Inoreader/1.0 (...; 12 subscribers)".
var feedSubscribersRE = regexp.MustCompile(`(?i)(\d+)\s+(?:subscribers?|readers?)\b`)

// FeedSubscribersOf returns the subscriber count a feed reader's
// User-Agent reports, or -1.
func FeedSubscribersOf(ua string) int {
	m := feedSubscribersRE.FindStringSubmatch(ua)
	if m == nil {
		return -1
	}
	n, err := strconv.Atoi(m[1])
	if err != nil {
		return -1
	}
	return n
}

// ServerMs reads a $server_ms value as the server report counts it: a
// number of milliseconds, 0 when it is not a finite number (a visitor's
// "NaN" or "1e400" must not turn a page's p90 into something JSON cannot
// carry).
func ServerMs(s string) float64 {
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
		return 0
	}
	return v
}
