package chaos

import (
	"encoding/csv"
	"io"
	"strconv"
	"time"
)

// BucketWidth is the timeline resolution.
const BucketWidth = 250 * time.Millisecond

// Bucket counts the requests that completed in [Start, Start+BucketWidth).
type Bucket struct {
	Start  time.Duration
	OK     int
	Failed int
}

// OKRate is the bucket's successful requests per second.
func (b Bucket) OKRate(width time.Duration) float64 {
	return float64(b.OK) / width.Seconds()
}

// FailedRate is the bucket's failed requests per second.
func (b Bucket) FailedRate(width time.Duration) float64 {
	return float64(b.Failed) / width.Seconds()
}

// Bucketize counts results per bucket of width over [0, total). Results
// completing at or after total are left out, and so is a last bucket that
// total does not cover completely.
func Bucketize(results []Result, width, total time.Duration) []Bucket {
	if width <= 0 || total < width {
		return nil
	}
	n := int(total / width)
	bs := make([]Bucket, n)
	for i := range bs {
		bs[i].Start = time.Duration(i) * width
	}
	for _, r := range results {
		if r.End < 0 || r.End >= total {
			continue
		}
		i := int(r.End / width)
		if i >= n {
			continue
		}
		if r.Cause == OK {
			bs[i].OK++
		} else {
			bs[i].Failed++
		}
	}
	return bs
}

// WriteCSV writes the timeline with the header t_ms,ok,failed.
func WriteCSV(w io.Writer, bs []Bucket) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"t_ms", "ok", "failed"}); err != nil {
		return err
	}
	for _, b := range bs {
		rec := []string{
			strconv.FormatInt(b.Start.Milliseconds(), 10),
			strconv.Itoa(b.OK),
			strconv.Itoa(b.Failed),
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
