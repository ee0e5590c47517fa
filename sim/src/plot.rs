//! A tiny SVG line-chart writer: axes, ticks, labels, a legend and one
//! polyline per series, with optional base-2 logarithmic axes.
//!
//! No dependency and no randomness: the same chart renders to the same bytes
//! (every coordinate is printed with one decimal, every tick label by
//! [`number_label`]). Points that an axis cannot show (not finite, or not
//! positive on a log axis) are left out of their polyline.
//!
//! ```
//! use sim::plot::{Chart, Series};
//! let mut chart = Chart::new("Throughput", "writers", "writes/s");
//! chart.x_log2 = true;
//! chart.series.push(Series::new("sync", vec![(1.0, 60.0), (2.0, 90.0), (4.0, 110.0)]));
//! let svg = chart.to_svg();
//! assert!(svg.starts_with("<svg") && svg.contains("<polyline"));
//! ```

use std::fmt::Write as _;

/// Width of the whole picture, px.
const WIDTH_PX: f64 = 720.0;
/// Height of the whole picture, px.
const HEIGHT_PX: f64 = 420.0;
/// Space left of the plot area (y tick labels and the y label), px.
const MARGIN_LEFT_PX: f64 = 80.0;
/// Space right of the plot area (the legend), px.
const MARGIN_RIGHT_PX: f64 = 190.0;
/// Space above the plot area (the title), px.
const MARGIN_TOP_PX: f64 = 40.0;
/// Space below the plot area (x tick labels and the x label), px.
const MARGIN_BOTTOM_PX: f64 = 56.0;
/// Most ticks on a linear axis.
const TICKS_MAX: usize = 8;
/// Line colours, used in series order (then again from the start).
const PALETTE: [&str; 8] = ["#d62728", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

/// One line of a chart.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    /// The legend's name for it.
    pub name: String,
    /// Its points `(x, y)` in data units, drawn in this order.
    pub points: Vec<(f64, f64)>,
    /// Drawn dashed (for example a measured overlay next to simulated lines).
    pub dashed: bool,
    /// Colour index into the palette (`None`: the series' position).
    pub colour: Option<usize>,
}

impl Series {
    /// A solid series in its position's colour.
    pub fn new(name: &str, points: Vec<(f64, f64)>) -> Series {
        Series { name: name.to_string(), points, dashed: false, colour: None }
    }
}

/// A line chart. Build it, push series, render with [`Chart::to_svg`].
#[derive(Clone, Debug, PartialEq)]
pub struct Chart {
    /// Title above the plot.
    pub title: String,
    /// Label under the x axis.
    pub x_label: String,
    /// Label beside the y axis.
    pub y_label: String,
    /// Base-2 logarithmic x axis (ticks at powers of two).
    pub x_log2: bool,
    /// Base-2 logarithmic y axis (ticks at powers of two).
    pub y_log2: bool,
    /// The lines.
    pub series: Vec<Series>,
}

/// The visible range of one axis, in axis units (log2 of data on a log axis).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Range {
    low: f64,
    high: f64,
    log2: bool,
}

impl Range {
    /// The axis unit of a data value, if the axis can show it.
    fn unit(self, value: f64) -> Option<f64> {
        match (self.log2, value.is_finite()) {
            (_, false) => None,
            (true, _) if value <= 0.0 => None,
            (true, _) => Some(value.log2()),
            (false, _) => Some(value),
        }
    }

    /// Where `unit` falls between the ends, 0 at `low` and 1 at `high`.
    fn fraction(self, unit: f64) -> f64 {
        (unit - self.low) / (self.high - self.low)
    }

    /// Tick positions in axis units, low to high.
    fn ticks(self) -> Vec<f64> {
        if self.log2 {
            let (first, last) = (self.low.ceil() as i64, self.high.floor() as i64);
            let stride = ((last - first) / TICKS_MAX as i64 + 1).max(1);
            return (first..=last).step_by(stride as usize).map(|exponent| exponent as f64).collect();
        }
        let step = nice_step((self.high - self.low) / (TICKS_MAX - 1) as f64);
        let first = (self.low / step).ceil() as i64;
        let last = (self.high / step + 1e-9).floor() as i64;
        (first..=last).map(|index| index as f64 * step).collect()
    }

    /// The data value shown at axis unit `unit`.
    fn value(self, unit: f64) -> f64 {
        if self.log2 {
            unit.exp2()
        } else {
            unit
        }
    }
}

impl Chart {
    /// An empty chart with linear axes.
    pub fn new(title: &str, x_label: &str, y_label: &str) -> Chart {
        Chart {
            title: title.to_string(),
            x_label: x_label.to_string(),
            y_label: y_label.to_string(),
            x_log2: false,
            y_log2: false,
            series: Vec::new(),
        }
    }

    /// The plot area: left, top, width, height, px.
    pub fn plot_area() -> (f64, f64, f64, f64) {
        let width = WIDTH_PX - MARGIN_LEFT_PX - MARGIN_RIGHT_PX;
        let height = HEIGHT_PX - MARGIN_TOP_PX - MARGIN_BOTTOM_PX;
        (MARGIN_LEFT_PX, MARGIN_TOP_PX, width, height)
    }

    /// Where the data point `(x, y)` is drawn, px, if the axes can show it.
    pub fn position(&self, x: f64, y: f64) -> Option<(f64, f64)> {
        let (x_range, y_range) = self.ranges();
        let (left, top, width, height) = Chart::plot_area();
        let x = x_range.fraction(x_range.unit(x)?);
        let y = y_range.fraction(y_range.unit(y)?);
        Some((left + x * width, top + height - y * height))
    }

    /// The ranges of both axes: the data's, widened to nice ends (and to 0
    /// on a linear y axis whose data are all positive).
    fn ranges(&self) -> (Range, Range) {
        let x = Range { low: 0.0, high: 0.0, log2: self.x_log2 };
        let y = Range { low: 0.0, high: 0.0, log2: self.y_log2 };
        let shown: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|series| series.points.iter())
            .filter_map(|(px, py)| Some((x.unit(*px)?, y.unit(*py)?)))
            .collect();
        let x_range = axis_range(shown.iter().map(|point| point.0), self.x_log2, false);
        let y_range = axis_range(shown.iter().map(|point| point.1), self.y_log2, true);
        (x_range, y_range)
    }

    /// The chart as an SVG document.
    pub fn to_svg(&self) -> String {
        let (x_range, y_range) = self.ranges();
        let (left, top, width, height) = Chart::plot_area();
        let mut svg = String::new();
        let _ = writeln!(
            svg,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH_PX:.0}\" height=\"{HEIGHT_PX:.0}\" \
             viewBox=\"0 0 {WIDTH_PX:.0} {HEIGHT_PX:.0}\" font-family=\"sans-serif\" font-size=\"12\">"
        );
        let _ =
            writeln!(svg, "<rect x=\"0\" y=\"0\" width=\"{WIDTH_PX:.0}\" height=\"{HEIGHT_PX:.0}\" fill=\"white\"/>");
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"24.0\" text-anchor=\"middle\" font-size=\"15\">{}</text>",
            left + width / 2.0,
            escape(&self.title)
        );
        self.write_axes(&mut svg, x_range, y_range);
        for (index, series) in self.series.iter().enumerate() {
            self.write_series(&mut svg, index, series);
        }
        let _ = writeln!(
            svg,
            "<rect x=\"{left:.1}\" y=\"{top:.1}\" width=\"{width:.1}\" height=\"{height:.1}\" fill=\"none\" stroke=\"#333\"/>"
        );
        self.write_legend(&mut svg);
        svg.push_str("</svg>\n");
        svg
    }

    fn write_axes(&self, svg: &mut String, x_range: Range, y_range: Range) {
        let (left, top, width, height) = Chart::plot_area();
        let bottom = top + height;
        for unit in x_range.ticks() {
            let x = left + x_range.fraction(unit) * width;
            let _ =
                writeln!(svg, "<line x1=\"{x:.1}\" y1=\"{top:.1}\" x2=\"{x:.1}\" y2=\"{bottom:.1}\" stroke=\"#ddd\"/>");
            let _ = writeln!(
                svg,
                "<text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
                bottom + 18.0,
                number_label(x_range.value(unit))
            );
        }
        for unit in y_range.ticks() {
            let y = bottom - y_range.fraction(unit) * height;
            let right = left + width;
            let _ =
                writeln!(svg, "<line x1=\"{left:.1}\" y1=\"{y:.1}\" x2=\"{right:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>");
            let _ = writeln!(
                svg,
                "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
                left - 6.0,
                y + 4.0,
                number_label(y_range.value(unit))
            );
        }
        let x_scale = if self.x_log2 { " (log2 scale)" } else { "" };
        let y_scale = if self.y_log2 { " (log2 scale)" } else { "" };
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}{x_scale}</text>",
            left + width / 2.0,
            bottom + 42.0,
            escape(&self.x_label)
        );
        let (label_x, label_y) = (18.0, top + height / 2.0);
        let _ = writeln!(
            svg,
            "<text x=\"{label_x:.1}\" y=\"{label_y:.1}\" text-anchor=\"middle\" \
             transform=\"rotate(-90 {label_x:.1} {label_y:.1})\">{}{y_scale}</text>",
            escape(&self.y_label)
        );
    }

    fn write_series(&self, svg: &mut String, index: usize, series: &Series) {
        let colour = PALETTE[series.colour.unwrap_or(index) % PALETTE.len()];
        let positions: Vec<(f64, f64)> = series.points.iter().filter_map(|(x, y)| self.position(*x, *y)).collect();
        let points: Vec<String> = positions.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
        let dash = if series.dashed { " stroke-dasharray=\"6 4\"" } else { "" };
        let _ = writeln!(
            svg,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash} points=\"{}\"><title>{}</title></polyline>",
            points.join(" "),
            escape(&series.name)
        );
        for (x, y) in positions {
            let _ = writeln!(svg, "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"3\" fill=\"{colour}\"/>");
        }
    }

    fn write_legend(&self, svg: &mut String) {
        let (left, top, width, _) = Chart::plot_area();
        let x = left + width + 16.0;
        for (index, series) in self.series.iter().enumerate() {
            let colour = PALETTE[series.colour.unwrap_or(index) % PALETTE.len()];
            let y = top + 12.0 + index as f64 * 20.0;
            let dash = if series.dashed { " stroke-dasharray=\"6 4\"" } else { "" };
            let _ = writeln!(
                svg,
                "<line x1=\"{x:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>",
                x + 24.0
            );
            let _ = writeln!(svg, "<text x=\"{:.1}\" y=\"{:.1}\">{}</text>", x + 30.0, y + 4.0, escape(&series.name));
        }
    }
}

/// The range of one axis over the axis units `units`: nice ends on a linear
/// axis (from 0 when `from_zero` and the data are positive), whole powers of
/// two on a log axis; a single value is widened so the range is not empty.
fn axis_range(units: impl Iterator<Item = f64>, log2: bool, from_zero: bool) -> Range {
    let (mut low, mut high) =
        units.fold((f64::INFINITY, f64::NEG_INFINITY), |(low, high), unit| (low.min(unit), high.max(unit)));
    if low > high {
        (low, high) = (0.0, 1.0); // Nothing to show.
    }
    if log2 {
        let (low, high) = (low.floor(), high.ceil());
        let high = if high > low { high } else { low + 1.0 };
        return Range { low, high, log2 };
    }
    if from_zero && low >= 0.0 {
        low = 0.0;
    }
    if high <= low {
        high = low + 1.0;
    }
    let step = nice_step((high - low) / (TICKS_MAX - 1) as f64);
    let low = (low / step).floor() * step;
    let high = (high / step - 1e-9).ceil() * step;
    Range { low, high, log2 }
}

/// The smallest of 1, 2 or 5 times a power of ten that is at least `raw`.
fn nice_step(raw: f64) -> f64 {
    assert!(raw > 0.0 && raw.is_finite(), "a tick step is positive: {raw}");
    let magnitude = 10f64.powi(raw.log10().floor() as i32);
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|factor| factor * magnitude)
        .find(|step| *step >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

/// A tick label: an integer when the value is one, else at most four
/// decimals without trailing zeros.
pub fn number_label(value: f64) -> String {
    if (value - value.round()).abs() < 1e-9 {
        return format!("{:.0}", value.round());
    }
    let text = format!("{value:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `text` with the characters XML gives meaning to escaped.
pub fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

#[cfg(test)]
mod tests;
