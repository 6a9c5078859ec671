// Derives the hosting-network table that collector/datacenter.go embeds from
// the IP-to-ASN dataset pinned in package-lock.json (@ip-location-db/asn,
// CC BY 4.0: RouteViews, NRO, DB-IP). See README.md.
//
//   npm ci && node build.mjs            (in tools/asn)
//
// It reads the package's asn-ipv4-num.csv and asn-ipv6-num.csv (rows:
// first,last,asn,"AS organisation"), keeps the rows whose AS belongs to one of
// the HOSTING organisations below, merges touching and overlapping ranges, and
// writes to collector/datacenter/:
//
//   ipv4.bin  sorted, disjoint inclusive ranges, each first,last as two
//             big-endian uint32 (8 bytes a range)
//   ipv6.bin  the same for the upper 64 bits of IPv6 addresses (a range is
//             widened to whole /64s; hosting allocations are never smaller),
//             two big-endian uint64 (16 bytes a range)
//   asns.tsv  every AS taken, with its organisation and the rule that took
//             it, for review (not embedded)
//   SOURCE    the package and version the data comes from (embedded)
//   LICENSE   the dataset's licence and attribution
import { readFileSync, writeFileSync, copyFileSync, mkdirSync } from 'node:fs';

const here = new URL('.', import.meta.url);
const pkgDir = new URL('node_modules/@ip-location-db/asn/', here);
const out = new URL('../../collector/datacenter/', here);

// HOSTING is the reviewed list of cloud, VPS and dedicated-server providers:
// networks whose addresses are servers, not people. Each rule matches the AS
// organisation name from its start (case-insensitive); `asns` adds ASes whose
// name says nothing of the kind (Linode's AS is named Akamai), `not` takes
// out ASes a name matches that are not hosting.
//
// Deliberately left out: CDNs and relays whose addresses carry real visitors
// (Cloudflare: WARP and iCloud Private Relay; Akamai's and Fastly's edge
// networks: iCloud Private Relay egress; Google Fiber: a home ISP),
// interconnection and colocation carriers (Equinix), and networks that are
// mostly VPN exits (M247, Datacamp), where the visitors are people.
const HOSTING = [
  { org: 'Amazon (AWS)', re: /^Amazon(\.com|\s+(Technologies|Data Services|Web Services|Corporate))/i },
  { org: 'Google (Cloud)', re: /^Google(,)?\s+(LLC|Cloud|Ireland|Asia Pacific|Switzerland)/i },
  { org: 'Microsoft (Azure)', re: /^Microsoft\s+(Corporation|Limited|Deutschland|Azure)/i },
  { org: 'DigitalOcean', re: /^Digital\s?Ocean/i },
  { org: 'Hetzner', re: /^Hetzner/i },
  { org: 'OVHcloud', re: /^OVH\s+(SAS|Hosting|US|Singapore|Australia|Ltd|GmbH)/i },
  { org: 'Linode (Akamai Cloud)', re: /^Linode/i, asns: [63949] },
  { org: 'Vultr (Choopa)', re: /^(Vultr\b|Choopa|The Constant Company)/i },
  { org: 'Oracle Cloud', re: /^Oracle\s+(Corporation|Svenska|Cloud)/i },
  { org: 'Alibaba Cloud', re: /^(Alibaba (\(US\)|Cloud)|Hangzhou Alibaba|Aliyun)/i },
  { org: 'Tencent Cloud', re: /^(Shenzhen Tencent|Tencent Cloud|Tencent AS num)/i },
  { org: 'Huawei Cloud', re: /^Huawei (Cloud|Clouds)/i },
  { org: 'Scaleway', re: /^(Scaleway|Online S\.A\.S)/i },
  { org: 'Contabo', re: /^Contabo/i },
  { org: 'Leaseweb', re: /^Lease\s?web/i },
  { org: 'IBM Cloud (SoftLayer)', re: /^(IBM Cloud|SoftLayer)/i },
  { org: 'Rackspace', re: /^Rackspace/i },
  { org: 'Hostinger', re: /^Hostinger/i },
  { org: 'IONOS', re: /^IONOS SE/i },
  { org: 'netcup', re: /^netcup/i },
  { org: 'UpCloud', re: /^UpCloud/i },
  { org: 'Kamatera', re: /^Kamatera/i },
  { org: 'Hivelocity', re: /^Hivelocity/i },
  { org: 'Servers.com', re: /^Servers\.com/i },
  { org: 'Liquid Web', re: /^Liquid Web/i },
  { org: 'Interserver', re: /^Interserver/i },
  { org: 'Zenlayer', re: /^Zenlayer/i },
  { org: 'G-Core Labs', re: /^G-Core Labs/i },
  { org: 'Fly.io', re: /^Fly\.io/i },
  { org: 'Yandex Cloud', re: /^Yandex\.Cloud/i },
  { org: 'Naver Cloud', re: /^NAVER (Cloud|Business Platform)/i },
  { org: 'Kingsoft Cloud', re: /^Kingsoft Cloud/i },
  { org: 'Selectel', re: /^Selectel/i },
  { org: 'Timeweb', re: /^Timeweb/i },
  { org: 'Aruba', re: /^Aruba S\.p\.A/i },
  { org: 'WorldStream', re: /^WorldStream/i },
  { org: 'Psychz', re: /^Psychz/i },
  { org: 'QuadraNet', re: /^QuadraNet/i },
  { org: 'Equinix Metal (Packet)', re: /^Packet Host/i },
  { org: 'FranTech (BuyVM)', re: /^FranTech/i },
];

// rule returns the HOSTING rule that takes the AS, or undefined.
const ruleCache = new Map();
function rule(asn, name) {
  const key = asn + '\t' + name;
  if (ruleCache.has(key)) return ruleCache.get(key);
  const r = HOSTING.find((h) => (h.re.test(name) || (h.asns || []).includes(asn)) && !(h.not || []).includes(asn));
  ruleCache.set(key, r);
  return r;
}

// rows parses a -num CSV: first,last,asn,name (name maybe quoted with "").
function* rows(file) {
  const text = readFileSync(new URL(file, pkgDir), 'utf8');
  let n = 0;
  for (const line of text.split('\n')) {
    if (!line) continue;
    const a = line.indexOf(','),
      b = line.indexOf(',', a + 1),
      c = line.indexOf(',', b + 1);
    if (a < 0 || b < 0 || c < 0) throw new Error(`${file}: bad row ${JSON.stringify(line)}`);
    let name = line.slice(c + 1);
    if (name.startsWith('"')) name = name.slice(1, -1).replaceAll('""', '"');
    n++;
    yield { first: BigInt(line.slice(0, a)), last: BigInt(line.slice(a + 1, b)), asn: Number(line.slice(b + 1, c)), name };
  }
  if (n < 1000) throw new Error(`${file}: only ${n} rows`);
}

const taken = new Map(); // asn\tname -> {org, v4, v6}

// collect returns the merged ranges of the hosting ASes in file, with the
// addresses shifted right by shift bits (IPv6: keep the /64 prefix).
function collect(file, family, shift) {
  const rs = [];
  for (const r of rows(file)) {
    const h = rule(r.asn, r.name);
    if (!h) continue;
    const key = r.asn + '\t' + r.name;
    const t = taken.get(key) || { org: h.org, v4: 0n, v6: 0n };
    t[family] += r.last - r.first + 1n;
    taken.set(key, t);
    rs.push([r.first >> shift, r.last >> shift]);
  }
  rs.sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const merged = [];
  for (const [f, l] of rs) {
    const m = merged[merged.length - 1];
    if (m && f <= m[1] + 1n) {
      if (l > m[1]) m[1] = l;
    } else merged.push([f, l]);
  }
  return merged;
}

function pack(ranges, bytes) {
  const buf = Buffer.alloc(ranges.length * 2 * bytes);
  ranges.forEach(([f, l], i) => {
    if (bytes == 4) {
      buf.writeUInt32BE(Number(f), i * 8);
      buf.writeUInt32BE(Number(l), i * 8 + 4);
    } else {
      buf.writeBigUInt64BE(f, i * 16);
      buf.writeBigUInt64BE(l, i * 16 + 8);
    }
  });
  return buf;
}

const v4 = collect('asn-ipv4-num.csv', 'v4', 0n);
const v6 = collect('asn-ipv6-num.csv', 'v6', 64n);
const pkg = JSON.parse(readFileSync(new URL('package.json', pkgDir), 'utf8'));

mkdirSync(out, { recursive: true });
writeFileSync(new URL('ipv4.bin', out), pack(v4, 4));
writeFileSync(new URL('ipv6.bin', out), pack(v6, 8));
writeFileSync(new URL('SOURCE', out), `${pkg.name}@${pkg.version}\n`);

const lines = [...taken]
  .sort((a, b) => (a[1].org < b[1].org ? -1 : a[1].org > b[1].org ? 1 : Number(a[0].split('\t')[0]) - Number(b[0].split('\t')[0])))
  .map(([k, t]) => `${k}\t${t.org}\t${t.v4}\t${t.v6 >> 64n}`);
writeFileSync(
  new URL('asns.tsv', out),
  `# ASes taken as hosting networks from ${pkg.name}@${pkg.version} by tools/asn/build.mjs\n# asn\tAS organisation\trule\tIPv4 addresses\tIPv6 /64s\n` +
    lines.join('\n') +
    '\n',
);

// The licence: the package's own statements, with the attribution it asks for.
const lic = ['ROUTEVIEWS-LICENSE', 'NRO_LICENSE', 'DBIP-LICENSE', 'MODIFICATIONS']
  .map((f) => `--- ${f} (from ${pkg.name}@${pkg.version}) ---\n${readFileSync(new URL(f, pkgDir), 'utf8').trim()}\n`)
  .join('\n');
writeFileSync(
  new URL('LICENSE', out),
  `The files ipv4.bin and ipv6.bin in this directory are derived (selected by AS
organisation, ranges merged) from ${pkg.name}@${pkg.version}, whose licence
is "${pkg.license}": Creative Commons Attribution 4.0 International
(https://creativecommons.org/licenses/by/4.0/).

Attribution: IP-to-ASN data by RouteViews (https://www.routeviews.org/), the
NRO (https://www.nro.net/) and DB-IP (https://db-ip.com), compiled by the
ip-location-db project (https://github.com/sapics/ip-location-db).
Changes: only the ranges of the hosting and cloud organisations listed in
tools/asn/build.mjs are kept, merged, and stored in a binary form.

${lic}`,
);

console.log(
  `${pkg.name}@${pkg.version}: ${taken.size} ASes; IPv4 ${v4.length} ranges (${v4.length * 8} bytes), IPv6 ${v6.length} ranges (${v6.length * 16} bytes)`,
);
