package console

import (
	"fmt"

	"github.com/sagabox/sagabox/pkg/saga/sagaapi"
)

// chartView is the overview's bar chart of sagas per bucket, drawn as SVG
// by the template: per bucket a bar of sagas started and, beside it, the
// sagas that ended, succeeded below aborted.
type chartView struct {
	Width, Height int
	Bars          []chartBar
	Max           int64
	Labels        []chartLabel
}

type chartBar struct {
	X, EndedX, W                float64
	StartedY, StartedH          float64
	SucceededY, SucceededH      float64
	AbortedY, AbortedH          float64
	Title                       string
	Started, Succeeded, Aborted int64
}

type chartLabel struct {
	X    float64
	Text string
}

const chartPlot = 150.0 // plot height in SVG units; labels below

func newChart(st sagaapi.Stats) chartView {
	c := chartView{Width: 600, Height: int(chartPlot) + 22}
	n := len(st.Buckets)
	if n == 0 {
		return c
	}
	for _, b := range st.Buckets {
		c.Max = max(c.Max, b.Started, b.Succeeded+b.Aborted)
	}
	scale := 0.0
	if c.Max > 0 {
		scale = (chartPlot - 10) / float64(c.Max)
	}
	slot := float64(c.Width) / float64(n)
	w := slot * 0.36
	for i, b := range st.Buckets {
		x := float64(i) * slot
		bar := chartBar{X: x + slot*0.12, W: w, Started: b.Started, Succeeded: b.Succeeded, Aborted: b.Aborted,
			Title: fmt.Sprintf("%s: %d started, %d succeeded, %d aborted", b.Start.Local().Format("15:04"), b.Started, b.Succeeded, b.Aborted)}
		bar.EndedX = bar.X + w
		bar.StartedH = float64(b.Started) * scale
		bar.StartedY = chartPlot - bar.StartedH
		bar.SucceededH = float64(b.Succeeded) * scale
		bar.SucceededY = chartPlot - bar.SucceededH
		bar.AbortedH = float64(b.Aborted) * scale
		bar.AbortedY = bar.SucceededY - bar.AbortedH
		c.Bars = append(c.Bars, bar)
		if i%max(1, n/5) == 0 || i == n-1 {
			c.Labels = append(c.Labels, chartLabel{X: x + slot/2, Text: b.Start.Local().Format("15:04")})
		}
	}
	return c
}
