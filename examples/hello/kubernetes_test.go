package main

import (
	"bufio"
	"cmp"
	"encoding/json"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gracefork/gracefork/prefork"
)

// manifest is what the test reads of examples/kubernetes/deployment.yaml:
// the Deployment's scalar keys by their path of parent keys ("spec.
// template.spec.terminationGracePeriodSeconds"), the container's args (a
// flow sequence, so JSON) and its env.
type manifest struct {
	keys map[string]string
	args []string
	env  map[string]string
}

// readManifest parses the subset of YAML the manifest is written in: block
// mappings, "- " list items, and one flow sequence; it stops at the
// first "---" (the Service follows). A change of shape that it cannot
// read shows as a missing key in the checks.
func readManifest(t *testing.T, path string) manifest {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := manifest{keys: map[string]string{}, env: map[string]string{}}
	type level struct {
		indent int
		key    string
	}
	var stack []level
	var envName string
	keyLine := regexp.MustCompile(`^(\s*)(- )?([A-Za-z][A-Za-z0-9]*):\s*(.*)$`)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "---" {
			break
		}
		g := keyLine.FindStringSubmatch(line)
		if g == nil || strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		indent := len(g[1]) + len(g[2])
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		key, val := g[3], strings.Trim(g[4], `"`)
		var path []string
		for _, l := range stack {
			path = append(path, l.key)
		}
		path = append(path, key)
		full := strings.Join(path, ".")
		switch {
		case val == "":
			stack = append(stack, level{indent, key})
		case full == "spec.template.spec.containers.args":
			if err := json.Unmarshal([]byte(g[4]), &m.args); err != nil {
				t.Fatalf("args: %v", err)
			}
		case full == "spec.template.spec.containers.env.name":
			envName = val
		case full == "spec.template.spec.containers.env.value":
			m.env[envName] = val
		default:
			m.keys[full] = val
		}
	}
	return m
}

func (m manifest) int(t *testing.T, key string) int {
	t.Helper()
	n, err := strconv.Atoi(m.keys[key])
	if err != nil {
		t.Fatalf("%s = %q: %v", key, m.keys[key], err)
	}
	return n
}

// The Kubernetes manifest in examples/kubernetes must start this program
// as it is: flags and environment it accepts, probes on the paths it
// serves and the port it binds, and a termination grace period that
// covers the shutdown delay and the drain.
func TestKubernetesManifestFitsTheProgram(t *testing.T) {
	m := readManifest(t, "../kubernetes/deployment.yaml")
	for k, v := range m.env {
		t.Setenv(k, v)
	}
	c, err := parseFlags(m.args)
	if err != nil {
		t.Fatalf("container args %q: %v", m.args, err)
	}
	if m.env[prefork.SingleProcessEnv] != "1" {
		t.Errorf("the manifest runs one process per pod: want %s=1 in env, have %v", prefork.SingleProcessEnv, m.env)
	}
	port := strconv.Itoa(m.int(t, "spec.template.spec.containers.ports.containerPort"))
	if c.opts.Addr != ":"+port {
		t.Errorf("--bind %q, containerPort %s", c.opts.Addr, port)
	}
	mux := newMux(0)
	for probe, path := range map[string]string{"readinessProbe": "/readyz", "livenessProbe": "/livez"} {
		pre := "spec.template.spec.containers." + probe + ".httpGet."
		if m.keys[pre+"path"] != path || m.keys[pre+"port"] != port {
			t.Errorf("%s: path %q port %q, want %s on %s", probe, m.keys[pre+"path"], m.keys[pre+"port"], path, port)
		}
		if _, pattern := mux.Handler(httptest.NewRequest("GET", path, nil)); pattern != path {
			t.Errorf("%s: the demo serves %s with %q", probe, path, pattern)
		}
	}
	if c.opts.ShutdownDelay <= 0 {
		t.Error("no --shutdown-delay: the pod would drain while load balancers still send to it")
	}
	// A load balancer that probes readiness must see it fail within the
	// delay, or it sends on after the drain has begun.
	rp := "spec.template.spec.containers.readinessProbe."
	notice := time.Duration(m.int(t, rp+"periodSeconds")*m.int(t, rp+"failureThreshold")) * time.Second
	if notice > c.opts.ShutdownDelay {
		t.Errorf("readiness noticed after %v, past --shutdown-delay %v", notice, c.opts.ShutdownDelay)
	}
	grace := time.Duration(m.int(t, "spec.template.spec.terminationGracePeriodSeconds")) * time.Second
	need := c.opts.ShutdownDelay + cmp.Or(c.opts.GracefulTimeout, prefork.DefaultGracefulTimeout) + 2*time.Second
	if grace < need {
		t.Errorf("terminationGracePeriodSeconds %v < --shutdown-delay + --graceful-timeout + 2s = %v", grace, need)
	}
}

// The Dockerfile builds this program, statically, and runs it as non-root.
func TestDockerfileBuildsTheDemo(t *testing.T) {
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{"CGO_ENABLED=0 go build", "-o /out/hello ./examples/hello", `ENTRYPOINT ["/hello"]`, "USER nonroot", "COPY --from=build /out/hello /hello"} {
		if !strings.Contains(s, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	if _, err := os.Stat("../../go.mod"); err != nil {
		t.Errorf("the Dockerfile builds from the repository root: %v", err)
	}
}
