package main

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"io"
	"math"
	"sort"
	"strconv"
)

// series is one line of a chart.
type series struct {
	name string
	pts  []scalingPoint
}

// chart is a line chart with a log-10 x axis (capsule counts), or a
// linear one when linearX is set (node counts), and a linear y axis from
// zero.
type chart struct {
	title, xLabel, yLabel string
	linearX               bool
	series                []series
}

var (
	white   = color.RGBA{255, 255, 255, 255}
	ink     = color.RGBA{30, 30, 30, 255}
	grid    = color.RGBA{225, 225, 225, 255}
	palette = []color.RGBA{
		{31, 119, 180, 255}, // blue
		{214, 39, 40, 255},  // red
		{44, 160, 44, 255},  // green
		{148, 103, 189, 255},
	}
)

// Layout of a chart, in pixels.
const (
	chartW, chartH = 800, 480
	marginL        = 90
	marginR        = 30
	marginT        = 60
	marginB        = 60
)

// colorOf is the color of series i.
func colorOf(i int) color.RGBA { return palette[i%len(palette)] }

// render draws the chart.
func (c *chart) render() *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, chartW, chartH))
	fillRect(img, 0, 0, chartW, chartH, white)
	x0, x1 := marginL, chartW-marginR
	y0, y1 := chartH-marginB, marginT

	var xs []float64
	maxY := 0.0
	for _, s := range c.series {
		for _, p := range s.pts {
			xs = append(xs, p.x)
			maxY = math.Max(maxY, p.y)
		}
	}
	sort.Float64s(xs)
	if len(xs) == 0 {
		drawText(img, x0, chartH/2, "no data", 2, ink)
		return img
	}
	px := c.xAxis(xs[0], xs[len(xs)-1], x0, x1)
	step := niceStep(maxY / 5)
	top := math.Ceil(maxY*1.05/step) * step
	if top == 0 {
		top = 1
	}
	py := func(y float64) int { return y0 - int(math.Round(y/top*float64(y0-y1))) }

	// Grid and y ticks.
	for v := 0.0; v <= top+step/2; v += step {
		y := py(v)
		fillRect(img, x0, y, x1-x0, 1, grid)
		label := compact(v)
		drawText(img, x0-8-textWidth(label, 2), y-glyphH, label, 2, ink)
	}
	// x ticks at the data points.
	seen := map[float64]bool{}
	for _, x := range xs {
		if seen[x] {
			continue
		}
		seen[x] = true
		X := px(x)
		fillRect(img, X, y1, 1, y0-y1, grid)
		fillRect(img, X, y0, 1, 6, ink)
		label := compact(x)
		drawText(img, X-textWidth(label, 2)/2, y0+12, label, 2, ink)
	}
	// Axes.
	fillRect(img, x0, y1, 2, y0-y1+1, ink)
	fillRect(img, x0, y0, x1-x0, 2, ink)
	// Titles.
	drawText(img, (chartW-textWidth(c.title, 3))/2, 14, c.title, 3, ink)
	drawText(img, (x0+x1-textWidth(c.xLabel, 2))/2, chartH-24, c.xLabel, 2, ink)
	drawText(img, 8, y1-26, c.yLabel, 2, ink)
	// Lines, points, legend.
	for i, s := range c.series {
		col := colorOf(i)
		for j, p := range s.pts {
			X, Y := px(p.x), py(p.y)
			fillRect(img, X-4, Y-4, 9, 9, col)
			if j > 0 {
				drawLine(img, px(s.pts[j-1].x), py(s.pts[j-1].y), X, Y, col)
			}
		}
		ly := y1 + 8 + i*22
		fillRect(img, x1-200, ly+2, 24, 10, col)
		drawText(img, x1-168, ly, s.name, 2, ink)
	}
	return img
}

// xAxis maps x values between lo and hi to pixel columns between x0 and
// x1 (10 pixels in from each end), on a log-10 scale or, with linearX, a
// linear one. A single x value sits in the middle.
func (c *chart) xAxis(lo, hi float64, x0, x1 int) func(float64) int {
	scale := func(x float64) float64 { return math.Log10(math.Max(x, 1)) }
	if c.linearX {
		scale = func(x float64) float64 { return x }
	}
	l0, l1 := scale(lo), scale(hi)
	if l1 == l0 {
		l0, l1 = l0-1, l1+1
	}
	return func(x float64) int {
		return x0 + int(math.Round((scale(x)-l0)/(l1-l0)*float64(x1-x0-20))) + 10
	}
}

// drawLine draws a 3-pixel-wide line (Bresenham with a square pen).
func drawLine(img *image.RGBA, xa, ya, xb, yb int, c color.RGBA) {
	dx, dy := abs(float64(xb-xa)), -abs(float64(yb-ya))
	sx, sy := 1, 1
	if xa > xb {
		sx = -1
	}
	if ya > yb {
		sy = -1
	}
	e := dx + dy
	for {
		fillRect(img, xa-1, ya-1, 3, 3, c)
		if xa == xb && ya == yb {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			xa += sx
		}
		if e2 <= dx {
			e += dx
			ya += sy
		}
	}
}

// niceStep rounds raw up to 1, 2 or 5 times a power of ten.
func niceStep(raw float64) float64 {
	if raw <= 0 || math.IsNaN(raw) || math.IsInf(raw, 0) {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*p >= raw*(1-1e-9) {
			return m * p
		}
	}
	return 10 * p
}

// compact formats an axis value: 1500000 as 1.5m, 250000 as 250k.
func compact(v float64) string {
	switch a := abs(v); {
	case a >= 1e6:
		return trim(v/1e6) + "m"
	case a >= 1e3:
		return trim(v/1e3) + "k"
	default:
		return trim(v)
	}
}

func trim(v float64) string { return strconv.FormatFloat(math.Round(v*100)/100, 'f', -1, 64) }

// writePNG renders c as a PNG.
func (c *chart) writePNG(w io.Writer) error {
	if err := png.Encode(w, c.render()); err != nil {
		return fmt.Errorf("benchplot: png: %w", err)
	}
	return nil
}
