// Package report holds tokenwatt's CSV summary: schema version 1 of
// docs/csv.md (one row per run, the Python POC's 13 columns first, new
// columns only ever appended), its reader and writer, and the terminal
// table that shows the same row to a person.
//
// A Row is plain data: whoever measured a run (the load generator's local
// summary, or the dumper that queries Prometheus) fills it. This package
// must therefore not depend on the load generator (package loadgen), the
// backends or the exporter, so that both producers can import it.
package report
