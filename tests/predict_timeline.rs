//! `predict --timeline`'s windows, from the geometry alone: a song of 29 s, 30 s, 31 s and 5 min
//! at the seed's preprocessing (22050 Hz, hop 512: 1 + samples / 512 frames; 30 s windows of
//! 1292 frames every 5 s = 215 frames).

use moodgrad::audio::PreprocessParams;
use moodgrad::train::timeline::WindowPlan;

fn frames(seconds: f64, p: &PreprocessParams) -> usize {
    1 + (seconds * p.sample_rate as f64) as usize / p.hop
}

#[test]
fn windows_for_29_30_31_seconds_and_five_minutes() {
    let p = PreprocessParams::default();
    let plan = WindowPlan::from_seconds(30.0, 5.0, p.sample_rate as f64 / p.hop as f64);
    assert_eq!(plan, WindowPlan { frames: p.frames, hop: 215 }, "a 30 s window is the model's clip");
    for (seconds, count) in [(29.0, 1), (30.0, 1), (31.0, 2), (300.0, 56)] {
        let total = frames(seconds, &p);
        let w = plan.windows(total);
        assert_eq!(w.len(), count, "{seconds} s = {total} frames: {w:?}");
        for (k, &(start, end)) in w.iter().enumerate() {
            assert_eq!(start, k * plan.hop, "{seconds} s: window {k} starts every hop");
            assert_eq!(end, (start + plan.frames).min(total));
        }
        // The last window reaches the song's end; the one before it did not.
        assert_eq!(w.last().unwrap().1, total);
        if w.len() > 1 {
            assert!(w[w.len() - 2].1 < total);
        }
    }
}

#[test]
fn a_short_last_window_is_padded_as_training_pads() {
    let plan = WindowPlan { frames: 4, hop: 2 };
    // 2 rows × 5 frames: windows (0, 4) and (2, 5), the second padded with the pad value.
    let data: Vec<f32> = (0..10).map(|x| x as f32).collect();
    assert_eq!(plan.windows(5), [(0, 4), (2, 5)]);
    assert_eq!(plan.slice(&data, 2, 5, (0, 4), -80.0), [0., 1., 2., 3., 5., 6., 7., 8.]);
    assert_eq!(plan.slice(&data, 2, 5, (2, 5), -80.0), [2., 3., 4., -80., 7., 8., 9., -80.]);
}
