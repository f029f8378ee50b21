package prefork

import (
	"os"
	"sync"
)

// logFile is Options.LogFile: an appending writer that Reopen points at a
// fresh file after logrotate has moved the old one away.
type logFile struct {
	mu   sync.Mutex
	path string
	f    *os.File
}

func openLogFile(path string) (*logFile, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &logFile{path: path, f: f}, nil
}

func (l *logFile) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Write(p)
}

// Reopen opens the path anew; on failure the old file stays in use.
func (l *logFile) Reopen() error {
	f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	l.mu.Lock()
	old := l.f
	l.f = f
	l.mu.Unlock()
	return old.Close()
}

func (l *logFile) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}

// reopenLogs reopens Options.LogFile, which the master and, through their
// output, the workers write to.
func (m *master) reopenLogs() {
	if m.logFile == nil {
		m.emit(Event{Kind: EventNoLogFile})
		return
	}
	if err := m.logFile.Reopen(); err != nil {
		m.emit(Event{Kind: EventLogReopenFailed, Path: m.cfg.LogFile, Err: err})
		return
	}
	m.emit(Event{Kind: EventLogReopened, Path: m.cfg.LogFile})
}
