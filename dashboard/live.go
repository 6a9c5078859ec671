package dashboard

import (
	"net/http"
	"strconv"
	"time"

	"github.com/firstpartyhq/firstparty/store"
)

// liveRoutes adds the live view's snapshot of the last five minutes.
//
//	GET /api/live/recent[?events=0]  {"now", "window_seconds", "online", "pageviews",
//	                                  "pages": [{"value", "count", "visitors"}],
//	                                  "results": [event]}
//
// events=0 leaves the events out (the page's refreshes need only the
// figures).
//
// The live page shows it at once and then adds what /api/live streams, so
// "online" and the lists on the page speak of the same five minutes.
func (h *Handler) liveRoutes() {
	h.mux.HandleFunc("GET /api/live/recent", h.apiLiveRecent)
}

// liveRecentMax is how many of the window's events the snapshot lists.
const liveRecentMax = 200

func (h *Handler) apiLiveRecent(w http.ResponseWriter, r *http.Request) {
	site := h.site(r)
	now := h.opts.Now()
	// The window LiveCount counts: [now-5min, now].
	q := store.Query{Site: site, From: now.Add(-store.LiveWindow), To: now.Add(time.Millisecond)}
	ctx := r.Context()
	st, err := h.store.Stats(ctx, q)
	if err != nil {
		reportError(w, err)
		return
	}
	pages, err := h.store.Breakdown(ctx, q, store.BreakdownQuery{Property: "$pathname", Event: "$pageview", Limit: 20})
	if err != nil {
		reportError(w, err)
		return
	}
	var page store.EventPage
	if r.URL.Query().Get("events") != "0" {
		page, err = h.store.Events(ctx, store.EventQuery{
			Site: site, From: q.From.UnixMilli(), To: q.To.UnixMilli(),
			// As the reports, leave out traffic from hosting networks.
			Filters: []store.Filter{{Prop: store.Datacenter, Op: store.OpNe, Value: "true"}},
			Limit:   liveRecentMax,
		})
		if err != nil {
			reportError(w, err)
			return
		}
	}
	ids := make([]string, len(page.Results))
	for i, ev := range page.Results {
		ids[i] = ev.DistinctID
	}
	names := h.personNames(site, ids)

	b := append([]byte(`{"now":"`), now.UTC().Format(time.RFC3339Nano)...)
	b = append(b, `","window_seconds":`...)
	b = strconv.AppendInt(b, int64(store.LiveWindow/time.Second), 10)
	b = append(b, `,"online":`...)
	b = strconv.AppendInt(b, int64(st.Visitors), 10)
	b = append(b, `,"pageviews":`...)
	b = strconv.AppendInt(b, int64(st.Pageviews), 10)
	b = append(b, `,"pages":[`...)
	for i, p := range pages {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"value":`...)
		b = store.AppendJSONString(b, p.Value)
		b = append(b, `,"count":`...)
		b = strconv.AppendInt(b, int64(p.Count), 10)
		b = append(b, `,"visitors":`...)
		b = strconv.AppendInt(b, int64(p.Visitors), 10)
		b = append(b, '}')
	}
	b = append(b, `],"results":[`...)
	for i, ev := range page.Results {
		if i > 0 {
			b = append(b, ',')
		}
		b = withPerson(ev.AppendJSON(b, page.PersonIDs[i]), personLabel(names, ev.DistinctID), "")
	}
	writeJSON(w, http.StatusOK, append(b, "]}"...))
}
