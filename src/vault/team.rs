//! The team roster: `team_members` and `team_grants` rows, each with an
//! authentication tag.
//!
//! Why a tag: these rows decide who may use the secrets. Anyone who can
//! write the database (a file edit, `sqlite3`, a PostgreSQL operator) could
//! otherwise add themselves as an admin. Like a custom provider's
//! definition (`custom_providers.rs`), each row carries the SHA-256 of its
//! canonical form sealed under the data key and bound to the row's key
//! (`did`, or `did/provider/connection`); a row whose tag does not open is
//! ignored with a warning ([`Vault::team_roster_checked`] names it).
//! Deleting a row is not detected: that takes access away, never grants it.
//!
//! The SQL here is plain and portable (`?N` placeholders, no date
//! functions); the time comes from `crate::clock`.

use super::crypto::{self, Aad};
use super::db::{Topic, Tx, params};
use super::{Vault, crypto_to_io};
use crate::clock::now_unix;
use crate::error::{Error, Result};
use crate::team::{Grant, Member, Role, Roster};

/// The roster whose rows pass their check, and the keys of those that do not.
pub type CheckedRoster = (Roster, Vec<String>);

type MemberRow = (String, String, Option<String>, i64, Vec<u8>);
type GrantRow = (String, String, String, i64, Option<String>, i64, Vec<u8>);

impl Vault {
    /// The team, every row whose tag does not open left out (and warned about).
    pub fn team_roster(&self) -> Result<Roster> {
        Ok(self.team_roster_checked()?.0)
    }

    /// The team, and the keys of the rows left out because their tag does
    /// not open (written outside authsome).
    pub fn team_roster_checked(&self) -> Result<CheckedRoster> {
        self.read("cannot read the team", |tx| self.roster_in(tx))
    }

    fn roster_in(&self, tx: &mut Tx<'_>) -> Result<CheckedRoster> {
        let members: Vec<MemberRow> = tx
            .query(
                "SELECT did, role, added_by, added_at, tag FROM team_members ORDER BY added_at, did",
                &[],
            )?
            .iter()
            .map(|r| Ok((r.str(0)?, r.str(1)?, r.opt_str(2)?, r.i64(3)?, r.opt_blob(4)?.unwrap_or_default())))
            .collect::<Result<_>>()?;
        let grants: Vec<GrantRow> = tx
            .query(
                "SELECT did, provider, connection, allow_export, granted_by, granted_at, tag \
                 FROM team_grants ORDER BY did, provider, connection",
                &[],
            )?
            .iter()
            .map(|r| {
                Ok((
                    r.str(0)?,
                    r.str(1)?,
                    r.str(2)?,
                    r.i64(3)?,
                    r.opt_str(4)?,
                    r.i64(5)?,
                    r.opt_blob(6)?.unwrap_or_default(),
                ))
            })
            .collect::<Result<_>>()?;
        let mut roster = Roster::default();
        let mut bad = Vec::new();
        for (did, role, added_by, added_at, tag) in members {
            let m = Role::parse(&role).map(|role| Member {
                did: did.clone(),
                role,
                added_by,
                added_at,
            });
            match m {
                Some(m) if self.row_tag_ok("team_members", &did, &member_row(&m), &tag) => {
                    roster.members.push(m);
                }
                _ => {
                    tracing::warn!(member = %did, "a stored team member failed its integrity check; ignored");
                    bad.push(did);
                }
            }
        }
        for (did, provider, connection, export, granted_by, granted_at, tag) in grants {
            let g = Grant {
                did,
                provider,
                connection,
                allow_export: export != 0,
                granted_by,
                granted_at,
            };
            let key = grant_key(&g.did, &g.provider, &g.connection);
            // A grant of an identity that is not a (checked) member is no grant.
            if self.row_tag_ok("team_grants", &key, &grant_row(&g), &tag)
                && roster.role(&g.did).is_some()
            {
                roster.grants.push(g);
            } else {
                tracing::warn!(grant = %key, "a stored team grant failed its integrity check; ignored");
                bad.push(key);
            }
        }
        Ok((roster, bad))
    }

    /// Adds `did` with `role`, or changes its role. Returns the roster.
    pub fn team_put_member(&self, did: &str, role: Role, by: Option<&str>) -> Result<Roster> {
        let m = Member {
            did: did.into(),
            role,
            added_by: by.map(String::from),
            added_at: now_unix(),
        };
        self.team_write("cannot add the team member", |vault, tx, roster| {
            if roster.role(did) == Some(Role::Admin) && role != Role::Admin && roster.admins() == 1
            {
                return Err(last_admin(did));
            }
            let tag = vault.row_tag("team_members", did, &member_row(&m))?;
            tx.execute(
                "INSERT INTO team_members (did, role, added_by, added_at, tag) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (did) DO UPDATE SET role = excluded.role, added_by = excluded.added_by, \
                 added_at = excluded.added_at, tag = excluded.tag",
                params![&m.did, role.as_str(), &m.added_by, m.added_at, tag],
            )?;
            Ok(())
        })
    }

    /// Removes `did` and its grants (rows of it that fail their check too).
    /// `Ok(None)` when nothing of it was stored;
    /// removing the last admin is refused (a conflict).
    pub fn team_remove_member(&self, did: &str) -> Result<Option<Roster>> {
        let mut found = false;
        let roster = self.team_write("cannot remove the team member", |_, tx, roster| {
            if roster.role(did) == Some(Role::Admin) && roster.admins() == 1 {
                return Err(last_admin(did));
            }
            // A row that fails its check is no member, but removing it by
            // name is how an admin cleans it up.
            let grants = tx.execute("DELETE FROM team_grants WHERE did = ?1", params![did])?;
            let members = tx.execute("DELETE FROM team_members WHERE did = ?1", params![did])?;
            found = roster.role(did).is_some() || grants + members > 0;
            Ok(())
        })?;
        Ok(found.then_some(roster))
    }

    /// Grants `did` (a member) `provider`'s `connection` (`*`: any), or
    /// changes whether it may export it. `Ok(None)` when `did` is not a member.
    pub fn team_grant(
        &self,
        did: &str,
        provider: &str,
        connection: &str,
        allow_export: bool,
        by: Option<&str>,
    ) -> Result<Option<Roster>> {
        let g = Grant {
            did: did.into(),
            provider: provider.into(),
            connection: connection.into(),
            allow_export,
            granted_by: by.map(String::from),
            granted_at: now_unix(),
        };
        let mut member = false;
        let roster = self.team_write("cannot store the grant", |vault, tx, roster| {
            if roster.role(did).is_none() {
                return Ok(());
            }
            member = true;
            let key = grant_key(did, provider, connection);
            let tag = vault.row_tag("team_grants", &key, &grant_row(&g))?;
            tx.execute(
                "INSERT INTO team_grants (did, provider, connection, allow_export, granted_by, granted_at, tag) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT (did, provider, connection) DO UPDATE SET \
                 allow_export = excluded.allow_export, granted_by = excluded.granted_by, \
                 granted_at = excluded.granted_at, tag = excluded.tag",
                params![&g.did, &g.provider, &g.connection, i64::from(allow_export), &g.granted_by, g.granted_at, tag],
            )?;
            Ok(())
        })?;
        Ok(member.then_some(roster))
    }

    /// Takes back `did`'s grants of `provider` (`connection` `None`: every
    /// grant of the provider; `*` is a grant like any other name). Returns
    /// how many were removed, and the roster.
    pub fn team_revoke(
        &self,
        did: &str,
        provider: &str,
        connection: Option<&str>,
    ) -> Result<(usize, Roster)> {
        let mut removed = 0;
        let roster = self.team_write("cannot revoke the grant", |_, tx, _| {
            removed = match connection {
                Some(c) => tx.execute(
                    "DELETE FROM team_grants WHERE did = ?1 AND provider = ?2 AND connection = ?3",
                    params![did, provider, c],
                ),
                None => tx.execute(
                    "DELETE FROM team_grants WHERE did = ?1 AND provider = ?2",
                    params![did, provider],
                ),
            }? as usize;
            Ok(())
        })?;
        Ok((removed, roster))
    }

    /// Records a PoP token's id until it expires, for the daemons sharing a
    /// store: `false` when some daemon on the store already accepted it
    /// (a replay). Expired ids are dropped in the same transaction.
    pub fn pop_first_use(&self, jti: &str, exp: i64) -> Result<bool> {
        self.write("cannot record a request's proof", |tx| {
            tx.execute(
                "DELETE FROM pop_seen WHERE exp < ?1",
                params![now_unix() - crate::pop::CLOCK_SKEW],
            )?;
            let n = tx.execute(
                "INSERT INTO pop_seen (jti, exp) VALUES (?1, ?2) ON CONFLICT (jti) DO NOTHING",
                params![jti, exp],
            )?;
            Ok(n == 1)
        })
    }

    /// The newest `limit` audit records of `actor`, newest first.
    pub fn list_audit_of(&self, actor: &str, limit: usize) -> Result<Vec<super::AuditEntry>> {
        self.read("cannot read the audit log", |tx| {
            tx.query(
                "SELECT id, ts, event, provider, connection, actor, outcome, detail FROM audit \
                 WHERE actor = ?1 ORDER BY ts DESC, id DESC LIMIT ?2",
                params![actor, limit as i64],
            )?
            .iter()
            .map(super::audit::entry)
            .collect()
        })
    }

    /// Runs `write` in a writing transaction over the checked roster as it
    /// is in it (other writers of the team wait), commits, tells the other
    /// daemons on the store, and returns the roster after it.
    fn team_write(
        &self,
        what: &str,
        write: impl FnOnce(&Vault, &mut Tx<'_>, &Roster) -> Result<()>,
    ) -> Result<Roster> {
        self.write(what, |tx| {
            tx.lock_key("team")?;
            let (before, _) = self.roster_in(tx)?;
            write(self, tx, &before)?;
            let (after, _) = self.roster_in(tx)?;
            tx.notify(&Topic::Team)?;
            Ok(after)
        })
    }

    fn row_aad<'a>(&self, table: &'a str, key: &'a str) -> Aad<'a> {
        Aad {
            table,
            record_id: key,
            field: "row",
            key_version: self.key_version,
        }
    }

    /// A row's tag: the SHA-256 of its canonical form, sealed under the data
    /// key and bound to its table and key.
    fn row_tag(&self, table: &str, key: &str, row: &str) -> Result<Vec<u8>> {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(row.as_bytes());
        crypto::seal(&self.dek, &self.row_aad(table, key), &digest).map_err(crypto_to_io)
    }

    fn row_tag_ok(&self, table: &str, key: &str, row: &str, tag: &[u8]) -> bool {
        use sha2::Digest;
        let digest = sha2::Sha256::digest(row.as_bytes());
        crypto::open(&self.dek, &self.row_aad(table, key), tag)
            .is_ok_and(|d| crate::secret::ct_eq(&d, &digest))
    }
}

/// The canonical form of a member row (every column but the tag).
fn member_row(m: &Member) -> String {
    serde_json::json!([
        "team_members",
        m.did,
        m.role.as_str(),
        m.added_by,
        m.added_at
    ])
    .to_string()
}

/// The canonical form of a grant row (every column but the tag).
fn grant_row(g: &Grant) -> String {
    serde_json::json!([
        "team_grants",
        g.did,
        g.provider,
        g.connection,
        g.allow_export,
        g.granted_by,
        g.granted_at
    ])
    .to_string()
}

fn grant_key(did: &str, provider: &str, connection: &str) -> String {
    format!("{did}/{provider}/{connection}")
}

fn last_admin(did: &str) -> Error {
    Error::Exists {
        message: format!("{did} is the team's last admin"),
        hint: Some("add another admin first: `authsome team add DID --role admin`".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::fresh;
    use super::*;

    #[test]
    fn members_and_grants_round_trip() {
        let (_d, _h, v) = fresh();
        assert_eq!(v.team_roster().unwrap(), Roster::default());
        v.team_put_member("did:a", Role::Admin, None).unwrap();
        let r = v
            .team_put_member("did:m", Role::Member, Some("did:a"))
            .unwrap();
        assert_eq!(r.role("did:m"), Some(Role::Member));
        assert!(
            v.team_grant("did:nobody", "github", "*", false, None)
                .unwrap()
                .is_none()
        );
        let r = v
            .team_grant("did:m", "github", "*", false, Some("did:a"))
            .unwrap()
            .unwrap();
        assert!(r.may_use("did:m", "github", "default"));
        let r = v
            .team_grant("did:m", "github", "*", true, None)
            .unwrap()
            .unwrap();
        assert!(r.may_export("did:m", "github", "x"));
        assert_eq!(r.grants.len(), 1, "a grant again updates it");
        let (n, r) = v.team_revoke("did:m", "github", None).unwrap();
        assert_eq!(n, 1);
        assert!(!r.may_use("did:m", "github", "default"));
        v.team_grant("did:m", "openai", "work", false, None)
            .unwrap();
        let r = v.team_remove_member("did:m").unwrap().unwrap();
        assert_eq!(r.role("did:m"), None);
        assert!(r.grants.is_empty(), "grants go with their member");
        assert!(v.team_remove_member("did:m").unwrap().is_none());
        assert_eq!(v.team_roster_checked().unwrap().1, Vec::<String>::new());
    }

    #[test]
    fn the_last_admin_stays() {
        let (_d, _h, v) = fresh();
        v.team_put_member("did:a", Role::Admin, None).unwrap();
        let e = v.team_remove_member("did:a").unwrap_err();
        assert_eq!(e.code(), "conflict", "{e}");
        let e = v.team_put_member("did:a", Role::Member, None).unwrap_err();
        assert_eq!(e.code(), "conflict", "{e}");
        v.team_put_member("did:b", Role::Admin, None).unwrap();
        assert!(v.team_remove_member("did:a").unwrap().is_some());
    }

    #[test]
    fn rows_written_outside_authsome_are_ignored() {
        let (_d, _h, v) = fresh();
        v.team_put_member("did:m", Role::Member, None).unwrap();
        v.team_grant("did:m", "github", "*", false, None).unwrap();
        v.write("test", |tx| {
            // Promoting oneself, and a new admin row without a valid tag.
            tx.execute(
                "UPDATE team_members SET role = 'admin' WHERE did = 'did:m'",
                &[],
            )?;
            tx.execute(
                "INSERT INTO team_members (did, role, added_at, tag) VALUES ('did:evil', 'admin', 0, ?1)",
                params![vec![0u8]],
            )?;
            // A grant with a tag copied from another row.
            tx.execute(
                "INSERT INTO team_grants (did, provider, connection, granted_at, tag) \
                 SELECT did, 'openai', connection, granted_at, tag FROM team_grants",
                &[],
            )
        })
        .unwrap();
        let (r, bad) = v.team_roster_checked().unwrap();
        assert_eq!(r, Roster::default(), "{r:?}");
        assert!(bad.contains(&"did:evil".to_string()), "{bad:?}");
        assert!(bad.contains(&"did:m".to_string()), "{bad:?}");
        assert_eq!(bad.len(), 4, "{bad:?}");
    }

    #[test]
    fn own_audit_entries() {
        let (_d, _h, v) = fresh();
        let d = serde_json::json!({});
        v.append_audit("export", Some("p"), None, Some("did:m"), "ok", &d)
            .unwrap();
        v.append_audit("export", Some("p"), None, Some("did:a"), "ok", &d)
            .unwrap();
        let mine = v.list_audit_of("did:m", 10).unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].actor.as_deref(), Some("did:m"));
    }
}
