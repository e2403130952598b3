//! The pictures of `predict --explain` and `evaluate --explain`: a song's spectrogram under the
//! saliency of valence and of arousal with its SE channel weights, and the SE weights per quadrant.

use super::plot::{FONT, canvas};
use crate::error::Result;
use plotters::prelude::*;
use std::path::Path;

/// Frames drawn per rectangle at most (the picture has ~1100 pixels across).
const MAX_COLUMNS: usize = 550;

/// How a saliency map is coloured: each drawn cell shows the mean saliency of the frames it
/// covers, mapped linearly from the median of the drawn cells (no red) to their 99th percentile
/// (full red) and clipped. A linear scale from 0 to the maximum (or each cell's maximum) paints a
/// diffuse map almost all red; this floor and ceiling show where the model looks more than usual,
/// with the top 1% saturated.
pub const SALIENCY_SCALE: &str = "(cell mean − median) / (99th percentile − median), clipped to [0, 1]";

/// Top: the mel spectrogram (grey, dB) with the smoothed |∂valence/∂x| in red over it; middle:
/// the same for arousal; bottom: the last SE block's weight per channel. `mel` and each saliency
/// are [n_mels × frames] row-major, the saliency already smoothed; the colour is scaled as
/// `SALIENCY_SCALE` says.
pub fn explain_plot(
    path: &Path,
    song: &str,
    (n_mels, frames): (usize, usize),
    seconds: f64,
    mel: &[f32],
    saliency: [&[f64]; 2],
    gates: Option<&[f64]>,
) -> Result<()> {
    let (lo, hi) = mel.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    let span = (hi - lo).max(1e-6);
    let step = frames.div_ceil(MAX_COLUMNS).max(1);
    let height = if gates.is_some() { 1000 } else { 700 };
    canvas(path, (1200, height), |root| {
        let parts = if gates.is_some() { root.split_evenly((3, 1)) } else { root.split_evenly((2, 1)) };
        for (k, (name, sal)) in ["valence", "arousal"].iter().zip(saliency).enumerate() {
            let mut chart = ChartBuilder::on(&parts[k])
                .caption(
                    format!("{song}: |d {name} / d input| (Gaussian σ = 2 cells; red = {SALIENCY_SCALE})"),
                    (FONT, 16),
                )
                .margin(8)
                .x_label_area_size(30)
                .y_label_area_size(50)
                .build_cartesian_2d(0f64..seconds, 0f64..n_mels as f64)?;
            chart.configure_mesh().disable_mesh().x_desc("seconds").y_desc("mel bin").label_style((FONT, 13)).draw()?;
            let per_frame = seconds / frames as f64;
            let mut cells = Vec::with_capacity(n_mels * frames.div_ceil(step));
            for r in 0..n_mels {
                for c0 in (0..frames).step_by(step) {
                    let c1 = (c0 + step).min(frames);
                    let m: f32 = (c0..c1).map(|c| mel[r * frames + c]).sum::<f32>() / (c1 - c0) as f32;
                    let s: f64 = (c0..c1).map(|c| sal[r * frames + c]).sum::<f64>() / (c1 - c0) as f64;
                    cells.push((r, c0, c1, m, s));
                }
            }
            let values: Vec<f64> = cells.iter().map(|c| c.4).collect();
            let floor = percentile(values.clone(), 0.5);
            let range = (percentile(values, 0.99) - floor).max(1e-300);
            chart.draw_series(cells.into_iter().map(|(r, c0, c1, m, s)| {
                let g = ((m - lo) / span * 200.0 + 30.0) as f64;
                let s = ((s - floor) / range).clamp(0.0, 1.0);
                let colour = RGBColor((g + s * (255.0 - g)) as u8, (g * (1.0 - s)) as u8, (g * (1.0 - s)) as u8);
                Rectangle::new(
                    [(c0 as f64 * per_frame, r as f64), (c1 as f64 * per_frame, (r + 1) as f64)],
                    colour.filled(),
                )
            }))?;
        }
        if let Some(g) = gates {
            se_bars(&parts[2], "SE channel weights of the last block (this song)", &[("", g, BLUE)])?;
        }
        Ok(())
    })
}

/// The `p` quantile (0..=1) of `v` by the nearest rank; 0 for an empty list. NaN sorts last.
pub fn percentile(mut v: Vec<f64>, p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize]
}

/// The SE weights per channel of each (label, weights, colour) series, as bars (one unlabelled
/// series: one song) or labelled lines (e.g. one per quadrant).
fn se_bars<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    series: &[(&str, &[f64], RGBColor)],
) -> std::result::Result<(), Box<dyn std::error::Error>>
where
    DB::ErrorType: 'static,
{
    let c = series.iter().map(|s| s.1.len()).max().unwrap_or(1);
    let mut chart = ChartBuilder::on(area)
        .caption(caption, (FONT, 18))
        .margin(8)
        .x_label_area_size(30)
        .y_label_area_size(50)
        .build_cartesian_2d(0f64..c as f64, 0f64..1f64)?;
    chart.configure_mesh().disable_x_mesh().x_desc("channel").y_desc("weight").label_style((FONT, 13)).draw()?;
    if let [("", g, colour)] = series {
        chart.draw_series(
            g.iter().enumerate().map(|(i, &v)| Rectangle::new([(i as f64, 0.0), (i as f64 + 0.8, v)], colour.filled())),
        )?;
        return Ok(());
    }
    for &(label, g, colour) in series {
        chart
            .draw_series(LineSeries::new(
                g.iter().enumerate().map(|(i, &v)| (i as f64 + 0.5, v)),
                colour.stroke_width(2),
            ))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font((FONT, 14))
        .draw()?;
    Ok(())
}

/// One quadrant's line: (quadrant index 0..4, label, mean weight per channel).
pub type QuadrantSeries = (usize, String, Vec<f64>);

/// The mean SE weight per channel of each quadrant's songs over a split, one panel per grouping
/// (`panels[k]` = (caption, per quadrant (quadrant index 0..4 for its colour, label with its song
/// count, mean weights))); a quadrant without songs is left out of its panel.
pub fn se_quadrant_plot(path: &Path, panels: &[(String, Vec<QuadrantSeries>)]) -> Result<()> {
    let colours = [RGBColor(214, 39, 40), RGBColor(255, 127, 14), RGBColor(31, 119, 180), RGBColor(44, 160, 44)];
    canvas(path, (1200, 420 * panels.len().max(1) as u32), |root| {
        for (area, (caption, per_quadrant)) in root.split_evenly((panels.len().max(1), 1)).iter().zip(panels) {
            let series: Vec<(&str, &[f64], RGBColor)> =
                per_quadrant.iter().map(|(q, l, g)| (l.as_str(), g.as_slice(), colours[q % 4])).collect();
            se_bars(area, caption, &series)?;
        }
        Ok(())
    })
}
