// Package firstparty is Firstparty, privacy-first product analytics inside
// Caddy. Importing it registers the `analytics` handler, which is what
// `xcaddy build --with github.com/firstpartyhq/firstparty` does; the code
// lives in caddymodule (the module), collector (ingestion), store (storage
// and queries) and dashboard (the UI and its API).
package firstparty

import (
	// The Caddy module.
	_ "github.com/firstpartyhq/firstparty/caddymodule"
)
