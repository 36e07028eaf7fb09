//! authsome: a credential injector for AI agents and developer tools.
//!
//! An agent runs behind a local proxy that adds the user's API keys and OAuth
//! tokens to requests for known provider hosts, so the agent never holds a
//! secret. This crate is the library behind the `authsome` binary: one
//! process, the daemon, hosts both front ends (the proxy engine and the
//! local API); every other command is a thin client of it.
//!
//! # Map
//!
//! ```text
//! main.rs ── cli ─────────────── one file per subcommand; renders, never decides
//!             │   ╲
//!             │    api ───────── the daemon's HTTP bodies, one definition each (cli ⇄ daemon)
//!            app ─────────────── composition root: opens the vault, wires proxy + daemon, one shutdown
//!           ╱    ╲
//!      proxy      daemon ──────── front ends; never import each other
//!        │   ╲      │   ╲
//!        │    ╲     │    auth_flow ─ Logins: every login and change (write → proxy sees it → audit);
//!        │     ╲    │     │          Sessions; the OAuth protocol (PKCE, device, DCR, refresh, revoke)
//!        │      credentials ──────── CredentialService (the vault's operations), the proxy's route
//!        │      │    │              table + credential cache, OAuth refresh
//!     routing  │   vault ──────────── encrypted SQLite: connections, custom providers, audit log
//!        │      │    │
//!    providers  ca  config  secret  error  clock  home  identity  pop  percent    (leaves)
//!    team ───────── who may call a shared daemon and what each member may use (roles, grants)
//!
//!    diagnostics ── doctor's checks as data      sandbox ── confinement of run's child (the one `unsafe`)
//!    request_log ── the proxy's requests as JSON lines (writer thread, rotation, queries);
//!                   the proxy records, the daemon reads, `app` wires it (uses home, clock, error)
//!    bench ──────── `authsome bench` and `cargo bench --bench proxy_overhead`: a local HTTPS
//!                   upstream, the proxy engine with a throwaway credential in memory, keep-alive
//!                   clients, mitmproxy as a peer (uses proxy, credentials, providers, ca; never
//!                   the vault, the daemon or the home)
//! ```
//!
//! - **A proxied request:** `proxy` (hudsucker adapter → decide: intercept,
//!   blind tunnel or refuse) → `routing` (host, port, path → provider) →
//!   `credentials` cache (decrypted once, refreshed near expiry, single
//!   flight) → `proxy::inject` (the one place a credential is written) →
//!   upstream pool → `proxy::redact` (the answer, streamed back with every
//!   form of the secret replaced by the run's placeholder) → the request
//!   log entry (`proxy::record` → `request_log`).
//! - **A login:** `cli::login` → `POST /api/auth/sessions` (PoP) →
//!   `daemon::routes::auth_sessions` (parse, call, map the error) →
//!   `auth_flow::logins::Logins::start` → the key (form or CLI) or the
//!   OAuth callback / device poller → `Logins::commit`: the vault write, the
//!   proxy's routes and cache invalidated, the audit entry (refusals too).
//!
//! Allowed edges (a module may use those below it, never above; `proxy` ⟂
//! `daemon`) are checked by `tests/it/layering.rs`, which also refuses import
//! cycles between sibling files.

#![deny(unsafe_code)] // one reviewed exception: `cli::run` sets the child's parent-death signal

pub mod api;
pub mod app;
pub mod auth_flow;
pub mod bench;
pub mod ca;
pub mod cli;
pub mod clock;
pub mod config;
pub mod credentials;
pub mod daemon;
pub mod diagnostics;
pub mod error;
pub mod home;
pub mod identity;
pub mod percent;
pub mod pop;
pub mod providers;
pub mod proxy;
pub mod request_log;
pub mod routing;
#[allow(unsafe_code)] // system calls for `run`'s sandbox, behind a small safe interface
pub mod sandbox;
pub mod secret;
pub mod team;
pub mod vault;

pub use error::{Error, Result};
