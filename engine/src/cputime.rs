//! Wall and process CPU time of a phase of work, so that a run can say whether every core was
//! busy (CPU ÷ wall close to the thread count) in each phase.

use std::time::Instant;

/// This process's user + system CPU time in seconds, every thread together (getrusage), or None
/// where the call fails.
pub fn process_cpu_seconds() -> Option<f64> {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::uninit();
    // SAFETY: getrusage writes a whole rusage into the pointer on success (return 0).
    let ok = unsafe { libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()) } == 0;
    if !ok {
        return None;
    }
    // SAFETY: initialised by the successful call above.
    let u = unsafe { u.assume_init() };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    Some(tv(u.ru_utime) + tv(u.ru_stime))
}

/// The wall and CPU seconds one phase took.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PhaseTime {
    pub wall_s: f64,
    /// NaN where the CPU time is unavailable.
    pub cpu_s: f64,
}

impl PhaseTime {
    /// CPU time ÷ wall time: about the number of busy cores.
    pub fn busy_cores(&self) -> f64 {
        if self.wall_s > 0.0 { self.cpu_s / self.wall_s } else { f64::NAN }
    }
    pub fn add(&mut self, other: PhaseTime) {
        self.wall_s += other.wall_s;
        self.cpu_s += other.cpu_s;
    }
}

/// Wall and CPU time since `start`, for a phase that cannot be one closure (early returns).
pub struct Stopwatch {
    t0: Instant,
    c0: Option<f64>,
}

impl Stopwatch {
    pub fn start() -> Self {
        Stopwatch { c0: process_cpu_seconds(), t0: Instant::now() }
    }
    pub fn elapsed(&self) -> PhaseTime {
        let wall_s = self.t0.elapsed().as_secs_f64();
        let cpu_s = match (self.c0, process_cpu_seconds()) {
            (Some(a), Some(b)) => b - a,
            _ => f64::NAN,
        };
        PhaseTime { wall_s, cpu_s }
    }
}

/// Runs `f`, returning its result and how long it took.
pub fn timed<R>(f: impl FnOnce() -> R) -> (R, PhaseTime) {
    let sw = Stopwatch::start();
    let r = f();
    (r, sw.elapsed())
}
