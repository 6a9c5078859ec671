// Command caddy is Caddy with the Firstparty analytics module built in, so
// `go run ./cmd/caddy run --config Caddyfile.example` works without xcaddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	// The standard Caddy modules.
	_ "github.com/caddyserver/caddy/v2/modules/standard"

	// Firstparty's analytics handler.
	_ "github.com/firstpartyhq/firstparty/caddymodule"
)

func main() {
	caddycmd.Main()
}
