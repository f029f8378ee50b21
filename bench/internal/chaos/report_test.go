package chaos

import (
	"bytes"
	"encoding/xml"
	"io"
	"maps"
	"strings"
	"testing"
	"time"
)

const ms = time.Millisecond

func TestBucketize(t *testing.T) {
	rs := []Result{
		{End: 0, Cause: OK},
		{End: 249 * ms, Cause: OK},
		{End: 250 * ms, Cause: CauseReset},
		{End: 700 * ms, Cause: OK},
		{End: 999 * ms, Cause: CauseRefused},
		{End: 1000 * ms, Cause: OK}, // past total: dropped
		{End: -1, Cause: OK},        // before start: dropped
	}
	got := Bucketize(rs, 250*ms, time.Second)
	want := []Bucket{{0, 2, 0}, {250 * ms, 0, 1}, {500 * ms, 1, 0}, {750 * ms, 0, 1}}
	if len(got) != len(want) {
		t.Fatalf("got %d buckets, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("bucket %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if b := Bucketize(rs, 250*ms, 1100*ms); len(b) != 4 {
		t.Errorf("partial last bucket kept: %d buckets", len(b))
	}
	if b := Bucketize(rs, 250*ms, 100*ms); b != nil {
		t.Errorf("total shorter than a bucket gave %v", b)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i)*ms)
	}
	for _, tt := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50 * ms}, {0.99, 99 * ms}, {1, 100 * ms}, {0, ms}} {
		if got := Percentile(d, tt.q); got != tt.want {
			t.Errorf("Percentile(%v) = %v, want %v", tt.q, got, tt.want)
		}
	}
	if Percentile(nil, 0.5) != 0 {
		t.Error("Percentile(nil) != 0")
	}
}

// synth returns results giving perBucket[i] OK requests in bucket i, all
// from pid 10 slot 0 except every 4th from pid 11 slot 1, plus failures.
func synth(perBucket []int, failAt map[int]int) []Result {
	var rs []Result
	for i, n := range perBucket {
		for j := range n {
			pid, slot := int32(10), int16(0)
			if j%4 == 0 {
				pid, slot = 11, 1
			}
			rs = append(rs, Result{End: time.Duration(i)*BucketWidth + ms, Latency: time.Duration(j+1) * time.Microsecond, PID: pid, Slot: slot})
		}
		for range failAt[i] {
			rs = append(rs, Result{End: time.Duration(i)*BucketWidth + 2*ms, Cause: CauseReset})
		}
	}
	return rs
}

func TestSummarize(t *testing.T) {
	// 4 s: warm-up bucket 0-3 at 50, steady 100 per bucket until the
	// fault at 2 s, a dip to 20 and 60, back to 100 from 2.5 s; a second
	// fault at 3 s with no dip.
	per := []int{50, 50, 50, 50, 100, 100, 100, 100, 20, 60, 100, 100, 100, 100, 100, 100}
	s := &Summary{Faults: []FaultRecord{
		{Action: ActKill9, Fired: true, Injected: true, firedAfter: 2 * time.Second},
		{Action: ActHUP, Fired: true, Injected: true, firedAfter: 3 * time.Second},
		{Action: ActUSR2, Fired: true, Supported: false, firedAfter: 3100 * ms},
		{Action: ActTerm},
	}}
	s.Summarize(synth(per, map[int]int{8: 3}), time.Second, 4*time.Second)

	if s.OK != 1280 || s.Failed != 3 || s.FailedBy["reset"] != 3 || s.Requests != 1283 {
		t.Fatalf("counts: ok=%d failed=%d by=%v", s.OK, s.Failed, s.FailedBy)
	}
	if s.SteadyRPS != 400 { // 100 per 250 ms
		t.Errorf("steady = %v, want 400", s.SteadyRPS)
	}
	if s.FaultWindow != [2]float64{2, 4} {
		t.Errorf("fault window = %v", s.FaultWindow)
	}
	if s.FaultMinRPS != 80 {
		t.Errorf("fault min = %v, want 80", s.FaultMinRPS)
	}
	if want := (20.0 + 60 + 6*100) / 8 * 4; s.FaultAvgRPS != want {
		t.Errorf("fault avg = %v, want %v", s.FaultAvgRPS, want)
	}
	if got := s.Faults[0].Recovery; got != "0.50s" {
		t.Errorf("recovery after kill9 = %q, want 0.50s", got)
	}
	if got := s.Faults[1].Recovery; got != "no dip" {
		t.Errorf("recovery after hup = %q, want no dip", got)
	}
	if got := s.Faults[2].Recovery; !strings.HasPrefix(got, "n/a") {
		t.Errorf("recovery of an unsupported fault = %q", got)
	}
	if got := s.Faults[3].Recovery; !strings.HasPrefix(got, "n/a") {
		t.Errorf("recovery of an unfired fault = %q", got)
	}
	if len(s.PIDShares) != 2 || s.PIDShares[0].PID != 10 || s.PIDShares[0].Share <= s.PIDShares[1].Share {
		t.Errorf("pid shares = %+v", s.PIDShares)
	}
	if s.SlotShares[0]+s.SlotShares[1] != s.OK || s.SlotShares[1] == 0 {
		t.Errorf("slot shares = %v", s.SlotShares)
	}
	if s.LatencyMaxMS != 0.1 || s.LatencyP50MS <= 0 {
		t.Errorf("latency p50=%v max=%v", s.LatencyP50MS, s.LatencyMaxMS)
	}
	var out bytes.Buffer
	s.WriteText(&out)
	for _, want := range []string{"1280 ok, 3 failed", "reset=3", "steady 400 req/s", "back to 90% of steady: 0.50s", "left behind after master exit: none"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, out.String())
		}
	}
}

func TestSummarizeNotRecovered(t *testing.T) {
	per := []int{100, 100, 100, 100, 100, 100, 0, 0, 0, 0}
	s := &Summary{Faults: []FaultRecord{{Action: ActTerm, Fired: true, Injected: true, firedAfter: 1500 * ms}}}
	s.Summarize(synth(per, nil), time.Second, 2500*ms)
	if s.Faults[0].Recovery != "not recovered by the end of the run" || s.Faults[0].RecoveryS != nil {
		t.Errorf("recovery = %q", s.Faults[0].Recovery)
	}
	if s.FaultMinRPS != 0 {
		t.Errorf("fault min = %v", s.FaultMinRPS)
	}
}

func TestSummarizeNoFaults(t *testing.T) {
	s := &Summary{}
	s.Summarize(synth([]int{10, 10, 10, 10, 20, 20, 20, 20}, nil), time.Second, 2*time.Second)
	if s.SteadyRPS != 80 || s.SteadyWindow != [2]float64{1, 2} || s.FaultWindow != [2]float64{} {
		t.Errorf("steady=%v window=%v fault window=%v", s.SteadyRPS, s.SteadyWindow, s.FaultWindow)
	}
}

func TestWriteCSV(t *testing.T) {
	var b bytes.Buffer
	if err := WriteCSV(&b, []Bucket{{0, 5, 1}, {250 * ms, 7, 0}}); err != nil {
		t.Fatal(err)
	}
	if want := "t_ms,ok,failed\n0,5,1\n250,7,0\n"; b.String() != want {
		t.Errorf("csv = %q, want %q", b.String(), want)
	}
}

func TestWriteSVG(t *testing.T) {
	series := []Series{
		{Name: "nethttp", Buckets: Bucketize(synth([]int{100, 90, 0, 100}, map[int]int{2: 50}), BucketWidth, time.Second)},
		{Name: "a<b>&c", Buckets: Bucketize(synth([]int{10, 10, 10, 10}, nil), BucketWidth, time.Second)},
	}
	var b bytes.Buffer
	if err := WriteSVG(&b, `title "x" <y>`, series, []Fault{{At: 500 * ms, Action: ActKill9}, {At: 5 * time.Second, Action: ActHUP}}, time.Second); err != nil {
		t.Fatal(err)
	}
	// Well-formed XML.
	dec := xml.NewDecoder(&b)
	polylines, texts := 0, []string{}
	inText := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("SVG is not well-formed: %v", err)
		}
		switch v := tok.(type) {
		case xml.StartElement:
			polylines += map[bool]int{true: 1}[v.Name.Local == "polyline"]
			inText = v.Name.Local == "text"
		case xml.CharData:
			if inText {
				texts = append(texts, string(v))
			}
		case xml.EndElement:
			inText = false
		}
	}
	if polylines != 4 { // 2 series x 2 panels
		t.Errorf("%d polylines, want 4", polylines)
	}
	all := strings.Join(texts, "|")
	for _, want := range []string{"kill9", "nethttp", "a<b>&c", "successful req/s", "failed req/s", "time since start of load (s)"} {
		if !strings.Contains(all, want) {
			t.Errorf("SVG texts lack %q: %s", want, all)
		}
	}
	if strings.Contains(all, "hup") {
		t.Error("fault after the end of the plot was drawn")
	}
}

func TestNiceTicks(t *testing.T) {
	for _, tt := range []struct{ max, step, ceil float64 }{
		{47000, 10000, 50000}, {0, 1, 1}, {4, 1, 4}, {12, 5, 15}, {0.3, 0.1, 0.3},
	} {
		if s := niceStep(tt.max); s != tt.step {
			t.Errorf("niceStep(%v) = %v, want %v", tt.max, s, tt.step)
		}
		if c := niceCeil(tt.max); c < tt.ceil*0.999 || c > tt.ceil*1.001 {
			t.Errorf("niceCeil(%v) = %v, want %v", tt.max, c, tt.ceil)
		}
	}
	if h := humanize(12500); h != "12.5k" {
		t.Errorf("humanize(12500) = %q", h)
	}
}

// connShares counts each connection at each sampled instant under the
// slot of its latest answer since the previous instant.
func TestConnShares(t *testing.T) {
	ms := time.Millisecond
	var rs []Result
	for e := 1; e <= 80; e++ { // conn 0: slot 0 every 10 ms, from 10 to 800 ms
		rs = append(rs, Result{Conn: 0, End: time.Duration(e) * 10 * ms, Cause: OK, Slot: 0})
	}
	for e := 1; e <= 80; e++ { // conn 1: slot 1, then slot 2 from 405 ms on
		slot := int16(1)
		if e*10 >= 405 {
			slot = 2
		}
		rs = append(rs, Result{Conn: 1, End: time.Duration(e)*10*ms - 5*ms, Cause: OK, Slot: slot})
	}
	// conn 2: answers until 150 ms, then only failures: counted once.
	rs = append(rs, Result{Conn: 2, End: 150 * ms, Cause: OK, Slot: 1}, Result{Conn: 2, End: 300 * ms, Cause: CauseReset})
	got := connShares(rs, 0, 800*ms) // instants at 100, 200, … 800 ms
	want := map[int]int{0: 8, 1: 4 + 1, 2: 4}
	if !maps.Equal(got, want) {
		t.Errorf("connShares = %v, want %v", got, want)
	}
}
