// Builds the snippet: src/snippet.js → app.js (minified with terser),
// app.js.gz (gzip -9) and app.js.br (brotli, quality 11), the files
// collector/snippet.go embeds. Run after changing src/ and commit the
// results; `go test ./collector` runs it with --check, which exits 1 when
// the committed files differ from a fresh build.
//
//   npm ci && node build.mjs [--check]          (in collector/snippet)
import { readFileSync } from 'node:fs';
import { emit } from '../precompress.mjs';
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
emit(here, 'app.js', js, 'src/snippet.js');
