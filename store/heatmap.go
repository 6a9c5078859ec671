package store

import (
	"context"
	"math"
	"sort"
	"strconv"
)

// Heatmap types.
const (
	HeatmapClick  = "click"
	HeatmapScroll = "scroll"
)

// HeatmapQuery asks for the clicks or the scroll depth of one page.
type HeatmapQuery struct {
	// URL is the page's $pathname.
	URL string
	// Type is click (default) or scroll.
	Type string
	// Viewport keeps the events of one viewport class by $viewport_width:
	// mobile (< 768 px), tablet (< 1024 px) or desktop; "" keeps all.
	Viewport string
}

// HeatmapPoint is one cell of a heatmap.
//
// Clicks: from $autocapture events with $event_type click on the page,
// X is $click_x (the fraction of the viewport width, 0..1) rounded to 0.01,
// Y is $click_y (document pixels) rounded to 10 px, Count the clicks in the
// cell; most clicked first, then by Y and X.
//
// Scroll: from $pageleave events whose $prev_pageview_pathname is the page,
// by $prev_pageview_max_content (the deepest scroll position plus viewport
// height, in px): one point per 100 px band from the top down to the
// deepest, X 0, Y the band's top, Count the page views that reached at
// least Y; by Y.
type HeatmapPoint struct {
	X     float64 `json:"x"`
	Y     float64 `json:"y"`
	Count int     `json:"count"`
}

// Property columns of heatmaps.
const (
	colEventType  = "$event_type"
	colClickX     = "$click_x"
	colClickY     = "$click_y"
	colViewport   = "$viewport_width"
	colPrevPath   = "$prev_pageview_pathname"
	colMaxContent = "$prev_pageview_max_content"
)

// numbers parses a column's values as numbers, each dictionary code once.
type numbers struct {
	c     *column
	vals  []float64
	state []uint8 // 0 not parsed, 1 a number, 2 not one
}

func newNumbers(c *column) *numbers {
	n := c.dict.size()
	return &numbers{c: c, vals: make([]float64, n), state: make([]uint8, n)}
}

func (n *numbers) get(code uint32) (float64, bool) {
	if n.state[code] == 0 {
		n.state[code] = 2
		if code != 0 {
			if f, err := strconv.ParseFloat(n.c.dict.str(code), 64); err == nil && !math.IsInf(f, 0) && !math.IsNaN(f) {
				n.vals[code], n.state[code] = f, 1
			}
		}
	}
	return n.vals[code], n.state[code] == 1
}

// ViewportWidths are the width classes of heatmaps: a click belongs to the
// class nearest its viewport's width, and the overlay draws the page at
// the class's width, so that a layout that depends on the width (centred,
// responsive) puts each element where its visitors saw it.
var ViewportWidths = []int{375, 768, 1024, 1280, 1440, 1920, 2560}

// nearestWidth returns the width class of a viewport width.
func nearestWidth(w float64) int {
	best := ViewportWidths[0]
	for _, c := range ViewportWidths[1:] {
		if math.Abs(w-float64(c)) < math.Abs(w-float64(best)) {
			best = c
		}
	}
	return best
}

// viewportClass returns the class of a viewport width.
func viewportClass(w float64) string {
	switch {
	case w < 768:
		return "mobile"
	case w < 1024:
		return "tablet"
	}
	return "desktop"
}

// Heatmap aggregates the clicks or the scroll depth of a page.
func (s *DB) Heatmap(ctx context.Context, q Query, hq HeatmapQuery) ([]HeatmapPoint, error) {
	if hq.URL == "" {
		return nil, badQuery("heatmap needs a url")
	}
	width := 0
	switch hq.Viewport {
	case "", "mobile", "tablet", "desktop":
	default:
		w, err := strconv.Atoi(hq.Viewport)
		if err != nil || w <= 0 || w > 100000 {
			return nil, badQuery("viewport %q: want a width in px (its class), or mobile, tablet or desktop", hq.Viewport)
		}
		width = nearestWidth(float64(w))
	}
	var cols []string
	switch hq.Type {
	case "", HeatmapClick:
		hq.Type = HeatmapClick
		cols = []string{"$pathname", colEventType, colClickX, colClickY}
	case HeatmapScroll:
		cols = []string{colPrevPath, colMaxContent}
	default:
		return nil, badQuery("type %q: want click or scroll", hq.Type)
	}
	if hq.Viewport != "" {
		cols = append(cols, colViewport)
	}
	r, _, err := s.begin(ctx, q, nil, cols...)
	if err != nil {
		return nil, err
	}
	defer r.end()
	// viewportOK filters by viewport class when asked.
	viewportOK := func(int) bool { return true }
	if hq.Viewport != "" {
		vw := newNumbers(r.t.column(colViewport))
		viewportOK = func(row int) bool {
			w, ok := vw.get(vw.c.at(row))
			if width != 0 {
				return ok && nearestWidth(w) == width
			}
			return ok && viewportClass(w) == hq.Viewport
		}
	}
	names := newColReader(r.t.name)
	if hq.Type == HeatmapScroll {
		return r.scrollMap(hq.URL, names, viewportOK), nil
	}

	ac := r.nameCode("$autocapture")
	path, ok1 := r.t.column("$pathname").dict.lookup(hq.URL)
	click, ok2 := r.t.column(colEventType).dict.lookup("click")
	if ac == noCode || !ok1 || !ok2 {
		return []HeatmapPoint{}, nil
	}
	paths, types := newColReader(r.t.column("$pathname")), newColReader(r.t.column(colEventType))
	xs, ys := newNumbers(r.t.column(colClickX)), newNumbers(r.t.column(colClickY))
	type cell struct{ x, y int64 }
	cells := make(map[cell]int)
	r.chunks(func(ci int, rows []int32) {
		nc, pc, tc := names.chunk(ci), paths.chunk(ci), types.chunk(ci)
		for _, off := range rows {
			if nc[off] != ac || pc[off] != path || tc[off] != click {
				continue
			}
			row := ci<<chunkBits | int(off)
			x, okx := xs.get(xs.c.at(row))
			y, oky := ys.get(ys.c.at(row))
			if !okx || !oky || x < 0 || x > 1 || y < 0 || !viewportOK(row) {
				continue
			}
			cells[cell{int64(math.Round(x * 100)), int64(math.Round(y / 10))}]++
		}
	})
	out := make([]HeatmapPoint, 0, len(cells))
	for c, n := range cells {
		out = append(out, HeatmapPoint{X: float64(c.x) / 100, Y: float64(c.y * 10), Count: n})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Count != b.Count {
			return a.Count > b.Count
		}
		if a.Y != b.Y {
			return a.Y < b.Y
		}
		return a.X < b.X
	})
	return out, nil
}

// scrollBand is the height of a scroll-depth band in px.
const scrollBand = 100

// maxScrollBands bounds the points of a scroll map (a page of 1,000,000 px).
const maxScrollBands = 10000

func (r *run) scrollMap(url string, names *colReader, viewportOK func(int) bool) []HeatmapPoint {
	pl := r.nameCode("$pageleave")
	path, ok := r.t.column(colPrevPath).dict.lookup(url)
	if pl == noCode || !ok {
		return []HeatmapPoint{}
	}
	paths := newColReader(r.t.column(colPrevPath))
	depths := newNumbers(r.t.column(colMaxContent))
	var reached []int // by band: page views whose deepest point is in it
	r.chunks(func(ci int, rows []int32) {
		nc, pc := names.chunk(ci), paths.chunk(ci)
		for _, off := range rows {
			if nc[off] != pl || pc[off] != path {
				continue
			}
			row := ci<<chunkBits | int(off)
			d, ok := depths.get(depths.c.at(row))
			if !ok || d < 0 || !viewportOK(row) {
				continue
			}
			band := min(int(d/scrollBand), maxScrollBands-1)
			for len(reached) <= band {
				reached = append(reached, 0)
			}
			reached[band]++
		}
	})
	out := make([]HeatmapPoint, len(reached))
	n := 0
	for b := len(reached) - 1; b >= 0; b-- {
		n += reached[b]
		out[b] = HeatmapPoint{Y: float64(b * scrollBand), Count: n}
	}
	return out
}

// ViewportCount is how many clicks a page had from one width class.
type ViewportCount struct {
	Width int `json:"width"`
	Count int `json:"count"`
}

// HeatmapViewports counts a page's clicks by viewport width class, for the
// overlay to offer the classes visitors used (the most used first).
func (s *DB) HeatmapViewports(ctx context.Context, q Query, url string) ([]ViewportCount, error) {
	if url == "" {
		return nil, badQuery("heatmap needs a url")
	}
	r, _, err := s.begin(ctx, q, nil, "$pathname", colEventType, colViewport)
	if err != nil {
		return nil, err
	}
	defer r.end()
	out := []ViewportCount{}
	ac := r.nameCode("$autocapture")
	path, ok1 := r.t.column("$pathname").dict.lookup(url)
	click, ok2 := r.t.column(colEventType).dict.lookup("click")
	if ac == noCode || !ok1 || !ok2 {
		return out, nil
	}
	names := newColReader(r.t.name)
	paths, types := newColReader(r.t.column("$pathname")), newColReader(r.t.column(colEventType))
	vw := newNumbers(r.t.column(colViewport))
	counts := map[int]int{}
	r.chunks(func(ci int, rows []int32) {
		nc, pc, tc := names.chunk(ci), paths.chunk(ci), types.chunk(ci)
		for _, off := range rows {
			if nc[off] != ac || pc[off] != path || tc[off] != click {
				continue
			}
			if w, ok := vw.get(vw.c.at(ci<<chunkBits | int(off))); ok {
				counts[nearestWidth(w)]++
			}
		}
	})
	for w, n := range counts {
		out = append(out, ViewportCount{w, n})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Count > out[j].Count || out[i].Count == out[j].Count && out[i].Width < out[j].Width
	})
	return out, nil
}
