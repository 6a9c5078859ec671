#!/usr/bin/env sh
# Vendors the dashboard's third-party browser code: installs exactly what
# package-lock.json pins and copies the built files next to this script,
# where dashboard/ui.go embeds them. Run it after changing package.json;
# commit the copied files and the lockfile.
set -eu
cd "$(dirname "$0")"
npm ci --no-audit --no-fund --ignore-scripts
cp node_modules/uplot/dist/uPlot.iife.min.js uPlot.iife.min.js
cp node_modules/uplot/dist/uPlot.min.css uPlot.min.css
cp node_modules/uplot/LICENSE uPlot.LICENSE
# rrweb's player (with its replayer) for session replay: the self-contained
# UMD build (window.rrwebPlayer) and its stylesheet. The package carries no
# licence file; rrweb-player.LICENSE is rrweb's MIT licence, and the build
# stops if the package's declared licence ever changes.
test "$(node -p 'require("./node_modules/rrweb-player/package.json").license')" = MIT
cp node_modules/rrweb-player/umd/rrweb-player.min.js rrweb-player.min.js
cp node_modules/rrweb-player/dist/style.min.css rrweb-player.min.css
echo "vendored uplot $(node -p 'require("./node_modules/uplot/package.json").version'), rrweb-player $(node -p 'require("./node_modules/rrweb-player/package.json").version')"
