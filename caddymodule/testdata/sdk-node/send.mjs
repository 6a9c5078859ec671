// Sends the calls sdk-wire.md recorded, with the real posthog-node client,
// to the host given on the command line, then flushes and exits.
import { PostHog } from 'posthog-node'

const host = process.argv[2]
if (!host) {
  console.error('usage: node send.mjs <host>')
  process.exit(2)
}
const client = new PostHog('phc_node', { host, flushAt: 100, flushInterval: 0 })
client.on('error', (err) => {
  console.error('posthog-node error:', err)
  process.exitCode = 1
})

client.capture({ distinctId: 'node-user', event: 'node_signed_up', properties: { plan: 'pro' } })
client.capture({ distinctId: 'node-user', event: 'node_clicked', groups: { company: 'acme' } })
client.capture({ distinctId: 'node-user', event: 'node_clicked', uuid: '0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4b01' })
client.capture({ distinctId: 'node-user', event: 'node_clicked', uuid: '0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4b01' })
client.identify({ distinctId: 'node-user', properties: { email: 'node@example.com' } })
client.alias({ distinctId: 'node-user', alias: 'node-legacy' })
client.groupIdentify({ groupType: 'company', groupKey: 'acme', properties: { size: 5 } })
await client.flush()
await client.shutdown()
console.log('sent')
