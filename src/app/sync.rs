//! Keeping this daemon in step with the other daemons on a shared
//! PostgreSQL store: what the store's listener hears becomes the same
//! rebuild a local change makes (routes rebuilt, cached credentials
//! forgotten, the team and the identities it trusts reloaded, the runs of
//! removed members ended), and a lost listener makes the proxy read the
//! store on every request until it hears again.

use std::sync::Weak;

use crate::credentials::CredentialService;
use crate::credentials::proxy_tables::ProxyTables;
use crate::daemon::state::ProxyRuns;
use crate::pop::Verifier;
use crate::team::Team;
use crate::vault::Change;

/// What a change from the store updates. Weak: the listener never keeps
/// the daemon's state alive at shutdown.
pub struct Followers {
    pub svc: Weak<CredentialService>,
    pub tables: Weak<ProxyTables>,
    pub team: Weak<Team>,
    pub pop: Weak<Verifier>,
    pub runs: Weak<super::runs::Runs>,
}

impl Followers {
    /// Applies one change heard from the store. Runs on the listener's
    /// thread (blocking calls are fine there).
    pub fn apply(&self, change: Change) {
        let (Some(svc), Some(tables)) = (self.svc.upgrade(), self.tables.upgrade()) else {
            return;
        };
        let rebuilt = match &change {
            Change::Provider(p) => tables.changed(Some(p)),
            Change::Providers => svc.reload_registry().and_then(|()| tables.changed(None)),
            Change::Team => self.reload_team(&svc),
            Change::Lost => {
                tables.set_degraded(true);
                Ok(())
            }
            Change::Resync => self.reload_all(&svc, &tables).map(|()| {
                tables.set_degraded(false);
            }),
            // While listening, a full reload makes good an earlier failed
            // apply; while not, the proxy stays on the store.
            Change::Reload { listening } => self.reload_all(&svc, &tables).map(|()| {
                if *listening {
                    tables.set_degraded(false);
                }
            }),
        };
        match rebuilt {
            Ok(()) => tracing::debug!(?change, "applied a change from the store"),
            Err(e) => {
                // Not knowing the current state: stay on the store until
                // the next change or resync succeeds.
                tables.set_degraded(true);
                tracing::warn!(?change, error = %e, "cannot apply a change from the store");
            }
        }
    }

    fn reload_all(
        &self,
        svc: &CredentialService,
        tables: &ProxyTables,
    ) -> crate::error::Result<()> {
        svc.reload_registry()?;
        self.reload_team(svc)?;
        tables.changed(None)
    }

    /// The roster again; the identities trusted follow it, and a member
    /// removed elsewhere loses its runs here too.
    fn reload_team(&self, svc: &CredentialService) -> crate::error::Result<()> {
        let (Some(team), Some(pop)) = (self.team.upgrade(), self.pop.upgrade()) else {
            return Ok(());
        };
        let before = team.roster();
        let after = svc.vault().team_roster()?;
        let lost = crate::team::Roster::lost(&before, &after);
        team.set(after);
        pop.set_trusted(team.trusted().iter().map(String::as_str));
        if let Some(runs) = self.runs.upgrade() {
            for did in lost {
                let n = runs.end_member(&did);
                tracing::info!(member = %did, runs_ended = n, "the team changed on another daemon: runs ended");
            }
        }
        Ok(())
    }
}
