// Package schema holds the JSON Schema (draft 2020-12) of paddock manifests,
// for editors: a YAML language server given it, with a comment such as
//
//	# yaml-language-server: $schema=../schema/paddock.schema.json
//
// completes keys and flags mistakes while the manifest is written. The
// schema describes the same keys and values as package manifest, whose
// decoder remains the authority: tests keep the two in step.
package schema

import _ "embed"

// JSON is the content of paddock.schema.json.
//
//go:embed paddock.schema.json
var JSON []byte
