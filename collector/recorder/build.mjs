// Builds the session recording chunk: src/recorder.js with rrweb's recorder
// (@rrweb/record, pinned by package-lock.json) → r.js (bundled and minified
// by esbuild), r.js.gz (gzip -9) and r.js.br (brotli, quality 11), the
// files collector/snippet.go embeds. Run after changing src/ or the
// lockfile and commit the results; `go test ./collector` runs it with
// --check, which exits 1 when the committed files differ from a fresh build.
//
//   npm ci --ignore-scripts && node build.mjs [--check]     (in collector/recorder)
import { readFileSync, writeFileSync } from 'node:fs';
import { gzipSync, brotliCompressSync, constants } from 'node:zlib';
import { build } from 'esbuild';

const here = new URL('.', import.meta.url);
const rrweb = JSON.parse(readFileSync(new URL('node_modules/@rrweb/record/package.json', here), 'utf8'));

const out = await build({
  entryPoints: [new URL('src/recorder.js', here).pathname],
  bundle: true,
  minify: true,
  format: 'iife',
  target: 'es2017',
  legalComments: 'none',
  write: false,
  logLevel: 'warning',
  banner: { js: `/* Firstparty recorder; rrweb @rrweb/record ${rrweb.version}, MIT licence, https://github.com/rrweb-io/rrweb (see rrweb.LICENSE) */` },
});
const js = Buffer.from(out.outputFiles[0].text);
const files = {
  'r.js': js,
  // node's gzip header has mtime 0: the build is reproducible.
  'r.js.gz': gzipSync(js, { level: 9 }),
  'r.js.br': brotliCompressSync(js, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 11,
      [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
      [constants.BROTLI_PARAM_SIZE_HINT]: js.length,
    },
  }),
};
if (process.argv.includes('--check')) {
  let stale = false;
  for (const [name, data] of Object.entries(files)) {
    let old = null;
    try {
      old = readFileSync(new URL(name, here));
    } catch {}
    if (!old || !old.equals(data)) {
      console.error(`${name} is not what src/recorder.js builds to: run node build.mjs in collector/recorder`);
      stale = true;
    }
  }
  process.exit(stale ? 1 : 0);
}
for (const [name, data] of Object.entries(files)) writeFileSync(new URL(name, here), data);
console.log(`r.js ${js.length} B, gzip ${files['r.js.gz'].length} B, brotli ${files['r.js.br'].length} B`);
