// Builds the snippet: src/snippet.js → app.js (minified with terser),
// app.js.gz (gzip -9) and app.js.br (brotli, quality 11), the files
// collector/snippet.go embeds. Run after changing src/ and commit the
// results; `go test ./collector` runs it with --check, which exits 1 when
// the committed files differ from a fresh build.
//
//   npm ci && node build.mjs [--check]          (in collector/snippet)
import { readFileSync, writeFileSync } from 'node:fs';
import { gzipSync, brotliCompressSync, constants } from 'node:zlib';
import { minify } from 'terser';

const here = new URL('.', import.meta.url);
const pkg = JSON.parse(readFileSync(new URL('package.json', here), 'utf8'));
const src = readFileSync(new URL('src/snippet.js', here), 'utf8').replaceAll('__VERSION__', pkg.version);

const out = await minify(src, {
  ecma: 2017,
  compress: { passes: 3, unsafe_arrows: true, pure_getters: false },
  mangle: { toplevel: true },
  format: { comments: false, preamble: '/* Firstparty ' + pkg.version + ' */' },
});
const js = Buffer.from(out.code + '\n');
const files = {
  'app.js': js,
  // node's gzip header has mtime 0: the build is reproducible.
  'app.js.gz': gzipSync(js, { level: 9 }),
  'app.js.br': brotliCompressSync(js, {
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
      console.error(`${name} is not what src/snippet.js builds to: run node build.mjs in collector/snippet`);
      stale = true;
    }
  }
  process.exit(stale ? 1 : 0);
}
for (const [name, data] of Object.entries(files)) writeFileSync(new URL(name, here), data);
console.log(`app.js ${js.length} B, gzip ${files['app.js.gz'].length} B, brotli ${files['app.js.br'].length} B`);
