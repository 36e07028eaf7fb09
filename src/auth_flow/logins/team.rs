//! Team changes: adding and removing members, granting and revoking
//! connections. Each is one [`Logins::commit`] (scope `Nothing`: the
//! proxy's tables do not change), so each is audited with the caller as
//! actor, refusals too. Each returns the roster after it, for the daemon to
//! trust and authorise by.

use super::{Change, Logins, Scope};
use crate::error::{Error, Result};
use crate::team::{Role, Roster};

fn change(event: &'static str, did: &str, actor: String) -> Change {
    let mut c = Change {
        event,
        provider: None,
        connection: None,
        actor: Some(actor),
        detail: serde_json::json!({}),
        scope: Scope::Nothing,
    };
    c.note("member", did);
    c
}

/// A `did:key` identity, as `authsome whoami` prints it.
pub fn check_did(did: &str) -> Result<()> {
    if crate::identity::parse_did_key(did).is_some() {
        return Ok(());
    }
    Err(Error::invalid(
        format!("`{did}` is not a did:key identity"),
        Some(
            "ask the member to run `authsome whoami` and send the `did:key:z6Mk…` it prints".into(),
        ),
    ))
}

impl Logins {
    /// Adds `did` to the team with `role` (or changes its role).
    pub async fn team_add(&self, did: &str, role: Role, actor: String) -> Result<Roster> {
        let mut c = change("team.add", did, actor.clone());
        c.note("role", role.as_str());
        let did = did.to_string();
        self.commit(c, move |svc, _| {
            check_did(&did)?;
            svc.vault().team_put_member(&did, role, Some(&actor))
        })
        .await
    }

    /// Removes `did` and its grants (`None`: it was not a member).
    pub async fn team_remove(&self, did: &str, actor: String) -> Result<Option<Roster>> {
        let c = change("team.remove", did, actor);
        let did = did.to_string();
        self.commit(c, move |svc, change| {
            let out = svc.vault().team_remove_member(&did)?;
            change.note("found", out.is_some());
            Ok(out)
        })
        .await
    }

    /// Grants `did` `provider`'s `connection` (`*`: any); `None`: `did` is
    /// not a member.
    pub async fn team_grant(
        &self,
        did: &str,
        provider: &str,
        connection: &str,
        allow_export: bool,
        actor: String,
    ) -> Result<Option<Roster>> {
        let mut c = change("team.grant", did, actor.clone());
        c.provider = Some(provider.into());
        c.connection = Some(connection.into());
        c.note("export", allow_export);
        let (did, p, conn) = (
            did.to_string(),
            provider.to_string(),
            connection.to_string(),
        );
        self.commit(c, move |svc, _| {
            svc.registry().require(&p)?;
            if conn != crate::team::ANY_CONNECTION {
                crate::credentials::check_connection_name(&conn)?;
            }
            svc.vault()
                .team_grant(&did, &p, &conn, allow_export, Some(&actor))
        })
        .await
    }

    /// Takes back `did`'s grants of `provider` (`connection` `None`: all of
    /// them); returns how many went.
    pub async fn team_revoke(
        &self,
        did: &str,
        provider: &str,
        connection: Option<&str>,
        actor: String,
    ) -> Result<(usize, Roster)> {
        let mut c = change("team.revoke", did, actor);
        c.provider = Some(provider.into());
        c.connection = connection.map(String::from);
        let (did, p, conn) = (
            did.to_string(),
            provider.to_string(),
            connection.map(String::from),
        );
        self.commit(c, move |svc, change| {
            let (n, roster) = svc.vault().team_revoke(&did, &p, conn.as_deref())?;
            change.note("removed", n);
            Ok((n, roster))
        })
        .await
    }
}
