//go:build !unix

package prefork

import "os"

// pollable returns f: without unix pipes there is no upgrade to read from.
func pollable(f *os.File) *os.File { return f }
