//! Shared state of the daemon's handlers: `Arc` handles only.

use std::sync::Arc;

use crate::auth_flow::Sessions;
use crate::credentials::CredentialService;
use crate::error::Error;
use crate::pop::Verifier;

use super::error::ApiError;

/// Facts about this daemon, fixed at start.
#[derive(Debug, Clone)]
pub struct DaemonInfo {
    /// Crate version.
    pub version: String,
    /// `$AUTHSOME_HOME`.
    pub home: std::path::PathBuf,
    /// A short, stable id of the home (hash), shown by `/api/health` so a
    /// client can tell its own daemon from another home's without the path.
    pub home_id: String,
    /// The URL browsers and OAuth callbacks use (`AUTHSOME_SERVER_BASE_URL` or the bound address).
    pub base_url: String,
    /// Accepted `Host` header values.
    pub allowed_hosts: Vec<String>,
    /// Where the master key came from (`env`, `key_file`, `keyring`, `local_key`).
    pub key_source_id: &'static str,
    /// Human description of the key source.
    pub key_source: String,
}

/// What every handler gets.
#[derive(Debug, Clone)]
pub struct AppState {
    pub svc: Arc<CredentialService>,
    pub pop: Arc<Verifier>,
    pub sessions: Arc<Sessions>,
    pub info: Arc<DaemonInfo>,
    /// Notified by `POST /api/daemon/shutdown`.
    pub shutdown: Arc<tokio::sync::Notify>,
}

impl AppState {
    /// Records an audit event. A failure to record is logged, never fatal:
    /// the operation already happened.
    pub async fn audit(
        &self,
        event: &'static str,
        provider: Option<String>,
        connection: Option<String>,
        actor: Option<String>,
        outcome: &'static str,
        detail: serde_json::Value,
    ) {
        let svc = self.svc.clone();
        let r = tokio::task::spawn_blocking(move || {
            svc.vault().append_audit(
                event,
                provider.as_deref(),
                connection.as_deref(),
                actor.as_deref(),
                outcome,
                &detail,
            )
        })
        .await;
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, event, "cannot write the audit log"),
            Err(e) => tracing::error!(error = %e, event, "audit task failed"),
        }
    }

    /// Runs a vault operation on the blocking pool (SQLite calls block).
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&CredentialService) -> Result<T, Error> + Send + 'static,
    {
        let svc = self.svc.clone();
        match tokio::task::spawn_blocking(move || f(&svc)).await {
            Ok(r) => r.map_err(ApiError::from),
            Err(e) => {
                tracing::error!(error = %e, "vault task failed");
                Err(ApiError::new(
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    "internal",
                    "internal error",
                ))
            }
        }
    }
}
