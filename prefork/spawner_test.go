//go:build unix

package prefork

import (
	"bytes"
	"cmp"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/gracefork/gracefork/internal/sockets"
	"golang.org/x/sys/unix"
)

// Spawning must not clear O_NONBLOCK on the shared socket: the serving
// workers would block in accept and could not drain (os.StartProcess does
// this through (*os.File).Fd).
func TestExecSpawnerKeepsSocketNonblocking(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, err := sockets.File(ln)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	ctl, peer, err := sockets.Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer ctl.Close()
	defer peer.Close()
	var stdout, stderr bytes.Buffer
	sp := &ExecSpawner{Path: "/bin/sh", Args: []string{"-c", "echo out; echo err >&2; exit 3"}, Stdout: &stdout, Stderr: &stderr}
	p, err := sp.Spawn(WorkerSpec{Control: peer, Listeners: []*os.File{lf}, Env: []string{"PATH=/bin"}})
	if err != nil {
		t.Fatal(err)
	}
	exit := p.Wait()
	if exit.Code != 3 || exit.String() != "exit status 3" || strings.Join(exit.Stderr, "|") != "err" {
		t.Fatalf("exit %+v", exit)
	}
	if stdout.String() != "out\n" || stderr.String() != "err\n" {
		t.Fatalf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
	fd, _ := rawFd(lf)
	flags, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
	if err != nil || flags&unix.O_NONBLOCK == 0 {
		t.Fatalf("listener blocking after spawn (flags %#x, %v)", flags, err)
	}
}

func TestExecSpawnerSignalAndMissingBinary(t *testing.T) {
	ctl, peer, _ := sockets.Pair()
	defer ctl.Close()
	defer peer.Close()
	sp := &ExecSpawner{Path: "/bin/sleep", Args: []string{"60"}, Stdout: &bytes.Buffer{}, Stderr: &bytes.Buffer{}}
	p, err := sp.Spawn(WorkerSpec{Control: peer})
	if err != nil {
		t.Fatal(err)
	}
	p.Signal(syscall.SIGKILL)
	if e := p.Wait(); e.Signal != syscall.SIGKILL || e.String() != "signal: killed" {
		t.Fatalf("exit %+v", e)
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("signal after exit: %v", err)
	}
	_, err = (&ExecSpawner{Path: "/no/such/binary"}).Spawn(WorkerSpec{Control: peer})
	if err == nil || !strings.Contains(err.Error(), "/no/such/binary") {
		t.Fatalf("missing binary: %v", err)
	}
}

func TestTailKeepsLastLines(t *testing.T) {
	var sink bytes.Buffer
	tw := &tailWriter{w: &sink, max: 2}
	tw.Write([]byte("one\ntwo\nthr"))
	tw.Write([]byte("ee\nfour"))
	if got := strings.Join(tw.lines(), "|"); got != "two|three|four" {
		t.Fatalf("tail = %q, want the last 2 lines and the unfinished one", got)
	}
	if sink.String() != "one\ntwo\nthree\nfour" {
		t.Fatalf("passed through %q", sink.String())
	}
}

// The master's own binary gone: a restart starts the running executable,
// a reload fails naming the path; a binary not the program's own is never
// replaced.
func TestExecSpawnerPathWhenBinaryGone(t *testing.T) {
	gone := filepath.Join(t.TempDir(), "app")
	var told []string
	sp := &ExecSpawner{Path: gone, self: true, binaryGone: func(b, r string) { told = append(told, b, r) }}
	want := cmp.Or(runningExecutable, gone) // without a name for it, the path as it is
	if p, err := sp.path(false); err != nil || p != want {
		t.Fatalf("restart path = %q, %v; want %q", p, err, want)
	}
	if runningExecutable != "" && !slices.Equal(told, []string{gone, runningExecutable}) {
		t.Fatalf("binaryGone told %q, want the gone path and the running executable", told)
	}
	if _, err := sp.path(true); err == nil || !strings.Contains(err.Error(), gone) || !strings.Contains(err.Error(), "reload") {
		t.Fatalf("reload path error = %v, want one naming %s", err, gone)
	}
	other := &ExecSpawner{Path: gone}
	if p, err := other.path(false); err != nil || p != gone {
		t.Fatalf("another program's path = %q, %v; want %q as it is", p, err, gone)
	}
}
