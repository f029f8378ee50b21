package chaos

import (
	"context"
	"os/exec"
)

// Built is a target built once and startable many times, for commands
// that run their own load (cmd/corefigures) instead of Run.
type Built struct {
	Target *Target
	l      *launcher
}

// Build builds the target called name. A target that cannot run here
// returns an error wrapping ErrSkipped.
func Build(ctx context.Context, name string, env BuildEnv) (*Built, error) {
	t, err := LookupTarget(name)
	if err != nil {
		return nil, err
	}
	l, err := t.build(ctx, env)
	if err != nil {
		return nil, err
	}
	return &Built{Target: t, l: l}, nil
}

// Start starts the target on addr with workers workers, its output
// appended to logPath, and waits until it answers and (prefork targets)
// has its workers. environ, if not nil, is the whole environment of the
// target (as exec.Cmd.Env); nil inherits the harness's. The caller stops
// the instance with Stop and Kill.
func (b *Built) Start(ctx context.Context, addr string, workers int, environ []string, logPath string) (*Instance, error) {
	l := *b.l
	if environ != nil {
		command := l.command
		l.command = func(addr string, workers int, extra []string) *exec.Cmd {
			cmd := command(addr, workers, extra)
			cmd.Env = environ
			return cmd
		}
	}
	return b.Target.start(ctx, &l, addr, workers, nil, logPath)
}
