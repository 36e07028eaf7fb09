//! Changes other than logins: logout, revoke, the default connection,
//! export (the audited way a secret leaves), and custom provider
//! definitions. Each is one [`Logins::commit`].

use serde_json::json;

use super::{Change, Exported, LoggedOut, Logins, Registered, Revoked, Scope};
use crate::credentials::RemoveOutcome;
use crate::error::Result;

impl Logins {
    /// Removes one connection (`None`: the provider's default), telling an
    /// OAuth provider to revoke its tokens.
    pub async fn logout(
        &self,
        provider: &str,
        connection: Option<&str>,
        actor: Option<String>,
    ) -> Result<LoggedOut> {
        let change = Change::of("logout", provider, connection).by(actor);
        let (p, c) = (provider.to_string(), connection.map(String::from));
        self.commit(change, move |svc, change| {
            let (rec, notice) = svc.logout_and_revoke(&p, c.as_deref())?;
            change.connection = Some(rec.name.clone());
            change.note("provider_notified", notice);
            Ok(LoggedOut {
                provider: rec.provider,
                connection: rec.name,
                provider_notified: notice,
            })
        })
        .await
    }

    /// Removes every connection of a provider.
    pub async fn revoke(&self, provider: &str, actor: Option<String>) -> Result<Revoked> {
        let change = Change::of("revoke", provider, None).by(actor);
        let p = provider.to_string();
        self.commit(change, move |svc, change| {
            svc.registry().require(&p)?;
            let mut removed = 0;
            let mut notices = Vec::new();
            for c in svc
                .list_connections()?
                .into_iter()
                .filter(|c| c.record.provider == p)
            {
                let (_, notice) = svc.logout_and_revoke(&p, Some(&c.record.name))?;
                notices.push(notice);
                removed += 1;
                // On the record even if a later removal fails.
                change.note("removed", removed);
                change.note("provider_notified", &notices);
            }
            change.note("removed", removed);
            Ok(Revoked {
                provider: p,
                removed,
                provider_notified: notices,
            })
        })
        .await
    }

    /// Makes `connection` the provider's default, and the provider the
    /// chosen one where it shares a host rule with another connected
    /// provider.
    pub async fn set_default(
        &self,
        provider: &str,
        connection: &str,
        actor: Option<String>,
    ) -> Result<()> {
        self.set_default_choosing(provider, connection, actor)
            .await
            .map(drop)
    }

    /// [`Logins::set_default`], returning the host rules where the provider
    /// is now the chosen one (on the record as `chosen_on`).
    pub async fn set_default_choosing(
        &self,
        provider: &str,
        connection: &str,
        actor: Option<String>,
    ) -> Result<Vec<String>> {
        let change = Change::of("set_default", provider, Some(connection)).by(actor);
        let (p, c) = (provider.to_string(), connection.to_string());
        self.commit(change, move |svc, change| {
            let rules = svc.set_default(&p, &c)?;
            if !rules.is_empty() {
                change.note("chosen_on", &rules);
            }
            Ok(rules)
        })
        .await
    }

    /// A connection's values as environment variables: the one explicit
    /// way a secret leaves, always on the record (names, never values).
    pub async fn export(
        &self,
        provider: &str,
        connection: Option<&str>,
        actor: Option<String>,
    ) -> Result<Exported> {
        let change = Change::of("export", provider, connection)
            .by(actor)
            .scope(Scope::Nothing);
        let (p, c) = (provider.to_string(), connection.map(String::from));
        let out = self
            .commit(change, move |svc, change| {
                let (rec, vars) = svc.export(&p, c.as_deref())?;
                let names: Vec<&str> = vars.iter().map(|v| v.name.as_str()).collect();
                change.connection = Some(rec.name.clone());
                change.note("variables", names);
                Ok(Exported {
                    provider: rec.provider,
                    connection: rec.name,
                    variables: vars,
                })
            })
            .await?;
        tracing::info!(provider = %out.provider, connection = %out.connection, count = out.variables.len(), "credentials exported");
        Ok(out)
    }

    /// Registers a custom provider from its file's text (`origin` names it
    /// in errors). A definition that re-binds the provider suspends its
    /// connections until the user logs in again.
    pub async fn register_provider(
        &self,
        origin: &str,
        text: &str,
        force: bool,
        actor: Option<String>,
    ) -> Result<Registered> {
        let change = Change {
            event: "provider.register",
            provider: None,
            connection: None,
            actor,
            detail: json!({}),
            scope: Scope::All,
        };
        let (origin, text) = (origin.to_string(), text.to_string());
        let out = self
            .commit(change, move |svc, change| {
                let def = crate::providers::parse_file(&origin, &text)?;
                let name = def.name.clone();
                let hosts = def.api_url.clone();
                change.provider = Some(name.clone());
                let (outcome, suspended) = svc.register_provider_suspending(def, force)?;
                change.note("outcome", outcome);
                change.note("api_url", &hosts);
                change.note("suspended", &suspended);
                Ok(Registered {
                    provider: name,
                    outcome,
                    api_url: hosts,
                    suspended,
                })
            })
            .await?;
        tracing::info!(provider = %out.provider, outcome = ?out.outcome, "provider registered");
        Ok(out)
    }

    /// Removes a custom provider (a bundled one of the same name comes back).
    pub async fn remove_provider(
        &self,
        name: &str,
        actor: Option<String>,
    ) -> Result<RemoveOutcome> {
        let change = Change::of("provider.remove", name, None)
            .by(actor)
            .scope(Scope::All);
        let n = name.to_string();
        let outcome = self
            .commit(change, move |svc, change| {
                let outcome = svc.remove_provider(&n)?;
                change.note("outcome", outcome);
                Ok(outcome)
            })
            .await?;
        tracing::info!(provider = %name, ?outcome, "provider removed");
        Ok(outcome)
    }
}
