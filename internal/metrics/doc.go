// Package metrics merges the Prometheus metrics of a gracefork pool's
// workers into one view, labelled by worker slot, for the master to serve.
//
// It needs no process: the master gathers each worker's registry over the
// control channel, hands the decoded snapshots to a [Merger], and serves
// the Merger (a [prometheus.Gatherer]) through [Handler].
//
// Counts survive planned restarts. A worker that leaves gracefully sends a
// final snapshot; [Merger.Retire] folds its counters, histograms and
// summaries' count and sum into its slot's base, which the slot reports
// from then on, added to whatever its live workers report. A crashed
// worker's counts are lost ([Merger.Drop]): the slot's series go down,
// which Prometheus reads as a counter reset, as for any crashed process.
// [Merger.Export] and [Merger.Import] carry the bases from an old master
// to a new one across a binary upgrade.
//
// Snapshots travel as [Encode] writes them: a format byte, then the metric
// families as length-delimited protobuf messages, at most [MaxSnapshot]
// bytes in all. [Decode] checks every field the merge relies on, so a
// buggy or hostile worker cannot make the master panic or serve a broken
// exposition.
package metrics
