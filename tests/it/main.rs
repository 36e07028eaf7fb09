#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! Integration tests: one binary, driving the real `authsome` executable
//! against temporary homes.

mod browser_login;
mod canary;
mod cli_bench;
mod cli_keys;
mod cli_log;
mod cli_login;
mod cli_providers;
mod common;
mod daemon_lifecycle;
mod daemon_security;
mod dashboard;
mod doctor_clients;
mod exit_codes;
mod layering;
mod oauth;
mod permissions;
mod providers_files;
mod proxy_clients;
mod proxy_hardening;
mod proxy_pool;
mod proxy_run;
mod proxy_system;
mod readme;
mod redaction;
mod sandbox;
mod store_migrate;
mod store_postgres;
mod team_members;
mod team_server;
mod vault_tamper;
