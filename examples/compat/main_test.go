package main

import (
	"strings"
	"testing"
)

// -router takes the four names and refuses any other, naming them;
// gracefork's flags come with it.
func TestRouterFlag(t *testing.T) {
	t.Setenv("WEB_CONCURRENCY", "")
	for _, name := range []string{"chi", "gorilla", "gin", "echo"} {
		var out strings.Builder
		c, err := parseFlags([]string{"-router", name, "-w", "3"}, &out)
		if err != nil || c.router != name || c.opts.Workers != 3 {
			t.Errorf("-router %s -w 3: router %q, %d workers, %v %s", name, c.router, c.opts.Workers, err, out.String())
		}
	}
	var out strings.Builder
	if _, err := parseFlags([]string{"-router", "iris"}, &out); err == nil ||
		out.String() != "compat: -router \"iris\": want one of chi, echo, gin, gorilla\n" {
		t.Errorf("-router iris: %v, said %q", err, out.String())
	}
}
