//! authsome: a credential injector for AI agents and developer tools.
//!
//! An agent runs behind a local proxy that adds the user's API keys and OAuth
//! tokens to requests for known provider hosts, so the agent never holds a
//! secret. This crate is the library behind the `authsome` binary.
//!
//! # Layout
//!
//! ```text
//! main.rs ─ cli (one file per subcommand; rendering only)
//!              │
//!             api (the daemon's request and response bodies: the CLI reads
//!              │   what the daemon's routes write, one definition each)
//!         credentials (CredentialService: the operations the CLI and the
//!              │        daemon routes share)
//!     ┌────────┼──────────┬──────────┐
//!   vault   providers   routing   identity      diagnostics
//!     │         │          │
//!   secret, error, config, home (leaves)
//! ```
//!
//! Allowed edges are checked by `tests/it/layering.rs`: domain modules never
//! reach up into `cli`, and `vault` depends only on `secret`, `error` and `home`.

#![deny(unsafe_code)] // one reviewed exception: `cli::run` sets the child's parent-death signal

pub mod api;
pub mod app;
pub mod auth_flow;
pub mod ca;
pub mod cli;
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
pub mod routing;
#[allow(unsafe_code)] // system calls for `run`'s sandbox, behind a small safe interface
pub mod sandbox;
pub mod secret;
pub mod vault;

pub use error::{Error, Result};
