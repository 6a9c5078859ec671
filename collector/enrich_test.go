package collector

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/firstpartyhq/firstparty/store"
)

// TestEnrichURLCacheSameProperties: enrichment through the URL cache adds
// the same properties as reading every URL, on first sight and on repeats,
// for plain, UTM-tagged, odd and unparsable URLs.
func TestEnrichURLCacheSameProperties(t *testing.T) {
	urls := []string{
		"https://shop.example.com/products/widget-1?ref=3",
		"https://shop.example.com",
		"https://shop.example.com/a%20b?utm_source=news&utm_medium=mail&utm_campaign=x&utm_term=t&utm_content=c#frag",
		"http://[::1]:8080/x?utm_source=a&utm_source=b",
		"https://user:pw@host.example/p?q=utm_x",
		"/relative/path?utm_medium=cpc",
		"https://bad host/",
		"https://example.com/%zz",
		"::not a url",
	}
	plain := enricher{}
	cached := enricher{urls: newURLCache()}
	for round := range 3 {
		for _, u := range urls {
			for _, withPath := range []bool{false, true} {
				base := store.Props{{Key: "$current_url", Val: store.StringValue(u)}, {Key: "$referring_domain", Val: store.StringValue("x")}}
				if withPath {
					base = append(base, store.Prop{Key: "$pathname", Val: store.StringValue("/given")})
				}
				a := &store.Event{Props: append(store.Props(nil), base...)}
				b := &store.Event{Props: append(store.Props(nil), base...)}
				plain.enrich(a, &visitor{}, false)
				cached.enrich(b, &visitor{}, false)
				if !reflect.DeepEqual(a.Props, b.Props) {
					t.Fatalf("round %d, %q: cached %v, read %v", round, u, b.Props, a.Props)
				}
			}
		}
	}
	if n := len(cached.urls.cur) + len(cached.urls.prev); n == 0 {
		t.Fatal("nothing was cached")
	}
}

// TestURLCacheBounded: distinct URLs without end keep the cache within two
// generations, count what is dropped, and a URL longer than the bound is
// never kept.
func TestURLCacheBounded(t *testing.T) {
	c := newURLCache()
	const n = 5 * urlCacheSize
	for i := range n {
		raw := fmt.Sprintf("https://example.com/page/%d", i)
		if _, ok := c.get(raw); ok {
			t.Fatalf("%s found before it was put", raw)
		}
		f := readURL(raw)
		c.put(raw, &f)
		if got, ok := c.get(raw); !ok || got.path != fmt.Sprintf("/page/%d", i) {
			t.Fatalf("%s: got %+v, %v", raw, got, ok)
		}
	}
	if size := len(c.cur) + len(c.prev); size > 2*urlCacheSize {
		t.Fatalf("cache holds %d URLs, bound %d", size, 2*urlCacheSize)
	}
	if c.dropped < n-2*urlCacheSize {
		t.Fatalf("dropped %d of %d URLs, want at least %d", c.dropped, n, n-2*urlCacheSize)
	}
	long := "https://example.com/" + string(make([]byte, maxCachedURL))
	f := readURL(long)
	c.put(long, &f)
	if _, ok := c.get(long); ok {
		t.Fatal("a URL over the bound was cached")
	}
}
