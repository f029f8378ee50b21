package prefork

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// checkPIDFile refuses to start when the PID file names a live gracefork
// master: a live process running this same executable. A file naming a
// dead process, or a pid reused by another program, is stale and will be
// replaced; so is a live one whose executable the system will not name
// (see executableOf): binding the same address then refuses the second
// master.
func checkPIDFile(path string) error {
	pid, err := readPIDFile(path)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && pid == os.Getpid()) {
		return nil
	}
	if err != nil {
		return nil // unreadable content: stale
	}
	if processGone(pid) {
		return nil
	}
	theirs, err1 := executableOf(pid)
	mine, err2 := os.Executable()
	if err1 != nil || err2 != nil || theirs != mine {
		return nil
	}
	return fmt.Errorf("it names pid %d, a live master of this program (%s); stop it, or remove the file if you are sure", pid, mine)
}

func readPIDFile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// writePIDFile writes this process's pid atomically: a reader sees the old
// file or the new one, never a partial one.
func writePIDFile(path string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.WriteString(strconv.Itoa(os.Getpid()) + "\n"); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// removePIDFile removes the file only if it still names this process: after
// an upgrade it names the new master.
func removePIDFile(path string) {
	if pid, err := readPIDFile(path); err == nil && pid == os.Getpid() {
		os.Remove(path)
	}
}
