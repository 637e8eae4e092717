// Package configs holds the YAML files that ship inside the tokenwatt
// binaries: the built-in load scenarios. Keeping them as files rather
// than Go literals lets users copy one, edit it and pass its path to
// --scenario with exactly the keys the built-ins use.
//
// This package holds data only; it must not import any tokenwatt package
// (package loadgen/scenario decodes these files and imports this one).
package configs

import "embed"

// Scenarios holds the built-in scenarios, one file per scenario named
// scenarios/<name>.yaml, with the keys of scenario.Scenario (package
// loadgen/scenario).
//
//go:embed scenarios/*.yaml
var Scenarios embed.FS
