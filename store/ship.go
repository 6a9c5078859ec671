package store

import "time"

// IntervalLabels returns the labels Trends gives the intervals of
// [from, to) in tz (nil is UTC; hour, day, week or month), so that another backend
// answers with the same ones.
func IntervalLabels(from, to time.Time, interval string, tz *time.Location) ([]string, error) {
	if tz == nil {
		tz = time.UTC
	}
	b, err := makeBuckets(from, to, interval, tz)
	if err != nil {
		return nil, err
	}
	return b.labels, nil
}

// MatchChain tests an `$elements_chain` value against an action step's
// element conditions as the store's own queries do: elements is whether
// the chain passes the step's selector and href (true when it has
// neither); text is whether the chain's first element has the step's
// text. Another backend uses it to find the chains an action matches.
func MatchChain(st ActionStep, chain string) (elements, text bool, err error) {
	els := parseElements(chain)
	elements = true
	if st.Selector != "" {
		sel, err := parseSelector(st.Selector)
		if err != nil {
			return false, false, err
		}
		elements = sel.matches(els)
	}
	if st.Href != "" {
		elements = elements && len(els) > 0 && els[0].href() == st.Href
	}
	text = st.Text != "" && len(els) > 0 && els[0].text() == st.Text
	return elements, text, nil
}

// ChannelType is the channel of a session's entry (PostHog's web
// analytics channel types), as the store computes `$channel_type`.
func ChannelType(referringDomain, source, medium, campaign, currentURL string) string {
	return channelType(referringDomain, source, medium, campaign, currentURL)
}

// DropRecordingsBefore deletes the site's recordings whose last event is
// older than cutoff (Unix ms), except the sessions in keep, as retention
// does; it returns how many went. A backend that holds the recordings
// elsewhere (the ClickHouse backend's `keep`) drops what it has shipped
// with it.
func (s *DB) DropRecordingsBefore(site string, cutoff int64, keep map[string]bool) (int, error) {
	return s.dropRecordings(site, func(ri *RecordingInfo) bool { return ri.End < cutoff && !keep[ri.SessionID] })
}

// DeleteRecordingsOf deletes the site's recordings whose distinct id (their
// first chunk's, as DeletePerson matches them) is one of ids, even when the
// log holds no event of theirs; it returns how many went.
func (s *DB) DeleteRecordingsOf(site string, ids []string) (int, error) {
	set := make(map[string]bool, len(ids))
	for _, d := range ids {
		set[d] = true
	}
	return s.dropRecordings(site, func(ri *RecordingInfo) bool { return set[ri.DistinctID] })
}

func (s *DB) dropRecordings(site string, match func(*RecordingInfo) bool) (int, error) {
	s.maint.Lock()
	defer s.maint.Unlock()
	n := 0
	err := s.deleteRecordingsOf(site, func(ri *RecordingInfo) bool {
		m := match(ri)
		if m {
			n++
		}
		return m
	})
	if err != nil || n == 0 {
		return n, err
	}
	return n, s.shrink()
}
