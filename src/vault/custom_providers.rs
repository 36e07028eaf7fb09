//! Custom providers: definitions the user registered, stored as JSON text
//! with an authentication tag.
//!
//! Why a tag: the definition says where a credential is sent, so a
//! definition edited in the database file outside authsome must not be
//! used. The tag is the definition's SHA-256 sealed under the data key and
//! bound to the provider's name; a row whose tag does not open is reported
//! and skipped ([`Vault::custom_providers_checked`]). Rows stored before tags
//! existed are tagged once, by the open that adds the column.
//!
//! Also here: suspending a provider's connections, for when its definition
//! changes where the credential goes.

use super::crypto::{self, Aad};
use super::db::{Topic, params};
use super::{Vault, crypto_to_io};
use crate::clock::now_unix;
use crate::error::Result;

/// `(name, definition)` of the stored definitions that pass their check, and
/// the names of those that do not.
pub type CheckedProviders = (Vec<(String, String)>, Vec<String>);

impl Vault {
    /// `(name, definition JSON)` of every registered custom provider whose
    /// stored definition passes its integrity check.
    pub fn list_custom_providers(&self) -> Result<Vec<(String, String)>> {
        Ok(self.custom_providers_checked()?.0)
    }

    /// The custom providers that pass their integrity check, and the names of
    /// those that do not (edited in the file, outside authsome).
    pub fn custom_providers_checked(&self) -> Result<CheckedProviders> {
        let rows: Vec<(String, String, Option<Vec<u8>>)> =
            self.read("cannot list custom providers", |tx| {
                tx.query(
                    "SELECT name, definition, tag FROM custom_providers ORDER BY name",
                    &[],
                )?
                .iter()
                .map(|r| Ok((r.str(0)?, r.str(1)?, r.opt_blob(2)?)))
                .collect()
            })?;
        let (mut good, mut bad) = (Vec::new(), Vec::new());
        for (name, definition, tag) in rows {
            if tag.is_some_and(|t| self.provider_tag_ok(&name, &definition, &t)) {
                good.push((name, definition));
            } else {
                tracing::warn!(provider = %name, "a stored provider definition failed its integrity check; not used");
                bad.push(name);
            }
        }
        Ok((good, bad))
    }

    fn provider_aad<'a>(&self, name: &'a str) -> Aad<'a> {
        Aad {
            table: "custom_providers",
            record_id: name,
            field: "definition",
            key_version: self.key_version,
        }
    }

    /// The tag of a definition: its SHA-256, sealed under the data key and bound to the name.
    fn provider_tag(&self, name: &str, definition: &str) -> Result<Vec<u8>> {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(definition.as_bytes());
        crypto::seal(&self.dek, &self.provider_aad(name), &digest).map_err(crypto_to_io)
    }

    fn provider_tag_ok(&self, name: &str, definition: &str, tag: &[u8]) -> bool {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(definition.as_bytes());
        crypto::open(&self.dek, &self.provider_aad(name), tag)
            .is_ok_and(|d| crate::secret::ct_eq(&d, &digest))
    }

    /// Tags the definitions stored before tags existed, in the open that
    /// adds the tag column (migration 0007) and never again: a row whose
    /// tag was removed later is refused, not tagged anew. (Setting the
    /// schema version back to run the migration again fails: the column
    /// exists.)
    pub(super) fn tag_legacy_providers(&self) -> Result<()> {
        self.write("cannot tag the stored provider definitions", |tx| {
            let rows = tx.query(
                "SELECT name, definition FROM custom_providers WHERE tag IS NULL",
                &[],
            )?;
            for r in rows {
                let (name, definition) = (r.str(0)?, r.str(1)?);
                let tag = self.provider_tag(&name, &definition)?;
                tx.execute(
                    "UPDATE custom_providers SET tag = ?2 WHERE name = ?1",
                    params![name, tag],
                )?;
            }
            Ok(())
        })
    }

    /// Stores (or replaces) a custom provider definition, with its tag.
    pub fn put_custom_provider(&self, name: &str, definition: &str) -> Result<()> {
        let now = now_unix();
        let tag = self.provider_tag(name, definition)?;
        self.write(&format!("cannot store provider {name}"), |tx| {
            tx.execute(
                "INSERT INTO custom_providers (name, definition, created_at, updated_at, tag) VALUES (?1, ?2, ?3, ?3, ?4) \
                 ON CONFLICT (name) DO UPDATE SET definition = excluded.definition, updated_at = excluded.updated_at, tag = excluded.tag",
                params![name, definition, now, tag],
            )?;
            tx.notify(&Topic::Providers)
        })
    }

    /// Suspends every usable connection of `provider` (its definition changed
    /// where the credential goes); returns the names of those suspended.
    pub fn suspend_connections(&self, provider: &str) -> Result<Vec<String>> {
        let what = format!("cannot suspend the connections of {provider}");
        let mut names = self.write(&what, |tx| {
            let names = tx
                .query(
                    "UPDATE connections SET status = 'suspended', updated_at = ?2 \
                     WHERE provider = ?1 AND status != 'suspended' RETURNING name",
                    params![provider, now_unix()],
                )?
                .iter()
                .map(|r| r.str(0))
                .collect::<Result<Vec<_>>>()?;
            tx.notify(&Topic::Provider(provider.to_string()))?;
            Ok(names)
        })?;
        names.sort();
        Ok(names)
    }

    /// Deletes a custom provider; returns whether it existed.
    pub fn delete_custom_provider(&self, name: &str) -> Result<bool> {
        self.write(&format!("cannot remove provider {name}"), |tx| {
            let n = tx.execute(
                "DELETE FROM custom_providers WHERE name = ?1",
                params![name],
            )?;
            tx.notify(&Topic::Providers)?;
            Ok(n > 0)
        })
    }
}
