package flags

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{
		"0": 0, "1048576": 1 << 20, "512MiB": 512 << 20, "512mib": 512 << 20, "512Mi": 512 << 20,
		"1GiB": 1 << 30, "800M": 800e6, "800MB": 800e6, "1.5GiB": 3 << 29, "2k": 2000, "2KiB": 2048,
		" 64 MiB ": 64 << 20, "10B": 10, "1TiB": 1 << 40, "18446744073709551615": math.MaxUint64,
		"0.5B": 0,
	} {
		got, err := parseSize(in)
		if err != nil || got != want {
			t.Errorf("parseSize(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for in, wantErr := range map[string]string{
		"":                                "want a number",
		"MiB":                             "want a number",
		"-1":                              "want a number",
		"12XB":                            `unknown unit "XB"`,
		"1e9":                             `unknown unit "e9"`,
		"1.2.3M":                          `"1.2.3" is not a number`,
		"18446744073709551616":            "too large",
		"20000000TiB":                     "too large",
		"1e300":                           `unknown unit`,
		"99999999999999999999999999.5TiB": "too large",
	} {
		if _, err := parseSize(in); err == nil || !strings.Contains(err.Error(), wantErr) {
			t.Errorf("parseSize(%q) error %v, want one containing %q", in, err, wantErr)
		}
	}
}

// FuzzParseSize: no input panics, a plain number is that many bytes, and
// a size that parses prints back (formatSize) to the same size.
func FuzzParseSize(f *testing.F) {
	for _, s := range []string{"512MiB", "1GiB", "800M", "1048576", "1.5G", "0", "", "-1", "12XB", "18446744073709551615", "16EiB", "0.0000001TiB"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseSize(s)
		if err != nil {
			return
		}
		if u, perr := strconv.ParseUint(s, 10, 64); perr == nil && u != n {
			t.Fatalf("parseSize(%q) = %d, want %d", s, n, u)
		}
		back, err := parseSize(formatSize(n))
		if err != nil || back != n {
			t.Fatalf("parseSize(%q) = %d, printed %q, read back %d, %v", s, n, formatSize(n), back, err)
		}
	})
}
