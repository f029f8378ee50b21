package chaos

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Series is one target's timeline on the plot.
type Series struct {
	Name    string
	Buckets []Bucket
}

// palette holds the line colours, one per series.
var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"}

// plot geometry, in SVG user units.
const (
	plotW      = 1000
	plotH      = 640
	marginL    = 78
	marginR    = 24
	topY0      = 70  // throughput panel top
	topY1      = 360 // throughput panel bottom
	botY0      = 400 // failures panel top
	botY1      = 540 // failures panel bottom
	legendY    = 612
	plotFont   = "font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\""
	panelInner = plotW - marginL - marginR
)

// panel maps data to one panel's pixels.
type panel struct {
	y0, y1 float64 // top and bottom in pixels
	ymax   float64
	total  float64 // seconds on the x axis
}

// x maps seconds to pixels.
func (p panel) x(sec float64) float64 {
	return marginL + sec/p.total*panelInner
}

// y maps a value to pixels.
func (p panel) y(v float64) float64 {
	return p.y1 - v/p.ymax*(p.y1-p.y0)
}

// WriteSVG draws throughput (top) and failures (bottom) per 250 ms bucket
// for every series, with the faults as labelled vertical lines.
func WriteSVG(w io.Writer, title string, series []Series, faults []Fault, total time.Duration) error {
	bw := bufio.NewWriter(w)
	sec := math.Max(total.Seconds(), BucketWidth.Seconds())
	var okMax, failMax float64
	for _, s := range series {
		for _, b := range s.Buckets {
			okMax = math.Max(okMax, b.OKRate(BucketWidth))
			failMax = math.Max(failMax, b.FailedRate(BucketWidth))
		}
	}
	top := panel{y0: topY0, y1: topY1, ymax: niceCeil(okMax), total: sec}
	bot := panel{y0: botY0, y1: botY1, ymax: niceCeil(math.Max(failMax, 4)), total: sec}

	fmt.Fprintf(bw, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" %s font-size="12">`+"\n",
		plotW, plotH, plotW, plotH, plotFont)
	fmt.Fprintf(bw, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(bw, `<text x="%d" y="28" font-size="17" font-weight="bold">%s</text>`+"\n", marginL, html.EscapeString(title))
	drawAxes(bw, top, "successful req/s", false)
	drawAxes(bw, bot, "failed req/s", true)
	drawFaults(bw, top, bot, faults)
	for i, s := range series {
		color := palette[i%len(palette)]
		drawLine(bw, top, s.Buckets, color, Bucket.OKRate)
		drawLine(bw, bot, s.Buckets, color, Bucket.FailedRate)
	}
	if failMax == 0 {
		fmt.Fprintf(bw, `<text x="%.1f" y="%.1f" fill="#555" text-anchor="middle">no failed requests</text>`+"\n",
			top.x(sec/2), (botY0+botY1)/2.0)
	}
	drawLegend(bw, series)
	fmt.Fprintln(bw, "</svg>")
	return bw.Flush()
}

// drawAxes draws a panel's frame, grid, ticks and labels.
func drawAxes(w io.Writer, p panel, ylabel string, xlabels bool) {
	fmt.Fprintf(w, `<rect x="%d" y="%.0f" width="%d" height="%.0f" fill="none" stroke="#333"/>`+"\n",
		marginL, p.y0, panelInner, p.y1-p.y0)
	for _, v := range ticks(p.ymax) {
		y := p.y(v)
		fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#e4e4e4"/>`+"\n", marginL, y, plotW-marginR, y)
		fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#333"/>`+"\n", marginL-5, y, marginL, y)
		fmt.Fprintf(w, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", marginL-8, y, humanize(v))
	}
	for _, s := range ticks(p.total) {
		x := p.x(s)
		fmt.Fprintf(w, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#333"/>`+"\n", x, p.y1, x, p.y1+5)
		if xlabels {
			fmt.Fprintf(w, `<text x="%.1f" y="%.0f" text-anchor="middle">%s</text>`+"\n", x, p.y1+19, humanize(s))
		}
	}
	if xlabels {
		fmt.Fprintf(w, `<text x="%.1f" y="%.0f" text-anchor="middle">time since start of load (s)</text>`+"\n",
			marginL+panelInner/2.0, p.y1+40)
	}
	cy := (p.y0 + p.y1) / 2
	fmt.Fprintf(w, `<text x="18" y="%.1f" text-anchor="middle" transform="rotate(-90 18 %.1f)">%s</text>`+"\n", cy, cy, ylabel)
}

// drawFaults draws one dashed vertical line per fault across both panels,
// labelled with the action at the top.
func drawFaults(w io.Writer, top, bot panel, faults []Fault) {
	for _, f := range faults {
		s := f.At.Seconds()
		if s > top.total {
			continue
		}
		x := top.x(s)
		for _, p := range []panel{top, bot} {
			fmt.Fprintf(w, `<line x1="%.1f" y1="%.0f" x2="%.1f" y2="%.0f" stroke="#888" stroke-dasharray="4 3"/>`+"\n", x, p.y0, x, p.y1)
		}
		fmt.Fprintf(w, `<text x="%.1f" y="%d" font-size="11" fill="#444" transform="rotate(-45 %.1f %d)">%s</text>`+"\n",
			x+2, topY0-4, x+2, topY0-4, html.EscapeString(string(f.Action)))
	}
}

// drawLine draws one series in one panel as a polyline through the
// bucket midpoints.
func drawLine(w io.Writer, p panel, bs []Bucket, color string, rate func(Bucket, time.Duration) float64) {
	if len(bs) == 0 {
		return
	}
	var pts strings.Builder
	for _, b := range bs {
		mid := (b.Start + BucketWidth/2).Seconds()
		fmt.Fprintf(&pts, "%.1f,%.1f ", p.x(mid), p.y(rate(b, BucketWidth)))
	}
	fmt.Fprintf(w, `<polyline points="%s" fill="none" stroke="%s" stroke-width="1.8" stroke-linejoin="round"/>`+"\n",
		strings.TrimSpace(pts.String()), color)
}

// drawLegend draws one swatch and name per series under the plot.
func drawLegend(w io.Writer, series []Series) {
	x := float64(marginL)
	for i, s := range series {
		color := palette[i%len(palette)]
		fmt.Fprintf(w, `<line x1="%.0f" y1="%d" x2="%.0f" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", x, legendY, x+24, legendY, color)
		fmt.Fprintf(w, `<text x="%.0f" y="%d" dominant-baseline="middle">%s</text>`+"\n", x+30, legendY, html.EscapeString(s.Name))
		x += 40 + 8*float64(len(s.Name)) + 20
	}
	fmt.Fprintf(w, `<line x1="%.0f" y1="%d" x2="%.0f" y2="%d" stroke="#888" stroke-dasharray="4 3"/>`+"\n", x, legendY, x+24, legendY)
	fmt.Fprintf(w, `<text x="%.0f" y="%d" dominant-baseline="middle">fault injected</text>`+"\n", x+30, legendY)
}

// niceStep returns a 1, 2 or 5 times a power of ten step giving about
// five ticks up to max.
func niceStep(max float64) float64 {
	if max <= 0 {
		return 1
	}
	raw := max / 5
	pow := math.Pow(10, math.Floor(math.Log10(raw)))
	switch f := raw / pow; {
	case f <= 1:
		return pow
	case f <= 2:
		return 2 * pow
	case f <= 5:
		return 5 * pow
	}
	return 10 * pow
}

// niceCeil rounds max up to a whole number of nice steps (at least 1).
func niceCeil(max float64) float64 {
	if max <= 0 {
		return 1
	}
	step := niceStep(max)
	return math.Ceil(max/step) * step
}

// ticks returns 0, step, 2*step, ... up to max.
func ticks(max float64) []float64 {
	step := niceStep(max)
	var out []float64
	for v := 0.0; v <= max+step*1e-9; v += step {
		out = append(out, v)
	}
	return out
}

// humanize formats a tick value: 1500 as 1.5k, 2000000 as 2M.
func humanize(v float64) string {
	switch {
	case v >= 1e6:
		return strconv.FormatFloat(v/1e6, 'f', -1, 64) + "M"
	case v >= 1e3:
		return strconv.FormatFloat(v/1e3, 'f', -1, 64) + "k"
	}
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}
