//! The daemon's HTTP API bodies: one definition each, serialized by
//! `daemon` routes, deserialized by `cli`.
//!
//! The field names and shapes are the wire format (the CLI's `--json`
//! outputs and scripts depend on them): a field a route leaves out when it
//! has no value is `skip_serializing_if`; one it sends as `null` is a plain
//! `Option`. Bodies that already are domain types (a login session, a
//! connection, a provider summary, an audit record) are re-exported here,
//! not copied.
//!
//! Secrets in bodies (an API key sent to a session, an OAuth client secret,
//! exported values, a run's proxy token and URL, an injected header's value)
//! are [`Secret`]s: on the wire they are the plain string, on purpose (these
//! bodies are where a secret is meant to travel), and their `Debug` is
//! redacted, so a body in a log line or an error shows none.
//!
//! Below both front ends: `api` names domain types only, never the CLI, the
//! daemon, the proxy or the composition root (`tests/it/layering.rs`).

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

pub use crate::auth_flow::{NextAction, SessionError, SessionStatus, SessionView};
pub use crate::credentials::oauth::ProviderNotice;
pub use crate::credentials::{
    ConnectionView, ProviderSummary, Redacted, RegisterOutcome, RemoveOutcome,
};
pub use crate::providers::{KeyFormat, ProviderDef, ProviderSource};
pub use crate::request_log::{Entry as RequestEntry, EntryKind as RequestKind, Tripwire};
pub use crate::vault::{AuditEntry, ConnectionRecord, ConnectionStatus};

/// What `/api/health` says its `service` is.
pub const SERVICE: &str = "authsome";

fn is_false(b: &bool) -> bool {
    !*b
}

// === bodies without fields, errors ===

/// A request or answer without fields: `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Every route's error: `{"error": {"code": …, "message": …, "hint": …}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// The error itself. `code` is stable and machine-readable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

// === health, readiness, identity, shutdown ===

/// `GET /api/health` (open). The CLI reads it from daemons of any version
/// (one of another version is found, then replaced), and from whatever
/// answers on a stale port: every field but `service` may be absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    #[serde(default)]
    pub status: String,
    /// [`SERVICE`] for an authsome daemon.
    pub service: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured_encryption_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_encryption_source: Option<String>,
    /// The master key source's kind only (no paths: the route is open).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_backend: Option<String>,
}

/// `GET /api/health/proof?challenge=HEX`: an HMAC of the challenge under
/// the key in the `daemon.json` this daemon wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthProof {
    pub proof: String,
}

/// `GET /api/ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ready {
    pub status: ReadyStatus,
    /// Check name (`store`, `vault`, `integrity`, `identity`, `providers`,
    /// `connections`, `spec_version`) → outcome; a check that could not run
    /// is absent.
    pub checks: BTreeMap<String, CheckOutcome>,
    pub warnings: Vec<String>,
    pub issues: Vec<String>,
    pub configured_encryption_mode: String,
    pub effective_encryption_source: String,
    pub encryption_backend: String,
}

/// `ready` when no check failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadyStatus {
    Ready,
    NotReady,
}

/// One readiness check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckOutcome {
    Ok,
    Failed,
}

/// `GET /api/whoami`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Whoami {
    pub version: String,
    pub home: PathBuf,
    pub home_id: String,
    pub pid: u32,
    /// The caller's `did:key`.
    pub did: String,
    /// The same `did:key` (older name).
    pub identity: String,
    pub daemon_url: String,
    pub vault: PathBuf,
    pub configured_encryption_mode: String,
    pub effective_encryption_source: String,
    pub encryption_backend: String,
    /// Provider → number of its connections.
    pub connected_providers: BTreeMap<String, usize>,
    /// The daemon-side settings it started with.
    #[serde(default)]
    pub settings: BTreeMap<String, String>,
    /// The caller's role in the team (the daemon's own identity is an admin).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// A member's grants (an admin may use everything).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grants: Vec<TeamGrant>,
}

/// `POST /api/daemon/shutdown`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShuttingDown {
    /// `stopping`.
    pub status: String,
    pub pid: u32,
}

// === team ===

pub use crate::team::Role;

/// `GET /api/team/members`, and the answer of every team change: the team
/// as the daemon now authorises by.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamList {
    /// The daemon's own identity (an admin whether listed or not).
    pub owner: String,
    pub members: Vec<TeamMember>,
    /// Rows ignored because their tag does not open (written outside
    /// authsome): `did` or `did/provider/connection`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ignored: Vec<String>,
}

/// One member, with its grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamMember {
    pub did: String,
    pub role: Role,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub added_by: Option<String>,
    /// Unix seconds.
    pub added_at: i64,
    #[serde(default)]
    pub grants: Vec<TeamGrant>,
}

/// A grant: a provider's connection (`*`: any), and whether export is allowed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamGrant {
    pub provider: String,
    pub connection: String,
    #[serde(default)]
    pub export: bool,
}

/// `POST /api/team/members` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamAdd {
    pub did: String,
    pub role: Role,
}

/// `POST /api/team/grants` and `DELETE /api/team/grants` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamGrantRequest {
    pub did: String,
    pub provider: String,
    /// Grant: default `*` (every connection). Revoke: default every grant
    /// of the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<String>,
    /// Grant only: the member may `export` it.
    #[serde(default)]
    pub export: bool,
}

/// `DELETE /api/team/members/{did}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamRemoved {
    /// `removed`.
    pub status: String,
    pub did: String,
    /// The member's runs ended with it.
    pub runs_ended: usize,
    pub team: TeamList,
}

/// `DELETE /api/team/grants`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TeamRevoked {
    /// `revoked`.
    pub status: String,
    pub removed: usize,
    pub team: TeamList,
}

impl TeamList {
    /// The answer for `roster` (and its ignored rows) of a daemon owned by `owner`.
    pub fn new(owner: &str, roster: &crate::team::Roster, ignored: Vec<String>) -> TeamList {
        TeamList {
            owner: owner.to_string(),
            members: roster
                .members
                .iter()
                .map(|m| TeamMember {
                    did: m.did.clone(),
                    role: m.role,
                    added_by: m.added_by.clone(),
                    added_at: m.added_at,
                    grants: TeamGrant::of(roster, &m.did),
                })
                .collect(),
            ignored,
        }
    }
}

impl TeamGrant {
    /// `did`'s grants in `roster`.
    pub fn of(roster: &crate::team::Roster, did: &str) -> Vec<TeamGrant> {
        roster
            .grants_of(did)
            .map(|g| TeamGrant {
                provider: g.provider.clone(),
                connection: g.connection.clone(),
                export: g.allow_export,
            })
            .collect()
    }
}

// === audit ===

/// `GET /api/audit?limit=N`: newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
}

// === request log ===

/// `GET /api/requests?after=&run=&provider=&status=&limit=`: the request
/// log. Without `after`, the newest entries, newest first; with `after`,
/// the entries after that `seq`, oldest first (following). `last` is the
/// `after` of the next poll; `dropped` counts the entries lost since the
/// daemon started because its writer fell behind (each gap is also a
/// `dropped` entry).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestList {
    pub entries: Vec<RequestEntry>,
    pub last: u64,
    pub dropped: u64,
}

// === connections and export ===

/// `GET /api/connections`. (`GET /api/connections/{p}/{c}` is one [`ConnectionView`].)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ConnectionList {
    pub connections: Vec<ConnectionView>,
}

/// `POST /api/connections/{provider}/{connection}/logout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoggedOut {
    /// `logged_out`.
    pub status: String,
    pub provider: String,
    pub connection: String,
    pub provider_notified: ProviderNotice,
}

/// `POST /api/connections/{provider}/revoke`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revoked {
    /// `revoked`.
    pub status: String,
    pub provider: String,
    pub removed: usize,
    /// One per removed connection.
    pub provider_notified: Vec<ProviderNotice>,
}

/// `POST /api/connections/{provider}/{connection}/default`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultSet {
    /// `ok`.
    pub status: String,
    pub provider: String,
    pub default_connection: String,
    /// Host rules other connected providers also claim, where this
    /// provider is now the chosen one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chosen_on: Vec<String>,
}

/// `POST /api/credentials/export` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRequest {
    pub provider: String,
    /// `null`: the provider's default connection.
    #[serde(default)]
    pub connection: Option<String>,
}

/// `POST /api/credentials/export` answer: the secrets, by variable name.
#[derive(Debug, Serialize, Deserialize)]
pub struct Exported {
    pub provider: String,
    pub connection: String,
    #[serde(with = "wire::secret_map")]
    pub variables: BTreeMap<String, Secret<String>>,
}

// === providers ===

/// `GET /api/providers`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProviderList {
    pub providers: Vec<ProviderSummary>,
}

/// `GET /api/providers/{provider}`: the definition and where it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProviderDetail {
    #[serde(flatten)]
    pub def: ProviderDef,
    pub source: ProviderSource,
}

/// `POST /api/providers` request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterProvider {
    /// The definition: a JSON object, or the file's text (comments allowed).
    pub definition: serde_json::Value,
    #[serde(default)]
    pub force: bool,
    /// Where it came from, for error messages (e.g. the file path).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
}

/// `POST /api/providers` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRegistered {
    /// `registered`.
    pub status: String,
    pub provider: String,
    pub outcome: RegisterOutcome,
    pub api_url: Vec<String>,
    /// Connections suspended because the definition changed where or how
    /// their credential is sent.
    pub suspended: Vec<String>,
}

/// `DELETE /api/providers/{provider}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderRemoved {
    /// `removed`.
    pub status: String,
    pub provider: String,
    pub outcome: RemoveOutcome,
}

// === login sessions ===

/// `POST /api/auth/sessions` request. The answer (and that of every
/// session route) is a [`SessionView`].
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionCreate {
    pub provider: String,
    /// Default: `default`.
    #[serde(default)]
    pub connection: Option<String>,
    #[serde(default)]
    pub force: bool,
    /// OAuth: `pkce`, `device` or `client_credentials` (default: the provider's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow: Option<String>,
    /// OAuth: a client to use (and store) for this provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "wire::secret_opt"
    )]
    pub client_secret: Option<Secret<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// OAuth: the instance URL of a self-hosted provider (`{base_url}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// OAuth: with no client configured, open a form asking for one.
    #[serde(default, skip_serializing_if = "is_false")]
    pub client_form: bool,
}

/// `POST /api/auth/sessions/{id}/resume` request: the key (`--with-api-key`),
/// or a browser-session login's cookies (read by the CLI from the browser
/// it ran) with their expiry times.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct SessionResume {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "wire::secret_opt"
    )]
    pub api_key: Option<Secret<String>>,
    /// Cookie name -> value.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "wire::secret_map_opt"
    )]
    pub cookies: Option<BTreeMap<String, Secret<String>>>,
    /// Cookie name -> expiry (unix seconds); session cookies are absent.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cookie_expires: BTreeMap<String, i64>,
}

/// `GET /api/auth/sessions/{id}/device`: a device-code session's code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceCode {
    pub provider: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: Option<String>,
    pub expires_at: i64,
}

// === proxy: routes, resolution, runs, the system-wide listener ===

/// `GET /api/proxy/routes`: host → provider over connected providers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyRoutes {
    pub routes: Vec<ProxyRoute>,
}

/// One routing rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyRoute {
    pub provider: String,
    /// `host[:port][/path]`, `*.suffix` for a wildcard.
    pub rule: String,
}

/// `POST /api/credentials/resolve` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResolveRequest {
    pub host: String,
    /// Default 443.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Default `/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `POST /api/credentials/resolve` answer: the header a request gets.
#[derive(Debug, Serialize, Deserialize)]
pub struct Resolved {
    pub provider: String,
    pub connection: String,
    pub header: ResolvedHeader,
    pub format: KeyFormat,
    /// Unix seconds, for OAuth tokens and browser sessions.
    pub expires_at: Option<i64>,
    /// Headers sent beside it (a browser session's CSRF header).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_headers: Vec<ResolvedHeader>,
}

/// The header's name and its value (the credential, with its prefix).
#[derive(Debug, Serialize, Deserialize)]
pub struct ResolvedHeader {
    pub name: String,
    #[serde(with = "wire::secret")]
    pub value: Secret<String>,
}

/// `POST /api/proxy/runs` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunCreate {
    /// The connection to use per provider (default: the provider's default).
    #[serde(default)]
    pub connections: BTreeMap<String, String>,
    /// Refuse hosts no provider claims.
    #[serde(default)]
    pub deny_unknown: bool,
    /// The `authsome run` process; the run ends when it is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    /// The child is confined: the proxy reaches no local service for it
    /// except `allow_localhost`.
    #[serde(default)]
    pub sandbox: bool,
    /// Host loopback ports the confined child may reach.
    #[serde(default)]
    pub allow_localhost: Vec<u16>,
    /// Replace injected secrets in responses (`AUTHSOME_REDACT=off` in the
    /// `authsome run` environment sends `false`). Default on.
    #[serde(default = "on")]
    pub redact: bool,
    /// The child's program and arguments (for display; the daemon keeps
    /// only a masked form, see `daemon::command`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
}

fn on() -> bool {
    true
}

impl Default for RunCreate {
    fn default() -> Self {
        RunCreate {
            connections: BTreeMap::new(),
            deny_unknown: false,
            pid: None,
            sandbox: false,
            allow_localhost: Vec::new(),
            redact: true,
            command: Vec::new(),
        }
    }
}

/// `POST /api/proxy/runs` answer: the run's listener, token and CA.
#[derive(Debug, Serialize, Deserialize)]
pub struct RunCreated {
    pub id: String,
    pub port: u16,
    /// `http://authsome:TOKEN@127.0.0.1:PORT`.
    #[serde(with = "wire::secret")]
    pub proxy_url: Secret<String>,
    /// The per-run proxy token.
    #[serde(with = "wire::secret")]
    pub token: Secret<String>,
    /// The run's CA certificate, PEM.
    pub ca_pem: String,
    /// The DNS names the run's CA may sign for.
    pub hosts: Vec<String>,
    /// The providers whose hosts this run intercepts.
    pub providers: Vec<String>,
    /// Variable → the placeholder the child sees in place of the secret.
    pub placeholders: BTreeMap<String, String>,
    /// Paths the run's child must not reach when sandboxed.
    pub protect: Vec<PathBuf>,
    /// `HOST:PORT` of a team server's proxy listener (TLS): a remote
    /// `authsome run` relays its child's connections there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_proxy: Option<String>,
}

/// `POST /api/dashboard/links`: a one-time link that opens the dashboard.
/// The token in `url` works once, for [`DashboardLink::expires_at`] − now
/// seconds, and only trades itself for a browser session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DashboardLink {
    /// `http://127.0.0.1:PORT/?t=TOKEN`.
    pub url: String,
    /// Unix seconds.
    pub expires_at: i64,
}

/// `GET /api/proxy/runs`: the open runs (no tokens), oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunList {
    pub runs: Vec<RunSummary>,
}

/// One open run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: String,
    pub port: u16,
    pub providers: Vec<String>,
    /// Unix seconds.
    pub started_at: i64,
    /// The `authsome run` process.
    pub pid: Option<u32>,
    /// The hosts the run intercepts (its CA's names).
    #[serde(default)]
    pub hosts: Vec<String>,
    /// Its child is confined (`run`'s sandbox).
    #[serde(default)]
    pub sandbox: bool,
    /// The child's command, capped, every secret-looking value replaced by
    /// `•••` (the rule: `daemon::command`).
    #[serde(default)]
    pub command: Vec<String>,
    pub stats: ProxyStats,
}

/// A listener's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyStats {
    /// Requests that got a credential.
    pub injected: u64,
    /// Requests forwarded without one.
    pub passed: u64,
    /// Blind tunnels opened.
    pub tunnels: u64,
    /// Requests and tunnels refused.
    pub refused: u64,
}

/// `GET /api/proxy/runs/{id}/refusals?after=N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRefusals {
    /// The latest refusals numbered after `N` (bounded).
    pub refusals: Vec<Refusal>,
    /// The number of the last refusal so far.
    pub last: u64,
}

/// One refusal, as the line `authsome run` shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refusal {
    pub seq: u64,
    pub line: String,
}

/// `DELETE /api/proxy/runs/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEnded {
    /// `ended`.
    pub status: String,
    pub id: String,
}

/// `POST /api/proxy/system` request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SystemRequest {
    /// Start the system-wide listener (default true); false only describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<bool>,
}

/// `POST /api/proxy/system` answer: the persistent CA and, when it
/// listens, the system-wide listener.
#[derive(Debug, Serialize, Deserialize)]
pub struct ProxySystem {
    pub listening: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `http://authsome:TOKEN@127.0.0.1:PORT` (the system-wide proxy token).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "wire::secret_opt"
    )]
    pub proxy_url: Option<Secret<String>>,
    pub ca_path: PathBuf,
    /// System roots + the CA.
    pub bundle_path: PathBuf,
    /// The DNS names the CA may sign for.
    pub hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<ProxyStats>,
}

/// A redacted field reads back as the mark it was written as: the
/// derive cannot produce `&'static str` from an owned body.
impl<'de> Deserialize<'de> for Redacted {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Fields {
            #[serde(default)]
            api_key: Option<serde::de::IgnoredAny>,
            #[serde(default)]
            access_token: Option<serde::de::IgnoredAny>,
            #[serde(default)]
            refresh_token: Option<serde::de::IgnoredAny>,
            #[serde(default)]
            cookies: Option<serde::de::IgnoredAny>,
        }
        let f = Fields::deserialize(d)?;
        let mark = |present: Option<serde::de::IgnoredAny>| present.map(|_| REDACTED);
        Ok(Redacted {
            api_key: mark(f.api_key),
            access_token: mark(f.access_token),
            refresh_token: mark(f.refresh_token),
            cookies: mark(f.cookies),
        })
    }
}

/// How a secret field of a [`ConnectionView`] is shown.
pub const REDACTED: &str = "***";

/// Serde for secret fields: the value itself on the wire. The one place an
/// API body exposes a secret, each use marked `with = "wire::…"`.
mod wire {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use crate::secret::Secret;

    struct Exposed<'a>(&'a Secret<String>);

    impl Serialize for Exposed<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(self.0.expose())
        }
    }

    pub mod secret {
        use super::*;

        pub fn serialize<S: Serializer>(v: &Secret<String>, s: S) -> Result<S::Ok, S::Error> {
            Exposed(v).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Secret<String>, D::Error> {
            String::deserialize(d).map(Secret::new)
        }
    }

    pub mod secret_opt {
        use super::*;

        pub fn serialize<S: Serializer>(
            v: &Option<Secret<String>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            v.as_ref().map(Exposed).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Secret<String>>, D::Error> {
            Ok(Option::<String>::deserialize(d)?.map(Secret::new))
        }
    }

    pub mod secret_map {
        use super::*;

        pub fn serialize<S: Serializer>(
            v: &BTreeMap<String, Secret<String>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            s.collect_map(v.iter().map(|(k, v)| (k, Exposed(v))))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<BTreeMap<String, Secret<String>>, D::Error> {
            Ok(BTreeMap::<String, String>::deserialize(d)?
                .into_iter()
                .map(|(k, v)| (k, Secret::new(v)))
                .collect())
        }
    }

    pub mod secret_map_opt {
        use super::*;

        pub fn serialize<S: Serializer>(
            v: &Option<BTreeMap<String, Secret<String>>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match v {
                Some(m) => super::secret_map::serialize(m, s),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<BTreeMap<String, Secret<String>>>, D::Error> {
            Ok(Option::<BTreeMap<String, String>>::deserialize(d)?
                .map(|m| m.into_iter().map(|(k, v)| (k, Secret::new(v))).collect()))
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;
    use serde_json::{Value, json};

    use super::*;
    use crate::providers::{AuthType, Flow, Registry};

    /// Serializes `body`, reads it back and serializes again: the same JSON
    /// both times. Returns that JSON.
    fn round_trip<T: Serialize + DeserializeOwned>(body: &T) -> Value {
        let first = serde_json::to_value(body).unwrap();
        let back: T = serde_json::from_value(first.clone())
            .unwrap_or_else(|e| panic!("does not read back ({e}): {first}"));
        assert_eq!(serde_json::to_value(&back).unwrap(), first);
        first
    }

    fn s(v: &str) -> String {
        v.to_string()
    }

    fn secret(v: &str) -> Secret<String> {
        Secret::new(v.to_string())
    }

    fn session(status: SessionStatus, next_action: NextAction) -> SessionView {
        SessionView {
            id: s("0123456789abcdef"),
            provider: s("github"),
            connection: s("default"),
            flow: Flow::DeviceCode,
            status,
            error: None,
            created_at: 1_700_000_000,
            expires_at: 1_700_000_300,
            next_action,
            message: None,
        }
    }

    fn stats() -> ProxyStats {
        ProxyStats {
            injected: 3,
            passed: 2,
            tunnels: 1,
            refused: 0,
        }
    }

    #[test]
    fn health_readiness_identity_and_errors_keep_their_shapes() {
        let health = Health {
            status: s("ok"),
            service: s(SERVICE),
            version: Some(s("0.1.0")),
            configured_encryption_mode: Some(s("aes-256-gcm")),
            effective_encryption_source: Some(s("local_key")),
            encryption_backend: Some(s("AES-256-GCM; master key from the home's key file")),
        };
        assert_eq!(
            round_trip(&health),
            json!({"status": "ok", "service": "authsome", "version": "0.1.0",
                   "configured_encryption_mode": "aes-256-gcm", "effective_encryption_source": "local_key",
                   "encryption_backend": "AES-256-GCM; master key from the home's key file"})
        );
        // A daemon of another version (or a squatter) may say less.
        let other: Health = serde_json::from_value(
            json!({"status": "ok", "service": "authsome", "version": "0.0.9", "pid": 1}),
        )
        .unwrap();
        assert_eq!(other.version.as_deref(), Some("0.0.9"));
        assert_eq!(other.encryption_backend, None);
        assert!(serde_json::from_value::<Health>(json!({"status": "ok"})).is_err());
        round_trip(&HealthProof { proof: s("ab12") });

        let ready = Ready {
            status: ReadyStatus::NotReady,
            checks: [
                (s("store"), CheckOutcome::Ok),
                (s("integrity"), CheckOutcome::Failed),
            ]
            .into(),
            warnings: vec![s("no provider connections yet")],
            issues: vec![s("integrity: records fail to decrypt: x")],
            configured_encryption_mode: s("aes-256-gcm"),
            effective_encryption_source: s("env"),
            encryption_backend: s("AUTHSOME_MASTER_KEY"),
        };
        let v = round_trip(&ready);
        assert_eq!(v["status"], "not_ready");
        assert_eq!(v["checks"], json!({"store": "ok", "integrity": "failed"}));

        let who = Whoami {
            version: s("0.1.0"),
            home: PathBuf::from("/h"),
            home_id: s("abcd"),
            pid: 42,
            did: s("did:key:z6Mk"),
            identity: s("did:key:z6Mk"),
            daemon_url: s("http://127.0.0.1:7998"),
            vault: PathBuf::from("/h/vault.db"),
            configured_encryption_mode: s("aes-256-gcm"),
            effective_encryption_source: s("env"),
            encryption_backend: s("AUTHSOME_MASTER_KEY"),
            connected_providers: [(s("github"), 2)].into(),
            settings: [(s("AUTHSOME_RESOLVE"), s("a:1.2.3.4"))].into(),
            role: None,
            grants: vec![],
        };
        let v = round_trip(&who);
        assert_eq!(v["home"], "/h");
        assert_eq!(v["connected_providers"], json!({"github": 2}));
        round_trip(&ShuttingDown {
            status: s("stopping"),
            pid: 42,
        });

        let mut err = ErrorBody {
            error: ErrorDetail {
                code: s("connection_not_found"),
                message: s("no connection"),
                hint: Some(s("run `authsome list`")),
            },
        };
        assert_eq!(
            round_trip(&err),
            json!({"error": {"code": "connection_not_found", "message": "no connection", "hint": "run `authsome list`"}})
        );
        err.error.hint = None;
        assert_eq!(
            round_trip(&err),
            json!({"error": {"code": "connection_not_found", "message": "no connection"}})
        );
        assert_eq!(round_trip(&Empty {}), json!({}));
    }

    #[test]
    fn connection_and_export_bodies_keep_their_shapes() {
        let view = ConnectionView {
            record: ConnectionRecord {
                id: s("internal"),
                provider: s("openai"),
                name: s("default"),
                auth_type: s("api_key"),
                status: ConnectionStatus::Connected,
                is_default: true,
                account_label: None,
                token_type: None,
                scopes: vec![],
                expires_at: None,
                created_at: 1,
                updated_at: 2,
                has_api_key: true,
                has_access_token: false,
                has_refresh_token: false,
                has_cookies: false,
                flow: None,
            },
            display_name: s("OpenAI"),
            secrets: Redacted {
                api_key: Some(REDACTED),
                access_token: None,
                refresh_token: None,
                cookies: None,
            },
        };
        let v = round_trip(&ConnectionList {
            connections: vec![view],
        });
        let c = &v["connections"][0];
        assert_eq!(c["secrets"], json!({"api_key": "***"}));
        assert_eq!(c["account_label"], Value::Null);
        assert!(c.get("flow").is_none() && c.get("id").is_none(), "{c}");
        assert_eq!(c["status"], "connected");

        round_trip(&LoggedOut {
            status: s("logged_out"),
            provider: s("github"),
            connection: s("work"),
            provider_notified: ProviderNotice::NotSupported,
        });
        assert_eq!(
            round_trip(&Revoked {
                status: s("revoked"),
                provider: s("github"),
                removed: 2,
                provider_notified: vec![ProviderNotice::Revoked, ProviderNotice::Failed],
            })["provider_notified"],
            json!(["revoked", "failed"])
        );
        round_trip(&DefaultSet {
            status: s("ok"),
            provider: s("github"),
            default_connection: s("work"),
            chosen_on: vec![s("api.github.com")],
        });
        assert_eq!(
            round_trip(&ExportRequest {
                provider: s("openai"),
                connection: None,
            }),
            json!({"provider": "openai", "connection": null})
        );
        let exported = Exported {
            provider: s("openai"),
            connection: s("default"),
            variables: [(s("OPENAI_API_KEY"), secret("sk-test"))].into(),
        };
        assert_eq!(
            round_trip(&exported)["variables"],
            json!({"OPENAI_API_KEY": "sk-test"})
        );
        let audit = AuditList {
            entries: vec![AuditEntry {
                id: 7,
                ts: 1_700_000_000,
                event: s("credential.resolve"),
                provider: Some(s("github")),
                connection: None,
                actor: Some(s("did:key:z6Mk")),
                outcome: s("ok"),
                detail: json!({"host": "api.github.com"}),
            }],
        };
        assert_eq!(round_trip(&audit)["entries"][0]["connection"], Value::Null);
        let requests = RequestList {
            entries: vec![RequestEntry {
                seq: 9,
                run: Some(s("system")),
                tripwire: Some(Tripwire {
                    provider: s("github"),
                    location: s("query"),
                }),
                ..RequestEntry::new(RequestKind::Request, "api.github.com", 443)
            }],
            last: 9,
            dropped: 0,
        };
        let v = round_trip(&requests);
        assert_eq!(v["entries"][0]["kind"], "request");
        assert_eq!(v["entries"][0]["status"], Value::Null);
        assert_eq!(v["entries"][0]["tripwire"]["location"], "query");
    }

    #[test]
    fn provider_bodies_keep_their_shapes() {
        let reg = Registry::bundled().unwrap();
        let mut n = 0;
        for e in reg.iter() {
            // The route's answer: the definition, plus `source`.
            let mut expected = serde_json::to_value(e.def.as_ref()).unwrap();
            expected["source"] = json!(e.source);
            let detail = ProviderDetail {
                def: (*e.def).clone(),
                source: e.source,
            };
            assert_eq!(round_trip(&detail), expected, "{}", e.def.name);
            let back: ProviderDetail = serde_json::from_value(expected).unwrap();
            assert_eq!(back.def.injection(), e.def.injection(), "{}", e.def.name);
            n += 1;
        }
        assert!(n > 0);
        let first = reg.iter().next().unwrap();
        let summary = ProviderSummary {
            name: first.def.name.clone(),
            display_name: first.def.display_name.clone(),
            kind: first.def.kind,
            auth_type: first.def.auth_type,
            flow: first.def.flow,
            source: first.source,
            api_url: first.def.api_url.clone(),
            connections: 1,
            chosen_on: vec![first.def.api_url[0].clone()],
        };
        let v = round_trip(&ProviderList {
            providers: vec![summary],
        });
        assert!(v["providers"][0]["type"].is_string(), "{v}");

        assert_eq!(
            round_trip(&RegisterProvider {
                definition: json!("{\"name\": \"acme\"} // a comment"),
                force: true,
                origin: Some(s("acme.json")),
            }),
            json!({"definition": "{\"name\": \"acme\"} // a comment", "force": true, "origin": "acme.json"})
        );
        assert_eq!(
            round_trip(&ProviderRegistered {
                status: s("registered"),
                provider: s("acme"),
                outcome: RegisterOutcome::OverrodeBundled,
                api_url: vec![s("https://api.acme.test")],
                suspended: vec![s("default")],
            })["outcome"],
            "overrode_bundled"
        );
        assert_eq!(
            round_trip(&ProviderRemoved {
                status: s("removed"),
                provider: s("acme"),
                outcome: RemoveOutcome::RestoredBundled,
            })["outcome"],
            "restored_bundled"
        );
    }

    #[test]
    fn session_bodies_keep_their_shapes() {
        // An API-key login sends only these three fields.
        let create = SessionCreate {
            provider: s("openai"),
            connection: Some(s("default")),
            force: false,
            ..SessionCreate::default()
        };
        assert_eq!(
            round_trip(&create),
            json!({"provider": "openai", "connection": "default", "force": false})
        );
        let oauth = SessionCreate {
            provider: s("github"),
            connection: Some(s("work")),
            force: true,
            flow: Some(s("device")),
            client_id: Some(s("Iv1.abc")),
            client_secret: Some(secret("cs-test")),
            scopes: Some(vec![s("repo")]),
            base_url: Some(s("https://gitlab.example.com")),
            client_form: true,
        };
        assert_eq!(
            round_trip(&oauth),
            json!({"provider": "github", "connection": "work", "force": true, "flow": "device",
                   "client_id": "Iv1.abc", "client_secret": "cs-test", "scopes": ["repo"],
                   "base_url": "https://gitlab.example.com", "client_form": true})
        );
        assert!(
            serde_json::from_value::<SessionCreate>(json!({"provider": "x", "nope": 1})).is_err(),
            "unknown fields are refused"
        );
        assert_eq!(
            round_trip(&SessionResume {
                api_key: Some(secret("sk-test")),
                ..SessionResume::default()
            }),
            json!({"api_key": "sk-test"})
        );

        let open = session(
            SessionStatus::WaitingForUser,
            NextAction::OpenUrl {
                url: s("https://github.com/login/oauth/authorize?x"),
            },
        );
        let v = round_trip(&open);
        assert_eq!(v["next_action"]["type"], "open_url");
        assert!(
            v.get("error").is_none() && v.get("message").is_none(),
            "{v}"
        );
        let device = session(
            SessionStatus::WaitingForUser,
            NextAction::DeviceCode {
                user_code: s("ABCD-1234"),
                verification_uri: s("https://github.com/login/device"),
                verification_uri_complete: None,
            },
        );
        let v = round_trip(&device);
        assert_eq!(
            v["next_action"],
            json!({"type": "device_code", "user_code": "ABCD-1234", "verification_uri": "https://github.com/login/device"})
        );
        let mut failed = session(SessionStatus::Failed, NextAction::None);
        failed.error = Some(SessionError {
            code: s("oauth_failed"),
            message: s("denied"),
            hint: None,
        });
        failed.message = Some(s("already connected"));
        let v = round_trip(&failed);
        assert_eq!(v["next_action"], json!({"type": "none"}));
        assert_eq!(
            v["error"],
            json!({"code": "oauth_failed", "message": "denied"})
        );
        assert_eq!(v["status"], "failed");

        assert_eq!(
            round_trip(&DeviceCode {
                provider: s("github"),
                user_code: s("ABCD-1234"),
                verification_uri: s("https://github.com/login/device"),
                verification_uri_complete: None,
                expires_at: 1_700_000_300,
            })["verification_uri_complete"],
            Value::Null
        );
    }

    #[test]
    fn proxy_bodies_keep_their_shapes() {
        round_trip(&ProxyRoutes {
            routes: vec![ProxyRoute {
                provider: s("github"),
                rule: s("api.github.com"),
            }],
        });
        assert_eq!(
            round_trip(&ResolveRequest {
                host: s("api.github.com"),
                port: None,
                path: None,
            }),
            json!({"host": "api.github.com"})
        );
        assert_eq!(
            round_trip(&Resolved {
                provider: s("github"),
                connection: s("default"),
                header: ResolvedHeader {
                    name: s("authorization"),
                    value: secret("Bearer gho_test"),
                },
                format: KeyFormat::Header,
                expires_at: None,
                extra_headers: Vec::new(),
            }),
            json!({"provider": "github", "connection": "default",
                   "header": {"name": "authorization", "value": "Bearer gho_test"},
                   "format": "header", "expires_at": null})
        );
        let create = RunCreate {
            connections: [(s("github"), s("work"))].into(),
            deny_unknown: true,
            pid: Some(4242),
            sandbox: true,
            allow_localhost: vec![5432],
            redact: false,
            command: vec![s("claude"), s("--model"), s("opus")],
        };
        assert_eq!(
            round_trip(&create),
            json!({"connections": {"github": "work"}, "deny_unknown": true, "pid": 4242,
                   "sandbox": true, "allow_localhost": [5432], "redact": false,
                   "command": ["claude", "--model", "opus"]})
        );
        assert!(serde_json::from_value::<RunCreate>(json!({"nope": true})).is_err());
        assert_eq!(
            serde_json::from_value::<RunCreate>(json!({})).unwrap(),
            RunCreate::default()
        );
        let created = RunCreated {
            id: s("r1"),
            port: 40000,
            proxy_url: secret("http://authsome:tok@127.0.0.1:40000"),
            token: secret("tok"),
            ca_pem: s("-----BEGIN CERTIFICATE-----\n"),
            hosts: vec![s("api.github.com")],
            providers: vec![s("github")],
            placeholders: [(s("GITHUB_TOKEN"), s("authsome-managed"))].into(),
            protect: vec![PathBuf::from("/h")],
            remote_proxy: None,
        };
        let v = round_trip(&created);
        assert!(v.get("remote_proxy").is_none(), "absent when local");
        assert_eq!(v["token"], "tok");
        assert_eq!(v["proxy_url"], "http://authsome:tok@127.0.0.1:40000");
        assert_eq!(v["protect"], json!(["/h"]));
        let list = RunList {
            runs: vec![RunSummary {
                id: s("r1"),
                port: 40000,
                providers: vec![s("github")],
                started_at: 1_700_000_000,
                pid: None,
                hosts: vec![s("api.github.com")],
                sandbox: true,
                command: vec![s("claude"), s("--api-key"), s("•••")],
                stats: stats(),
            }],
        };
        let v = round_trip(&list);
        assert_eq!(v["runs"][0]["pid"], Value::Null);
        assert_eq!(
            v["runs"][0]["command"],
            json!(["claude", "--api-key", "•••"])
        );
        assert_eq!(
            v["runs"][0]["stats"],
            json!({"injected": 3, "passed": 2, "tunnels": 1, "refused": 0})
        );
        round_trip(&RunRefusals {
            refusals: vec![Refusal {
                seq: 1,
                line: s("refused evil.test: not a provider host"),
            }],
            last: 1,
        });
        round_trip(&RunEnded {
            status: s("ended"),
            id: s("r1"),
        });
        assert_eq!(
            round_trip(&SystemRequest {
                listen: Some(false)
            }),
            json!({"listen": false})
        );
        assert!(serde_json::from_value::<SystemRequest>(json!({"x": 1})).is_err());
        let idle = ProxySystem {
            listening: false,
            port: None,
            proxy_url: None,
            ca_path: PathBuf::from("/h/ca/ca.pem"),
            bundle_path: PathBuf::from("/h/ca/bundle.pem"),
            hosts: vec![s("api.github.com")],
            stats: None,
        };
        assert_eq!(
            round_trip(&idle),
            json!({"listening": false, "ca_path": "/h/ca/ca.pem", "bundle_path": "/h/ca/bundle.pem",
                   "hosts": ["api.github.com"]})
        );
        let listening = ProxySystem {
            listening: true,
            port: Some(7999),
            proxy_url: Some(secret("http://authsome:sys@127.0.0.1:7999")),
            stats: Some(stats()),
            ..idle
        };
        let v = round_trip(&listening);
        assert_eq!(v["port"], 7999);
        assert_eq!(v["proxy_url"], "http://authsome:sys@127.0.0.1:7999");
    }

    #[test]
    fn debug_of_the_bodies_holding_secrets_shows_none() {
        let canary = "CANARY_api_body_secret";
        let url = format!("http://authsome:{canary}@127.0.0.1:1");
        let shown = format!(
            "{:?} {:#?} {:?} {:?} {:?} {:?} {:?}",
            SessionCreate {
                provider: s("github"),
                client_secret: Some(secret(canary)),
                ..SessionCreate::default()
            },
            SessionResume {
                api_key: Some(secret(canary)),
                ..SessionResume::default()
            },
            Exported {
                provider: s("openai"),
                connection: s("default"),
                variables: [(s("OPENAI_API_KEY"), secret(canary))].into(),
            },
            Resolved {
                provider: s("github"),
                connection: s("default"),
                header: ResolvedHeader {
                    name: s("authorization"),
                    value: secret(canary),
                },
                format: KeyFormat::Header,
                expires_at: None,
                extra_headers: Vec::new(),
            },
            RunCreated {
                id: s("r1"),
                port: 1,
                proxy_url: secret(&url),
                token: secret(canary),
                ca_pem: String::new(),
                hosts: vec![],
                providers: vec![],
                placeholders: BTreeMap::new(),
                protect: vec![],
                remote_proxy: Some(s("team.test:8444")),
            },
            ProxySystem {
                listening: true,
                port: Some(1),
                proxy_url: Some(secret(&url)),
                ca_path: PathBuf::new(),
                bundle_path: PathBuf::new(),
                hosts: vec![],
                stats: None,
            },
            // And read from the wire, as the CLI gets them.
            serde_json::from_value::<Exported>(json!({
                "provider": "openai", "connection": "default", "variables": {"K": canary}
            }))
            .unwrap(),
        );
        assert!(!shown.contains("CANARY"), "{shown}");
        assert!(shown.contains("REDACTED"), "{shown}");
    }

    #[test]
    fn an_enum_reads_as_its_wire_name() {
        let v: ProviderSummary = serde_json::from_value(json!({
            "name": "x", "display_name": "X", "type": "llm", "auth_type": "oauth2",
            "flow": "dcr_pkce", "source": "override", "api_url": [], "connections": 0
        }))
        .unwrap();
        assert_eq!(v.auth_type, AuthType::Oauth2);
        assert_eq!(v.flow, Flow::DcrPkce);
        assert_eq!(v.source, ProviderSource::Override);
    }
}
