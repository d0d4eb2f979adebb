//! Hand-written SVG figures: scatter plots with the line y = x, per-image dot plots, confusion
//! heat maps. Every label is escaped; points carry a `<title>` so a browser shows the image name on
//! hover without JavaScript.
//!
//! Why not plotters: these four chart types are a few dozen lines each, the output is small and
//! deterministic, text goes through one escaping function, and the report crate stays free of font
//! and backend dependencies.

use crate::html::escape;

/// Colours for series, chosen to stay distinguishable (Okabe–Ito palette, with its yellow, too
/// faint on white, replaced by a wine red).
/// Paul Tol's muted colours extend it to twelve.
pub const PALETTE: [&str; 12] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9", "#882255", "#000000",
    "#117733", "#332288", "#AA4499", "#999933",
];

/// `s` cut to `max` characters with an ellipsis (figure titles; the full text stays in the
/// figure's `aria-label`).
fn clip(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(max.saturating_sub(1)).collect();
        t.push('…');
        t
    }
}

/// The colour of series `i`.
pub fn colour(i: usize) -> &'static str {
    PALETTE[i % PALETTE.len()]
}

/// A point with its hover label.
#[derive(Debug, Clone)]
pub struct Point {
    pub x: f64,
    pub y: f64,
    pub label: String,
}

/// "Nice" tick values covering `0..=max`.
fn ticks(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / n as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| span / s <= n as f64)
        .unwrap_or(10.0 * mag);
    let first = (lo / step).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    (first..=last)
        .map(|k| {
            let v = k as f64 * step;
            if v.abs() < 1e-12 {
                0.0
            } else {
                v
            }
        })
        .collect::<Vec<f64>>()
}

struct Frame {
    w: f64,
    h: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    x0: f64,
    x1: f64,
    y0: f64,
    y1: f64,
}

impl Frame {
    fn px(&self, x: f64) -> f64 {
        self.left
            + (x - self.x0) / (self.x1 - self.x0).max(1e-12) * (self.w - self.left - self.right)
    }
    fn py(&self, y: f64) -> f64 {
        self.h
            - self.bottom
            - (y - self.y0) / (self.y1 - self.y0).max(1e-12) * (self.h - self.top - self.bottom)
    }

    fn axes(&self, out: &mut String, title: &str, xlabel: &str, ylabel: &str) {
        let (l, r, t, b) = (
            self.left,
            self.w - self.right,
            self.top,
            self.h - self.bottom,
        );
        out.push_str(&format!(
            "<rect x=\"{l}\" y=\"{t}\" width=\"{}\" height=\"{}\" fill=\"#fff\" stroke=\"#999\"/>",
            r - l,
            b - t
        ));
        let xt = ticks(self.x0, self.x1, 5);
        let xd = tick_decimals(&xt);
        for v in xt {
            let x = self.px(v);
            out.push_str(&format!(
                "<line x1=\"{x:.1}\" y1=\"{b}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#999\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"tk\">{v:.xd$}</text>",
                b + 4.0,
                b + 15.0,
            ));
        }
        let yt = ticks(self.y0, self.y1, 5);
        let yd = tick_decimals(&yt);
        for v in yt {
            let y = self.py(v);
            out.push_str(&format!(
                "<line x1=\"{}\" y1=\"{y:.1}\" x2=\"{l}\" y2=\"{y:.1}\" stroke=\"#999\"/><text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" class=\"tk\">{v:.yd$}</text>",
                l - 4.0,
                l - 6.0,
                y + 3.5,
            ));
        }
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"14\" text-anchor=\"middle\" class=\"tt\">{}</text>",
            (l + r) / 2.0,
            escape(title)
        ));
        out.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"lb\">{}</text>",
            (l + r) / 2.0,
            b + 28.0,
            escape(xlabel)
        ));
        out.push_str(&format!(
            "<text transform=\"translate(12,{:.1}) rotate(-90)\" text-anchor=\"middle\" class=\"lb\">{}</text>",
            (t + b) / 2.0,
            escape(ylabel)
        ));
    }
}

fn open_svg(w: f64, h: f64, label: &str) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" role=\"img\" aria-label=\"{}\" class=\"fig\">",
        escape(label)
    )
}

/// Predicted against true values of one method, with the line y = x.
pub fn scatter_identity(
    title: &str,
    xlabel: &str,
    ylabel: &str,
    pts: &[Point],
    colour: &str,
    shared_max: Option<f64>,
) -> String {
    // Axes shared with the other methods' panels when given, so panels compare at a glance.
    let max = shared_max.unwrap_or_else(|| {
        pts.iter()
            .flat_map(|p| [p.x, p.y])
            .filter(|v| v.is_finite())
            .fold(1.0f64, f64::max)
    }) * 1.05;
    let f = Frame {
        w: 280.0,
        h: 270.0,
        left: 44.0,
        right: 10.0,
        top: 22.0,
        bottom: 34.0,
        x0: 0.0,
        x1: max,
        y0: 0.0,
        y1: max,
    };
    let mut s = open_svg(f.w, f.h, title);
    f.axes(&mut s, &clip(title, 38), xlabel, ylabel);
    s.push_str(&format!(
        "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#555\" stroke-dasharray=\"4 3\"><title>y = x</title></line>",
        f.px(0.0),
        f.py(0.0),
        f.px(max),
        f.py(max)
    ));
    for p in pts.iter().filter(|p| p.x.is_finite() && p.y.is_finite()) {
        s.push_str(&format!(
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3.2\" fill=\"{colour}\" fill-opacity=\"0.75\" class=\"pt\"><title>{}</title></circle>",
            f.px(p.x),
            f.py(p.y),
            escape(&p.label)
        ));
    }
    s.push_str("</svg>");
    s
}

/// Several series of points on shared axes (e.g. signed count error against true count, or Dice
/// per image), with a legend and an optional horizontal reference line.
pub fn multi_series(
    title: &str,
    xlabel: &str,
    ylabel: &str,
    series: &[(String, Vec<Point>)],
    colours: &[&str],
    y_range: Option<(f64, f64)>,
    reference_y: Option<f64>,
) -> String {
    let all: Vec<&Point> = series
        .iter()
        .flat_map(|(_, p)| p)
        .filter(|p| p.x.is_finite() && p.y.is_finite())
        .collect();
    let (mut x0, mut x1) = all
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.x), b.max(p.x))
        });
    let (mut y0, mut y1) = match y_range {
        Some(r) => r,
        None => all
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
                (a.min(p.y), b.max(p.y))
            }),
    };
    if let Some(r) = reference_y {
        y0 = y0.min(r);
        y1 = y1.max(r);
    }
    if !x0.is_finite() {
        (x0, x1) = (0.0, 1.0);
    }
    if !y0.is_finite() {
        (y0, y1) = (0.0, 1.0);
    }
    if x1 - x0 < 1e-9 {
        x1 = x0 + 1.0;
    }
    if y1 - y0 < 1e-9 {
        y1 = y0 + 1.0;
    }
    let pad = (x1 - x0) * 0.04;
    let legend_h = 16.0 * series.len() as f64;
    let f = Frame {
        w: 560.0,
        h: 280.0 + legend_h,
        left: 50.0,
        right: 12.0,
        top: 22.0,
        bottom: 40.0 + legend_h,
        x0: x0 - pad,
        x1: x1 + pad,
        y0,
        y1: y1 + (y1 - y0) * 0.03,
    };
    let mut s = open_svg(f.w, f.h, title);
    f.axes(&mut s, title, xlabel, ylabel);
    if let Some(r) = reference_y {
        s.push_str(&format!(
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#555\" stroke-dasharray=\"4 3\"/>",
            f.px(f.x0),
            f.py(r),
            f.px(f.x1),
            f.py(r)
        ));
    }
    for (i, (name, pts)) in series.iter().enumerate() {
        let c = colours.get(i).copied().unwrap_or(colour(i));
        for p in pts.iter().filter(|p| p.x.is_finite() && p.y.is_finite()) {
            s.push_str(&format!(
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{c}\" fill-opacity=\"0.75\" class=\"pt\"><title>{}: {}</title></circle>",
                f.px(p.x),
                f.py(p.y),
                escape(name),
                escape(&p.label)
            ));
        }
        let ly = f.h - legend_h + 16.0 * i as f64 + 2.0;
        s.push_str(&format!(
            "<circle cx=\"{}\" cy=\"{ly:.1}\" r=\"4\" fill=\"{c}\"/><text x=\"{}\" y=\"{:.1}\" class=\"lb\">{}</text>",
            f.left + 6.0,
            f.left + 16.0,
            ly + 4.0,
            escape(name)
        ));
    }
    s.push_str("</svg>");
    s
}

/// A confusion matrix as a heat map (rows = truth, columns = prediction), shaded by row fraction.
pub fn confusion_heatmap(
    title: &str,
    rows: &[String],
    cols: &[String],
    counts: &[Vec<usize>],
) -> String {
    let cell = 30.0;
    let label_w = 190.0;
    let top = 200.0;
    let w = label_w + cell * cols.len() as f64 + 10.0;
    let h = top + cell * rows.len() as f64 + 10.0;
    let mut s = open_svg(w, h, title);
    s.push_str(&format!(
        "<text x=\"4\" y=\"14\" class=\"tt\">{}</text><text x=\"4\" y=\"{}\" class=\"lb\">rows: true class; columns: predicted</text>",
        escape(title),
        top - 4.0
    ));
    for (j, c) in cols.iter().enumerate() {
        let x = label_w + cell * j as f64 + cell / 2.0;
        s.push_str(&format!(
            "<text transform=\"translate({x:.1},{}) rotate(-55)\" class=\"tk\">{}</text>",
            top - 18.0,
            escape(c)
        ));
    }
    for (i, r) in rows.iter().enumerate() {
        let y = top + cell * i as f64;
        s.push_str(&format!(
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\" class=\"tk\">{}</text>",
            label_w - 6.0,
            y + cell / 2.0 + 4.0,
            escape(r)
        ));
        let total: usize = counts.get(i).map(|r| r.iter().sum()).unwrap_or(0);
        for (j, &n) in counts
            .get(i)
            .map(|r| r.as_slice())
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let frac = if total > 0 {
                n as f64 / total as f64
            } else {
                0.0
            };
            let x = label_w + cell * j as f64;
            let fill = if i == j { "0,114,178" } else { "213,94,0" };
            s.push_str(&format!(
                "<rect x=\"{x:.1}\" y=\"{y:.1}\" width=\"{cell}\" height=\"{cell}\" fill=\"rgba({fill},{:.3})\" stroke=\"#ccc\"><title>{} → {}: {n}</title></rect>",
                0.08 + 0.85 * frac,
                escape(r),
                escape(cols.get(j).map(String::as_str).unwrap_or("")),
            ));
            if n > 0 {
                s.push_str(&format!(
                    "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"tk\">{n}</text>",
                    x + cell / 2.0,
                    y + cell / 2.0 + 4.0
                ));
            }
        }
    }
    s.push_str("</svg>");
    s
}

/// One row of an [`interval_chart`]: a method's estimate with its interval.
#[derive(Debug, Clone)]
pub struct IntervalRow {
    pub label: String,
    pub value: f64,
    pub interval: Option<(f64, f64)>,
    pub colour: &'static str,
    /// Drawn bold and marked "best".
    pub best: bool,
}

/// Estimates with their intervals as dots and whiskers, one row per method (best first), on an
/// axis fitted to the values and intervals (so differences between 0.95 and 0.99 show).
pub fn interval_chart(title: &str, xlabel: &str, rows: &[IntervalRow]) -> String {
    let vals: Vec<f64> = rows
        .iter()
        .flat_map(|r| {
            let (lo, hi) = r.interval.unwrap_or((r.value, r.value));
            [r.value, lo, hi]
        })
        .filter(|v| v.is_finite())
        .collect();
    let (mut lo, mut hi) = vals
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
    if !lo.is_finite() {
        (lo, hi) = (0.0, 1.0);
    }
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let (x0, x1) = (lo - pad, hi + pad);
    let left = 220.0;
    let row_h = 22.0;
    let f = Frame {
        w: 560.0,
        h: 60.0 + row_h * rows.len() as f64,
        left,
        right: 16.0,
        top: 22.0,
        bottom: 34.0,
        x0,
        x1,
        y0: 0.0,
        y1: rows.len() as f64,
    };
    let mut s = open_svg(f.w, f.h, title);
    // Axes with x ticks only (rows are methods, not numbers).
    let (l, r, t, b) = (f.left, f.w - f.right, f.top, f.h - f.bottom);
    s.push_str(&format!(
        "<rect x=\"{l}\" y=\"{t}\" width=\"{}\" height=\"{}\" fill=\"#fff\" stroke=\"#999\"/>",
        r - l,
        b - t
    ));
    let tk = ticks(x0, x1, 5);
    // As many decimals as the ticks need (a Dice axis from 0.985 to 0.990 needs three).
    let decimals = tick_decimals(&tk);
    for v in tk {
        let x = f.px(v);
        s.push_str(&format!(
            "<line x1=\"{x:.1}\" y1=\"{b}\" x2=\"{x:.1}\" y2=\"{}\" stroke=\"#999\"/><text x=\"{x:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"tk\">{v:.decimals$}</text>",
            b + 4.0,
            b + 15.0,
        ));
    }
    s.push_str(&format!(
        "<text x=\"{:.1}\" y=\"14\" text-anchor=\"middle\" class=\"tt\">{}</text><text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" class=\"lb\">{}</text>",
        (l + r) / 2.0,
        escape(&clip(title, 80)),
        (l + r) / 2.0,
        b + 28.0,
        escape(xlabel)
    ));
    for (i, row) in rows.iter().enumerate() {
        let y = t + row_h * (i as f64 + 0.5) + 4.0;
        let weight = if row.best { " font-weight=\"700\"" } else { "" };
        let mark = if row.best { " (best)" } else { "" };
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" class=\"lb\"{weight}>{}</text>",
            l - 6.0,
            y + 4.0,
            escape(&format!(
                "{}{mark}",
                clip(&row.label, if row.best { 24 } else { 31 })
            ))
        ));
        let tip = match row.interval {
            Some((a, c)) => format!("{}: {:.3} [{a:.3}, {c:.3}]", row.label, row.value),
            None => format!("{}: {:.3} (no interval)", row.label, row.value),
        };
        if let Some((a, c)) = row.interval {
            s.push_str(&format!(
                "<line x1=\"{:.1}\" y1=\"{y:.1}\" x2=\"{:.1}\" y2=\"{y:.1}\" stroke=\"{}\" stroke-width=\"2\"/>",
                f.px(a),
                f.px(c),
                row.colour
            ));
        }
        s.push_str(&format!(
            "<circle cx=\"{:.1}\" cy=\"{y:.1}\" r=\"{}\" fill=\"{}\"><title>{}</title></circle>",
            f.px(row.value),
            if row.best { 5.0 } else { 4.0 },
            row.colour,
            escape(&tip)
        ));
    }
    s.push_str("</svg>");
    s
}

/// One cell of [`by_method_and_dataset`]: a method's estimate on one dataset.
#[derive(Debug, Clone)]
pub struct GridCell {
    pub value: f64,
    pub interval: Option<(f64, f64)>,
    /// The dataset's best method (drawn bold).
    pub best: bool,
}

/// One score of many methods on many datasets: a row per method, a column per dataset, in each
/// cell a bar from 0 to the value with its interval, on the column's own scale (datasets' errors
/// differ by orders of magnitude), and the value written next to it. A method a dataset did not
/// score shows "–".
pub fn by_method_and_dataset(
    title: &str,
    datasets: &[String],
    methods: &[(String, &'static str)],
    cells: &[Vec<Option<GridCell>>],
) -> String {
    let (left, col_w, row_h, top) = (220.0, 170.0, 22.0, 44.0);
    let w = left + col_w * datasets.len() as f64 + 16.0;
    let h = top + row_h * methods.len() as f64 + 12.0;
    let mut s = open_svg(w, h, title);
    s.push_str(&format!(
        "<text x=\"{:.1}\" y=\"14\" text-anchor=\"middle\" class=\"tt\">{}</text>",
        w / 2.0,
        escape(&clip(title, 100))
    ));
    let bar_w = col_w - 70.0;
    for (j, d) in datasets.iter().enumerate() {
        let x0 = left + col_w * j as f64;
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"34\" text-anchor=\"middle\" class=\"lb\">{}</text>",
            x0 + col_w / 2.0,
            escape(&clip(d, 26))
        ));
        let max = cells
            .iter()
            .filter_map(|row| row.get(j).and_then(|c| c.as_ref()))
            .map(|c| c.interval.map_or(c.value, |(_, hi)| hi.max(c.value)))
            .filter(|v| v.is_finite())
            .fold(0.0f64, f64::max);
        let scale = if max > 0.0 { bar_w / max } else { 0.0 };
        for (i, row) in cells.iter().enumerate() {
            let y = top + row_h * i as f64;
            let (method, colour) = &methods[i];
            match row.get(j).and_then(|c| c.as_ref()) {
                None => s.push_str(&format!(
                    "<text x=\"{:.1}\" y=\"{:.1}\" class=\"tk\">–</text>",
                    x0 + 4.0,
                    y + 15.0
                )),
                Some(c) => {
                    let len = (c.value.max(0.0) * scale).clamp(0.0, bar_w);
                    let stroke = if c.best {
                        " stroke=\"#000\" stroke-width=\"1.5\""
                    } else {
                        ""
                    };
                    let tip = match c.interval {
                        Some((a, b)) => format!("{method} on {d}: {:.3} [{a:.3}, {b:.3}]", c.value),
                        None => format!("{method} on {d}: {:.3} (no interval)", c.value),
                    };
                    s.push_str(&format!(
                        "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{len:.1}\" height=\"12\" fill=\"{colour}\"{stroke}><title>{}</title></rect>",
                        x0 + 4.0,
                        y + 5.0,
                        escape(&tip)
                    ));
                    if let Some((a, b)) = c.interval {
                        let (xa, xb) = (
                            x0 + 4.0 + (a.max(0.0) * scale).clamp(0.0, bar_w),
                            x0 + 4.0 + (b.max(0.0) * scale).clamp(0.0, bar_w),
                        );
                        s.push_str(&format!(
                            "<line x1=\"{xa:.1}\" y1=\"{:.1}\" x2=\"{xb:.1}\" y2=\"{:.1}\" stroke=\"#333\"/>",
                            y + 11.0,
                            y + 11.0
                        ));
                    }
                    let weight = if c.best { " font-weight=\"700\"" } else { "" };
                    s.push_str(&format!(
                        "<text x=\"{:.1}\" y=\"{:.1}\" class=\"tk\"{weight}>{}</text>",
                        x0 + 8.0 + bar_w,
                        y + 15.0,
                        fmt_value(c.value)
                    ));
                }
            }
        }
    }
    for (i, (method, _)) in methods.iter().enumerate() {
        s.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\" class=\"lb\">{}</text>",
            left - 6.0,
            top + row_h * i as f64 + 15.0,
            escape(&clip(method, 31))
        ));
    }
    s.push_str("</svg>");
    s
}

/// A value with three significant decimals below 10, fewer above (0.241, 4.66, 236.8).
fn fmt_value(v: f64) -> String {
    if !v.is_finite() {
        "–".into()
    } else if v.abs() < 10.0 {
        format!("{v:.3}")
    } else if v.abs() < 100.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.1}")
    }
}

/// The fewest decimals (up to 6) that write every tick exactly enough to tell it from the others.
fn tick_decimals(ticks: &[f64]) -> usize {
    (0..=6)
        .find(|&d| {
            let scale = 10f64.powi(d as i32);
            ticks
                .iter()
                .all(|v| ((v * scale).round() / scale - v).abs() < 1e-9 * scale.max(1.0))
        })
        .unwrap_or(6)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tick_decimals_tell_ticks_apart() {
        assert_eq!(tick_decimals(&[0.0, 10.0, 20.0]), 0);
        assert_eq!(tick_decimals(&[0.95, 0.96, 0.97]), 2);
        assert_eq!(tick_decimals(&[0.986, 0.987, 0.988]), 3);
        assert_eq!(tick_decimals(&[2.5, 5.0, 7.5]), 1);
    }

    #[test]
    fn ticks_cover_range() {
        let t = ticks(0.0, 100.0, 5);
        assert_eq!(t.first(), Some(&0.0));
        assert!(t.last().copied().unwrap_or(0.0) >= 80.0);
        assert!(t.len() <= 7);
    }

    #[test]
    fn labels_are_escaped() {
        let svg = scatter_identity(
            "<b>",
            "x",
            "y",
            &[Point {
                x: 1.0,
                y: 2.0,
                label: "<script>alert(1)</script>".into(),
            }],
            "#000",
            None,
        );
        assert!(!svg.contains("<script>"));
        assert!(!svg.contains("<b>"));
        assert!(svg.contains("&lt;script&gt;"));
        assert!(svg.contains("y = x"));
    }
}
