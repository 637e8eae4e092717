// Package scenario describes the load a run applies: the Scenario type,
// its validation, the built-in scenarios embedded from configs/scenarios,
// strict decoding of a user's YAML scenario file (Load, Decode), and the
// Python POC's (ai_energy_benchmarks) config files, read by LoadPOCConfig
// and turned into a Scenario by POCConfig.ToScenario.
//
// This package must not depend on the load generator's engine (package
// loadgen), on cmd/, energy, exporter or dump (ARCHITECTURE.md's table,
// enforced by TestLayering).
package scenario
