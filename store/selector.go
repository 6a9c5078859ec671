package store

import (
	"fmt"
	"strings"
)

// element is one element of an autocapture element chain.
type element struct {
	tag     string
	classes []string
	attrs   []Prop // key and string value, in chain order
}

func (e *element) attr(key string) (string, bool) {
	for _, a := range e.attrs {
		if a.Key == key {
			return a.Val.S, true
		}
	}
	return "", false
}

// id is the element's id attribute.
func (e *element) id() string {
	if v, ok := e.attr("attr__id"); ok {
		return v
	}
	v, _ := e.attr("attr_id")
	return v
}

// href is the element's link target.
func (e *element) href() string {
	if v, ok := e.attr("href"); ok {
		return v
	}
	v, _ := e.attr("attr__href")
	return v
}

// text is the element's text.
func (e *element) text() string {
	v, _ := e.attr("text")
	return v
}

// parseElements reads a `$elements_chain` as posthog-js and PostHog write
// it: elements separated by `;`, the clicked element first, each
// `tag.class1.class2:key="value"key="value"...` with `"` escaped as `\"`
// inside values. Whatever does not fit is skipped; it never fails.
func parseElements(chain string) []element {
	var out []element
	for _, part := range splitChain(chain) {
		if part == "" {
			continue
		}
		head, attrs := splitElement(part)
		var e element
		names := strings.Split(head, ".")
		e.tag = strings.ToLower(names[0])
		for _, c := range names[1:] {
			if c != "" {
				e.classes = append(e.classes, c)
			}
		}
		e.attrs = parseChainAttrs(attrs)
		out = append(out, e)
	}
	return out
}

// splitChain splits at the `;` outside quoted values.
func splitChain(s string) []string {
	var parts []string
	start, quoted := 0, false
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case ';':
			if !quoted {
				parts = append(parts, s[start:i])
				start = i + 1
			}
		}
	}
	return append(parts, s[start:])
}

// splitElement splits `tag.classes:attributes` at the first `:` that is
// followed by an attribute name and `=` (class names such as Tailwind's
// `hover:underline` contain colons too).
func splitElement(s string) (head, attrs string) {
	for i := 0; i < len(s); i++ {
		if s[i] != ':' {
			continue
		}
		j := i + 1
		for j < len(s) && isAttrNameByte(s[j]) {
			j++
		}
		if j == len(s) || s[j] == '=' {
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

func isAttrNameByte(c byte) bool {
	return c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

// parseChainAttrs reads `key="value"key="value"...`.
func parseChainAttrs(s string) []Prop {
	var out []Prop
	for len(s) > 0 {
		eq := strings.Index(s, `="`)
		if eq < 0 {
			break
		}
		key := s[:eq]
		var val strings.Builder
		i := eq + 2
		for ; i < len(s) && s[i] != '"'; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			val.WriteByte(s[i])
		}
		out = append(out, Prop{Key: key, Val: StringValue(val.String())})
		if i >= len(s) {
			break
		}
		s = s[i+1:]
	}
	return out
}

// selector is a CSS-like selector: compound selectors (tag, `.class`,
// `#id`, `[attr]`, `[attr=value]`) joined by descendant (space) and child
// (`>`) combinators.
type selector struct {
	parts []compound // left to right
}

type compound struct {
	tag     string // "" or "*": any
	classes []string
	id      string
	attrs   []attrTest
	// child says the element matching this part must be the parent of the
	// one matching the next part (`a > b`), not just an ancestor.
	child bool
}

type attrTest struct {
	key, val string
	any      bool // [key] without a value
}

// parseSelector parses a selector of the subset above.
func parseSelector(s string) (*selector, error) {
	sel := &selector{}
	i := 0
	child := false
	for {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n') {
			i++
		}
		if i == len(s) {
			break
		}
		if s[i] == '>' {
			if len(sel.parts) == 0 || child {
				return nil, fmt.Errorf("selector %q: misplaced >", s)
			}
			child = true
			i++
			continue
		}
		var c compound
		start := i
		i = readIdent(s, i)
		c.tag = strings.ToLower(s[start:i])
	simple:
		for i < len(s) {
			switch s[i] {
			case '.', '#':
				kind := s[i]
				i++
				start := i
				i = readIdent(s, i)
				if i == start {
					return nil, fmt.Errorf("selector %q: empty name after %c", s, kind)
				}
				if kind == '.' {
					c.classes = append(c.classes, s[start:i])
				} else {
					c.id = s[start:i]
				}
			case '[':
				end := strings.IndexByte(s[i:], ']')
				if end < 0 {
					return nil, fmt.Errorf("selector %q: unclosed [", s)
				}
				a, err := parseAttrTest(s[i+1 : i+end])
				if err != nil {
					return nil, fmt.Errorf("selector %q: %w", s, err)
				}
				c.attrs = append(c.attrs, a)
				i += end + 1
			case ' ', '\t', '\n', '>':
				break simple
			default:
				return nil, fmt.Errorf("selector %q: unexpected %q", s, s[i])
			}
		}
		if i == start {
			return nil, fmt.Errorf("selector %q: unexpected %q", s, s[i])
		}
		if child {
			sel.parts[len(sel.parts)-1].child = true
			child = false
		}
		sel.parts = append(sel.parts, c)
	}
	if len(sel.parts) == 0 || child {
		return nil, fmt.Errorf("selector %q: incomplete", s)
	}
	return sel, nil
}

func readIdent(s string, i int) int {
	for i < len(s) && (isAttrNameByte(s[i]) || s[i] == '*' || s[i] >= 0x80) {
		i++
	}
	return i
}

func parseAttrTest(s string) (attrTest, error) {
	k, v, ok := strings.Cut(s, "=")
	k = strings.TrimSpace(k)
	if k == "" {
		return attrTest{}, fmt.Errorf("empty attribute name")
	}
	if !ok {
		return attrTest{key: k, any: true}, nil
	}
	v = strings.TrimSpace(v)
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		v = v[1 : len(v)-1]
	}
	return attrTest{key: k, val: v}, nil
}

// matches reports whether the element chain (clicked element first) has an
// element matching the selector's last part whose ancestors match the
// parts before it. As in PostHog, the matching element may be the clicked
// one or any of its ancestors, so `button.signup` matches a click on the
// text inside the button.
func (sel *selector) matches(chain []element) bool {
	last := len(sel.parts) - 1
	for i := range chain {
		if sel.matchFrom(chain, i, last) {
			return true
		}
	}
	return false
}

// matchFrom reports whether chain[i] matches part p and the parts before p
// match its ancestors.
func (sel *selector) matchFrom(chain []element, i, p int) bool {
	if !sel.parts[p].matches(&chain[i]) {
		return false
	}
	if p == 0 {
		return true
	}
	if sel.parts[p-1].child {
		return i+1 < len(chain) && sel.matchFrom(chain, i+1, p-1)
	}
	for j := i + 1; j < len(chain); j++ {
		if sel.matchFrom(chain, j, p-1) {
			return true
		}
	}
	return false
}

func (c *compound) matches(e *element) bool {
	if c.tag != "" && c.tag != "*" && c.tag != e.tag {
		return false
	}
	for _, want := range c.classes {
		found := false
		for _, have := range e.classes {
			found = found || have == want
		}
		if !found {
			return false
		}
	}
	if c.id != "" && e.id() != c.id {
		return false
	}
	for _, a := range c.attrs {
		v, ok := e.attr("attr__" + a.key)
		if !ok {
			v, ok = e.attr(a.key)
		}
		if !ok && a.key == "id" {
			v, ok = e.attr("attr_id")
		}
		if !ok || !a.any && v != a.val {
			return false
		}
	}
	return true
}
