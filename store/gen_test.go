package store

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strconv"
	"time"
)

// genConfig describes a synthetic site: persons browsing in sessions of
// pageviews, clicks and pageleaves, some of them identifying (merging an
// anonymous id, sometimes two devices' ids) or aliased by a server, server
// events without sessions, a few retried events with repeated uuids.
type genConfig struct {
	Seed    uint64
	Start   time.Time
	Days    int
	Persons int
	// Events is the approximate number of events.
	Events int
	// Tick rounds event times, making equal timestamps common when large.
	Tick time.Duration
}

// genPages are the site's paths, the first ones the most visited.
var genPages = []string{"/", "/pricing", "/docs", "/blog", "/signup", "/login", "/about", "/docs/start", "/docs/api", "/blog/launch",
	"/blog/privacy", "/careers", "/contact", "/changelog", "/features", "/customers", "/security", "/terms", "/privacy", "/status"}

// chainTemplate is an autocapture target with the selectors it is known
// to match, for the reference implementation.
type chainTemplate struct {
	chain, text string
	matches     map[string]bool
}

// genChains are the elements users click.
var genChains = []chainTemplate{
	{`button.btn.btn-primary:attr__class="btn btn-primary"attr__id="signup"nth-child="1"nth-of-type="1"text="Sign up";div.hero:nth-child="1"nth-of-type="1";body:nth-child="2"nth-of-type="1"`, "Sign up",
		map[string]bool{"#signup": true, "div > button.btn-primary": true, "nav a": false, "body button": true}},
	{`span:nth-child="1"nth-of-type="1"text="Start";button.btn:attr__class="btn"attr__id="start"nth-child="2"nth-of-type="1";div.hero:nth-child="1"nth-of-type="1";body:nth-child="2"nth-of-type="1"`, "Start",
		map[string]bool{"#signup": false, "div > button.btn-primary": false, "nav a": false, "body button": true}},
	{`a.nav-link:attr__class="nav-link"attr__href="/pricing"href="/pricing"nth-child="2"nth-of-type="2"text="Pricing";nav.top:nth-child="1"nth-of-type="1";body:nth-child="2"nth-of-type="1"`, "Pricing",
		map[string]bool{"#signup": false, "div > button.btn-primary": false, "nav a": true, "body button": false}},
	{`a.nav-link:attr__class="nav-link"attr__href="/docs"href="/docs"nth-child="3"nth-of-type="3"text="Docs";nav.top:nth-child="1"nth-of-type="1";body:nth-child="2"nth-of-type="1"`, "Docs",
		map[string]bool{"#signup": false, "div > button.btn-primary": false, "nav a": true, "body button": false}},
	{`input:attr__type="checkbox"nth-child="1"nth-of-type="1";label:nth-child="4"nth-of-type="1";form#newsletter:attr__id="newsletter"nth-child="1"nth-of-type="1";footer:nth-child="3"nth-of-type="1"`, "",
		map[string]bool{"#signup": false, "div > button.btn-primary": false, "nav a": false, "body button": false}},
}

var (
	genBrowsers  = []string{"Chrome", "Chrome", "Chrome", "Safari", "Safari", "Firefox", "Edge"}
	genCountries = []string{"US", "US", "DE", "FR", "GB", "IN", "BR", "JP", "NL", ""}
	genReferrers = []string{"$direct", "$direct", "google.com", "news.ycombinator.com", "twitter.com", "duckduckgo.com"}
	genPlans     = []string{"free", "free", "pro", "team"}
)

type genPerson struct {
	anon, anon2, user, crm string
	identifyAt, device2At  int64 // when the ids are linked; 0: never
	identified             bool  // the $identify of the main device was sent
	browser, country       string
	mobile                 bool
}

// generate produces the events of cfg in arrival order (a day at a time,
// each day's events by arrival time) and passes each to emit.
func generate(cfg genConfig, emit func(*Event)) {
	rnd := rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15))
	start := cfg.Start.UnixMilli()
	span := int64(cfg.Days) * 24 * 3600 * 1000
	tick := cfg.Tick.Milliseconds()
	if tick <= 0 {
		tick = 1
	}
	at := func(ms int64) int64 { return ms / tick * tick }
	zipf := rand.NewZipf(rnd, 1.3, 1, uint64(len(genPages)-1))

	persons := make([]genPerson, cfg.Persons)
	for i := range persons {
		p := &persons[i]
		p.anon = fmt.Sprintf("anon-%d-%x", i, rnd.Uint32())
		p.browser = genBrowsers[rnd.IntN(len(genBrowsers))]
		p.country = genCountries[rnd.IntN(len(genCountries))]
		p.mobile = rnd.IntN(3) == 0
		if rnd.IntN(10) < 3 {
			p.user = fmt.Sprintf("user%d@example.com", i)
			p.identifyAt = start + rnd.Int64N(span+span/5) // some after the data
			if rnd.IntN(6) == 0 {
				p.anon2 = p.anon + "-phone"
				p.device2At = start + rnd.Int64N(span+span/5)
			}
			if rnd.IntN(20) == 0 {
				p.crm = fmt.Sprintf("crm-%d", i)
			}
		}
	}

	// Sessions: about 8.5 events each; persons differ a lot in how often
	// they come.
	type session struct {
		start  int64
		person int
	}
	nSessions := cfg.Events * 100 / 850
	sessions := make([]session, nSessions)
	for i := range sessions {
		p := int(math.Pow(rnd.Float64(), 2) * float64(cfg.Persons))
		sessions[i] = session{start + rnd.Int64N(span), p}
	}
	sort.Slice(sessions, func(i, j int) bool { return sessions[i].start < sessions[j].start })

	type pending struct {
		arrive int64
		ev     *Event
	}
	var day []pending
	seq := 0
	newEvent := func(name, did string, ts int64, props ...Prop) *Event {
		seq++
		return &Event{Site: "s", Name: name, DistinctID: did, Time: ts,
			UUID:  fmt.Sprintf("%08x-0000-7000-8000-%012x", cfg.Seed&0xffffffff, seq),
			Props: props}
	}
	push := func(ev *Event, delay int64) {
		day = append(day, pending{ev.Time + delay, ev})
		if rnd.IntN(400) == 0 { // a retry: same uuid, sent again later
			again := *ev
			again.Time += int64(rnd.IntN(3)) * tick
			day = append(day, pending{ev.Time + delay + 60000, &again})
		}
	}
	flush := func() {
		sort.SliceStable(day, func(i, j int) bool { return day[i].arrive < day[j].arrive })
		for _, p := range day {
			emit(p.ev)
		}
		day = day[:0]
	}
	dayEnd := start + 24*3600*1000
	for si, s := range sessions {
		for s.start >= dayEnd {
			flush()
			dayEnd += 24 * 3600 * 1000
		}
		p := &persons[s.person]
		t := at(s.start)
		sid := fmt.Sprintf("sess-%d", si)
		did := p.anon
		phone := p.anon2 != "" && rnd.IntN(3) == 0
		if phone {
			did = p.anon2
		}
		linked := func(t int64) bool {
			if phone {
				return p.device2At != 0 && t >= p.device2At
			}
			return p.identifyAt != 0 && t >= p.identifyAt
		}
		identify := func(anon string) {
			t += tick
			plan := genPlans[rnd.IntN(len(genPlans))]
			push(newEvent("$identify", p.user, t, Prop{"$anon_distinct_id", StringValue(anon)}, Prop{"$session_id", StringValue(sid)},
				Prop{"$set", Value{Kind: KindJSON, S: `{"email":"` + p.user + `","plan":"` + plan + `"}`}}), 0)
		}
		if linked(t) {
			if !phone && !p.identified {
				// Logged in at the start of this visit.
				identify(did)
				p.identified = true
			}
			did = p.user
		}
		vw := "1440"
		device := "Desktop"
		if p.mobile || phone {
			vw, device = "390", "Mobile"
		}
		ref := genReferrers[rnd.IntN(len(genReferrers))]
		common := func(path string) Props {
			ps := Props{{"$session_id", StringValue(sid)}, {"$pathname", StringValue(path)}, {"$host", StringValue("example.com")},
				{"$current_url", StringValue("https://example.com" + path)}, {"$browser", StringValue(p.browser)},
				{"$device_type", StringValue(device)}, {"$referring_domain", StringValue(ref)}, {"$viewport_width", NumberValue(mustAtoi(vw))}}
			if p.country != "" {
				ps = append(ps, Prop{"$geoip_country_code", StringValue(p.country)})
			}
			if ref == "google.com" {
				ps = append(ps, Prop{"utm_source", StringValue("google")})
			}
			return ps
		}
		views := 1 + int(rnd.ExpFloat64()*2.2)
		path := genPages[zipf.Uint64()]
		for v := 0; v < views; v++ {
			if v > 0 {
				t += at(int64(5000 + rnd.IntN(120000)))
				if rnd.IntN(8) == 0 {
					// same page again (a reload)
				} else {
					path = genPages[zipf.Uint64()]
				}
			}
			push(newEvent("$pageview", did, t, append(common(path), Prop{"title", StringValue("Page " + path)})...), int64(rnd.IntN(3000)))
			// Identify during the session when its moment has come.
			if !phone && !p.identified && linked(t+600000) {
				identify(did)
				did = p.user
				p.identified = true
			}
			for c := rnd.IntN(3); c > 0; c-- {
				t += at(int64(1000 + rnd.IntN(30000)))
				tpl := rnd.IntN(len(genChains))
				ch := genChains[tpl]
				ps := append(common(path), Prop{"$event_type", StringValue("click")}, Prop{"$elements_chain", StringValue(ch.chain)},
					Prop{"$click_x", NumberValue(float64(rnd.IntN(1000)) / 1000)}, Prop{"$click_y", NumberValue(float64(rnd.IntN(3000)))},
					Prop{"tpl", StringValue(strconv.Itoa(tpl))})
				if ch.text != "" {
					ps = append(ps, Prop{"$el_text", StringValue(ch.text)})
				}
				push(newEvent("$autocapture", did, t, ps...), int64(rnd.IntN(3000)))
			}
			if rnd.IntN(4) != 0 {
				t += at(int64(500 + rnd.IntN(60000)))
				ps := append(common(path), Prop{"$prev_pageview_pathname", StringValue(path)},
					Prop{"$prev_pageview_max_content", NumberValue(float64(600 + rnd.IntN(4000)))})
				push(newEvent("$pageleave", did, t, ps...), int64(rnd.IntN(3000)))
			}
		}
		// Server side: purchases without a session, at whole seconds.
		if p.user != "" && did == p.user && rnd.IntN(4) == 0 {
			ts := (t + int64(rnd.IntN(600000))) / 1000 * 1000
			server := p.user
			if p.crm != "" && rnd.IntN(2) == 0 {
				server = p.crm
			}
			push(newEvent("purchase", server, ts, Prop{"plan", StringValue(genPlans[rnd.IntN(len(genPlans))])},
				Prop{"amount", NumberValue(float64(5 + rnd.IntN(200)))}), int64(rnd.IntN(3600000)))
			if p.crm != "" && server == p.user && rnd.IntN(2) == 0 {
				push(newEvent("$create_alias", p.user, ts, Prop{"alias", StringValue(p.crm)}), 0)
			}
		}
		// The second device is linked when its moment has come.
		if phone && p.device2At != 0 && t >= p.device2At && did == p.anon2 {
			push(newEvent("$identify", p.user, t+tick, Prop{"$anon_distinct_id", StringValue(p.anon2)}), 0)
		}
	}
	flush()
}

func mustAtoi(s string) float64 {
	n, err := strconv.Atoi(s)
	if err != nil {
		panic(err)
	}
	return float64(n)
}
