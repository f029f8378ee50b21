//go:build !unix

package handoff

// MarkInherited does nothing: workers inherit no descriptors here.
func MarkInherited(Spec) {}
