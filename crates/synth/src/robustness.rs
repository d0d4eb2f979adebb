//! Degradation curves: a method ([`Method`]: a [`Segmenter`], or a [`Counter`] such as a
//! vision-language model) scored over perturbation × severity (or over crowding), with real
//! images as anchor points.
//!
//! The results are plain serde structs ([`RobustnessResults`], [`Curve`], [`CurvePoint`]) so that
//! the report can draw them; [`write_csv`] and [`curves_svg`] give a table and a standalone chart.
//!
//! Per image: foreground Dice against the truth foreground (when known and the method segments),
//! count error `predicted − true` (when the count is known) and instance F1 at IoU 0.5 (when
//! instance labels are known, e.g. generated images, and the method segments). A point averages them over its images; an image the method
//! fails on is counted in `n_failed` and left out of the means.

use crate::error::{Result, SynthError};
use crate::generate::{generate, CellGenConfig};
use crate::perturb::PerturbationKind;
use crate::truth::Truth;
use mica_core::{Counter, Image, Segmenter};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

/// A method under test: one that segments (and so also counts) or one that only counts.
#[derive(Clone, Copy)]
pub enum Method<'a> {
    Segmenter(&'a dyn Segmenter),
    Counter(&'a dyn Counter),
}

impl Method<'_> {
    /// The method's name (`Segmenter::name` or `Counter::name`).
    pub fn name(&self) -> String {
        match self {
            Method::Segmenter(s) => s.name(),
            Method::Counter(c) => c.name(),
        }
    }
}

impl<'a> From<&'a dyn Segmenter> for Method<'a> {
    fn from(s: &'a dyn Segmenter) -> Self {
        Method::Segmenter(s)
    }
}

/// One image with its truth.
#[derive(Debug, Clone)]
pub struct Case {
    pub id: String,
    pub image: Image,
    pub truth: Truth,
}

/// Scores of one image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ImageScore {
    pub id: String,
    pub dice: Option<f64>,
    /// Predicted minus true count.
    pub count_error: Option<f64>,
    /// The true and the predicted count.
    #[serde(default)]
    pub count_true: Option<f64>,
    #[serde(default)]
    pub count_pred: Option<f64>,
    pub instance_f1_iou50: Option<f64>,
    /// Why the method failed on this image.
    pub error: Option<String>,
}

/// The mean scores at one severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub severity: f64,
    pub n_images: usize,
    pub n_failed: usize,
    pub mean_dice: Option<f64>,
    /// Mean |predicted − true| count.
    pub count_mae: Option<f64>,
    /// Mean (predicted − true) count.
    pub count_bias: Option<f64>,
    pub mean_instance_f1_iou50: Option<f64>,
}

/// A real image set placed on a curve (e.g. BBBC005 F23 at blur diameter 23).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Anchor {
    pub label: String,
    pub point: CurvePoint,
    /// The curve's Dice interpolated at the anchor's severity, and anchor minus curve.
    pub curve_dice: Option<f64>,
    pub dice_minus_curve: Option<f64>,
    /// The curve's count MAE interpolated at the anchor's severity, and anchor minus curve.
    pub curve_count_mae: Option<f64>,
    pub count_mae_minus_curve: Option<f64>,
}

/// One line of a degradation chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Curve {
    /// The method's name ([`Method::name`]).
    pub method: String,
    /// `blur`, `gaussian-noise`, … or `crowding`.
    pub axis: String,
    /// What distinguishes lines on the same axis, e.g. `clustering 0.25`; empty if nothing.
    pub series: String,
    /// What the severity means (e.g. "Gaussian diameter d in px (sigma = d/4)").
    pub severity_unit: String,
    /// Where the images came from (generator preset or dataset path).
    pub source: String,
    pub points: Vec<CurvePoint>,
    pub anchors: Vec<Anchor>,
}

/// Everything one `mica robustness` run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobustnessResults {
    pub seed: u64,
    pub curves: Vec<Curve>,
}

/// Runs the method on one image and scores it.
pub fn score_case(method: Method<'_>, case: &Case) -> ImageScore {
    let mut s = ImageScore {
        id: case.id.clone(),
        dice: None,
        count_error: None,
        count_true: case.truth.count,
        count_pred: None,
        instance_f1_iou50: None,
        error: None,
    };
    let seg = match method {
        Method::Segmenter(seg) => seg,
        Method::Counter(c) => {
            match c.count(&case.image) {
                Ok(n) => {
                    s.count_pred = Some(n);
                    s.count_error = case.truth.count.map(|t| n - t);
                }
                Err(e) => s.error = Some(e.to_string()),
            }
            return s;
        }
    };
    let out = match seg.segment(&case.image) {
        Ok(o) => o,
        Err(e) => {
            s.error = Some(e.to_string());
            return s;
        }
    };
    // Scored by the measurement layer, as a study and `mica eval` score.
    use mica_metrics::measure::{score_segmentation, TruthKind};
    if let Some(fg) = &case.truth.foreground {
        let truth = fg.connected_components(mica_core::Connectivity::Eight);
        match score_segmentation(&truth, TruthKind::BinaryMask, &out.labels, &out.foreground) {
            Ok(sc) => s.dice = Some(sc.dice),
            Err(e) => s.error = Some(e.to_string()),
        }
    }
    s.count_pred = Some(out.count as f64);
    s.count_error = case.truth.count.map(|c| out.count as f64 - c);
    if let Some(l) = &case.truth.labels {
        match score_segmentation(l, TruthKind::InstanceLabels, &out.labels, &out.foreground) {
            Ok(sc) => {
                s.instance_f1_iou50 = sc
                    .instances
                    .per_threshold
                    .iter()
                    .find(|t| (t.iou_threshold - 0.5).abs() < 1e-9)
                    .and_then(|t| t.f1)
            }
            Err(e) => s.error = Some(e.to_string()),
        }
    }
    s
}

/// Averages image scores into a point at `severity`.
pub fn summarise(severity: f64, scores: &[ImageScore]) -> CurvePoint {
    use mica_metrics::measure::{count_summary, mean_estimate, Metric};
    let ok: Vec<&ImageScore> = scores.iter().filter(|s| s.error.is_none()).collect();
    // The measurement layer's summaries (no intervals are shown on curves).
    let config = mica_metrics::bootstrap::BootstrapConfig::default();
    let mean = |v: Vec<f64>| mean_estimate(&v, &config).ok().and_then(|e| e.value);
    let pairs: Vec<(f64, f64)> = ok
        .iter()
        .filter_map(|s| s.count_true.zip(s.count_pred))
        .collect();
    let counts = count_summary(&pairs, 0, &config).ok();
    let count = |m: Metric| counts.as_ref().and_then(|c| c.get(m)).and_then(|e| e.value);
    CurvePoint {
        severity,
        n_images: scores.len(),
        n_failed: scores.len() - ok.len(),
        mean_dice: mean(ok.iter().filter_map(|s| s.dice).collect()),
        count_mae: count(Metric::Mae),
        count_bias: count(Metric::Bias),
        mean_instance_f1_iou50: mean(ok.iter().filter_map(|s| s.instance_f1_iou50).collect()),
    }
}

/// Seed of image `i` at severity index `j`: the same image gets the same perturbation noise at
/// every severity only through `seed` and `i`, so curves are smooth in severity.
fn case_seed(seed: u64, i: usize) -> u64 {
    seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// Scores `seg` on every case perturbed by `kind` at each severity; debris takes its intensities
/// from `texture` when one is given (see [`crate::Perturbation::apply_with_texture`]).
///
/// # Errors
/// [`SynthError::Param`] for a severity out of range for the kind; a perturbation that fails on
/// an image (e.g. a truth of another size) is an error naming the image.
pub fn perturbation_curve(
    method: Method<'_>,
    cases: &[Case],
    kind: PerturbationKind,
    severities: &[f64],
    seed: u64,
    source: &str,
    texture: Option<&Image>,
) -> Result<Curve> {
    let mut points = Vec::with_capacity(severities.len());
    for &sev in severities {
        let p = kind.at(sev)?;
        let scores = cases
            .par_iter()
            .enumerate()
            .map(|(i, c)| {
                let out = p
                    .apply_with_texture(&c.image, &c.truth, case_seed(seed, i), texture)
                    .map_err(|e| SynthError::OnImage {
                        id: c.id.clone(),
                        source: Box::new(e),
                    })?;
                Ok(score_case(
                    method,
                    &Case {
                        id: c.id.clone(),
                        image: out.image,
                        truth: out.truth,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        points.push(summarise(sev, &scores));
    }
    Ok(Curve {
        method: method.name(),
        axis: kind.name().to_string(),
        series: String::new(),
        severity_unit: kind.severity_unit().to_string(),
        source: source.to_string(),
        points,
        anchors: Vec::new(),
    })
}

/// Scores `seg` on generated images at each count (the severity) with clustering probability
/// `clustering`, `images_per_point` images per count.
///
/// # Errors
/// As [`generate()`] (e.g. [`SynthError::Crowded`]).
pub fn crowding_curve(
    method: Method<'_>,
    base: &CellGenConfig,
    counts: &[usize],
    clustering: f64,
    images_per_point: usize,
    seed: u64,
    source: &str,
) -> Result<Curve> {
    let mut points = Vec::with_capacity(counts.len());
    for &count in counts {
        let cfg = CellGenConfig {
            count,
            clustering_probability: clustering,
            ..base.clone()
        };
        let scores = (0..images_per_point)
            .into_par_iter()
            .map(|i| {
                let g = generate(&cfg, case_seed(seed ^ count as u64, i))?;
                Ok(score_case(
                    method,
                    &Case {
                        id: format!("generated-c{count}-{i}"),
                        truth: g.truth(),
                        image: g.image,
                    },
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        points.push(summarise(count as f64, &scores));
    }
    Ok(Curve {
        method: method.name(),
        axis: "crowding".to_string(),
        series: format!("clustering {clustering}"),
        severity_unit: "cells per image".to_string(),
        source: source.to_string(),
        points,
        anchors: Vec::new(),
    })
}

/// Linear interpolation of `f(point)` at `x` along the points (sorted by severity); `None`
/// outside their range or where a neighbour lacks the value.
pub fn interpolate(
    points: &[CurvePoint],
    x: f64,
    f: impl Fn(&CurvePoint) -> Option<f64>,
) -> Option<f64> {
    let mut pts: Vec<(f64, f64)> = points
        .iter()
        .filter_map(|p| f(p).map(|v| (p.severity, v)))
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0));
    for w in pts.windows(2) {
        let ((x0, y0), (x1, y1)) = (w[0], w[1]);
        if x >= x0 && x <= x1 {
            return Some(if x1 > x0 {
                y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            } else {
                y0
            });
        }
    }
    pts.iter().find(|p| p.0 == x).map(|p| p.1)
}

/// Scores real images that are already at `severity` (e.g. BBBC005 F23 at blur 23, or the
/// BBBC005 images with 48 cells at crowding 48) into one point.
pub fn anchor_point(method: Method<'_>, severity: f64, cases: &[Case]) -> CurvePoint {
    let scores: Vec<ImageScore> = cases.par_iter().map(|c| score_case(method, c)).collect();
    summarise(severity, &scores)
}

/// Places an anchor `point` on `curve`, with its differences to the curve interpolated at the
/// anchor's severity.
pub fn place_anchor(curve: &mut Curve, label: &str, point: CurvePoint) {
    let curve_dice = interpolate(&curve.points, point.severity, |p| p.mean_dice);
    let curve_count_mae = interpolate(&curve.points, point.severity, |p| p.count_mae);
    curve.anchors.push(Anchor {
        label: label.to_string(),
        dice_minus_curve: point.mean_dice.zip(curve_dice).map(|(a, b)| a - b),
        count_mae_minus_curve: point.count_mae.zip(curve_count_mae).map(|(a, b)| a - b),
        curve_dice,
        curve_count_mae,
        point,
    });
}

/// [`anchor_point`] then [`place_anchor`].
pub fn add_anchor(
    curve: &mut Curve,
    method: Method<'_>,
    label: &str,
    severity: f64,
    cases: &[Case],
) {
    let point = anchor_point(method, severity, cases);
    place_anchor(curve, label, point);
}

fn opt(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.4}")).unwrap_or_default()
}

/// Writes one CSV row per curve point and anchor:
/// `method,axis,series,kind,label,severity,severity_unit,n_images,n_failed,mean_dice,count_mae,count_bias,mean_instance_f1_iou50,source`.
///
/// # Errors
/// The writer's I/O error.
pub fn write_csv(results: &RobustnessResults, mut w: impl std::io::Write) -> std::io::Result<()> {
    writeln!(
        w,
        "method,axis,series,kind,label,severity,severity_unit,n_images,n_failed,mean_dice,count_mae,count_bias,mean_instance_f1_iou50,source"
    )?;
    let q = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    for c in &results.curves {
        let rows = c.points.iter().map(|p| ("curve", String::new(), p)).chain(
            c.anchors
                .iter()
                .map(|a| ("anchor", a.label.clone(), &a.point)),
        );
        for (kind, label, p) in rows {
            writeln!(
                w,
                "{},{},{},{kind},{},{},{},{},{},{},{},{},{},{}",
                q(&c.method),
                q(&c.axis),
                q(&c.series),
                q(&label),
                p.severity,
                q(&c.severity_unit),
                p.n_images,
                p.n_failed,
                opt(p.mean_dice),
                opt(p.count_mae),
                opt(p.count_bias),
                opt(p.mean_instance_f1_iou50),
                q(&c.source)
            )?;
        }
    }
    Ok(())
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A standalone SVG with two panels for the curves of one axis: mean Dice (or instance F1 when
/// no Dice is known) and count MAE against severity; anchors drawn as open diamonds.
pub fn curves_svg(curves: &[&Curve]) -> String {
    const W: f64 = 640.0;
    const PH: f64 = 220.0;
    const L: f64 = 60.0;
    const R: f64 = 20.0;
    const COLORS: [&str; 6] = [
        "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b",
    ];
    let all_x: Vec<f64> = curves
        .iter()
        .flat_map(|c| {
            c.points
                .iter()
                .map(|p| p.severity)
                .chain(c.anchors.iter().map(|a| a.point.severity))
        })
        .collect();
    let xmin = all_x.iter().cloned().fold(f64::INFINITY, f64::min).min(0.0);
    let xmax = all_x
        .iter()
        .cloned()
        .fold(f64::NEG_INFINITY, f64::max)
        .max(xmin + 1.0);
    let use_dice = curves
        .iter()
        .any(|c| c.points.iter().any(|p| p.mean_dice.is_some()));
    let top_metric = |p: &CurvePoint| {
        if use_dice {
            p.mean_dice
        } else {
            p.mean_instance_f1_iou50
        }
    };
    let mae_max = curves
        .iter()
        .flat_map(|c| c.points.iter().chain(c.anchors.iter().map(|a| &a.point)))
        .filter_map(|p| p.count_mae)
        .fold(1.0, f64::max);
    let title = curves.first().map(|c| c.axis.clone()).unwrap_or_default();
    let unit = curves
        .first()
        .map(|c| c.severity_unit.clone())
        .unwrap_or_default();
    let mut s = String::new();
    let legend_h = 16.0 * curves.len().max(1) as f64;
    let h = 2.0 * PH + 100.0 + legend_h;
    s += &format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">robustness: {}</text>\n",
        W / 2.0,
        esc(&title)
    );
    type Metric<'a> = Box<dyn Fn(&CurvePoint) -> Option<f64> + 'a>;
    let panels: [(&str, f64, f64, Metric); 2] = [
        (
            if use_dice {
                "mean Dice"
            } else {
                "instance F1 @ IoU 0.5"
            },
            30.0,
            1.0,
            Box::new(top_metric),
        ),
        (
            "count MAE",
            30.0 + PH + 20.0,
            mae_max * 1.05,
            Box::new(|p: &CurvePoint| p.count_mae),
        ),
    ];
    for (name, top, ymax, f) in panels.iter() {
        let (top, ymax) = (*top, *ymax);
        let px = |x: f64| L + (x - xmin) / (xmax - xmin) * (W - L - R);
        let py = |y: f64| top + PH - 20.0 - (y / ymax).clamp(0.0, 1.0) * (PH - 30.0);
        s += &format!(
            "<line x1=\"{L}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{L}\" y1=\"{}\" x2=\"{L}\" y2=\"{}\" stroke=\"black\"/>\n",
            py(0.0), W - R, py(0.0), py(0.0), py(ymax)
        );
        for k in 0..=4 {
            let y = ymax * k as f64 / 4.0;
            s += &format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{:.2}</text>\n<line x1=\"{L}\" y1=\"{1}\" x2=\"{}\" y2=\"{1}\" stroke=\"#ddd\"/>\n",
                L - 4.0, py(y), y, W - R
            );
            let x = xmin + (xmax - xmin) * k as f64 / 4.0;
            s += &format!(
                "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{:.3}</text>\n",
                px(x),
                py(0.0) + 13.0,
                (x * 1000.0).round() / 1000.0
            );
        }
        s += &format!(
            "<text x=\"14\" y=\"{}\" transform=\"rotate(-90 14 {0})\" text-anchor=\"middle\">{}</text>\n",
            top + PH / 2.0 - 10.0,
            esc(name)
        );
        for (ci, c) in curves.iter().enumerate() {
            let col = COLORS[ci % COLORS.len()];
            let pts: Vec<String> = c
                .points
                .iter()
                .filter_map(|p| f(p).map(|v| format!("{:.1},{:.1}", px(p.severity), py(v))))
                .collect();
            if !pts.is_empty() {
                s += &format!(
                    "<polyline fill=\"none\" stroke=\"{col}\" stroke-width=\"2\" points=\"{}\"/>\n",
                    pts.join(" ")
                );
                for p in pts {
                    let (x, y) = p.split_once(',').unwrap_or(("0", "0"));
                    s += &format!("<circle cx=\"{x}\" cy=\"{y}\" r=\"3\" fill=\"{col}\"/>\n");
                }
            }
            for a in &c.anchors {
                if let Some(v) = f(&a.point) {
                    let (x, y) = (px(a.point.severity), py(v));
                    s += &format!(
                        "<path d=\"M{x:.1},{:.1} L{:.1},{y:.1} L{x:.1},{:.1} L{:.1},{y:.1} Z\" fill=\"none\" stroke=\"{col}\" stroke-width=\"2\"><title>{}</title></path>\n",
                        y - 6.0, x + 6.0, y + 6.0, x - 6.0, esc(&a.label)
                    );
                }
            }
        }
    }
    s += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">severity: {}</text>\n",
        W / 2.0,
        2.0 * PH + 60.0,
        esc(&unit)
    );
    for (ci, c) in curves.iter().enumerate() {
        let col = COLORS[ci % COLORS.len()];
        let y = 2.0 * PH + 78.0 + 16.0 * ci as f64;
        let x = L;
        let label = if c.series.is_empty() {
            c.method.clone()
        } else {
            format!("{} ({})", c.method, c.series)
        };
        s += &format!("<rect x=\"{x}\" y=\"{}\" width=\"12\" height=\"4\" fill=\"{col}\"/><text x=\"{}\" y=\"{}\">{}</text>\n", y - 4.0, x + 16.0, y, esc(&label));
    }
    if curves.iter().any(|c| !c.anchors.is_empty()) {
        s += &format!(
            "<text x=\"{L}\" y=\"{}\">◇ = real images at that severity (anchors)</text>\n",
            2.0 * PH + 82.0 + legend_h
        );
    }
    s += "</svg>\n";
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use mica_core::{BinaryMask, LabelImage, MethodError, Segmentation};

    /// Thresholds at a fixed level and labels connected components.
    struct Threshold(f32);
    impl Segmenter for Threshold {
        fn name(&self) -> String {
            format!("threshold:{}", self.0)
        }
        fn settings(&self) -> serde_json::Value {
            serde_json::json!({ "threshold": self.0 })
        }
        fn segment(&self, image: &Image) -> std::result::Result<Segmentation, MethodError> {
            let m = BinaryMask::from_image_above(image, self.0);
            Ok(Segmentation::from_labels(
                m.connected_components(mica_core::Connectivity::Eight),
            ))
        }
    }

    fn cases(n: usize) -> Vec<Case> {
        (0..n)
            .map(|i| {
                let cfg = CellGenConfig {
                    width: 160,
                    height: 120,
                    count: 6,
                    radius_px: 8.0,
                    ..CellGenConfig::default()
                };
                let g = generate(&cfg, i as u64).unwrap();
                Case {
                    id: format!("g{i}"),
                    truth: g.truth(),
                    image: g.image,
                }
            })
            .collect()
    }

    #[test]
    fn a_perfect_method_scores_one_and_noise_hurts_a_threshold() {
        struct Oracle(LabelImage);
        impl Segmenter for Oracle {
            fn name(&self) -> String {
                "oracle".into()
            }
            fn settings(&self) -> serde_json::Value {
                serde_json::json!("oracle")
            }
            fn segment(&self, _: &Image) -> std::result::Result<Segmentation, MethodError> {
                Ok(Segmentation::from_labels(self.0.clone()))
            }
        }
        let c = cases(1);
        let s = score_case(
            Method::Segmenter(&Oracle(c[0].truth.labels.clone().unwrap())),
            &c[0],
        );
        assert_eq!(
            (s.dice, s.count_error, s.instance_f1_iou50),
            (Some(1.0), Some(0.0), Some(1.0))
        );

        let c = cases(3);
        let curve = perturbation_curve(
            Method::Segmenter(&Threshold(70.0)),
            &c,
            PerturbationKind::GaussianNoise,
            &[0.0, 40.0],
            1,
            "test",
            None,
        )
        .unwrap();
        let (clean, noisy) = (&curve.points[0], &curve.points[1]);
        assert_eq!(clean.n_images, 3);
        assert!(clean.mean_dice.unwrap() > 0.8, "{clean:?}");
        assert!(
            noisy.count_mae.unwrap() > clean.count_mae.unwrap(),
            "{noisy:?} vs {clean:?}"
        );
    }

    /// A counter that answers the number of pixels above a threshold divided by a cell's area
    /// (so blur changes its answer), or fails on images it is told to fail on.
    struct PixelCounter {
        area: f64,
        fail_over: f64,
    }

    impl Counter for PixelCounter {
        fn name(&self) -> String {
            "pixels".into()
        }
        fn count(&self, image: &Image) -> std::result::Result<f64, mica_core::MethodError> {
            let v = image.intensity_f32();
            let bright = v.iter().filter(|&&x| x > 70.0).count() as f64;
            if bright > self.fail_over {
                return Err("answer without a number".into());
            }
            Ok((bright / self.area).round())
        }
    }

    #[test]
    fn counters_get_count_errors_only() {
        let c = cases(3);
        let m = PixelCounter {
            area: 800.0,
            fail_over: f64::INFINITY,
        };
        let curve = perturbation_curve(
            Method::Counter(&m),
            &c,
            PerturbationKind::Blur,
            &[0.0, 16.0],
            1,
            "test",
            None,
        )
        .unwrap();
        assert_eq!(curve.method, "pixels");
        for p in &curve.points {
            assert_eq!((p.n_images, p.n_failed), (3, 0));
            assert!(p.count_mae.is_some() && p.mean_dice.is_none());
            assert!(p.mean_instance_f1_iou50.is_none());
        }
        // Its answers are scored against the truth: the count error of image 0 by hand.
        let want = (c[0]
            .image
            .intensity_f32()
            .iter()
            .filter(|&&x| x > 70.0)
            .count() as f64
            / 800.0)
            .round()
            - c[0].truth.count.unwrap();
        let s = score_case(Method::Counter(&m), &c[0]);
        assert_eq!(s.count_error, Some(want));
        // A failed answer is counted, not scored.
        let failing = PixelCounter {
            area: 800.0,
            fail_over: 0.0,
        };
        let p = anchor_point(Method::Counter(&failing), 0.0, &c);
        assert_eq!((p.n_failed, p.count_mae), (3, None));
    }

    #[test]
    fn crowding_curve_has_one_point_per_count() {
        let base = CellGenConfig {
            width: 160,
            height: 120,
            radius_px: 8.0,
            ..CellGenConfig::default()
        };
        let c = crowding_curve(
            Method::Segmenter(&Threshold(70.0)),
            &base,
            &[1, 10],
            0.5,
            2,
            3,
            "test",
        )
        .unwrap();
        assert_eq!(c.points.len(), 2);
        assert_eq!(c.points[1].severity, 10.0);
        assert!(c.points.iter().all(|p| p.n_images == 2 && p.n_failed == 0));
    }

    #[test]
    fn interpolation_and_anchor_differences() {
        let pt = |s: f64, d: f64| CurvePoint {
            severity: s,
            n_images: 1,
            n_failed: 0,
            mean_dice: Some(d),
            count_mae: None,
            count_bias: None,
            mean_instance_f1_iou50: None,
        };
        let pts = vec![pt(0.0, 1.0), pt(10.0, 0.5)];
        assert_eq!(interpolate(&pts, 4.0, |p| p.mean_dice), Some(0.8));
        assert_eq!(interpolate(&pts, 20.0, |p| p.mean_dice), None);
    }

    #[test]
    fn csv_and_svg_are_written() {
        let c = cases(2);
        let mut curve = perturbation_curve(
            Method::Segmenter(&Threshold(70.0)),
            &c,
            PerturbationKind::Blur,
            &[0.0, 8.0],
            1,
            "test",
            None,
        )
        .unwrap();
        add_anchor(
            &mut curve,
            Method::Segmenter(&Threshold(70.0)),
            "real",
            4.0,
            &c,
        );
        assert!(curve.anchors[0].curve_dice.is_some());
        let r = RobustnessResults {
            seed: 1,
            curves: vec![curve],
        };
        let mut buf = Vec::new();
        write_csv(&r, &mut buf).unwrap();
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(text.lines().count(), 1 + 2 + 1);
        assert!(text.contains(",anchor,\"real\",4,"));
        let svg = curves_svg(&[&r.curves[0]]);
        assert!(svg.starts_with("<svg") && svg.contains("polyline") && svg.contains("<path"));
    }
}
