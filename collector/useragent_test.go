package collector

import (
	"fmt"
	"strings"
	"sync"
	"testing"
)

func TestUAParse(t *testing.T) {
	tests := []struct {
		name string
		ua   string
		want Device
		bot  bool
	}{
		// Desktop.
		{"Chrome Windows",
			"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
			Device{"Chrome", "124", "Windows", "10", "Desktop"}, false},
		{"Chrome Windows 7",
			"Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/109.0.0.0 Safari/537.36",
			Device{"Chrome", "109", "Windows", "7", "Desktop"}, false},
		{"Safari macOS",
			"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
			Device{"Safari", "17", "Mac OS X", "10.15.7", "Desktop"}, false},
		{"Chrome macOS",
			"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
			Device{"Chrome", "124", "Mac OS X", "10.15.7", "Desktop"}, false},
		{"Firefox macOS",
			"Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:125.0) Gecko/20100101 Firefox/125.0",
			Device{"Firefox", "125", "Mac OS X", "10.15", "Desktop"}, false},
		{"Firefox Linux",
			"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
			Device{"Firefox", "125", "Linux", "", "Desktop"}, false},
		{"Firefox Ubuntu",
			"Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
			Device{"Firefox", "125", "Linux", "", "Desktop"}, false},
		{"Firefox Windows",
			"Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
			Device{"Firefox", "125", "Windows", "10", "Desktop"}, false},
		{"Chrome Linux",
			"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
			Device{"Chrome", "124", "Linux", "", "Desktop"}, false},
		{"Chrome OS",
			"Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
			Device{"Chrome", "124", "Chrome OS", "", "Desktop"}, false},
		{"Edge",
			"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
			Device{"Microsoft Edge", "124", "Windows", "10", "Desktop"}, false},
		{"Edge legacy",
			"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36 Edge/18.19045",
			Device{"Microsoft Edge", "18", "Windows", "10", "Desktop"}, false},
		{"Opera",
			"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 OPR/109.0.0.0",
			Device{"Opera", "109", "Windows", "10", "Desktop"}, false},
		{"Internet Explorer 11",
			"Mozilla/5.0 (Windows NT 6.1; Trident/7.0; rv:11.0) like Gecko",
			Device{"Internet Explorer", "11", "Windows", "7", "Desktop"}, false},
		{"Internet Explorer 10",
			"Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.2; Trident/6.0)",
			Device{"Internet Explorer", "10", "Windows", "8", "Desktop"}, false},

		// Phones.
		{"Mobile Safari iPhone",
			"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
			Device{"Mobile Safari", "17", "iOS", "17.4.1", "Mobile"}, false},
		{"Chrome iOS",
			"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
			Device{"Chrome iOS", "124", "iOS", "17.4", "Mobile"}, false},
		{"Firefox iOS",
			"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/125.0 Mobile/15E148 Safari/605.1.15",
			Device{"Firefox iOS", "125", "iOS", "17.4", "Mobile"}, false},
		{"Edge iOS",
			"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 EdgiOS/124.2478.71 Mobile/15E148 Safari/605.1.15",
			Device{"Microsoft Edge", "124", "iOS", "17.4", "Mobile"}, false},
		{"Facebook in-app iOS",
			"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/460.0.0.40.106;]",
			Device{"Facebook Mobile", "460", "iOS", "17.4", "Mobile"}, false},
		{"Chrome Android phone",
			"Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36",
			Device{"Chrome", "124", "Android", "10", "Mobile"}, false},
		{"Samsung Internet",
			"Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
			Device{"Samsung Internet", "25", "Android", "14", "Mobile"}, false},
		{"Edge Android",
			"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36 EdgA/124.0.2478.64",
			Device{"Microsoft Edge", "124", "Android", "14", "Mobile"}, false},
		{"Opera Android",
			"Mozilla/5.0 (Linux; Android 13; SM-A515F) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 Mobile Safari/537.36 OPR/81.0.4254.75",
			Device{"Opera", "81", "Android", "13", "Mobile"}, false},
		{"Opera Mini",
			"Opera/9.80 (Android; Opera Mini/36.2.2254/119.132; U; id) Presto/2.12.423 Version/12.16",
			Device{"Opera Mini", "36", "Android", "", "Mobile"}, false},
		{"Firefox Android phone",
			"Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0",
			Device{"Firefox", "125", "Android", "14", "Mobile"}, false},
		{"Android WebView",
			"Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/UQ1A.240205.004; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/122.0.6261.119 Mobile Safari/537.36",
			Device{"Chrome", "122", "Android", "14", "Mobile"}, false},
		{"Windows Phone",
			"Mozilla/5.0 (Windows Phone 10.0; Android 6.0.1; Microsoft; Lumia 950) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/52.0.2743.116 Mobile Safari/537.36 Edge/15.14977",
			Device{"Microsoft Edge", "15", "Windows Phone", "10.0", "Mobile"}, false},

		// Tablets.
		{"Android tablet",
			"Mozilla/5.0 (Linux; Android 13; SM-X706B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.6312.118 Safari/537.36",
			Device{"Chrome", "123", "Android", "13", "Tablet"}, false},
		{"Firefox Android tablet",
			"Mozilla/5.0 (Android 14; Tablet; rv:125.0) Gecko/125.0 Firefox/125.0",
			Device{"Firefox", "125", "Android", "14", "Tablet"}, false},
		{"Kindle Fire Silk",
			"Mozilla/5.0 (Linux; Android 10; KFTRWI) AppleWebKit/537.36 (KHTML, like Gecko) Silk/124.1.1 like Chrome/124.0.6367.118 Safari/537.36",
			Device{"Chrome", "124", "Android", "10", "Tablet"}, false},
		{"iPad Safari",
			"Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
			Device{"Mobile Safari", "16", "iOS", "16.6", "Tablet"}, false},
		{"iPad Chrome",
			"Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
			Device{"Chrome iOS", "124", "iOS", "17.4", "Tablet"}, false},

		// Bots: search engines, SEO, AI, previews, monitors, automation.
		{"Googlebot", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", Device{}, true},
		{"Googlebot smartphone", "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.118 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", Device{}, true},
		{"bingbot", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm) Chrome/116.0.1938.76 Safari/537.36", Device{}, true},
		{"AhrefsBot", "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)", Device{}, true},
		{"GPTBot", "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)", Device{}, true},
		{"Applebot", "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)", Device{}, true},
		{"facebookexternalhit", "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", Device{}, true},
		{"Slackbot", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", Device{}, true},
		{"UptimeRobot", "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)", Device{}, true},
		{"Lighthouse", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Chrome-Lighthouse", Device{}, true},
		{"HeadlessChrome", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36", Device{}, true},
		{"PhantomJS", "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1", Device{}, true},

		// Server SDKs and HTTP tools: not bots, no device.
		{"posthog-node", "posthog-node/5.70.0", Device{}, false},
		{"posthog-go", "posthog-go/1.5.2", Device{}, false},
		{"posthog-python", "posthog-python/3.6.0", Device{}, false},
		{"node-fetch", "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)", Device{}, false},
		{"curl", "curl/8.5.0", Device{}, false},
		{"python-requests", "python-requests/2.31.0", Device{}, false},
		{"Go-http-client", "Go-http-client/1.1", Device{}, false},
		{"Dalvik", "Dalvik/2.1.0 (Linux; U; Android 11; M2102J20SG Build/RKQ1.200826.002)", Device{}, false},

		// Nothing to go on.
		{"empty", "", Device{}, false},
		{"garbage", "garbage !!! ;;; (((", Device{}, false},
		{"bare Mozilla", "Mozilla/5.0", Device{}, false},
		{"binary", "\x00\xff\xfe(;;/)", Device{}, false},
	}
	cached := NewUAParser(1024)
	uncached := NewUAParser(0)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, p := range []*UAParser{cached, cached, uncached} { // miss, hit, no cache
				got, bot := p.Parse(tt.ua)
				if got != tt.want || bot != tt.bot {
					t.Errorf("Parse(%q)\n got %+v bot=%v\nwant %+v bot=%v", tt.ua, got, bot, tt.want, tt.bot)
					return
				}
			}
		})
	}
}

// Every marker must be lower case, or it never matches the lowered UA.
func TestBotMarkersLowerCase(t *testing.T) {
	for _, list := range [][]string{botMarkers, notBots} {
		for _, m := range list {
			if m != strings.ToLower(m) || m == "" {
				t.Errorf("marker %q is not lower case", m)
			}
		}
	}
}

func TestUAParseLong(t *testing.T) {
	p := NewUAParser(16)
	chrome := "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
	long := chrome + strings.Repeat(" X", 100_000)
	got, bot := p.Parse(long)
	if want := (Device{"Chrome", "124", "Windows", "10", "Desktop"}); got != want || bot {
		t.Errorf("long UA: got %+v bot=%v, want %+v", got, bot, want)
	}
	for i := range p.shards {
		for k := range p.shards[i].cur {
			if len(k) > maxUALen {
				t.Errorf("cached a key of %d bytes, want at most %d", len(k), maxUALen)
			}
		}
	}
}

// The cache stays within its size under concurrent use with more distinct
// UAs than it holds, and every answer is the parse of its own UA.
func TestUAParserCacheBounded(t *testing.T) {
	const size = 64
	p := NewUAParser(size)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 2000 {
				v := (i*7 + g) % 500
				ua := fmt.Sprintf("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/%d.0.0.0 Safari/537.36", v)
				d, bot := p.Parse(ua)
				if bot || d.Browser != "Chrome" || d.BrowserVersion != fmt.Sprint(v) {
					t.Errorf("Parse(%q) = %+v, %v", ua, d, bot)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := p.cached(); n > size || n == 0 {
		t.Errorf("cache holds %d entries, want 1..%d", n, size)
	}
}

// A UA in steady use survives generations of one-off UAs passing through.
func TestUAParserKeepsHotEntries(t *testing.T) {
	p := NewUAParser(32)
	hot := "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"
	for i := range 1000 {
		p.Parse(hot)
		p.Parse(fmt.Sprintf("one-off/%d", i))
	}
	found := false
	for i := range p.shards {
		_, inCur := p.shards[i].cur[hot]
		_, inOld := p.shards[i].old[hot]
		found = found || inCur || inOld
	}
	if !found {
		t.Errorf("hot UA fell out of the cache")
	}
}

var benchUAs = []string{
	"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
	"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
	"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
	"Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
	"Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
	"Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
	"posthog-node/5.70.0",
}

// go test -run '^$' -bench BenchmarkUAParse ./collector
func BenchmarkUAParse(b *testing.B) {
	b.Run("uncached", func(b *testing.B) {
		p := NewUAParser(0)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			p.Parse(benchUAs[i%len(benchUAs)])
		}
	})
	b.Run("cached", func(b *testing.B) {
		p := NewUAParser(4096)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			p.Parse(benchUAs[i%len(benchUAs)])
		}
	})
	b.Run("cached-parallel", func(b *testing.B) {
		p := NewUAParser(4096)
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				p.Parse(benchUAs[i%len(benchUAs)])
				i++
			}
		})
	})
}
