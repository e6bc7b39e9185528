package main

import (
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// Report is a run of the suite.
type Report struct {
	Machine   string           `json:"machine"`
	Disk      string           `json:"disk,omitempty"` // the stores' folder and its file system
	Started   time.Time        `json:"started"`
	Finished  time.Time        `json:"finished"`
	Quick     bool             `json:"quick"`
	Keys      int              `json:"keys"`
	Runs      int              `json:"runsPerFigure"`
	Settings  []Setting        `json:"settings"`
	Workloads []WorkloadReport `json:"workloads"`
}

// Setting says how an engine was configured.
type Setting struct {
	Engine  string `json:"engine"`
	Memory  string `json:"memory"`
	Durable string `json:"durable"`
}

// WorkloadReport holds a workload's results.
type WorkloadReport struct {
	Name    string   `json:"name"`
	About   string   `json:"about"`
	Results []Result `json:"results"`
}

// replot rewrites the table and the plots of dir from its results.json.
func replot(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		return err
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	return r.write(dir)
}

func (r *Report) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), b, 0o644); err != nil {
		return err
	}
	for _, w := range r.Workloads {
		for _, ext := range []string{".svg", ".png"} {
			if err := plotWorkload(w, filepath.Join(dir, w.Name+ext)); err != nil {
				return fmt.Errorf("plot %s: %w", w.Name, err)
			}
		}
	}
	return os.WriteFile(filepath.Join(dir, "results.md"), []byte(r.markdown()), 0o644)
}

// ratio says how the engine compares with livekv in the same case: above
// 1 is better than livekv, below 1 worse.
func ratio(res Result, all []Result) string {
	if res.Engine == "livekv" || len(res.Runs) == 0 {
		return ""
	}
	for _, l := range all {
		if l.Engine == "livekv" && l.Case == res.Case && len(l.Runs) > 0 && l.Median > 0 && res.Median > 0 {
			x := res.Median / l.Median
			if !res.Higher {
				x = l.Median / res.Median
			}
			return fmt.Sprintf("%.2fx", x)
		}
	}
	return ""
}

func num(v float64) string {
	switch {
	case v >= 100:
		s := fmt.Sprintf("%.0f", v)
		var b strings.Builder // thousands separators
		for i, c := range s {
			if i > 0 && (len(s)-i)%3 == 0 {
				b.WriteByte(',')
			}
			b.WriteRune(c)
		}
		return b.String()
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

func (r *Report) markdown() string {
	var b strings.Builder
	fmt.Fprintf(&b, "# Benchmark results\n\n%s  \n", r.Machine)
	if r.Disk != "" {
		fmt.Fprintf(&b, "stores in %s  \n", r.Disk)
	}
	fmt.Fprintf(&b, "%s to %s", r.Started.Format(time.RFC3339), r.Finished.Format(time.RFC3339))
	if r.Quick {
		b.WriteString(" (quick run: small sizes, one run each; for smoke tests, not for comparison)")
	}
	fmt.Fprintf(&b, "  \n%d keys; each figure is the median of %d runs, with the smallest and largest. "+
		"\"vs livekv\" is the engine's figure over livekv's, turned so that above 1 means better than livekv.\n\n", r.Keys, r.Runs)
	b.WriteString("| engine | in memory | durable |\n|---|---|---|\n")
	for _, s := range r.Settings {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", s.Engine, s.Memory, s.Durable)
	}
	for _, w := range r.Workloads {
		// Rows by case, then engine, as measured.
		var cases []string
		for _, res := range w.Results {
			if !slices.Contains(cases, res.Case) {
				cases = append(cases, res.Case)
			}
		}
		slices.SortStableFunc(w.Results, func(a, b Result) int {
			return slices.Index(cases, a.Case) - slices.Index(cases, b.Case)
		})
		fmt.Fprintf(&b, "\n## %s\n\n%s.\n\n![%s](%s.svg)\n\n| case | engine | median | min – max | unit | vs livekv |\n|---|---|---|---|---|---|\n",
			w.Name, w.About, w.Name, w.Name)
		for _, res := range w.Results {
			if len(res.Runs) == 0 {
				fmt.Fprintf(&b, "| %s | %s | | | %s | %s |\n", res.Case, res.Engine, res.Unit, res.Note)
				continue
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s – %s | %s | %s |\n", res.Case, res.Engine, num(res.Median), num(res.Min), num(res.Max), res.Unit, ratio(res, w.Results))
		}
	}
	return b.String()
}

var palette = []color.Color{
	color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0xff, 0x7f, 0x0e, 0xff}, color.RGBA{0x2c, 0xa0, 0x2c, 0xff},
	color.RGBA{0xd6, 0x27, 0x28, 0xff}, color.RGBA{0x94, 0x67, 0xbd, 0xff}, color.RGBA{0x8c, 0x56, 0x4b, 0xff},
	color.RGBA{0x7f, 0x7f, 0x7f, 0xff},
}

// plotWorkload draws the medians as grouped bars: a group per case, a bar
// per engine, with the legend to the right of the plot, clear of bars and
// title, and the notes of peers that did not run (no redis-server) under
// it. The file's extension, .svg or .png, chooses the format.
func plotWorkload(w WorkloadReport, file string) error {
	var cases, engines, notes []string
	tallest := 0.0
	for _, r := range w.Results {
		if len(r.Runs) == 0 {
			if r.Note != "" {
				notes = append(notes, r.Engine+": "+r.Note)
			}
			continue
		}
		tallest = max(tallest, r.Median)
		if !slices.Contains(cases, r.Case) {
			cases = append(cases, r.Case)
		}
		if !slices.Contains(engines, r.Engine) {
			engines = append(engines, r.Engine)
		}
	}
	p := plot.New()
	unit := ""
	if len(w.Results) > 0 {
		unit = w.Results[0].Unit
		if w.Results[0].Higher {
			unit += " (higher is better)"
		} else {
			unit += " (lower is better)"
		}
	}
	p.Title.Text = w.Name
	p.Title.Padding = vg.Points(8)
	p.Y.Label.Text = unit
	p.Y.Tick.Marker = labelTicks{}
	p.Y.Min = 0
	p.Y.Max = headroom(tallest)
	legend := plot.NewLegend()
	legend.Top, legend.Left = true, true
	legend.Padding = vg.Points(3)
	width := vg.Points(16)
	for i, e := range engines {
		vals := make(plotter.Values, len(cases))
		for j, c := range cases {
			for _, r := range w.Results {
				if r.Engine == e && r.Case == c && len(r.Runs) > 0 {
					vals[j] = r.Median
				}
			}
		}
		bars, err := plotter.NewBarChart(vals, width)
		if err != nil {
			return err
		}
		bars.Color = palette[i%len(palette)]
		bars.LineStyle.Width = 0
		bars.Offset = width * vg.Length(float64(i)-float64(len(engines)-1)/2)
		p.Add(bars)
		legend.Add(e, bars)
	}
	names := slices.Clone(cases)
	for i, c := range names {
		if c == "" {
			names[i] = w.Name
		}
	}
	p.NominalX(names...)

	legendWidth := vg.Length(0)
	for _, e := range engines {
		legendWidth = max(legendWidth, legend.ThumbnailWidth+legend.TextStyle.Rectangle("  "+e).Max.X)
	}
	legendWidth += vg.Points(16)
	plotWidth := vg.Points(max(360, float64(len(cases)*(len(engines)+2))*16+120))
	// Notes go under the plot, one a line, left-aligned.
	noteStyle := p.X.Tick.Label
	noteStyle.XAlign, noteStyle.YAlign = draw.XLeft, draw.YBottom
	for i, n := range notes {
		notes[i] = "not shown: " + n
		plotWidth = max(plotWidth, noteStyle.Rectangle(notes[i]).Max.X+vg.Points(16)-legendWidth)
	}
	lineHeight := noteStyle.Rectangle("Xy").Max.Y * 1.3
	notesHeight := vg.Length(0)
	if len(notes) > 0 {
		notesHeight = lineHeight*vg.Length(len(notes)) + vg.Points(8)
	}
	wd, ht := plotWidth+legendWidth, vg.Points(300)+notesHeight

	var c vg.CanvasWriterTo
	switch filepath.Ext(file) {
	case ".svg":
		c = vgsvg.New(wd, ht)
	case ".png":
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(wd, ht), vgimg.UseDPI(144))}
	default:
		return fmt.Errorf("%s: plots are .svg or .png", file)
	}
	dc := draw.New(c)
	p.Draw(draw.Crop(dc, 0, -legendWidth, notesHeight, 0))
	for i, n := range notes {
		dc.FillText(noteStyle, vg.Point{X: vg.Points(8), Y: vg.Points(4) + lineHeight*vg.Length(len(notes)-1-i)}, n)
	}
	// Beside the plot, level with the top of its data area, below the title.
	titleHeight := p.Title.TextStyle.Rectangle(p.Title.Text).Max.Y + p.Title.Padding
	legend.Draw(draw.Crop(dc, plotWidth+vg.Points(8), 0, 0, -titleHeight-vg.Points(4)))
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// headroom is the top of the value axis for bars up to tallest: a tenth
// above it, so that the tallest bar does not touch the frame.
func headroom(tallest float64) float64 {
	if tallest <= 0 {
		return 1
	}
	return tallest * 1.1
}

// labelTicks are plot.DefaultTicks labelled for people: thousands
// separators, and as many decimals as the step between ticks needs, no
// more (not 0.30000000000000004, nor 1e+06, nor 0.2 for 0.25).
type labelTicks struct{}

func (labelTicks) Ticks(lo, hi float64) []plot.Tick {
	ticks := plot.DefaultTicks{}.Ticks(lo, hi)
	// The fewest decimals that write every labelled value exactly.
	decimals := 0
	for ; decimals < 9; decimals++ {
		exact := true
		for _, t := range ticks {
			scaled := t.Value * math.Pow10(decimals)
			if t.Label != "" && math.Abs(scaled-math.Round(scaled)) > 1e-6*max(1, math.Abs(scaled)) {
				exact = false
			}
		}
		if exact {
			break
		}
	}
	for i, t := range ticks {
		if t.Label != "" {
			ticks[i].Label = tickLabel(t.Value, decimals)
		}
	}
	return ticks
}

// tickLabel writes v with decimals decimals and thousands separators.
func tickLabel(v float64, decimals int) string {
	s := strconv.FormatFloat(math.Abs(v), 'f', decimals, 64)
	whole, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	if v < 0 && strings.Trim(s, "0.") != "" {
		b.WriteByte('-')
	}
	for i, c := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if frac != "" {
		b.WriteString("." + frac)
	}
	return b.String()
}
