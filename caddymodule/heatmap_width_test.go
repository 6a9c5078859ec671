package caddymodule_test

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// TestHeatmapWidthClassesInBrowser: on a centred layout, clicks from
// 1440 px and 1920 px windows land on the clicked button in the overlay of
// their width class (the page drawn at that width), where a fixed-width
// frame would put the 1920 px clicks far off.
func TestHeatmapWidthClassesInBrowser(t *testing.T) {
	page := `<!doctype html><html><head><meta charset="utf-8"><title>centred</title>
<style>body{margin:0;font:16px sans-serif}.wrap{width:600px;margin:0 auto;padding-top:200px}#cta{width:120px;height:40px}</style></head>
<body><div class="wrap"><button id="cta">Start</button></div><div style="height:1500px"></div></body></html>`
	staticSite(t, map[string]string{"centred.html": page}, "")
	b := StartBrowser(t)
	type spot struct{ X, Y, W float64 }
	clicked := map[int]spot{}
	for i, w := range []int{1440, 1920} {
		tab := b.NewTab()
		tab.Do(chromedp.EmulateViewport(int64(w), 900))
		tab.Navigate(base + "/centred.html")
		tab.WaitPage(`window.firstparty && firstparty.capture && innerWidth === `+fmt.Sprint(w), 10*time.Second)
		tab.Do(chromedp.Click(chromedp.CSS("#cta")))
		clicked[w] = Eval[spot](tab, `(() => { const r = document.querySelector('#cta').getBoundingClientRect(); return {X: r.left + r.width / 2, Y: r.top + r.height / 2 + scrollY, W: innerWidth} })()`)
		waitEvents(t, "the clicks", has("$autocapture", i+1))
	}
	if math.Abs(clicked[1440].X-clicked[1920].X) < 200 {
		t.Fatalf("the layout is not centred: the button is at %v and %v", clicked[1440].X, clicked[1920].X)
	}
	var vps struct{ Viewports []struct{ Width, Count int } }
	getJSON(t, api+"/heatmap/viewports?url=/centred.html", &vps)
	if len(vps.Viewports) != 2 {
		t.Fatalf("width classes %+v, want 1440 and 1920 with a click each", vps.Viewports)
	}
	dash := b.NewTab()
	for _, w := range []int{1440, 1920} {
		var hm struct{ Points []struct{ X, Y float64 } }
		getJSON(t, api+fmt.Sprintf("/heatmap?url=/centred.html&type=click&viewport=%d", w), &hm)
		if len(hm.Points) != 1 {
			t.Fatalf("viewport %d: points %+v, want the one click of that width", w, hm.Points)
		}
		dash.Navigate(base + fmt.Sprintf("/analytics/heatmap?url=/centred.html&type=click&viewport=%d", w))
		dash.WaitPage(`document.querySelector('#heatmap-canvas') && document.querySelector('#heatmap-canvas').dataset.drawn === '1'`, 20*time.Second)
		// Where the button is in the overlay's page, drawn at the class's
		// width, and the paint there.
		fx := Eval[spot](dash, `(() => { const d = document.querySelector('#heatmap-frame').contentDocument; const r = d.querySelector('#cta').getBoundingClientRect(); return {X: r.left + r.width / 2, Y: r.top + r.height / 2, W: d.documentElement.clientWidth} })()`)
		if fx.W != float64(w) {
			t.Errorf("viewport %d: the page is drawn %v px wide", w, fx.W)
		}
		px := hm.Points[0].X * float64(w)
		if math.Abs(px-fx.X) > 0.011*float64(w) || math.Abs(hm.Points[0].Y-fx.Y) > 10 {
			t.Errorf("viewport %d: the point (%v, %v) is not on the button at (%v, %v)", w, px, hm.Points[0].Y, fx.X, fx.Y)
		}
		a := Eval[float64](dash, fmt.Sprintf(`document.querySelector('#heatmap-canvas').getContext('2d').getImageData(%d, %d, 1, 1).data[3]`, int(fx.X), int(fx.Y)))
		if a < 100 {
			t.Errorf("viewport %d: no paint over the button (alpha %v)", w, a)
		}
	}
	// The default is the class with the most clicks (here a tie: the
	// narrower), and the width select offers the classes.
	dash.Navigate(base + "/analytics/heatmap?url=/centred.html&type=click")
	dash.WaitPage(`document.querySelector('#heatmap-canvas') && document.querySelector('#heatmap-canvas').dataset.drawn === '1'`, 20*time.Second)
	if v := Eval[string](dash, `document.getElementById('heatmap-viewport').value`); v != "1440" {
		t.Errorf("default width class %q, want 1440", v)
	}
}
