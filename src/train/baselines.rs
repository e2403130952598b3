//! The seed study's three baselines, scored on the same test songs as the model.
//!
//! - **train mean**: every song gets the mean training (valence, arousal).
//! - **random**: every song gets a uniform draw in [0, 1]², redrawn while it falls in MERGE's
//!   removed centre (|v − 0.5| < 0.1 and |a − 0.5| < 0.1); seeded, so reruns agree.
//! - **quadrant centre** (an oracle: it is told the true quadrant): every song gets the mean
//!   training (valence, arousal) of the songs with its metadata quadrant label. A quadrant with no
//!   training song falls back to the train mean (and the definition says so).

use super::metrics::{EvalReport, Quadrant};
use super::predictions::{PredictionRow, evaluate};
use crate::rng::Rng;

/// Half-width of the square around (0.5, 0.5) that MERGE's authors emptied of songs.
pub const CENTRE_HOLE: f64 = 0.1;

/// A labelled training song: `[valence, arousal]` and its metadata quadrant.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Labelled {
    pub va: [f64; 2],
    pub quadrant: Quadrant,
}

/// The training split's songs as the baselines read them.
pub fn train_labels(data: &super::dataset::TrainData) -> Vec<Labelled> {
    let song = |i: usize| &data.songs[i];
    data.splits
        .train
        .iter()
        .map(|&i| Labelled { va: [song(i).valence, song(i).arousal], quadrant: song(i).quadrant })
        .collect()
}

#[derive(Clone, Debug, PartialEq)]
pub struct BaselineResult {
    /// `train mean`, `random`, `quadrant centre`.
    pub name: String,
    /// One sentence saying how the predictions were made (for the report).
    pub definition: String,
    pub report: EvalReport,
    /// The per-song predictions (for the bootstrap and the CSV).
    pub rows: Vec<PredictionRow>,
}

/// Mean `[valence, arousal]` of the songs (NaN for none).
pub fn mean_va<'a>(songs: impl IntoIterator<Item = &'a Labelled>) -> [f64; 2] {
    let (mut s, mut n) = ([0.0; 2], 0usize);
    for x in songs {
        s[0] += x.va[0];
        s[1] += x.va[1];
        n += 1;
    }
    [s[0] / n as f64, s[1] / n as f64]
}

/// One draw of the random baseline.
pub fn random_point(rng: &mut Rng) -> [f64; 2] {
    loop {
        let (v, a) = (rng.uniform(), rng.uniform());
        if !((v - 0.5).abs() < CENTRE_HOLE && (a - 0.5).abs() < CENTRE_HOLE) {
            return [v, a];
        }
    }
}

/// Mean training point of each quadrant; `None` where the quadrant has no training song.
pub fn quadrant_centres(train: &[Labelled]) -> [Option<[f64; 2]>; 4] {
    std::array::from_fn(|k| {
        let members: Vec<&Labelled> = train.iter().filter(|s| s.quadrant.index() == k).collect();
        (!members.is_empty()).then(|| mean_va(members))
    })
}

/// Predictions for `test` that give each song the point `f(song)`.
fn rows_from(test: &[PredictionRow], mut f: impl FnMut(&PredictionRow) -> [f64; 2]) -> Vec<PredictionRow> {
    test.iter().map(|r| PredictionRow { pred: f(r), ..r.clone() }).collect()
}

/// The three baselines on `test` (only its songs, truths, labels and durations are read; its
/// `pred` is ignored). `seed` drives the random baseline.
pub fn compute(train: &[Labelled], test: &[PredictionRow], split: &str, seed: u64) -> Vec<BaselineResult> {
    let mean = mean_va(train);
    let result = |name: &str, definition: String, rows: Vec<PredictionRow>| BaselineResult {
        name: name.into(),
        definition,
        report: evaluate(split, &rows),
        rows,
    };
    let mut out = vec![result(
        "train mean",
        format!(
            "every song gets the mean training (valence, arousal) = ({:.4}, {:.4}) over {} songs",
            mean[0],
            mean[1],
            train.len()
        ),
        rows_from(test, |_| mean),
    )];
    let mut rng = Rng::new(seed);
    out.push(result(
        "random",
        format!(
            "uniform in [0, 1]², redrawn while |v − 0.5| < {CENTRE_HOLE} and |a − 0.5| < {CENTRE_HOLE} (MERGE's removed centre); seed {seed}"
        ),
        rows_from(test, |_| random_point(&mut rng)),
    ));
    let centres = quadrant_centres(train);
    let missing: Vec<&str> = Quadrant::ALL.iter().filter(|q| centres[q.index()].is_none()).map(|q| q.name()).collect();
    let mut definition =
        String::from("oracle: each song gets the mean training (valence, arousal) of its true (metadata) quadrant");
    if !missing.is_empty() {
        definition += &format!("; no training song in {}, so those songs get the train mean", missing.join(", "));
    }
    out.push(result("quadrant centre", definition, rows_from(test, |r| centres[r.quadrant.index()].unwrap_or(mean))));
    out
}
