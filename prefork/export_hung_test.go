package prefork

// DumpSignals are the signals a hung worker gets first, in order; none
// where it is killed at once.
var DumpSignals = dumpSignals
