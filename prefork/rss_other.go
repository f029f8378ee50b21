//go:build !linux

package prefork

// rssSupported: a worker can read its resident set size here.
const rssSupported = false

// readRSS reports 0: a worker reads its resident set size on Linux only.
func readRSS() uint64 { return 0 }
