package console

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// chartView is the activity chart drawn as inline SVG: calls accepted per
// minute (bars), ServiceNow errors per minute (red bars) and mean ServiceNow
// latency (line, right axis).
type chartView struct {
	SVG                  template.HTML
	Calls, Errors        int
	MaxCalls             int
	MeanLatency, Minutes string
}

func chart(pts []Point) chartView {
	const w, h, pad = 900.0, 180.0, 28.0
	var maxCount int
	var maxLat time.Duration
	var calls, errs, reqs int
	var latSum time.Duration
	for _, p := range pts {
		maxCount = max(maxCount, p.Calls, p.Errors)
		maxLat = max(maxLat, p.Latency)
		calls += p.Calls
		errs += p.Errors
		reqs += p.Requests
		latSum += p.Latency * time.Duration(p.Requests)
	}
	if maxCount == 0 {
		maxCount = 1
	}
	if maxLat == 0 {
		maxLat = time.Millisecond
	}
	n := float64(max(len(pts), 1))
	bw := (w - 2*pad) / n
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %.0f %.0f" role="img" aria-label="calls per minute, ServiceNow errors and latency">`, w, h)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" class="axis"/>`, pad, h-pad, w-pad, h-pad)
	var line []string
	for i, p := range pts {
		x := pad + float64(i)*bw
		if p.Calls > 0 {
			bh := (h - 2*pad) * float64(p.Calls) / float64(maxCount)
			fmt.Fprintf(&b, `<rect class="calls" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %d calls</title></rect>`,
				x, h-pad-bh, max(bw-0.5, 0.5), bh, p.Minute.Format("15:04"), p.Calls)
		}
		if p.Errors > 0 {
			bh := (h - 2*pad) * float64(p.Errors) / float64(maxCount)
			fmt.Fprintf(&b, `<rect class="errors" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: %d ServiceNow errors</title></rect>`,
				x+bw/4, h-pad-bh, max(bw/2, 0.5), bh, p.Minute.Format("15:04"), p.Errors)
		}
		if p.Requests > 0 {
			y := h - pad - (h-2*pad)*float64(p.Latency)/float64(maxLat)
			line = append(line, fmt.Sprintf("%.1f,%.1f", x+bw/2, y))
		}
	}
	if len(line) > 1 {
		fmt.Fprintf(&b, `<polyline class="latency" points="%s"/>`, strings.Join(line, " "))
	}
	if len(pts) > 0 {
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" class="label">%s</text>`, pad, h-8, pts[0].Minute.Format("15:04"))
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" class="label" text-anchor="end">%s</text>`, w-pad, h-8, pts[len(pts)-1].Minute.Format("15:04"))
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="16" class="label">%d calls/min</text>`, pad, maxCount)
	fmt.Fprintf(&b, `<text x="%.0f" y="16" class="label" text-anchor="end">%s latency</text>`, w-pad, maxLat.Round(time.Millisecond))
	b.WriteString(`</svg>`)
	mean := "–"
	if reqs > 0 {
		mean = (latSum / time.Duration(reqs)).Round(time.Millisecond).String()
	}
	return chartView{SVG: template.HTML(b.String()), Calls: calls, Errors: errs, MaxCalls: maxCount, MeanLatency: mean,
		Minutes: fmt.Sprint(len(pts))}
}
