package collector

import (
	"hash/maphash"
	"strings"
	"sync"

	"github.com/mssola/useragent"
)

// Device is what a User-Agent says about the visitor's software, under the
// names PostHog gives it ($browser, $browser_version, $os, $os_version,
// $device_type).
type Device struct {
	Browser        string // "Chrome", "Mobile Safari", "Samsung Internet", ...
	BrowserVersion string // the major version: "124"
	OS             string // "Windows", "Mac OS X", "iOS", "Android", "Linux", "Chrome OS", ...
	OSVersion      string // "10", "10.15.7", "17.4", "14"; empty when the UA does not say
	DeviceType     string // "Desktop", "Mobile", "Tablet", or "" when not a browser
}

// UAParser parses User-Agent strings with a bounded cache: the same few
// hundred strings make most of the traffic, and parsing one costs
// microseconds and allocations. Safe for concurrent use.
//
// The cache is sharded to keep lock contention off the capture hot path.
// Each shard keeps two generations of entries: when the current one is full
// it becomes the old one and the one before is dropped, and a hit in the old
// generation moves the entry to the current one. Strings in use stay cached
// and the size stays bounded, at the price of one map per shard.
type UAParser struct {
	seed     maphash.Seed
	shards   []uaShard
	perShard int // entries per generation per shard; 0 disables the cache
}

type uaShard struct {
	mu       sync.RWMutex
	cur, old map[string]uaResult
}

type uaResult struct {
	dev Device
	bot bool
}

// maxUALen is the longest User-Agent parsed and cached. Real ones are a few
// hundred bytes; a longer header is cut here so that neither the parser nor
// the cache does work or holds memory in proportion to what a client sends.
const maxUALen = 512

// NewUAParser returns a parser caching about cacheSize User-Agents (at most
// cacheSize). A cacheSize of 0 or less disables the cache.
func NewUAParser(cacheSize int) *UAParser {
	p := &UAParser{seed: maphash.MakeSeed()}
	if cacheSize <= 0 {
		return p
	}
	n := 16
	for n > 1 && cacheSize/(2*n) < 8 {
		n /= 2
	}
	p.shards = make([]uaShard, n)
	p.perShard = max(cacheSize/(2*n), 1)
	for i := range p.shards {
		p.shards[i].cur = make(map[string]uaResult)
	}
	return p
}

// Parse reports what ua says about the visitor's device, and whether it is
// a bot. An empty, unknown or non-browser User-Agent (a server SDK, curl)
// gives an empty Device and no bot.
func (p *UAParser) Parse(ua string) (Device, bool) {
	if len(ua) > maxUALen {
		ua = ua[:maxUALen]
	}
	if p.perShard == 0 || ua == "" {
		r := parseUA(ua)
		return r.dev, r.bot
	}
	s := &p.shards[maphash.String(p.seed, ua)%uint64(len(p.shards))]
	s.mu.RLock()
	r, ok := s.cur[ua]
	inOld := false
	if !ok {
		r, inOld = s.old[ua]
	}
	s.mu.RUnlock()
	if ok {
		return r.dev, r.bot
	}
	if !inOld {
		r = parseUA(ua)
		// The caller's string may share memory with a larger buffer (the
		// request's headers); keep only the bytes we need.
		ua = strings.Clone(ua)
	}
	s.mu.Lock()
	if len(s.cur) >= p.perShard {
		s.old, s.cur = s.cur, make(map[string]uaResult, p.perShard)
	}
	s.cur[ua] = r
	s.mu.Unlock()
	return r.dev, r.bot
}

// cached counts the cached entries (for tests).
func (p *UAParser) cached() int {
	n := 0
	for i := range p.shards {
		s := &p.shards[i]
		s.mu.RLock()
		n += len(s.cur) + len(s.old)
		s.mu.RUnlock()
	}
	return n
}

// notBots are User-Agent prefixes (lower case) of clients that send events
// on purpose: PostHog's server and mobile SDKs (posthog-node, posthog-go,
// posthog-python, ...) and Node's fetch libraries, which mssola/useragent
// takes for a crawler because of the word "fetch". They are not browsers, so
// they describe no visitor's device either.
var notBots = []string{
	"posthog-",
	"node-fetch",
	"undici",
}

// botMarkers are lower-case substrings of the User-Agents of crawlers, link
// previewers, monitors and automated browsers, which mssola/useragent's
// Bot() does not all catch (it misses GPTBot, HeadlessChrome, Lighthouse).
//
// Command-line and library HTTP clients (curl, Wget, python-requests,
// Go-http-client) are not listed: they cannot run the snippet, so their
// events reach us only when someone sends them deliberately, PostHog's own
// docs do it with curl, and dropping them would lose data without a word.
// Their Device is empty. Anything that renders pages unattended is a bot,
// HeadlessChrome and PhantomJS included.
var botMarkers = []string{
	// Generic: a contact URL in the User-Agent, or a self-description.
	"+http", "bot/", "crawler", "crawling", "spider", "scraper", "scrapy", "httrack", "headless",
	// Search engines.
	"googlebot", "adsbot-google", "mediapartners-google", "apis-google", "feedfetcher-google",
	"google-inspectiontool", "googleother", "storebot-google", "google-read-aloud",
	"google page speed", "google-pagerenderer", "chrome-lighthouse", "bingbot", "bingpreview",
	"adidxbot", "msnbot", "yahoo! slurp", "duckduckbot", "duckassistbot", "baiduspider",
	"yandexbot", "yandex.com/bots", "sogou", "exabot", "seznambot", "applebot", "petalbot",
	"mojeekbot", "qwantbot",
	// SEO tools.
	"ahrefsbot", "ahrefssiteaudit", "semrushbot", "mj12bot", "dotbot", "rogerbot",
	"screaming frog", "serpstatbot", "dataforseobot", "blexbot", "barkrowler",
	// AI crawlers and agents.
	"gptbot", "chatgpt-user", "oai-searchbot", "claudebot", "claude-user", "claude-searchbot",
	"anthropic-ai", "perplexitybot", "perplexity-user", "ccbot", "bytespider", "amazonbot",
	"cohere-ai", "diffbot", "meta-externalagent", "meta-externalfetcher", "youbot",
	// Link previews.
	"facebookexternalhit", "facebookcatalog", "twitterbot", "linkedinbot", "slackbot",
	"slack-imgproxy", "discordbot", "telegrambot", "whatsapp/", "skypeuripreview",
	"pinterestbot", "redditbot", "embedly", "iframely", "vkshare", "mastodon/",
	// Uptime and performance monitors.
	"uptimerobot", "pingdom", "statuscake", "site24x7", "newrelicpinger", "datadogsynthetics",
	"checkly", "betteruptime", "better uptime", "uptime-kuma", "freshping", "gtmetrix",
	"hetrixtools", "nodeping",
	// Automated and headless browsers.
	"phantomjs", "slimerjs", "htmlunit", "selenium", "webdriver", "puppeteer", "playwright",
	"cypress", "prerender", "rendertron",
}

// browserTokens name browsers that mssola/useragent reports under another
// name (Samsung Internet as "Android", Chrome on iOS as "Chrome"), in the
// order they must be tried: many UAs carry several of these tokens.
var browserTokens = []struct{ token, name string }{
	{"SamsungBrowser/", "Samsung Internet"},
	{"Opera Mini/", "Opera Mini"},
	{"OPR/", "Opera"},
	{"EdgA/", "Microsoft Edge"},
	{"EdgiOS/", "Microsoft Edge"},
	{"Edg/", "Microsoft Edge"},
	{"Edge/", "Microsoft Edge"},
	{"CriOS/", "Chrome iOS"},
	{"FxiOS/", "Firefox iOS"},
	{"FBAV/", "Facebook Mobile"},
}

func parseUA(ua string) uaResult {
	if ua == "" {
		return uaResult{}
	}
	lower := strings.ToLower(ua)
	for _, p := range notBots {
		if strings.HasPrefix(lower, p) {
			return uaResult{}
		}
	}
	for _, m := range botMarkers {
		if strings.Contains(lower, m) {
			return uaResult{bot: true}
		}
	}
	var m useragent.UserAgent
	m.Parse(ua)
	if m.Bot() {
		return uaResult{bot: true}
	}
	// Only browsers describe a visitor's device; curl, SDKs and Android's
	// Dalvik HTTP stack say nothing PostHog would show.
	if !strings.HasPrefix(ua, "Mozilla/") && !strings.HasPrefix(ua, "Opera/") {
		return uaResult{}
	}
	os, osVersion := uaOS(&m, ua)
	browser, version := uaBrowser(&m, ua, os)
	if browser == "" && os == "" {
		return uaResult{}
	}
	return uaResult{dev: Device{
		Browser:        browser,
		BrowserVersion: version,
		OS:             os,
		OSVersion:      osVersion,
		DeviceType:     uaDeviceType(&m, ua, os),
	}}
}

func uaBrowser(m *useragent.UserAgent, ua, os string) (name, version string) {
	for _, t := range browserTokens {
		if i := strings.Index(ua, t.token); i >= 0 {
			return t.name, leadingDigits(ua[i+len(t.token):])
		}
	}
	name, version = m.Browser()
	version = leadingDigits(version)
	switch name {
	case "Safari":
		if os == "iOS" {
			name = "Mobile Safari"
		}
	case "Android":
		// Android's WebView, Silk and old stock browsers; those built on
		// Chrome say so.
		if i := strings.Index(ua, "Chrome/"); i >= 0 {
			return "Chrome", leadingDigits(ua[i+len("Chrome/"):])
		}
		name = "Android Mobile"
	case "Mozilla": // "Mozilla/5.0" and nothing else
		return "", ""
	}
	return name, version
}

func uaOS(m *useragent.UserAgent, ua string) (name, version string) {
	info := m.OSInfo()
	switch platform := m.Platform(); {
	case platform == "iPhone" || platform == "iPad" || platform == "iPod" || platform == "iPod touch":
		// Firefox on iPad poses as a Mac; its "10.15" is no iOS version.
		if !strings.Contains(ua, "like Mac OS X") {
			return "iOS", ""
		}
		return "iOS", info.Version
	case strings.HasPrefix(info.Name, "Windows Phone"):
		return "Windows Phone", info.Version
	case strings.HasPrefix(info.Name, "Windows"):
		if info.Name != "Windows" {
			return "Windows", "" // "Windows NT 11.0": a version mssola does not name
		}
		return "Windows", info.Version
	case strings.Contains(info.Name, "Mac OS X"):
		return "Mac OS X", info.Version
	case info.Name == "Android":
		return "Android", info.Version
	case strings.Contains(ua, "Android"): // Opera Mini: "(Android; Opera Mini/..."
		return "Android", ""
	case strings.HasPrefix(info.Name, "CrOS"):
		return "Chrome OS", ""
	case strings.Contains(ua, "Linux"):
		return "Linux", ""
	}
	return info.Name, "" // FreeBSD, ..., or nothing
}

func uaDeviceType(m *useragent.UserAgent, ua, os string) string {
	switch {
	case m.Platform() == "iPad" || strings.Contains(ua, "Tablet") || strings.Contains(ua, "Kindle") || strings.Contains(ua, "Silk/"):
		return "Tablet"
	case os == "Android":
		// Android tablets drop "Mobile" from the UA; phones keep it.
		if strings.Contains(ua, "Mobile") || strings.Contains(ua, "Opera Mini") {
			return "Mobile"
		}
		return "Tablet"
	case m.Mobile() || os == "iOS" || os == "Windows Phone":
		return "Mobile"
	case os == "":
		return ""
	}
	return "Desktop"
}

// leadingDigits returns the digits s starts with: "124" of "124.0.6367.82".
func leadingDigits(s string) string {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return s[:i]
}
