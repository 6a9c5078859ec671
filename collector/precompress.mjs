// Shared by collector/snippet/build.mjs and collector/recorder/build.mjs:
// writes a built script with its gzip (-9) and brotli (quality 11) forms
// next to the build script, or with --check only compares them with the
// committed files and exits 1 when they differ. node's gzip header has
// mtime 0, so the output is reproducible.
import { readFileSync, writeFileSync } from 'node:fs';
import { gzipSync, brotliCompressSync, constants } from 'node:zlib';

export function emit(here, name, js, source) {
  const files = {
    [name]: js,
    [name + '.gz']: gzipSync(js, { level: 9 }),
    [name + '.br']: brotliCompressSync(js, {
      params: {
        [constants.BROTLI_PARAM_QUALITY]: 11,
        [constants.BROTLI_PARAM_MODE]: constants.BROTLI_MODE_TEXT,
        [constants.BROTLI_PARAM_SIZE_HINT]: js.length,
      },
    }),
  };
  if (process.argv.includes('--check')) {
    let stale = false;
    for (const [file, data] of Object.entries(files)) {
      let old = null;
      try {
        old = readFileSync(new URL(file, here));
      } catch {}
      if (!old || !old.equals(data)) {
        console.error(`${file} is not what ${source} builds to: run node build.mjs in ${new URL('.', here).pathname}`);
        stale = true;
      }
    }
    process.exit(stale ? 1 : 0);
  }
  for (const [file, data] of Object.entries(files)) writeFileSync(new URL(file, here), data);
  console.log(`${name} ${js.length} B, gzip ${files[name + '.gz'].length} B, brotli ${files[name + '.br'].length} B`);
}
