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

use rusqlite::{TransactionBehavior, params};

use super::crypto::{self, Aad};
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
        let conn = self.conn()?;
        self.roster_in(&conn)
    }

    fn roster_in(&self, conn: &rusqlite::Connection) -> Result<CheckedRoster> {
        let ctx = |e| Error::db("cannot read the team", e);
        let members: Vec<MemberRow> = conn
            .prepare_cached(
                "SELECT did, role, added_by, added_at, tag FROM team_members ORDER BY added_at, did",
            )
            .and_then(|mut st| {
                st.query_map([], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            })
            .map_err(ctx)?;
        let grants: Vec<GrantRow> = conn
            .prepare_cached(
                "SELECT did, provider, connection, allow_export, granted_by, granted_at, tag \
                 FROM team_grants ORDER BY did, provider, connection",
            )
            .and_then(|mut st| {
                st.query_map([], |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                })
                .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
            })
            .map_err(ctx)?;
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
                params![m.did, role.as_str(), m.added_by, m.added_at, tag],
            )
            .map_err(|e| Error::db("cannot add the team member", e))?;
            Ok(())
        })
    }

    /// Removes `did` and its grants. `Ok(None)` when it is not a member;
    /// removing the last admin is refused (a conflict).
    pub fn team_remove_member(&self, did: &str) -> Result<Option<Roster>> {
        let mut found = false;
        let roster = self.team_write("cannot remove the team member", |_, tx, roster| {
            match roster.role(did) {
                None => return Ok(()),
                Some(Role::Admin) if roster.admins() == 1 => return Err(last_admin(did)),
                Some(_) => {}
            }
            found = true;
            tx.execute("DELETE FROM team_grants WHERE did = ?1", [did])
                .and_then(|_| tx.execute("DELETE FROM team_members WHERE did = ?1", [did]))
                .map_err(|e| Error::db("cannot remove the team member", e))?;
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
                params![g.did, g.provider, g.connection, i64::from(allow_export), g.granted_by, g.granted_at, tag],
            )
            .map_err(|e| Error::db("cannot store the grant", e))?;
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
            }
            .map_err(|e| Error::db("cannot revoke the grant", e))?;
            Ok(())
        })?;
        Ok((removed, roster))
    }

    /// The newest `limit` audit records of `actor`, newest first.
    pub fn list_audit_of(&self, actor: &str, limit: usize) -> Result<Vec<super::AuditEntry>> {
        let conn = self.conn()?;
        let mut stmt = conn
            .prepare_cached(
                "SELECT id, ts, event, provider, connection, actor, outcome, detail FROM audit \
                 WHERE actor = ?1 ORDER BY ts DESC, id DESC LIMIT ?2",
            )
            .map_err(|e| Error::db("cannot read the audit log", e))?;
        stmt.query_map(params![actor, limit as i64], |r| {
            let detail: String = r.get(7)?;
            Ok(super::AuditEntry {
                id: r.get(0)?,
                ts: r.get(1)?,
                event: r.get(2)?,
                provider: r.get(3)?,
                connection: r.get(4)?,
                actor: r.get(5)?,
                outcome: r.get(6)?,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::Null),
            })
        })
        .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>())
        .map_err(|e| Error::db("cannot read the audit log", e))
    }

    /// Runs `write` in an IMMEDIATE transaction over the checked roster as
    /// it is in it, commits, and returns the roster after it.
    fn team_write(
        &self,
        what: &str,
        write: impl FnOnce(&Vault, &rusqlite::Transaction<'_>, &Roster) -> Result<()>,
    ) -> Result<Roster> {
        let mut conn = self.conn()?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| Error::db(what.to_string(), e))?;
        let (before, _) = self.roster_in(&tx)?;
        write(self, &tx, &before)?;
        let (after, _) = self.roster_in(&tx)?;
        tx.commit().map_err(|e| Error::db(what.to_string(), e))?;
        Ok(after)
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
        {
            let c = v.conn().unwrap();
            // Promoting oneself, and a new admin row without a valid tag.
            c.execute(
                "UPDATE team_members SET role = 'admin' WHERE did = 'did:m'",
                [],
            )
            .unwrap();
            c.execute(
                "INSERT INTO team_members (did, role, added_at, tag) VALUES ('did:evil', 'admin', 0, x'00')",
                [],
            )
            .unwrap();
            // A grant with a tag copied from another row.
            c.execute(
                "INSERT INTO team_grants (did, provider, connection, granted_at, tag) \
                 SELECT did, 'openai', connection, granted_at, tag FROM team_grants",
                [],
            )
            .unwrap();
        }
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
