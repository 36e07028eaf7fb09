//! The MITM proxy engine (being built; see the README's status).
//!
//! What is here now: [`inject`], the pure function every intercepted
//! request goes through. The listener, TLS interception (with [`crate::ca`])
//! and upstream forwarding come next.

pub mod inject;
