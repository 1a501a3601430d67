// Package web holds the browser side of wsrelay: the client module
// wsrelay.js, its TypeScript declarations and the demo page, embedded in the
// binary so that the relay serves them itself (WSRELAY_DEMO=true) and works
// offline.
package web

import (
	"embed"
	"io/fs"
)

//go:embed index.html wsrelay.js wsrelay.d.ts
var files embed.FS

// FS returns the embedded files: index.html (the demo page), wsrelay.js (the
// browser client, an ES module) and wsrelay.d.ts. The file system is
// read-only and safe for concurrent use.
func FS() fs.FS { return files }
