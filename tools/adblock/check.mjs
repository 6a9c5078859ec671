#!/usr/bin/env node
// check.mjs tells whether ad blockers would block given URLs.
//
// It feeds the real filter lists in testdata/adblock-lists/*.txt.gz (EasyList,
// EasyPrivacy and uBlock Origin's own lists, as uBlock Origin downloads them)
// to two engines and asks each about every request; a request counts as
// blocked if any of them blocks it. Only network filters matter here;
// cosmetic filters are ignored.
//
//  - ubo: uBlock Origin's static network filtering engine (@gorhill/ubo-core),
//    the code the extension runs. The lists carry `!#if` sections that uBlock
//    Origin keeps or drops depending on the browser it runs in; the package
//    does not apply them, so this script does, once per environment (ENVS).
//  - ghostery: Ghostery's engine (@ghostery/adblocker), over the lists as
//    uBlock Origin on Chromium sees them. It is a second opinion with
//    AdBlock Plus-style matching: a pattern like `.com/hit` matches
//    `example.com/hits`, where uBlock Origin wants whole tokens.
//
// Usage:
//   node check.mjs [options] URL...
//   node check.mjs [options] < requests.json
//   node check.mjs --lists
//
// Options:
//   --type T[,T...]   request type(s) for the URLs on argv: script, xmlhttprequest,
//                     ping, sub_frame, image, stylesheet, ... or "auto" (default:
//                     script when the path ends in .js, else xmlhttprequest)
//   --page URL        the page making the requests (default https://example.com/)
//   --engine E[,E...] ubo, ghostery (default: both)
//   --env E[,E...]    uBlock Origin environments to evaluate (default: all of ENVS)
//   --lists-dir DIR   where the *.txt.gz lists are (default: ../../testdata/adblock-lists)
//   --lists           print what was loaded from each list and exit
//
// Stdin (when no URL is given on argv) is JSON: an array of requests, or
// {"page": URL, "requests": [...]}; a request is a URL string or
// {"url": URL, "type": T, "page": URL}.
//
// Output, exit code 0 whatever is blocked:
//   {"results":[{"url","type","blocked":bool,"filter":"the matching rule or null", ...}]}
// A blocked result also names the engines that block it ("by", e.g.
// "ubo/chromium", "ghostery") and the list holding the filter ("list"); an
// unblocked result that a block filter would hit but an exception filter
// saves carries that exception ("exception").
// Bad input exits 2 with a message on stderr.

import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';

import { FiltersEngine, Request } from '@ghostery/adblocker';
import { StaticNetFilteringEngine } from '@gorhill/ubo-core';
import snfeInternal from '@gorhill/ubo-core/js/static-net-filtering.js';
import { utils as parserUtils } from '@gorhill/ubo-core/js/static-filtering-parser.js';

const here = dirname(fileURLToPath(import.meta.url));

// The `!#if` tokens each browser build of uBlock Origin sets (its
// vAPI.webextFlavor.env). "ubol" approximates uBlock Origin Lite, the MV3
// variant Chrome users now get: it compiles the same lists, with its own
// token set, into declarativeNetRequest rules.
const ENVS = {
    chromium: ['chromium', 'ublock', 'user_stylesheet'],
    firefox: ['firefox', 'ublock', 'html_filtering', 'user_stylesheet', 'ipaddress'],
    'firefox-mobile': ['firefox', 'mobile', 'ublock', 'html_filtering', 'user_stylesheet', 'ipaddress'],
    ubol: ['chromium', 'mv3', 'ubol', 'user_stylesheet'],
};

// Request types the engine knows (its FilteringContext type names).
const TYPES = new Set([
    'beacon', 'csp_report', 'font', 'image', 'imageset', 'main_frame', 'media',
    'object', 'object_subrequest', 'other', 'ping', 'script', 'stylesheet',
    'sub_frame', 'websocket', 'xmlhttprequest',
]);

class UsageError extends Error {}

function parseArgs(argv) {
    const opts = {
        types: ['auto'],
        page: 'https://example.com/',
        engines: ['ubo', 'ghostery'],
        envs: Object.keys(ENVS),
        listsDir: resolve(here, '../../testdata/adblock-lists'),
        listsOnly: false,
        urls: [],
    };
    for (let i = 0; i < argv.length; i++) {
        const arg = argv[i];
        const value = () => {
            if (i + 1 >= argv.length) throw new UsageError(`${arg} needs a value`);
            return argv[++i];
        };
        switch (arg) {
        case '--type': opts.types = value().split(',').map(s => s.trim()).filter(Boolean); break;
        case '--page': opts.page = value(); break;
        case '--engine': opts.engines = value().split(',').map(s => s.trim()).filter(Boolean); break;
        case '--env': opts.envs = value().split(',').map(s => s.trim()).filter(Boolean); break;
        case '--lists-dir': opts.listsDir = resolve(value()); break;
        case '--lists': opts.listsOnly = true; break;
        case '-h': case '--help':
            process.stdout.write(readFileSync(fileURLToPath(import.meta.url), 'utf8')
                .split('\n').filter(l => l.startsWith('//')).map(l => l.slice(3)).join('\n') + '\n');
            process.exit(0);
            break;
        default:
            if (arg.startsWith('--')) throw new UsageError(`unknown option ${arg}`);
            opts.urls.push(arg);
        }
    }
    for (const e of opts.engines) {
        if (e !== 'ubo' && e !== 'ghostery') throw new UsageError(`unknown engine ${JSON.stringify(e)}; known: ubo, ghostery`);
    }
    for (const env of opts.envs) {
        if (!(env in ENVS)) throw new UsageError(`unknown env ${JSON.stringify(env)}; known: ${Object.keys(ENVS).join(', ')}`);
    }
    for (const t of opts.types) {
        if (t !== 'auto' && !TYPES.has(t)) throw new UsageError(`unknown type ${JSON.stringify(t)}`);
    }
    return opts;
}

function autoType(url) {
    return new URL(url).pathname.endsWith('.js') ? 'script' : 'xmlhttprequest';
}

function checkURL(s, what) {
    let u;
    try {
        u = new URL(s);
    } catch {
        throw new UsageError(`${what} ${JSON.stringify(s)} is not an absolute URL`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') {
        throw new UsageError(`${what} ${JSON.stringify(s)} is not http(s)`);
    }
    return s;
}

// requests turns argv or stdin into [{url, type, page}], in input order.
function requests(opts) {
    let page = opts.page;
    let items = opts.urls;
    let types = opts.types;
    if (items.length === 0) {
        let input;
        try {
            input = JSON.parse(readFileSync(0, 'utf8'));
        } catch (err) {
            throw new UsageError(`stdin: no URL on argv and no JSON on stdin (${err.message})`);
        }
        if (!Array.isArray(input)) {
            if (input === null || typeof input !== 'object' || !Array.isArray(input.requests)) {
                throw new UsageError('stdin: want an array of requests or {"page", "requests": [...]}');
            }
            if (input.page !== undefined) page = input.page;
            items = input.requests;
        } else {
            items = input;
        }
    }
    checkURL(page, 'page');
    const out = [];
    for (const item of items) {
        const req = typeof item === 'string' ? { url: item } : item;
        if (req === null || typeof req !== 'object' || typeof req.url !== 'string') {
            throw new UsageError(`request ${JSON.stringify(item)} has no "url"`);
        }
        checkURL(req.url, 'url');
        const reqPage = req.page === undefined ? page : checkURL(req.page, 'page');
        for (let type of req.type === undefined ? types : [req.type]) {
            if (type === 'auto') type = autoType(req.url);
            if (!TYPES.has(type)) throw new UsageError(`unknown type ${JSON.stringify(type)} for ${req.url}`);
            out.push({ url: req.url, type, page: reqPage });
        }
    }
    return out;
}

function loadLists(dir) {
    let files;
    try {
        files = readdirSync(dir).filter(f => f.endsWith('.txt.gz')).sort();
    } catch (err) {
        throw new UsageError(`reading lists: ${err.message}`);
    }
    if (files.length === 0) throw new UsageError(`no *.txt.gz list in ${dir}`);
    return files.map(file => {
        const raw = gunzipSync(readFileSync(join(dir, file))).toString('utf8');
        return { name: file.replace(/\.txt\.gz$/, ''), file, raw };
    });
}

// listOf names the lists holding `filter`. An engine reports a filter as it
// compiled it (uBO turns `domain=` into `from=`, options get reordered), so
// when no line is the same text, lines with the same pattern before the
// options do.
function listOf(lists, filter) {
    let names = lists.filter(l => l.lines.has(filter)).map(l => l.name);
    const cut = filter.lastIndexOf('$');
    if (names.length === 0 && cut > 0) {
        const pattern = filter.slice(0, cut);
        names = lists.filter(l => l.lines.has(pattern) || l.patterns.has(pattern)).map(l => l.name);
    }
    return names.length === 0 ? null : names.join(',');
}

// Each judge loads the lists into one engine and then rules on requests:
// {verdict: "block" | "allow" | null, filter}. uBO's engine is a singleton,
// so judges are loaded and used one after the other.

function uboJudge(engine, env) {
    return {
        name: `ubo/${env}`,
        async load(lists) {
            await engine.useLists(lists.map(l => ({ name: l.name, raw: prune(l.raw, env) })));
        },
        filterCount: () => snfeInternal.getFilterCount(),
        match(r) {
            const v = engine.matchRequest({ originURL: r.page, url: r.url, type: r.type });
            if (v === 0) return { verdict: null };
            return { verdict: v === 1 ? 'block' : 'allow', filter: engine.toLogData().raw };
        },
    };
}

function ghosteryJudge() {
    let engine;
    return {
        name: 'ghostery',
        async load(lists) {
            engine = FiltersEngine.parse(lists.map(l => prune(l.raw, 'chromium')).join('\n'), {
                loadCosmeticFilters: false,
                enableOptimizations: false, // report the filter as written, not merged ones
                debug: true,
            });
        },
        filterCount: () => engine.getFilters().networkFilters.length,
        match(r) {
            const m = engine.match(Request.fromRawDetails({ url: r.url, type: r.type, sourceUrl: r.page }));
            if (m.match) return { verdict: 'block', filter: m.filter.toString() };
            if (m.exception) return { verdict: 'allow', filter: m.exception.toString() };
            return { verdict: null };
        },
    };
}

function prune(raw, env) {
    return parserUtils.preparser.prune(raw, ENVS[env]);
}

async function main() {
    const opts = parseArgs(process.argv.slice(2));
    const lists = loadLists(opts.listsDir);
    const reqs = opts.listsOnly ? [] : requests(opts);

    const judges = [];
    let ubo = null;
    if (opts.engines.includes('ubo')) {
        ubo = await StaticNetFilteringEngine.create();
        for (const env of opts.envs) judges.push(uboJudge(ubo, env));
    }
    if (opts.engines.includes('ghostery')) judges.push(ghosteryJudge());

    if (opts.listsOnly) {
        // Load one list at a time to count what each engine accepts from it.
        const summary = [];
        for (const l of lists) {
            const counts = {};
            for (const j of judges) {
                await j.load([l]);
                counts[j.name] = j.filterCount();
            }
            summary.push({
                name: l.name,
                file: l.file,
                lines: l.raw.trimEnd().split('\n').length,
                title: (l.raw.match(/^! Title: *(.*)$/m) || [])[1] || null,
                last_modified: (l.raw.match(/^! Last modified: *(.*)$/m) || [])[1] || null,
                network_filters: counts,
            });
        }
        if (ubo) await StaticNetFilteringEngine.release();
        process.stdout.write(JSON.stringify({ envs: ENVS, lists: summary }, null, 2) + '\n');
        return;
    }

    const results = reqs.map(r => ({ url: r.url, type: r.type, blocked: false, filter: null }));
    for (const j of judges) {
        await j.load(lists);
        reqs.forEach((r, i) => {
            const { verdict, filter } = j.match(r);
            const res = results[i];
            if (verdict === 'block') {
                if (!res.blocked) {
                    res.blocked = true;
                    res.filter = filter;
                    res.by = [];
                }
                res.by.push(j.name);
            } else if (verdict === 'allow' && res.exception === undefined) {
                res.exception = filter;
            }
        });
    }
    if (ubo) await StaticNetFilteringEngine.release();

    for (const l of lists) {
        l.lines = new Set(l.raw.split(/\r?\n/));
        l.patterns = new Set([...l.lines].filter(line => line.includes('$')).map(line => line.slice(0, line.lastIndexOf('$'))));
    }
    for (const res of results) {
        if (res.blocked) {
            res.list = listOf(lists, res.filter);
            delete res.exception;
        }
    }
    // One result a line: easy to read and to grep, and still one JSON value.
    const lines = results.map(r => JSON.stringify(r) + ',\n').join('').slice(0, -2);
    process.stdout.write(results.length === 0 ? '{"results":[]}\n' : `{"results":[\n${lines}\n]}\n`);
}

main().catch(err => {
    process.stderr.write(`check.mjs: ${err instanceof UsageError ? err.message : err.stack}\n`);
    process.exit(2);
});
