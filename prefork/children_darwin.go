package prefork

import "golang.org/x/sys/unix"

// childPids lists the processes whose parent is pid.
func childPids(pid int) []int {
	procs, err := unix.SysctlKinfoProcSlice("kern.proc.all")
	if err != nil {
		return nil
	}
	var out []int
	for _, p := range procs {
		if int(p.Eproc.Ppid) == pid {
			out = append(out, int(p.Proc.P_pid))
		}
	}
	return out
}
