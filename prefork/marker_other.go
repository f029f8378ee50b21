//go:build !unix

package prefork

func keepInherited(spec) {}
