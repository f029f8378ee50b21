package prefork

import (
	"context"
	"log/slog"
)

// readableDurations wraps the Logger's handler so that every duration the
// library logs prints as people write it ("1.5s", "30s"), in text and in
// JSON alike: slog's JSON handler would print time.Duration as integer
// nanoseconds ("boot":5525001). Only durations change; the program's
// handler, its level and its attributes are kept.
type readableDurations struct{ h slog.Handler }

func (d readableDurations) Enabled(ctx context.Context, l slog.Level) bool {
	return d.h.Enabled(ctx, l)
}

func (d readableDurations) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(readable(a))
		return true
	})
	return d.h.Handle(ctx, out)
}

func (d readableDurations) WithAttrs(as []slog.Attr) slog.Handler {
	conv := make([]slog.Attr, len(as))
	for i, a := range as {
		conv[i] = readable(a)
	}
	return readableDurations{d.h.WithAttrs(conv)}
}

func (d readableDurations) WithGroup(name string) slog.Handler {
	return readableDurations{d.h.WithGroup(name)}
}

// readable turns a duration attribute, at any depth of groups, into its
// string.
func readable(a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindDuration:
		return slog.String(a.Key, a.Value.Duration().String())
	case slog.KindGroup:
		g := a.Value.Group()
		conv := make([]slog.Attr, len(g))
		for i, x := range g {
			conv[i] = readable(x)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(conv...)}
	case slog.KindLogValuer:
		return readable(slog.Attr{Key: a.Key, Value: a.Value.Resolve()})
	}
	return a
}

// withReadableDurations wraps l's handler, once.
func withReadableDurations(l *slog.Logger) *slog.Logger {
	if _, ok := l.Handler().(readableDurations); ok {
		return l
	}
	return slog.New(readableDurations{l.Handler()})
}
