package prefork

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"testing"
	"time"
)

// Durations the library logs print as people write them in JSON too, at
// any depth and through With; other values are untouched.
func TestReadableDurationsInJSON(t *testing.T) {
	var b bytes.Buffer
	l := withReadableDurations(slog.New(slog.NewJSONHandler(&b, nil)))
	l = withReadableDurations(l) // wrapped once
	l.With("boot", 5525001*time.Nanosecond).Info("ready", "deadline", 30*time.Second, "n", 3,
		slog.Group("g", slog.Duration("after", 1500*time.Millisecond)))
	var rec map[string]any
	if err := json.Unmarshal(b.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	g, _ := rec["g"].(map[string]any)
	if rec["boot"] != "5.525001ms" || rec["deadline"] != "30s" || rec["n"] != float64(3) || g["after"] != "1.5s" {
		t.Fatalf("record %s", b.Bytes())
	}
}
