// Package loadgen is the load generator's engine: it sends a scenario's
// prompts through a backend on a closed-loop or open-loop schedule
// (Runner, Schedule), turns each measured request into a Record, writes
// records to records.jsonl (RecordsFile), aggregates them into the
// summary.csv row (Summary), and watches whether the client itself is
// the bottleneck (SaturationMonitor).
//
// What a run applies is described by package loadgen/scenario; the
// prompts come from package loadgen/dataset. Neither may import this
// package.
//
// This package must not depend on cmd/, loadgen/run (which wires a run
// together from it), energy, exporter or dump (ARCHITECTURE.md's table,
// enforced by TestLayering). It reaches a server only through package
// backends.
package loadgen
