//! The report's PNG plots, drawn with `plotters`.
//!
//! Text is rendered by plotters' pure-Rust `ab_glyph` path from DejaVu Sans embedded in the binary
//! (the `dejavu` crate; Bitstream Vera licence), never from system fonts: plotters' `ttf` feature
//! (font-kit + fontconfig) is not compiled in, so the plots look the same on a bare CI machine.

use super::log::EpochRecord;
use super::metrics::{ConfusionMatrix, Quadrant};
use crate::error::{Error, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;
use std::sync::OnceLock;

/// The family name every text style here uses (registered from the embedded font).
pub(super) const FONT: &str = "sans-serif";

/// Registers the embedded font once per process.
fn fonts() -> Result<()> {
    static DONE: OnceLock<bool> = OnceLock::new();
    let ok = *DONE.get_or_init(|| {
        plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular()).is_ok()
            && plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()).is_ok()
    });
    if ok { Ok(()) } else { Err(Error::Invalid("the embedded DejaVu Sans font did not load".into())) }
}

fn draw_err(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::file(path, format!("cannot draw the plot: {e}"))
}

/// Opens a white canvas on `path`, runs `draw` on it, and writes the PNG.
pub(super) fn canvas(
    path: &Path,
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<BitMapBackend<'_>, Shift>) -> std::result::Result<(), Box<dyn std::error::Error>>,
) -> Result<()> {
    fonts()?;
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE).map_err(|e| draw_err(path, e))?;
    draw(&root).map_err(|e| draw_err(path, e))?;
    root.present().map_err(|e| draw_err(path, e))
}

/// The series' legend in the upper right corner, in `size`-point text.
fn legend<'a, CT: plotters::coord::CoordTranslate>(
    chart: &mut ChartContext<'a, BitMapBackend<'a>, CT>,
    size: u32,
) -> std::result::Result<(), Box<dyn std::error::Error>> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, size))
        .draw()?;
    Ok(())
}

/// One epoch of the loss curves.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossPoint {
    pub epoch: usize,
    pub train: f64,
    pub val: f64,
}

/// The loss curves of a run's log.
pub fn loss_points(records: &[EpochRecord]) -> Vec<LossPoint> {
    records.iter().map(|r| LossPoint { epoch: r.epoch, train: r.train.loss, val: r.val.loss }).collect()
}

/// Train and validation loss per epoch; the best epoch (if given) is marked on the validation curve.
pub fn loss_curves(path: &Path, points: &[LossPoint], best_epoch: Option<usize>, loss_name: &str) -> Result<()> {
    let finite = points.iter().flat_map(|p| [p.train, p.val]).filter(|x| x.is_finite());
    let ymax = finite.fold(0.0f64, f64::max).max(1e-6) * 1.08;
    let last = points.iter().map(|p| p.epoch).max().unwrap_or(1).max(2) as f64;
    canvas(path, (900, 600), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(format!("Loss per epoch ({loss_name})"), (FONT, 28))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(80)
            .build_cartesian_2d(0.5f64..last + 0.5, 0f64..ymax)?;
        chart
            .configure_mesh()
            .x_desc("epoch")
            .y_desc("mean loss")
            .label_style((FONT, 18))
            .axis_desc_style((FONT, 20))
            .x_label_formatter(&|x| format!("{x:.0}"))
            .draw()?;
        let line = |f: fn(&LossPoint) -> f64| -> Vec<(f64, f64)> {
            points.iter().filter(|p| f(p).is_finite()).map(|p| (p.epoch as f64, f(p))).collect()
        };
        chart
            .draw_series(LineSeries::new(line(|p| p.train), BLUE.stroke_width(3)))?
            .label("train")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], BLUE.stroke_width(3)));
        chart
            .draw_series(LineSeries::new(line(|p| p.val), RED.stroke_width(3)))?
            .label("validation")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], RED.stroke_width(3)));
        if let Some(b) = best_epoch.and_then(|e| points.iter().find(|p| p.epoch == e)) {
            chart
                .draw_series(std::iter::once(Circle::new((b.epoch as f64, b.val), 7, RED.filled())))?
                .label(format!("best epoch {}", b.epoch))
                .legend(|(x, y)| Circle::new((x + 12, y), 6, RED.filled()));
        }
        legend(&mut chart, 18)?;
        Ok(())
    })
}

/// Predicted against true values of one dimension, with the identity line and the 0.5
/// quadrant boundary. `title` is the caption (e.g. "Valence (test, n = 332)").
pub fn predicted_vs_true(path: &Path, title: &str, dim: &str, truth: &[f64], pred: &[f64]) -> Result<()> {
    let all = truth.iter().chain(pred).copied().filter(|x| x.is_finite());
    let lo = all.clone().fold(0.0f64, f64::min) - 0.02;
    let hi = all.fold(1.0f64, f64::max) + 0.02;
    canvas(path, (700, 700), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 26))
            .margin(20)
            .x_label_area_size(55)
            .y_label_area_size(70)
            .build_cartesian_2d(lo..hi, lo..hi)?;
        chart
            .configure_mesh()
            .x_desc(format!("true {dim}"))
            .y_desc(format!("predicted {dim}"))
            .label_style((FONT, 18))
            .axis_desc_style((FONT, 20))
            .draw()?;
        let grey = RGBColor(120, 120, 120);
        chart.draw_series(std::iter::once(PathElement::new(vec![(lo, lo), (hi, hi)], grey.stroke_width(2))))?;
        let faint = grey.mix(0.5).stroke_width(1);
        chart.draw_series([
            PathElement::new(vec![(0.5, lo), (0.5, hi)], faint),
            PathElement::new(vec![(lo, 0.5), (hi, 0.5)], faint),
        ])?;
        chart.draw_series(
            truth
                .iter()
                .zip(pred)
                .filter(|(t, p)| t.is_finite() && p.is_finite())
                .map(|(&t, &p)| Circle::new((t, p), 3, BLUE.mix(0.55).filled())),
        )?;
        Ok(())
    })
}

/// The 4×4 confusion matrix: rows the true (metadata) quadrant, columns the predicted one; each
/// cell shows its count and its share of the row, shaded by that share.
pub fn confusion_matrix(path: &Path, title: &str, cm: &ConfusionMatrix) -> Result<()> {
    canvas(path, (720, 680), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 26))
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(70)
            .build_cartesian_2d(0f64..4f64, 0f64..4f64)?;
        // Row t is drawn at y = 3 − t so Q1 is on top. The quadrant names are drawn by hand at
        // the cell centres (the mesh's ticks fall on the cell borders).
        chart
            .configure_mesh()
            .disable_mesh()
            .x_labels(5)
            .y_labels(5)
            .x_label_formatter(&|_| String::new())
            .y_label_formatter(&|_| String::new())
            .x_desc("predicted quadrant")
            .y_desc("true quadrant (metadata)")
            .axis_desc_style((FONT, 20))
            .draw()?;
        let label = TextStyle::from((FONT, 22).into_font()).color(&BLACK);
        for q in Quadrant::ALL {
            let k = q.index() as f64;
            let (x, y) = chart.backend_coord(&(k + 0.5, 0.0));
            root.draw(&Text::new(q.name(), (x, y + 14), label.pos(Pos::new(HPos::Center, VPos::Top))))?;
            let (x, y) = chart.backend_coord(&(0.0, 3.5 - k));
            root.draw(&Text::new(q.name(), (x - 14, y), label.pos(Pos::new(HPos::Right, VPos::Center))))?;
        }
        for t in 0..4 {
            let row: u64 = cm.counts[t].iter().sum();
            for p in 0..4 {
                let c = cm.counts[t][p];
                let share = if row > 0 { c as f64 / row as f64 } else { 0.0 };
                let shade = |full: u8| (255.0 - share * (255.0 - full as f64)).round() as u8;
                let fill = RGBColor(shade(20), shade(70), shade(160));
                let (x, y) = (p as f64, (3 - t) as f64);
                chart.draw_series(std::iter::once(Rectangle::new([(x, y), (x + 1.0, y + 1.0)], fill.filled())))?;
                let ink = if share > 0.5 { WHITE } else { BLACK };
                let centre = Pos::new(HPos::Center, VPos::Center);
                let big = TextStyle::from((FONT, 30).into_font()).color(&ink).pos(centre);
                let small = TextStyle::from((FONT, 18).into_font()).color(&ink).pos(centre);
                let at = (x + 0.5, y + 0.5);
                chart.draw_series(std::iter::once(
                    EmptyElement::at(at)
                        + Text::new(c.to_string(), (0, -12), big)
                        + Text::new(format!("{:.0}%", 100.0 * share), (0, 18), small),
                ))?;
            }
        }
        Ok(())
    })
}

/// One window of a song's timeline.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TimelinePoint {
    pub start_s: f64,
    pub end_s: f64,
    pub valence: f64,
    pub arousal: f64,
}

/// A song's emotion over time: left, its path through the valence-arousal plane (quadrant
/// boundaries at 0.5, the first window marked); right, valence and arousal against the windows'
/// centres.
pub fn timeline_plot(path: &Path, song: &str, points: &[TimelinePoint]) -> Result<()> {
    let va = points.iter().flat_map(|p| [p.valence, p.arousal]).filter(|x| x.is_finite());
    let lo = va.clone().fold(0.0f64, f64::min) - 0.02;
    let hi = va.fold(1.0f64, f64::max) + 0.02;
    let centre = |p: &TimelinePoint| (p.start_s + p.end_s) / 2.0;
    let t_max = points.iter().map(|p| p.end_s).fold(1.0f64, f64::max);
    canvas(path, (1300, 620), |root| {
        let (left, right) = root.split_horizontally(620);
        let mut plane = ChartBuilder::on(&left)
            .caption(format!("{song}: valence-arousal path"), (FONT, 24))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(lo..hi, lo..hi)?;
        plane.configure_mesh().x_desc("valence").y_desc("arousal").label_style((FONT, 16)).draw()?;
        let grey = RGBColor(120, 120, 120).mix(0.6).stroke_width(1);
        plane.draw_series([
            PathElement::new(vec![(0.5, lo), (0.5, hi)], grey),
            PathElement::new(vec![(lo, 0.5), (hi, 0.5)], grey),
        ])?;
        for (q, x, y) in [
            ("Q1", hi - 0.06, hi - 0.04),
            ("Q2", lo + 0.02, hi - 0.04),
            ("Q3", lo + 0.02, lo + 0.06),
            ("Q4", hi - 0.06, lo + 0.06),
        ] {
            plane.draw_series(std::iter::once(Text::new(q, (x, y), (FONT, 18))))?;
        }
        let xy: Vec<(f64, f64)> = points.iter().map(|p| (p.valence, p.arousal)).collect();
        plane.draw_series(LineSeries::new(xy.clone(), BLUE.stroke_width(2)))?;
        plane.draw_series(xy.iter().map(|&c| Circle::new(c, 4, BLUE.filled())))?;
        if let Some(&first) = xy.first() {
            plane.draw_series(std::iter::once(Circle::new(first, 7, GREEN.filled())))?;
        }
        let mut time = ChartBuilder::on(&right)
            .caption("over time (window centres)", (FONT, 24))
            .margin(20)
            .x_label_area_size(50)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..t_max, lo..hi)?;
        time.configure_mesh().x_desc("seconds").y_desc("value").label_style((FONT, 16)).draw()?;
        time.draw_series(LineSeries::new(points.iter().map(|p| (centre(p), p.valence)), BLUE.stroke_width(3)))?
            .label("valence")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], BLUE.stroke_width(3)));
        time.draw_series(LineSeries::new(points.iter().map(|p| (centre(p), p.arousal)), RED.stroke_width(3)))?
            .label("arousal")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], RED.stroke_width(3)));
        legend(&mut time, 16)?;
        Ok(())
    })
}
