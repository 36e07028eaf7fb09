//! Keeping this daemon's proxy in step with the other daemons on a shared
//! PostgreSQL store: what the store's listener hears becomes the same
//! rebuild a local change makes (routes rebuilt, cached credentials
//! forgotten), and a lost listener makes the proxy read the store on every
//! request until it hears again.

use std::sync::{Arc, Weak};

use crate::credentials::CredentialService;
use crate::credentials::proxy_tables::ProxyTables;
use crate::vault::Change;

/// Applies one change heard from the store. Runs on the listener's thread.
pub fn apply(svc: &Weak<CredentialService>, tables: &Weak<ProxyTables>, change: Change) {
    let (Some(svc), Some(tables)) = (svc.upgrade(), tables.upgrade()) else {
        return;
    };
    apply_to(&svc, &tables, change);
}

fn apply_to(svc: &Arc<CredentialService>, tables: &ProxyTables, change: Change) {
    let rebuilt = match &change {
        Change::Provider(p) => tables.changed(Some(p)),
        Change::Providers => svc.reload_registry().and_then(|()| tables.changed(None)),
        Change::Lost => {
            tables.set_degraded(true);
            Ok(())
        }
        Change::Resync => svc.reload_registry().and_then(|()| {
            tables.changed(None)?;
            tables.set_degraded(false);
            Ok(())
        }),
    };
    match rebuilt {
        Ok(()) => tracing::debug!(?change, "applied a change from the store"),
        Err(e) => {
            // Not knowing the current routes: stay on the store until the
            // next change or resync succeeds.
            tables.set_degraded(true);
            tracing::warn!(?change, error = %e, "cannot apply a change from the store");
        }
    }
}
