package collector

import (
	_ "embed"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
)

// The hosting-network table: the address ranges of cloud, VPS and
// dedicated-server providers (AWS, Google Cloud, Azure, DigitalOcean,
// Hetzner, OVHcloud, Linode, Vultr, Oracle, Alibaba, Tencent, Scaleway,
// Contabo, Leaseweb, ...), derived by tools/asn/build.mjs from the IP-to-ASN
// dataset @ip-location-db/asn (CC BY 4.0, RouteViews, NRO and DB-IP; see
// collector/datacenter/LICENSE). collector/datacenter/asns.tsv lists every AS
// taken and why.
var (
	//go:embed datacenter/ipv4.bin
	datacenterV4 []byte
	//go:embed datacenter/ipv6.bin
	datacenterV6 []byte
	//go:embed datacenter/SOURCE
	datacenterSource string
)

// DatacenterSource names the dataset release the embedded table comes from,
// e.g. "@ip-location-db/asn@2.3.2026061719".
func DatacenterSource() string { return strings.TrimSpace(datacenterSource) }

// Datacenter answers whether an address belongs to a hosting network. It is
// read-only after OpenDatacenter and safe for concurrent use.
type Datacenter struct {
	// v4 holds IPv4 ranges as first, last pairs (inclusive), sorted and
	// disjoint: v4[2i] ≤ v4[2i+1] < v4[2i+2].
	v4 []uint32
	// v6 holds IPv6 ranges of /64 prefixes (the upper 64 bits of an
	// address) the same way.
	v6 []uint64
}

// OpenDatacenter decodes the embedded table. It fails only when the embedded
// files are damaged (not whole ranges, not sorted, overlapping), which the
// tests would catch.
func OpenDatacenter() (*Datacenter, error) {
	if len(datacenterV4)%8 != 0 || len(datacenterV6)%16 != 0 {
		return nil, fmt.Errorf("datacenter table: %d/%d bytes are not whole ranges", len(datacenterV4), len(datacenterV6))
	}
	d := &Datacenter{
		v4: make([]uint32, len(datacenterV4)/4),
		v6: make([]uint64, len(datacenterV6)/8),
	}
	for i := range d.v4 {
		d.v4[i] = binary.BigEndian.Uint32(datacenterV4[4*i:])
	}
	for i := range d.v6 {
		d.v6[i] = binary.BigEndian.Uint64(datacenterV6[8*i:])
	}
	if err := checkRanges(d.v4); err != nil {
		return nil, fmt.Errorf("datacenter table, IPv4: %w", err)
	}
	if err := checkRanges(d.v6); err != nil {
		return nil, fmt.Errorf("datacenter table, IPv6: %w", err)
	}
	if len(d.v4) == 0 || len(d.v6) == 0 {
		return nil, fmt.Errorf("datacenter table is empty")
	}
	return d, nil
}

func checkRanges[T uint32 | uint64](r []T) error {
	for i := 0; i < len(r); i += 2 {
		if r[i] > r[i+1] {
			return fmt.Errorf("range %d ends before it starts", i/2)
		}
		if i > 0 && r[i] <= r[i-1] {
			return fmt.Errorf("range %d is not after range %d", i/2, i/2-1)
		}
	}
	return nil
}

// Contains reports whether ip is in a hosting network. IPv4-mapped IPv6
// addresses count as IPv4; the zero Addr, loopback and private addresses are
// in no range. It does not allocate.
func (d *Datacenter) Contains(ip netip.Addr) bool {
	if d == nil {
		return false
	}
	ip = ip.Unmap()
	if ip.Is4() {
		a := ip.As4()
		return inRanges(d.v4, binary.BigEndian.Uint32(a[:]))
	}
	if ip.Is6() {
		a := ip.As16()
		return inRanges(d.v6, binary.BigEndian.Uint64(a[:8]))
	}
	return false
}

// Ranges returns how many IPv4 and IPv6 ranges the table holds.
func (d *Datacenter) Ranges() (v4, v6 int) { return len(d.v4) / 2, len(d.v6) / 2 }

// inRanges binary-searches r (first, last pairs) for the last range starting
// at or before x and reports whether it reaches x.
func inRanges[T uint32 | uint64](r []T, x T) bool {
	lo, hi := 0, len(r)/2 // ranges [lo, hi) are candidates
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		if r[2*mid] <= x {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	// lo is the first range starting after x.
	return lo > 0 && x <= r[2*(lo-1)+1]
}
