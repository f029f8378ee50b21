//go:build !unix

package prefork

import "os"

// dumpSignals: none where signals cannot make a process dump its stacks;
// a hung worker is killed at once.
var dumpSignals []os.Signal
