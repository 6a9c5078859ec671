// Evaluates feature flags with the real posthog-node client against the
// host on the command line, for the distinct ids read from stdin (JSON
// array), twice: remotely (/flags/) and locally with the secret key (the
// definitions from /flags/definitions). Prints one JSON object.
import { PostHog } from 'posthog-node'

const [host, secretKey, ...keys] = process.argv.slice(2)
if (!host || !secretKey || keys.length === 0) {
  console.error('usage: node flags.mjs <host> <phs_ key> <flag key>... < ids.json')
  process.exit(2)
}
let input = ''
for await (const chunk of process.stdin) input += chunk
const { ids, override } = JSON.parse(input)

const remote = new PostHog('phc_node', { host, flushAt: 1000, flushInterval: 0 })
const local = new PostHog('phc_node', { host, secretKey, flushAt: 1000, flushInterval: 0 })
for (const c of [remote, local]) {
  c.on('error', (err) => {
    console.error('posthog-node error:', err)
    process.exitCode = 1
  })
}

const out = { remote: {}, local: {}, localReady: false, override: {} }
out.localReady = await local.waitForLocalEvaluationReady(10000)
for (const id of ids) {
  const r = {}
  const l = {}
  for (const key of keys) {
    r[key] = await remote.getFeatureFlag(key, id)
    r[key + ':payload'] = await remote.getFeatureFlagPayload(key, id)
    l[key] = await local.getFeatureFlag(key, id, { onlyEvaluateLocally: true })
    l[key + ':payload'] = await local.getFeatureFlagPayload(key, id, undefined, { onlyEvaluateLocally: true })
  }
  out.remote[id] = r
  out.local[id] = l
}
// Person properties given with the call decide property conditions.
for (const [key, props] of Object.entries(override || {})) {
  out.override[key] = {
    remote: await remote.getFeatureFlag(key, ids[0], { personProperties: props }),
    local: await local.getFeatureFlag(key, ids[0], { personProperties: props, onlyEvaluateLocally: true }),
    remoteWithout: await remote.getFeatureFlag(key, ids[0]),
  }
}
await remote.shutdown()
await local.shutdown()
console.log(JSON.stringify(out))
