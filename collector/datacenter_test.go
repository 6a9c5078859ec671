package collector

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"os"
	"strings"
	"testing"
)

// The rows quoted are from the dataset (@ip-location-db/asn@2.3.2026061719,
// asn-ipv4.csv and asn-ipv6.csv) the table was built from.
func TestDatacenterContains(t *testing.T) {
	d, err := OpenDatacenter()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		ip   string
		want bool
		why  string
	}{
		// 5.9.0.0,5.9.255.255,24940,Hetzner Online GmbH
		{"5.9.10.10", true, "Hetzner"},
		{"5.9.0.0", true, "Hetzner, first address"},
		{"5.9.255.255", true, "Hetzner, last address"},
		{"5.8.255.255", false, "just before Hetzner: AIRE Networks (AS29119)"},
		{"5.10.0.0", false, "just after Hetzner: Wemaconnect (AS198726)"},
		// 3.5.0.0,3.5.31.255,14618,"Amazon.com, Inc."
		{"3.5.1.1", true, "AWS (AS14618)"},
		// 52.94.9.0,52.94.9.255,8987,Amazon Data Services Ireland Ltd
		{"52.94.9.10", true, "AWS Ireland (AS8987)"},
		// 20.0.0.0,20.31.255.255,8075,Microsoft Corporation
		{"20.1.2.3", true, "Azure"},
		// 159.89.0.0,159.89.56.255 and 159.89.58.0,159.89.255.255 DigitalOcean;
		// 159.89.57.0/24 is in no AS in the dataset.
		{"159.89.56.255", true, "DigitalOcean, end of a range"},
		{"159.89.57.7", false, "a hole between two DigitalOcean ranges"},
		{"159.89.58.0", true, "DigitalOcean, start of the next range"},
		{"::ffff:5.9.10.10", true, "IPv4-mapped Hetzner"},
		// 79.192.0.0,79.255.255.255,3320,Deutsche Telekom AG
		{"79.200.1.1", false, "Deutsche Telekom, a home ISP"},
		// 23.24.0.0,23.25.255.255,7922,"Comcast Cable Communications, LLC"
		{"23.24.1.1", false, "Comcast, a home ISP"},
		// 1.0.0.0,1.0.0.255,13335,"Cloudflare, Inc." (WARP and Private Relay carry people)
		{"1.0.0.1", false, "Cloudflare is left out on purpose"},
		// 2a01:4f8::,2a01:4f9:ffff:ffff:ffff:ffff:ffff:ffff,24940,Hetzner Online GmbH
		{"2a01:4f8:c17:1234::1", true, "Hetzner IPv6"},
		{"2a01:4f9:ffff:ffff:ffff:ffff:ffff:ffff", true, "Hetzner IPv6, last address"},
		// 2600:1f00::,2600:1f00:4fff:ffff:ffff:ffff:ffff:ffff,16509,"Amazon.com, Inc."
		{"2600:1f00:1::1", true, "AWS IPv6"},
		// 2400:6180::,2400:6180::ffff:ffff:ffff:ffff:ffff,14061,"DigitalOcean, LLC"
		{"2400:6180::1", true, "DigitalOcean IPv6"},
		// 2003::,2003:1ff:ffff:ffff:ffff:ffff:ffff:ffff,3320,Deutsche Telekom AG
		{"2003:1:2::1", false, "Deutsche Telekom IPv6"},
		{"127.0.0.1", false, "loopback"},
		{"10.1.2.3", false, "private"},
		{"192.168.1.1", false, "private"},
		{"::1", false, "IPv6 loopback"},
		{"fe80::1", false, "link-local"},
	} {
		if got := d.Contains(netip.MustParseAddr(c.ip)); got != c.want {
			t.Errorf("Contains(%s) = %v, want %v (%s)", c.ip, got, c.want, c.why)
		}
	}
	if d.Contains(netip.Addr{}) {
		t.Error("the zero Addr is in a hosting network")
	}
	var nilD *Datacenter
	if nilD.Contains(netip.MustParseAddr("5.9.10.10")) {
		t.Error("a nil table contains an address")
	}
	v4, v6 := d.Ranges()
	if v4 < 1000 || v6 < 100 {
		t.Errorf("only %d IPv4 and %d IPv6 ranges", v4, v6)
	}
	if src := DatacenterSource(); !strings.HasPrefix(src, "@ip-location-db/asn@") {
		t.Errorf("DatacenterSource() = %q", src)
	}
}

// TestDatacenterSearch checks the binary search at every range's edges
// (ranges are merged, so the address before a range and the one after it are
// outside) and against a linear scan of the table at random addresses.
func TestDatacenterSearch(t *testing.T) {
	d, err := OpenDatacenter()
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < len(d.v4); i += 2 {
		f, l := d.v4[i], d.v4[i+1]
		if !inRanges(d.v4, f) || !inRanges(d.v4, l) || f > 0 && inRanges(d.v4, f-1) || l < ^uint32(0) && inRanges(d.v4, l+1) {
			t.Fatalf("IPv4 range %d-%d: edges answered wrongly", f, l)
		}
	}
	for i := 0; i < len(d.v6); i += 2 {
		f, l := d.v6[i], d.v6[i+1]
		if !inRanges(d.v6, f) || !inRanges(d.v6, l) || f > 0 && inRanges(d.v6, f-1) || l < ^uint64(0) && inRanges(d.v6, l+1) {
			t.Fatalf("IPv6 range %x-%x: edges answered wrongly", f, l)
		}
	}
	linear := func(x uint32) bool {
		for i := 0; i < len(d.v4); i += 2 {
			if d.v4[i] <= x && x <= d.v4[i+1] {
				return true
			}
		}
		return false
	}
	r := rand.New(rand.NewPCG(1, 2))
	in := 0
	const n = 4000
	for range n {
		x := r.Uint32()
		want := linear(x)
		if got := inRanges(d.v4, x); got != want {
			t.Fatalf("IPv4 %d: search %v, scan %v", x, got, want)
		}
		if want {
			in++
		}
	}
	if in == 0 || in == n {
		t.Errorf("%d of %d random IPv4 addresses inside: the probes prove nothing", in, n)
	}
}

func TestDatacenterContainsAllocs(t *testing.T) {
	d, err := OpenDatacenter()
	if err != nil {
		t.Fatal(err)
	}
	a, b := netip.MustParseAddr("5.9.10.10"), netip.MustParseAddr("2a01:4f8:c17:1234::1")
	if n := testing.AllocsPerRun(100, func() { d.Contains(a); d.Contains(b) }); n != 0 {
		t.Errorf("Contains allocates %v times", n)
	}
}

func BenchmarkDatacenterContains(b *testing.B) {
	d, err := OpenDatacenter()
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(3, 4))
	ips := make([]netip.Addr, 1024)
	for i := range ips {
		if i%4 == 3 {
			var a [16]byte
			a[0] = 0x20 | byte(r.Uint32()&0x1f)
			for j := 1; j < 16; j++ {
				a[j] = byte(r.Uint32())
			}
			ips[i] = netip.AddrFrom16(a)
		} else {
			ips[i] = netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		if d.Contains(ips[i&1023]) {
			n++
		}
	}
	_ = n
}

func BenchmarkOpenDatacenter(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := OpenDatacenter(); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDatacenterSourcePinned: the embedded table comes from the release
// tools/asn/package-lock.json pins (rebuild it after changing the pin).
func TestDatacenterSourcePinned(t *testing.T) {
	b, err := os.ReadFile("../tools/asn/package-lock.json")
	if err != nil {
		t.Fatal(err)
	}
	var lock struct {
		Packages map[string]struct{ Version, Integrity string }
	}
	if err := json.Unmarshal(b, &lock); err != nil {
		t.Fatal(err)
	}
	p := lock.Packages["node_modules/@ip-location-db/asn"]
	if p.Version == "" || p.Integrity == "" {
		t.Fatalf("package-lock.json pins no @ip-location-db/asn with integrity: %s", b)
	}
	if want := "@ip-location-db/asn@" + p.Version; DatacenterSource() != want {
		t.Errorf("embedded table from %s, package-lock.json pins %s: run tools/asn/build.mjs", DatacenterSource(), want)
	}
}
