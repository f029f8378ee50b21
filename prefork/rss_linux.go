package prefork

import (
	"bytes"
	"os"
	"strconv"
)

// rssSupported: a worker can read its resident set size here.
const rssSupported = true

// readRSS is this process's resident set size in bytes as the kernel
// counts it (/proc/self/statm, in pages), or 0 if it cannot be read.
func readRSS() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := bytes.Fields(b)
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(string(f[1]), 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}
