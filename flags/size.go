package flags

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// byteUnits are the suffixes parseSize accepts, matched without regard
// to case: the IEC binary units (Ki, KiB, ... 1024) and the SI decimal
// ones (K, KB, ... 1000), as Kubernetes reads "800M" and "512Mi".
var byteUnits = []struct {
	names []string
	size  float64
}{
	{[]string{"", "b"}, 1},
	{[]string{"k", "kb"}, 1e3},
	{[]string{"ki", "kib"}, 1 << 10},
	{[]string{"m", "mb"}, 1e6},
	{[]string{"mi", "mib"}, 1 << 20},
	{[]string{"g", "gb"}, 1e9},
	{[]string{"gi", "gib"}, 1 << 30},
	{[]string{"t", "tb"}, 1e12},
	{[]string{"ti", "tib"}, 1 << 40},
}

// parseSize reads a size such as "512MiB", "1GiB", "800M", "1.5G" or a
// plain number of bytes. K, M, G, T are powers of 1000, Ki(B), Mi(B),
// Gi(B), Ti(B) powers of 1024; a fraction rounds down to whole bytes.
func parseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if i < 0 {
		i = len(t)
	}
	num, unit := t[:i], strings.ToLower(strings.TrimSpace(t[i:]))
	if num == "" {
		return 0, errors.New("want a number of bytes with an optional unit, such as 800M, 512MiB or 1GiB")
	}
	size := 0.0
	for _, u := range byteUnits {
		for _, name := range u.names {
			if unit == name {
				size = u.size
			}
		}
	}
	if size == 0 {
		return 0, fmt.Errorf("unknown unit %q (want B, K, Ki, KiB, M, Mi, MiB, G, Gi, GiB, T, Ti, TiB)", t[i:])
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseUint(num, 10, 64)
		if err == nil && n <= math.MaxUint64/uint64(size) {
			return n * uint64(size), nil
		}
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return 0, fmt.Errorf("%q is not a number", num)
		}
		return 0, errors.New("too large: more than 2^64-1 bytes")
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a number", num)
	}
	b := math.Floor(f * size)
	if b >= math.MaxUint64 { // float64(MaxUint64) rounds up to 2^64
		return 0, errors.New("too large: more than 2^64-1 bytes")
	}
	return uint64(b), nil
}

// formatSize prints a size as parseSize reads it back: in the largest
// binary unit that divides it, or in bytes.
func formatSize(n uint64) string {
	if n == 0 {
		return "0"
	}
	for _, u := range []struct {
		name string
		size uint64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n%u.size == 0 {
			return strconv.FormatUint(n/u.size, 10) + u.name
		}
	}
	return strconv.FormatUint(n, 10)
}
