// Package static holds the files the browser loads — vendored htmx and Pico
// CSS plus Tether's own stylesheet and script — embedded so the binary serves them
// itself and no page depends on a CDN.
package static

import "embed"

// FS is served under /static/.
//
//go:embed vendor/*.js vendor/*.css app.css app.js
var FS embed.FS
