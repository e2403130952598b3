//! The pictures of `predict --explain` and `evaluate --explain`: a song's spectrogram under the
//! saliency of valence and of arousal with its SE channel weights, and the SE weights per quadrant.

use super::plot::{FONT, canvas};
use crate::error::Result;
use plotters::prelude::*;
use std::path::Path;

/// Frames drawn per rectangle at most (the picture has ~1100 pixels across).
const MAX_COLUMNS: usize = 550;

/// Top: the mel spectrogram (grey, dB) with the smoothed |∂valence/∂x| in red over it; middle:
/// the same for arousal; bottom: the last SE block's weight per channel. `mel` and each saliency
/// are [n_mels × frames] row-major, the saliency already smoothed; each is scaled to its maximum.
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
            let top = sal.iter().cloned().fold(0.0f64, f64::max).max(1e-300);
            let mut chart = ChartBuilder::on(&parts[k])
                .caption(format!("{song}: saliency of {name} (|d {name} / d input|, Gaussian σ = 2 cells)"), (FONT, 18))
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
                    let (mut m, mut s) = (0.0f32, 0.0f64);
                    for c in c0..c1 {
                        m += mel[r * frames + c];
                        s = s.max(sal[r * frames + c]);
                    }
                    let g = ((m / (c1 - c0) as f32 - lo) / span * 200.0 + 30.0) as f64;
                    let s = (s / top).clamp(0.0, 1.0);
                    let colour = RGBColor((g + s * (255.0 - g)) as u8, (g * (1.0 - s)) as u8, (g * (1.0 - s)) as u8);
                    cells.push(Rectangle::new(
                        [(c0 as f64 * per_frame, r as f64), (c1 as f64 * per_frame, (r + 1) as f64)],
                        colour.filled(),
                    ));
                }
            }
            chart.draw_series(cells)?;
        }
        if let Some(g) = gates {
            se_bars(&parts[2], "SE channel weights of the last block (this song)", &[("", g, BLUE)])?;
        }
        Ok(())
    })
}

/// The SE weights per channel of each (label, weights, colour) series, as bars (one series) or
/// lines (several, e.g. one per quadrant).
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
    if let [(_, g, colour)] = series {
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

/// The mean SE weight per channel of each quadrant's songs over a split (`per_quadrant[q]` =
/// (label with its song count, mean weights); a quadrant without songs is left out).
pub fn se_quadrant_plot(path: &Path, title: &str, per_quadrant: &[(String, Vec<f64>)]) -> Result<()> {
    let colours = [RGBColor(214, 39, 40), RGBColor(255, 127, 14), RGBColor(31, 119, 180), RGBColor(44, 160, 44)];
    canvas(path, (1200, 450), |root| {
        let series: Vec<(&str, &[f64], RGBColor)> =
            per_quadrant.iter().zip(colours).map(|((l, g), c)| (l.as_str(), g.as_slice(), c)).collect();
        se_bars(root, title, &series)
    })
}
