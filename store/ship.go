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
