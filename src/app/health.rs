//! The daemon's [`HealthSource`]: the checks of `authsome doctor`
//! ([`crate::diagnostics`], the one place they are written), run in the
//! daemon's process with its settings, for the dashboard's Health page.
//!
//! They are costly (the master key, Argon2 with a passphrase, every secret
//! decrypted by the integrity check, a sandbox probe forked), and a page
//! load is cheap to ask for, so [`Cached`] keeps a result for [`KEEP`] and
//! runs one computation at a time: loads that arrive meanwhile wait for it
//! and share its result.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::daemon::state::{HealthCheck, HealthSource, HealthStatus};
use crate::diagnostics::{self, Check, Status};

/// `doctor`'s checks against the daemon's own configuration.
#[derive(Debug)]
pub struct DoctorChecks {
    config: Config,
    /// "running at URL (pid N, version V)", as `doctor` says it.
    running: String,
}

impl DoctorChecks {
    pub fn new(config: Config, url: &str) -> DoctorChecks {
        DoctorChecks {
            config,
            running: format!(
                "running at {url} (pid {}, version {})",
                std::process::id(),
                env!("CARGO_PKG_VERSION")
            ),
        }
    }
}

fn row(c: Check) -> HealthCheck {
    HealthCheck {
        name: c.name.to_string(),
        status: match c.status {
            Status::Pass => HealthStatus::Pass,
            Status::Warn => HealthStatus::Warn,
            Status::Fail => HealthStatus::Fail,
        },
        detail: c.detail,
        hint: c.hint,
    }
}

impl HealthSource for DoctorChecks {
    fn checks(&self) -> Vec<HealthCheck> {
        let mut checks = diagnostics::run(&self.config);
        checks.push(Check {
            name: "daemon",
            status: Status::Pass,
            detail: self.running.clone(),
            hint: None,
        });
        let (support, mode) = diagnostics::sandbox(&crate::config::ProcessEnv);
        checks.push(diagnostics::check_sandbox(&support, mode));
        checks.into_iter().map(row).collect()
    }
}

/// How long a result of the checks is shown again.
pub const KEEP: Duration = Duration::from_secs(15);

/// A [`HealthSource`] whose result is kept for a while, computed by one
/// caller at a time (single flight).
#[derive(Debug)]
pub struct Cached<S> {
    inner: S,
    keep: Duration,
    /// The last result and when it was computed. Held while computing, so a
    /// second caller waits and then finds the fresh result.
    last: Mutex<Option<(Instant, Vec<HealthCheck>)>>,
    /// Set by [`HealthSource::forget`]: the next call computes again.
    stale: AtomicBool,
}

impl<S: HealthSource> Cached<S> {
    pub fn new(inner: S, keep: Duration) -> Cached<S> {
        Cached {
            inner,
            keep,
            last: Mutex::new(None),
            stale: AtomicBool::new(false),
        }
    }
}

impl<S: HealthSource> HealthSource for Cached<S> {
    fn checks(&self) -> Vec<HealthCheck> {
        let mut last = self
            .last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stale = self.stale.swap(false, Ordering::SeqCst);
        if let Some((at, checks)) = last.as_ref()
            && !stale
            && at.elapsed() < self.keep
        {
            return checks.clone();
        }
        let checks = self.inner.checks();
        *last = Some((Instant::now(), checks.clone()));
        checks
    }

    fn forget(&self) {
        self.stale.store(true, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;

    /// Counts its runs; each run waits until the test lets it finish, so
    /// the other callers arrive while it is computing.
    #[derive(Debug, Default)]
    struct Counting {
        runs: AtomicUsize,
        gate: Mutex<()>,
    }

    impl HealthSource for Arc<Counting> {
        fn checks(&self) -> Vec<HealthCheck> {
            let n = self.runs.fetch_add(1, Ordering::SeqCst) + 1;
            drop(self.gate.lock().unwrap());
            vec![HealthCheck {
                name: format!("run {n}"),
                status: HealthStatus::Pass,
                detail: String::new(),
                hint: None,
            }]
        }
    }

    #[test]
    fn concurrent_and_consecutive_calls_within_the_window_run_the_checks_once() {
        let source = Arc::new(Counting::default());
        let cached = Cached::new(source.clone(), Duration::from_secs(3600));
        let held = source.gate.lock().unwrap();
        let started = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            let calls: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        started.fetch_add(1, Ordering::SeqCst);
                        cached.checks()
                    })
                })
                .collect();
            // Every caller has started and the first is inside the checks
            // (it counted its run); the others wait for it rather than
            // start their own (a second run would count "run 2").
            for _ in 0..100_000 {
                if started.load(Ordering::SeqCst) == 8 && source.runs.load(Ordering::SeqCst) > 0 {
                    break;
                }
                std::thread::yield_now();
            }
            for _ in 0..1_000 {
                std::thread::yield_now();
            }
            drop(held);
            for c in calls {
                assert_eq!(c.join().unwrap()[0].name, "run 1");
            }
        });
        assert_eq!(cached.checks()[0].name, "run 1");
        assert_eq!(source.runs.load(Ordering::SeqCst), 1);
        // "Check again" runs them again, once.
        cached.forget();
        assert_eq!(cached.checks()[0].name, "run 2");
        assert_eq!(cached.checks()[0].name, "run 2");
        assert_eq!(source.runs.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn after_the_window_the_checks_run_again() {
        let source = Arc::new(Counting::default());
        let cached = Cached::new(source.clone(), Duration::ZERO);
        cached.checks();
        cached.checks();
        assert_eq!(source.runs.load(Ordering::SeqCst), 2);
    }
}
