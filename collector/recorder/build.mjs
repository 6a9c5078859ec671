// Builds the session recording chunk: src/recorder.js with rrweb's recorder
// (@rrweb/record, pinned by package-lock.json) → r.js (bundled and minified
// by esbuild), r.js.gz (gzip -9) and r.js.br (brotli, quality 11), the
// files collector/snippet.go embeds. Run after changing src/ or the
// lockfile and commit the results; `go test ./collector` runs it with
// --check, which exits 1 when the committed files differ from a fresh build.
//
//   npm ci --ignore-scripts && node build.mjs [--check]     (in collector/recorder)
import { readFileSync } from 'node:fs';
import { emit } from '../precompress.mjs';
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
emit(here, 'r.js', js, 'src/recorder.js');
