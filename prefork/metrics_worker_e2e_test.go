//go:build unix

package prefork_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"github.com/gracefork/gracefork/internal/control"
	"github.com/gracefork/gracefork/internal/handoff"
	"github.com/gracefork/gracefork/internal/metrics"
	"github.com/gracefork/gracefork/internal/sockets"
	dto "github.com/prometheus/client_model/go"
)

// startBareWorker runs helperMain as a worker of slot 0 whose master is
// the test: the returned conn is the master's end of its control channel.
func startBareWorker(t *testing.T, env ...string) (*exec.Cmd, net.Conn, string, *bytes.Buffer) {
	t.Helper()
	mine, theirs, err := sockets.Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer theirs.Close()
	ctl, err := net.FileConn(mine)
	mine.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ctl.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), append(env, helperEnv+"=1", handoff.NewSpec(0, 1, 1, 0).EnvEntry())...)
	cmd.ExtraFiles = []*os.File{theirs, lf} // fds 3 and 4
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd, ctl, ln.Addr().String(), &stderr
}

func readUntil(t *testing.T, c net.Conn, typ control.Type) control.Message {
	t.Helper()
	for {
		msg, err := control.Read(c)
		if err != nil {
			t.Fatalf("waiting for %v: %v", typ, err)
		}
		if msg.Type == typ {
			return msg
		}
	}
}

func seriesValue(t *testing.T, payload string, name string, labels map[string]string) float64 {
	t.Helper()
	fams, err := metrics.Decode([]byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.Metric {
			if hasLabels(m, labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s%v in the snapshot", name, labels)
	return 0
}

func hasLabels(m *dto.Metric, want map[string]string) bool {
	n := 0
	for _, l := range m.Label {
		if v, ok := want[l.GetName()]; ok && v == l.GetValue() {
			n++
		}
	}
	return n == len(want)
}

// A worker process answers its master's Gather with its registry and the
// library's metrics, and after a drain (SIGTERM here) sends a final
// snapshot that counts every request it answered, then exits.
func TestE2EWorkerProcessSendsMetrics(t *testing.T) {
	cmd, ctl, addr, stderr := startBareWorker(t, "TEST_METRICS=1", "TEST_WORKER_METRICS=1")
	readUntil(t, ctl, control.TypeReady)
	c := newClient()
	get(t, c, "http://"+addr+"/")
	get(t, c, "http://"+addr+"/")
	c.CloseIdleConnections()
	if err := control.Write(ctl, control.Message{Type: control.TypeGather, Seq: 7}); err != nil {
		t.Fatal(err)
	}
	msg := readUntil(t, ctl, control.TypeMetrics)
	if msg.Seq != 7 || msg.Final {
		t.Fatalf("answer seq %d final %v", msg.Seq, msg.Final)
	}
	if v := seriesValue(t, msg.Payload, "helper_requests_total", nil); v != 2 {
		t.Errorf("helper_requests_total %v, want 2", v)
	}
	if v := seriesValue(t, msg.Payload, "gracefork_worker_requests_total", map[string]string{"code": "200", "method": "GET"}); v != 2 {
		t.Errorf("gracefork_worker_requests_total 200 GET %v, want 2", v)
	}
	get(t, c, "http://"+addr+"/")
	c.CloseIdleConnections()
	cmd.Process.Signal(syscall.SIGTERM)
	msg = readUntil(t, ctl, control.TypeMetrics)
	if !msg.Final {
		t.Fatalf("after SIGTERM: seq %d, want the final snapshot", msg.Seq)
	}
	if v := seriesValue(t, msg.Payload, "helper_requests_total", nil); v != 3 {
		t.Errorf("final helper_requests_total %v, want 3", v)
	}
	for {
		_, err := control.Read(ctl)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("worker: %v\n%s", err, stderr)
	}
}
