package prefork

// runningExecutable names the file this process runs, even after it was
// deleted or replaced on disk.
const runningExecutable = "/proc/self/exe"
