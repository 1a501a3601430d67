package main

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"html/template"
	"os"
	"time"
)

// The report's charts are drawn by uPlot (https://github.com/leeoniya/uPlot,
// MIT), vendored in bench/uplot and inlined into the page, so a report is
// one file that opens offline and loads nothing from elsewhere.
var (
	//go:embed uplot/uPlot.iife.min.js
	uplotJS string
	//go:embed uplot/uPlot.min.css
	uplotCSS string
)

// reportData is what the page's script charts.
type reportData struct {
	Scenario string         `json:"scenario"`
	Summary  string         `json:"summary"`
	Fields   map[string]any `json:"fields"`
	// Latency distribution: upper bound of each bucket in ms and the share
	// of deliveries at or below it, in percent.
	LatMS   []float64 `json:"lat_ms,omitempty"`
	LatPct  []float64 `json:"lat_pct,omitempty"`
	Lat0MS  []float64 `json:"lat0_ms,omitempty"` // slow: without slow members
	Lat0Pct []float64 `json:"lat0_pct,omitempty"`
	// Server over time: seconds since the start, RSS in MiB, CPU in % of
	// one core over the previous sample.
	T   []float64 `json:"t"`
	RSS []float64 `json:"rss"`
	CPU []float64 `json:"cpu"`
}

func writeReport(path string, r *runner) error {
	res := r.res
	d := reportData{Scenario: res.Scenario, Summary: res.Summary, Fields: res.Fields}
	cdf := func(h *histogram) (x, y []float64) {
		us, c := h.points()
		for i := range us {
			x = append(x, us[i]/1e3)
			y = append(y, c[i]*100)
		}
		return x, y
	}
	if res.Hist != nil && res.Hist.n > 0 {
		d.LatMS, d.LatPct = cdf(res.Hist)
	}
	if res.Hist0 != nil && res.Hist0.n > 0 {
		d.Lat0MS, d.Lat0Pct = cdf(res.Hist0)
	}
	for i, s := range res.Samples {
		d.T = append(d.T, round(s.At.Sub(res.Start).Seconds(), 2))
		d.RSS = append(d.RSS, round(mib(s.RSS), 2))
		cpu := 0.0
		if i > 0 {
			p := res.Samples[i-1]
			if dt := s.At.Sub(p.At).Seconds(); dt > 0 {
				cpu = (s.CPU - p.CPU) / dt * 100
			}
		}
		d.CPU = append(d.CPU, round(cpu, 1))
	}
	data, err := json.Marshal(d)
	if err != nil {
		return err
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	err = reportPage.Execute(f, map[string]any{
		"Title": fmt.Sprintf("wsrelay bench: %s, %s", res.Scenario, res.Start.UTC().Format(time.RFC3339)),
		"CSS":   template.CSS(uplotCSS),
		"JS":    template.JS(uplotJS),
		"Data":  template.JS(data),
		"Load":  loadAvg(),
		// Scenarios that deliver nothing (idle, churn without traffic) get
		// no latency section rather than an empty one.
		"Latency": len(d.LatMS) > 0,
	})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

var reportPage = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{.Title}}</title>
<style>{{.CSS}}</style>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:1000px}
h1{font-size:1.3em} h2{font-size:1.1em;margin-top:2em}
table{border-collapse:collapse} td{padding:2px 12px 2px 0;border-bottom:1px solid #eee;font-family:ui-monospace,monospace}
.summary{background:#f5f5f5;padding:.8em;border-radius:4px}
</style>
<script>{{.JS}}</script>
</head><body>
<h1>{{.Title}}</h1>
<p class="summary" id="summary"></p>
<p>Load average at the end of the run: {{.Load}}</p>
{{if .Latency}}<h2>Delivery latency distribution</h2>
<div id="lat"></div>
{{end}}<h2>Server memory (RSS) and CPU over time</h2>
<div id="mem"></div>
<h2>Figures</h2>
<table id="fields"></table>
<script>
const d = {{.Data}};
document.getElementById("summary").textContent = d.summary;
const tbl = document.getElementById("fields");
for (const k of Object.keys(d.fields).sort()) {
  const tr = tbl.insertRow();
  tr.insertCell().textContent = k;
  const v = d.fields[k];
  tr.insertCell().textContent = typeof v === "object" ? JSON.stringify(v) : v;
}
const width = Math.min(960, window.innerWidth - 40);
if (d.lat_ms && d.lat_ms.length) {
  // One x axis for both runs: merge the bucket bounds, step the CDFs.
  const xs = Array.from(new Set([...(d.lat_ms||[]), ...(d.lat0_ms||[])])).sort((a,b)=>a-b);
  const step = (bx, by) => { const out = []; let j = -1; for (const x of xs) { while (j+1 < bx.length && bx[j+1] <= x) j++; out.push(j < 0 ? 0 : by[j]); } return out; };
  const series = [{}, {label: d.lat0_ms ? "with slow members" : "deliveries", stroke: "#1f77b4", width: 2, value: (u,v)=>v==null?"-":v.toFixed(2)+" %"}];
  const data = [xs, step(d.lat_ms, d.lat_pct)];
  if (d.lat0_ms) { series.push({label: "without slow members", stroke: "#ff7f0e", width: 2, value: (u,v)=>v==null?"-":v.toFixed(2)+" %"}); data.push(step(d.lat0_ms, d.lat0_pct)); }
  new uPlot({width, height: 360, series,
    scales: {x: {time: false, distr: 3}, y: {range: [0, 100]}},
    axes: [{label: "latency (ms, log scale)"}, {label: "% of deliveries at or below"}],
  }, data, document.getElementById("lat"));
}
new uPlot({width, height: 320,
  series: [{}, {label: "RSS (MiB)", stroke: "#2ca02c", width: 2, scale: "mib"}, {label: "CPU (% of one core)", stroke: "#d62728", width: 1, scale: "pct"}],
  scales: {x: {time: false}},
  axes: [{label: "seconds since start"}, {scale: "mib", label: "MiB"}, {scale: "pct", side: 1, label: "% of a core", grid: {show: false}}],
}, [d.t, d.rss, d.cpu], document.getElementById("mem"));
</script>
</body></html>
`))
