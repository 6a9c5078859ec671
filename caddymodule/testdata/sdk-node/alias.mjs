// The merge rule through the real posthog-node client: a legitimate alias
// of an anonymous id merges, an alias onto a second identified user is
// refused. Sends to the host given on the command line, then exits.
import { PostHog } from 'posthog-node'

const host = process.argv[2]
if (!host) {
  console.error('usage: node alias.mjs <host>')
  process.exit(2)
}
const client = new PostHog('phc_node', { host, flushAt: 100, flushInterval: 0 })
client.on('error', (err) => {
  console.error('posthog-node error:', err)
  process.exitCode = 1
})

// An anonymous visitor, then the same visitor signed in: the server aliases
// the anonymous id to the user.
client.capture({ distinctId: 'sdk-anon-1', event: 'viewed_pricing' })
client.identify({ distinctId: 'sdk-user-1', properties: { email: 'one@example.com' } })
client.capture({ distinctId: 'sdk-user-1', event: 'purchased' })
client.alias({ distinctId: 'sdk-user-1', alias: 'sdk-anon-1' })
await client.flush()
// A second user, identified; then an alias that would pull them into the
// first user's person.
client.identify({ distinctId: 'sdk-user-2', properties: { email: 'two@example.com' } })
client.capture({ distinctId: 'sdk-user-2', event: 'purchased' })
await client.flush()
client.alias({ distinctId: 'sdk-user-1', alias: 'sdk-user-2' })
await client.flush()
await client.shutdown()
console.log('sent')
