package store

import (
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
)

// Session properties (SPEC §4): fixed per session, from the whole session
// whatever the query's range: $entry_* of its first pageview (its first
// event when it has none), $exit_pathname of its last pageview,
// $channel_type from the entry's referrer and UTM tags (PostHog's web
// analytics channel types), $session_duration in seconds. They may be
// filtered on and broken down by in every report; a filter on one keeps
// whole sessions.
//
// The table keeps, per $session_id code, where the session starts and
// ends (updated as rows are added, live and at replay); the values are
// read from the event columns at query time, into a column per property
// that is cached until the table changes.

// sessionSpan is what the table keeps of one session.
type sessionSpan struct {
	first, last       int64 // event times
	firstRow          int32
	entryTS, exitTS   int64 // first and last $pageview times
	entryRow, exitRow int32 // -1 without a pageview
}

// sessionProps maps each session property to how it is read.
var sessionProps = map[string]struct {
	source string // the event column it reads ("" for computed ones)
	exit   bool   // from the last pageview instead of the first
}{
	"$entry_pathname":         {"$pathname", false},
	"$exit_pathname":          {"$pathname", true},
	"$entry_referring_domain": {"$referring_domain", false},
	"$entry_referrer":         {"$referrer", false},
	"$entry_utm_source":       {"utm_source", false},
	"$entry_utm_medium":       {"utm_medium", false},
	"$entry_utm_campaign":     {"utm_campaign", false},
	"$entry_utm_term":         {"utm_term", false},
	"$entry_utm_content":      {"utm_content", false},
	"$entry_current_url":      {"$current_url", false},
	"$channel_type":           {"", false},
	"$session_duration":       {"", false},
}

// IsSessionProp reports whether key is a session property.
func IsSessionProp(key string) bool {
	_, ok := sessionProps[key]
	return ok
}

// sessionSources are the event columns session property keys need.
func sessionSources(keys []string) []string {
	var out []string
	for _, k := range keys {
		sp, ok := sessionProps[k]
		switch {
		case !ok:
			out = append(out, k)
		case k == "$channel_type":
			out = append(out, "$referring_domain", "utm_source", "utm_medium", "utm_campaign", "$current_url")
		case sp.source != "":
			out = append(out, sp.source)
		}
		if ok {
			out = append(out, "$session_id")
		}
	}
	return out
}

// sessions is a table's per-session state and cached property columns.
type sessions struct {
	spans vec[sessionSpan] // by $session_id code; index 0 unused; off the heap
	// version counts the changes that can move a session's values.
	version uint64
	cache   sync.Map // property → *sessionColumn
}

type sessionColumn struct {
	version uint64
	col     *column
}

// add records row (time ts, name) in session sc.
func (ss *sessions) add(sc uint32, row int, ts int64, pageview bool) {
	ss.version++
	if sc == 0 {
		return
	}
	for int(sc) >= ss.spans.len() {
		ss.spans.append(sessionSpan{entryRow: -1, exitRow: -1, firstRow: -1})
	}
	s := ss.spans.ptr(int(sc))
	if s.firstRow < 0 {
		s.first, s.firstRow, s.last = ts, int32(row), ts
	}
	if ts < s.first {
		s.first, s.firstRow = ts, int32(row)
	}
	s.last = max(s.last, ts)
	if pageview {
		if s.entryRow < 0 || ts < s.entryTS {
			s.entryTS, s.entryRow = ts, int32(row)
		}
		if s.exitRow < 0 || ts >= s.exitTS {
			s.exitTS, s.exitRow = ts, int32(row)
		}
	}
}

// sessionColumn returns the column of session property key, building it
// if the table changed since; the caller holds t.mu (read) and has built
// the source columns.
func (t *table) sessionColumn(key string) *column {
	ss := &t.sess
	if v, ok := ss.cache.Load(key); ok {
		if sc := v.(*sessionColumn); sc.version == ss.version {
			return sc.col
		}
	}
	sid := t.colByKey["$session_id"]
	// The value of each session, as a code of the new column.
	col := newColumn(key)
	bySession := make([]uint32, ss.spans.len())
	for sc := 1; sc < ss.spans.len(); sc++ {
		s := ss.spans.ptr(sc)
		if s.firstRow < 0 {
			continue
		}
		bySession[sc] = col.dict.code(t.sessionValue(key, s))
	}
	n := t.rows()
	for row := 0; row < n; row++ {
		sc := sid.at(row)
		if int(sc) < len(bySession) {
			col.appendCode(bySession[sc])
		} else {
			col.appendCode(0)
		}
	}
	// The old column is left to the garbage collector: a query may still
	// read it.
	ss.cache.Store(key, &sessionColumn{ss.version, col})
	return col
}

// sessionValue reads one session's value of key.
func (t *table) sessionValue(key string, s *sessionSpan) string {
	switch key {
	case "$session_duration":
		return strconv.FormatFloat(math.Round(float64(s.last-s.first))/1000, 'f', -1, 64)
	case "$channel_type":
		row := int(s.entryRow)
		if row < 0 {
			row = int(s.firstRow)
		}
		get := func(k string) string {
			if c := t.colByKey[k]; c != nil {
				return c.value(row)
			}
			return ""
		}
		return channelType(get("$referring_domain"), get("utm_source"), get("utm_medium"), get("utm_campaign"), get("$current_url"))
	}
	sp := sessionProps[key]
	row := int(s.entryRow)
	if sp.exit {
		row = int(s.exitRow)
	}
	if row < 0 {
		if sp.exit {
			return ""
		}
		row = int(s.firstRow)
	}
	c := t.colByKey[sp.source]
	if c == nil {
		return ""
	}
	return c.value(row)
}

// Channel types, PostHog's web analytics names.
const (
	ChannelDirect        = "Direct"
	ChannelOrganicSearch = "Organic Search"
	ChannelPaidSearch    = "Paid Search"
	ChannelOrganicSocial = "Organic Social"
	ChannelPaidSocial    = "Paid Social"
	ChannelOrganicVideo  = "Organic Video"
	ChannelPaidVideo     = "Paid Video"
	ChannelOrganicShop   = "Organic Shopping"
	ChannelPaidShop      = "Paid Shopping"
	ChannelPaidUnknown   = "Paid Unknown"
	ChannelEmail         = "Email"
	ChannelAffiliate     = "Affiliate"
	ChannelCrossNetwork  = "Cross Network"
	ChannelSMS           = "SMS"
	ChannelPush          = "Push"
	ChannelReferral      = "Referral"
	ChannelUnknown       = "Unknown"
)

var (
	paidMedium = regexp.MustCompile(`^(.*cp.*|ppc|retargeting|paid.*)$`)
	sourceKind = map[string]string{}
)

func init() {
	for kind, names := range map[string][]string{
		"search":   {"google", "bing", "duckduckgo", "yahoo", "yandex", "baidu", "ecosia", "startpage", "qwant", "search.brave", "naver", "seznam", "kagi", "ask"},
		"social":   {"facebook", "fb", "instagram", "twitter", "t.co", "x", "linkedin", "lnkd.in", "reddit", "pinterest", "tiktok", "threads", "mastodon", "bsky", "news.ycombinator", "ycombinator", "quora", "tumblr", "vk", "weibo", "snapchat", "discord", "telegram", "whatsapp"},
		"video":    {"youtube", "youtu.be", "vimeo", "twitch", "dailymotion"},
		"shopping": {"amazon", "ebay", "etsy", "shopify", "walmart", "aliexpress"},
		"email":    {"mail.google", "outlook.live", "mail.yahoo", "mail.proton", "email", "newsletter", "e-mail", "mail"},
	} {
		for _, n := range names {
			sourceKind[n] = kind
		}
	}
}

// kindOf classifies a source or referring domain: search, social, video,
// shopping, email or "".
func kindOf(s string) string {
	s = strings.ToLower(strings.TrimSpace(s))
	s = strings.TrimPrefix(strings.TrimPrefix(s, "www."), "m.")
	if s == "" || s == "$direct" {
		return ""
	}
	if k, ok := sourceKind[s]; ok {
		return k
	}
	labels := strings.Split(s, ".")
	if len(labels) > 1 {
		labels = labels[:len(labels)-1] // the top-level domain
	}
	for i := range labels {
		if k, ok := sourceKind[strings.Join(labels[i:], ".")]; ok {
			return k
		}
	}
	for _, l := range labels {
		if k, ok := sourceKind[l]; ok {
			return k
		}
	}
	return ""
}

// channelType classifies a session's entry, after PostHog's rules.
func channelType(referringDomain, source, medium, campaign, currentURL string) string {
	source, medium, campaign = strings.ToLower(source), strings.ToLower(medium), strings.ToLower(campaign)
	clickID := false
	if u, err := url.Parse(currentURL); err == nil && currentURL != "" {
		q := u.Query()
		for _, k := range []string{"gclid", "gad_source", "msclkid", "fbclid", "ttclid", "li_fat_id", "twclid"} {
			if q.Get(k) != "" {
				clickID = true
			}
		}
	}
	direct := referringDomain == "" || referringDomain == "$direct"
	if source == "" && medium == "" && campaign == "" && direct && !clickID {
		return ChannelDirect
	}
	if strings.Contains(campaign, "cross-network") {
		return ChannelCrossNetwork
	}
	kind := kindOf(source)
	if kind == "" {
		kind = kindOf(referringDomain)
	}
	paid := paidMedium.MatchString(medium) || clickID
	switch {
	case paid && kind == "search":
		return ChannelPaidSearch
	case paid && kind == "social":
		return ChannelPaidSocial
	case paid && kind == "video":
		return ChannelPaidVideo
	case paid && (kind == "shopping" || strings.Contains(campaign, "shop")):
		return ChannelPaidShop
	case paid:
		return ChannelPaidUnknown
	}
	switch {
	case strings.Contains(medium, "mail") || kindOf(source) == "email" || kind == "email":
		return ChannelEmail
	case medium == "affiliate":
		return ChannelAffiliate
	case medium == "sms" || source == "sms":
		return ChannelSMS
	case strings.HasSuffix(medium, "push") || strings.Contains(medium, "mobile") || strings.Contains(medium, "notification"):
		return ChannelPush
	case kind == "search" || medium == "organic":
		return ChannelOrganicSearch
	case kind == "social" || medium == "social" || medium == "social-network" || medium == "social-media" || medium == "sm":
		return ChannelOrganicSocial
	case kind == "video" || strings.Contains(medium, "video"):
		return ChannelOrganicVideo
	case kind == "shopping" || strings.Contains(campaign, "shop"):
		return ChannelOrganicShop
	case medium == "referral" || medium == "app" || medium == "link" || !direct:
		return ChannelReferral
	}
	return ChannelUnknown
}
