//! What one proxy listener shares between its requests: [`Shared`] (the
//! routing table and credential cache, the leaf authority, the token, the
//! run's options), its counters [`Stats`], the [`Handler`] every request is
//! answered by, and the intercepted tunnel a handler clone is bound to.
//!
//! The handler's behaviour is in the files that use these types: the
//! hudsucker adapter in `handler.rs`, the decisions in `decide.rs`, the I/O
//! in `send.rs` and `tunnel.rs`. They all depend on this file, never on
//! each other both ways.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::Response;
use hudsucker::Body;

use super::error::ProxyError;
use super::placeholders::Placeholders;
use super::pool::Clients;
use super::tls::LeafAuthority;
use super::upstream::Upstream;
use crate::credentials::proxy_tables::ProxyTables;
use crate::secret::Secret;

/// Counters, for `/api/proxy/runs` and tests.
#[derive(Debug, Default)]
pub struct Stats {
    /// Requests that got a credential.
    pub injected: AtomicU64,
    /// Requests forwarded without one (non-provider hosts, plain HTTP).
    pub passed: AtomicU64,
    /// Blind tunnels opened.
    pub tunnels: AtomicU64,
    /// Requests and tunnels refused.
    pub refused: AtomicU64,
    /// The latest refusals, numbered, for `authsome run` to show on its
    /// stderr (clients rarely show a proxy's error body). Bounded.
    pub recent: std::sync::Mutex<std::collections::VecDeque<(u64, String)>>,
}

/// How many refusals a listener keeps for `run` to read.
const RECENT_REFUSALS: usize = 64;

impl Stats {
    /// Records a refusal (one line, no secret: host, code, message).
    pub fn note_refusal(&self, line: String) {
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let mut r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        if r.len() == RECENT_REFUSALS {
            r.pop_front();
        }
        r.push_back((n, line));
    }

    /// Refusals numbered after `after`, and the number of the last one.
    pub fn refusals_after(&self, after: u64) -> (Vec<(u64, String)>, u64) {
        let r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        let last = self.refused.load(Ordering::Relaxed);
        (
            r.iter().filter(|(n, _)| *n > after).cloned().collect(),
            last,
        )
    }
}

/// What every request of one proxy listener shares.
pub struct Shared {
    /// Routing table and credential cache.
    pub tables: Arc<ProxyTables>,
    /// Mints leaves; knows which hosts the CA may sign for.
    pub authority: Arc<LeafAuthority>,
    /// Upstream trust and resolver overrides.
    pub upstream: Upstream,
    /// The proxy token (`None`: no authentication, only for tests of the engine).
    pub token: Option<Secret<String>>,
    /// The routes when the run started. Their hosts stay provider hosts for
    /// the whole run: if a credential disappears mid-run (logout, revoke),
    /// requests there fail closed instead of going out unauthenticated.
    pub pinned: Arc<crate::routing::RouteTable>,
    /// Connection chosen per provider (`--connection PROVIDER=NAME`).
    pub connections: HashMap<String, String>,
    /// A team member's run: the only providers it may use. A host that
    /// only other providers claim is refused (403 `authsome_not_granted`)
    /// before anything is dialled, never tunnelled blind; `None`: every
    /// provider.
    pub only: Option<std::collections::BTreeSet<String>>,
    /// Refuse hosts no provider claims.
    pub deny_unknown: bool,
    /// `Some(ports)` for a sandboxed run: no target on this host's loopback,
    /// link-local or unspecified addresses except these ports (a confined
    /// child reaches no local service through the proxy either, unless
    /// `--allow-localhost` names it); names in `AUTHSOME_RESOLVE` are the
    /// user's own mapping and stay reachable.
    pub local_ports: Option<Vec<u16>>,
    /// The run this listener serves (`system` for the system-wide one),
    /// for the request log.
    pub run_id: String,
    /// What the child holds in place of each provider's secret: written
    /// back where an upstream echoes the secret, and watched for in
    /// requests to other hosts (the tripwire).
    pub placeholders: Placeholders,
    /// Replace injected secrets in responses (`AUTHSOME_REDACT=off` turns
    /// it off for users who must see raw bytes).
    pub redact: bool,
    /// Where every request and tunnel is recorded.
    pub log: crate::request_log::RequestLog,
    /// The redaction patterns per provider and connection, for as long as
    /// the secret stays the same (built once, not per request).
    pub redactors: Redactors,
    /// Counters.
    pub stats: Stats,
    /// Set when the run ends: tunnels still open (hudsucker does not track
    /// them) refuse every further request instead of injecting.
    pub ended: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("run_id", &self.run_id)
            .field("deny_unknown", &self.deny_unknown)
            .field("redact", &self.redact)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// Redaction patterns, cached per (provider, connection) while the secret
/// and the placeholder stay the same.
#[derive(Default)]
pub struct Redactors {
    /// By provider, then connection (looked up with the borrowed names: no
    /// key built per request).
    by: std::sync::Mutex<HashMap<String, HashMap<String, CachedPatterns>>>,
}

struct CachedPatterns {
    value: Secret<String>,
    placeholder: Arc<str>,
    patterns: Arc<super::redact::Patterns>,
}

impl std::fmt::Debug for Redactors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Redactors").finish_non_exhaustive()
    }
}

impl Redactors {
    /// The patterns for `cred` with `placeholder` in its place.
    pub(super) fn for_credential(
        &self,
        cred: &crate::credentials::ResolvedCredential,
        placeholder: &Arc<str>,
    ) -> Arc<super::redact::Patterns> {
        let mut by = self.by.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = by.get(&cred.provider).and_then(|m| m.get(&cred.connection))
            && Arc::ptr_eq(&c.placeholder, placeholder)
            && crate::secret::ct_eq(c.value.expose().as_bytes(), cred.value.expose().as_bytes())
        {
            return c.patterns.clone();
        }
        let patterns = Arc::new(super::redact::Patterns::for_credential(cred, placeholder));
        by.entry(cred.provider.clone()).or_default().insert(
            cred.connection.clone(),
            CachedPatterns {
                value: cred.value.duplicate(),
                placeholder: placeholder.clone(),
                patterns: patterns.clone(),
            },
        );
        patterns
    }
}

/// The intercepted tunnel a request arrived in (set on the handler clone
/// that serves the tunnel, which is cloned for every request inside).
/// Blind tunnels never reach the request path.
#[derive(Debug, Clone)]
pub(super) struct Tunnel {
    pub(super) host: String,
    pub(super) port: u16,
    /// The CONNECT target as the client wrote it (what requests inside are
    /// sent to).
    pub(super) authority: http::uri::Authority,
}

/// The hudsucker handler.
#[derive(Debug, Clone)]
pub struct Handler {
    pub(super) shared: Arc<Shared>,
    /// This thread's upstream pools.
    pub(super) clients: Arc<Clients>,
    pub(super) tunnel: Option<Arc<Tunnel>>,
    /// The host the current request goes to, for error messages.
    pub(super) target: Option<String>,
    /// What the decisions found out about the current request, for sending
    /// (redaction) and for the request log.
    pub(super) note: Note,
}

/// What the decisions found out about one request.
#[derive(Debug, Clone, Default)]
pub(super) struct Note {
    /// The provider whose credential was written, and its connection.
    pub(super) provider: Option<String>,
    pub(super) connection: Option<String>,
    pub(super) injected: bool,
    /// A placeholder of another provider seen in the request: whose, where.
    pub(super) tripwire: Option<(String, super::placeholders::Location)>,
    /// The refusal's error code, when the request was refused.
    pub(super) refused: Option<&'static str>,
    /// The forms of the injected secret to replace in the answer (`None`:
    /// nothing injected, or redaction off).
    pub(super) redact: Option<Arc<super::redact::Patterns>>,
    /// Replacements made in the answer, by where.
    pub(super) counter: Option<Arc<super::redact::Counter>>,
    /// Cookies the answer may not set on the client (a browser session's).
    pub(super) session_cookies: Option<Arc<[String]>>,
}

impl Handler {
    /// A handler over `shared`, sending through `clients`.
    pub fn new(shared: Arc<Shared>, clients: Arc<Clients>) -> Handler {
        Handler {
            shared,
            clients,
            tunnel: None,
            target: None,
            note: Note::default(),
        }
    }
}

/// Answers a refusal, and counts it for `authsome run` to show.
pub(super) fn refuse(e: ProxyError, stats: &Stats) -> Response<Body> {
    if e.quiet {
        return e.into_response();
    }
    stats.note_refusal(format!(
        "refused {} ({}): {}",
        e.host.as_deref().unwrap_or("a request"),
        e.code,
        e.message.trim_start_matches("authsome: ")
    ));
    e.into_response()
}
