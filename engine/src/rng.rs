//! A small seeded generator (SplitMix64) and a counter-based hash for dropout masks.
//!
//! Counter-based masks (`hash_uniform(seed, i)`) give the same mask on every backend, whatever
//! order the elements are visited in: a GPU kernel computes element i's draw from (seed, i) alone.

/// SplitMix64 step: the finaliser is a good 64-bit mixer on its own.
#[inline]
pub fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A uniform draw in [0, 1) determined by (seed, index) alone.
#[inline]
pub fn hash_uniform(seed: u64, index: u64) -> f64 {
    let z = mix64(seed ^ mix64(index.wrapping_add(0x9e37_79b9_7f4a_7c15)));
    (z >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Sequential seeded generator.
#[derive(Clone, Debug)]
pub struct Rng {
    state: u64,
}

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng { state: seed }
    }

    /// The whole state, for checkpoints: `Rng::new(r.state())` continues where `r` stands.
    pub fn state(&self) -> u64 {
        self.state
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.state)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in [lo, hi).
    pub fn uniform_range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Uniform index in [0, n).
    pub fn below(&mut self, n: usize) -> usize {
        (self.uniform() * n as f64) as usize % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uniform_is_in_range_and_roughly_centred() {
        let mut r = Rng::new(7);
        let xs: Vec<f64> = (0..10_000).map(|_| r.uniform()).collect();
        assert!(xs.iter().all(|&x| (0.0..1.0).contains(&x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        // Standard error of the mean is 0.29/sqrt(1e4) = 0.003: 0.02 is > 6 sigma.
        assert!((mean - 0.5).abs() < 0.02, "mean {mean}");
    }

    #[test]
    fn normal_has_unit_variance() {
        let mut r = Rng::new(11);
        let xs: Vec<f64> = (0..20_000).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / xs.len() as f64;
        assert!(mean.abs() < 0.05 && (var - 1.0).abs() < 0.05, "{mean} {var}");
    }

    #[test]
    fn hash_uniform_depends_on_seed_and_index() {
        assert_ne!(hash_uniform(1, 0), hash_uniform(2, 0));
        assert_ne!(hash_uniform(1, 0), hash_uniform(1, 1));
        assert_eq!(hash_uniform(5, 9), hash_uniform(5, 9));
    }
}
