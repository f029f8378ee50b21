package chaos

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// helperEnv makes the test binary act as a helper process (see TestMain).
const helperEnv = "CHAOS_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "parent":
		// Start a child like a master starts a worker, tell the test its
		// pid, then wait to be killed.
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"=child")
		if err := cmd.Start(); err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		fmt.Println(cmd.Process.Pid)
		time.Sleep(time.Hour)
		os.Exit(0)
	case "child":
		time.Sleep(time.Hour)
		os.Exit(0)
	}
	// Like the chaos command: orphans of the targets come back to us.
	if err := SetChildSubreaper(); err != nil {
		fmt.Fprintln(os.Stderr, "warning: SetChildSubreaper:", err)
	}
	os.Exit(m.Run())
}

func TestParseStat(t *testing.T) {
	line := "4835 (a) (b c) S 4832 4830 1690 0 -1 4194304 98 0 0 0 0 0 0 0 20 0 1 0 35163 3133440 414 0\n"
	p, err := parseStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	want := ProcInfo{PID: 4835, PPID: 4832, PGID: 4830, State: 'S', Comm: "a) (b c", StartTime: 35163}
	if p != want {
		t.Errorf("parseStat = %+v, want %+v", p, want)
	}
	for _, bad := range []string{"", "12 (x", "x (y) S 1 2", "12 (x) S a 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 5 0"} {
		if _, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) succeeded", bad)
		}
	}
}

// startTree starts a helper parent with one child in a new process group
// and returns both pids once the parent reported its child.
func startTree(t *testing.T) (*exec.Cmd, int) {
	t.Helper()
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=parent")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the helper's child pid: %v", err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatalf("helper said %q", line)
	}
	return cmd, child
}

func TestProcTree(t *testing.T) {
	parent, child := startTree(t)
	ppid := parent.Process.Pid
	tab, err := ScanProcs()
	if err != nil {
		t.Fatal(err)
	}
	if kids := tab.Children(ppid); len(kids) != 1 || kids[0] != child {
		t.Errorf("Children(%d) = %v, want [%d]", ppid, kids, child)
	}
	desc := tab.Descendants(os.Getpid())
	for _, p := range []int{ppid, child} {
		found := false
		for _, d := range desc {
			found = found || d == p
		}
		if !found {
			t.Errorf("Descendants(self) = %v lacks %d", desc, p)
		}
	}
	if g := tab.InGroup(ppid); len(g) != 2 {
		t.Errorf("InGroup(%d) = %v, want parent and child", ppid, g)
	}
	st := tab[child].StartTime
	if !Alive(child, st) || Alive(child, st+1) {
		t.Errorf("Alive: recycled-pid check broken")
	}
	if !strings.Contains(Cmdline(child), os.Args[0]) {
		t.Errorf("Cmdline(%d) = %q", child, Cmdline(child))
	}

	// Kill the parent alone: the child is orphaned, reparented to the
	// test process (a subreaper), and still alive.
	_ = parent.Process.Kill()
	_ = parent.Wait()
	err = pollUntil(t.Context(), time.Now().Add(5*time.Second), func() bool {
		p, err := ReadProc(child)
		return err == nil && p.PPID == os.Getpid()
	})
	if err != nil {
		t.Fatalf("orphan %d was not reparented to the harness: %v", child, err)
	}
	if !Alive(child, st) {
		t.Fatal("orphan died with its parent")
	}
	_ = syscall.Kill(child, syscall.SIGKILL)
	err = pollUntil(t.Context(), time.Now().Add(5*time.Second), func() bool {
		ReapZombies(func(int) bool { return false })
		_, err := ReadProc(child)
		return err != nil // reaped: gone from /proc
	})
	if err != nil {
		t.Fatalf("orphan %d not reaped: %v", child, err)
	}
}

func TestPIDSet(t *testing.T) {
	s := NewPIDSet()
	before := time.Now()
	if !s.Add(os.Getpid()) || s.Add(os.Getpid()) || s.Add(0) {
		t.Fatal("Add does not deduplicate")
	}
	if !s.Has(os.Getpid()) || s.Len() != 1 {
		t.Fatal("Has/Len")
	}
	if got := s.SeenBetween(before, time.Now().Add(time.Second)); len(got) != 1 {
		t.Errorf("SeenBetween = %v", got)
	}
	if got := s.AliveNow(); len(got) != 1 || got[0] != os.Getpid() {
		t.Errorf("AliveNow = %v", got)
	}
}
