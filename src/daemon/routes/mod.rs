//! Route handlers, one file per resource.

pub mod auth_sessions;
pub mod connections;
pub mod health;
pub mod oauth;
pub mod pages;
pub mod providers;
pub mod proxy;
pub mod requests;
pub mod team;
pub mod ui;
