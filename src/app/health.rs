//! The daemon's [`HealthSource`]: the checks of `authsome doctor`
//! ([`crate::diagnostics`], the one place they are written), run in the
//! daemon's process with its settings, for the dashboard's Health page.

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
