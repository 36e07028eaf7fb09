//! Exit codes. Documented in the README; scripts may rely on them.

use std::process::ExitCode;

use crate::error::ErrorKind;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// 0: it worked.
    Success,
    /// 1: it ran, and the answer is "no" (e.g. `doctor` found a problem), or an unexpected error.
    Failure,
    /// 2: the command line was wrong (clap uses 2 as well).
    Usage,
    /// 3: the provider or connection does not exist.
    NotFound,
    /// 4: input was refused (a key that fails its pattern, a malformed provider file).
    InvalidInput,
    /// 5: the vault or its keys (wrong master key, tampering, loose permissions).
    Vault,
    /// 6: it exists already (use --force).
    Conflict,
    /// 7: not available in this build.
    Unsupported,
    /// 8: `run --sandbox require` could not confine the program.
    Sandbox,
    /// 9: the credential or login expired (or was revoked): log in again.
    Expired,
    /// 130: interrupted.
    Interrupted,
    /// Passed through from a child process (the daemon that failed to start).
    Code(u8),
}

impl ExitStatus {
    /// The status for an error of `kind`.
    pub fn from_kind(kind: ErrorKind) -> ExitStatus {
        match kind {
            ErrorKind::NotFound => ExitStatus::NotFound,
            ErrorKind::InvalidInput => ExitStatus::InvalidInput,
            ErrorKind::Conflict => ExitStatus::Conflict,
            ErrorKind::Vault => ExitStatus::Vault,
            ErrorKind::Unsupported => ExitStatus::Unsupported,
            ErrorKind::Expired => ExitStatus::Expired,
            _ => ExitStatus::Failure,
        }
    }

    /// The numeric code.
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Usage => 2,
            ExitStatus::NotFound => 3,
            ExitStatus::InvalidInput => 4,
            ExitStatus::Vault => 5,
            ExitStatus::Conflict => 6,
            ExitStatus::Unsupported => 7,
            ExitStatus::Sandbox => 8,
            ExitStatus::Expired => 9,
            ExitStatus::Interrupted => 130,
            ExitStatus::Code(c) => c,
        }
    }
}

impl From<ExitStatus> for ExitCode {
    fn from(s: ExitStatus) -> ExitCode {
        ExitCode::from(s.code())
    }
}
