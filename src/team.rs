//! The team: who may call a shared daemon, with which role, and which
//! connections each member may use.
//!
//! A [`Roster`] is the stored truth (rows of `team_members` and
//! `team_grants`, each authenticated by a tag, see `vault::team`); a
//! [`Team`] is what the daemon consults on every request: the roster as last
//! loaded plus the daemon's own identity, which is always an admin (the
//! operator of the store holds the master key anyway). With an empty
//! roster the daemon serves its own home alone, as a laptop daemon does.
//!
//! Rules:
//! - an admin may do everything the single-user daemon allows;
//! - a member may use (proxy, see) the connections granted to it: a grant
//!   names a provider and a connection, or `*` for every connection of the
//!   provider; export needs a grant that allows it;
//! - an identity not in the roster (and not the owner) is nobody: the PoP
//!   verifier does not even trust it.

use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};

/// The connection name a grant uses for "every connection of the provider".
pub const ANY_CONNECTION: &str = "*";

/// A team role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Member,
}

impl Role {
    /// The stored and displayed name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }

    /// Parses `admin` or `member`.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One member of the team.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub did: String,
    pub role: Role,
    /// The admin who added it.
    pub added_by: Option<String>,
    /// Unix seconds.
    pub added_at: i64,
}

/// One grant: a member may use `provider`'s `connection` (`*`: any).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub did: String,
    pub provider: String,
    pub connection: String,
    /// `authsome export` of it is allowed.
    pub allow_export: bool,
    pub granted_by: Option<String>,
    /// Unix seconds.
    pub granted_at: i64,
}

impl Grant {
    /// True when this grant covers `provider`'s `connection`.
    pub fn covers(&self, provider: &str, connection: &str) -> bool {
        self.provider == provider
            && (self.connection == ANY_CONNECTION || self.connection == connection)
    }
}

/// The stored team.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roster {
    pub members: Vec<Member>,
    pub grants: Vec<Grant>,
}

impl Roster {
    /// The identities that lost something from `before` to `after`: left
    /// the team, lost the admin role, or lost (or had narrowed) a grant.
    /// Their open runs were started under rights they no longer have.
    pub fn lost(before: &Roster, after: &Roster) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for m in &before.members {
            let now = after.role(&m.did);
            let demoted = m.role == Role::Admin && now != Some(Role::Admin);
            if now.is_none() || demoted {
                out.push(m.did.clone());
            }
        }
        for g in &before.grants {
            let kept = after.grants.iter().any(|h| {
                h.did == g.did
                    && h.provider == g.provider
                    && h.connection == g.connection
                    && (h.allow_export || !g.allow_export)
            });
            if !kept && !out.contains(&g.did) {
                out.push(g.did.clone());
            }
        }
        out
    }

    /// `did`'s role, `None` when it is not a member.
    pub fn role(&self, did: &str) -> Option<Role> {
        self.members.iter().find(|m| m.did == did).map(|m| m.role)
    }

    /// May `did` use `provider`'s `connection`? Admins may use everything.
    pub fn may_use(&self, did: &str, provider: &str, connection: &str) -> bool {
        match self.role(did) {
            Some(Role::Admin) => true,
            Some(Role::Member) => self.grants_of(did).any(|g| g.covers(provider, connection)),
            None => false,
        }
    }

    /// May `did` export `provider`'s `connection`? Admins may; a member
    /// needs a grant that allows it.
    pub fn may_export(&self, did: &str, provider: &str, connection: &str) -> bool {
        match self.role(did) {
            Some(Role::Admin) => true,
            Some(Role::Member) => self
                .grants_of(did)
                .any(|g| g.allow_export && g.covers(provider, connection)),
            None => false,
        }
    }

    /// `(provider, connection)` pairs granted to `did` (`*` as stored).
    pub fn granted(&self, did: &str) -> Vec<(String, String)> {
        self.grants_of(did)
            .map(|g| (g.provider.clone(), g.connection.clone()))
            .collect()
    }

    /// The grants of `did`.
    pub fn grants_of<'a>(&'a self, did: &'a str) -> impl Iterator<Item = &'a Grant> + 'a {
        self.grants.iter().filter(move |g| g.did == did)
    }

    /// How many admins the roster holds.
    pub fn admins(&self) -> usize {
        self.members
            .iter()
            .filter(|m| m.role == Role::Admin)
            .count()
    }
}

/// The team as the daemon consults it: the owner (the daemon's own
/// identity, always an admin) and the roster as last loaded.
#[derive(Debug)]
pub struct Team {
    owner: String,
    roster: RwLock<Arc<Roster>>,
}

impl Team {
    /// A team of `owner` alone, until a roster is loaded.
    pub fn new(owner: impl Into<String>) -> Team {
        Team {
            owner: owner.into(),
            roster: RwLock::new(Arc::new(Roster::default())),
        }
    }

    /// The daemon's own identity.
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The roster as last loaded.
    pub fn roster(&self) -> Arc<Roster> {
        self.roster
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Replaces the roster (after a load or a write).
    pub fn set(&self, roster: Roster) {
        *self.roster.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(roster);
    }

    /// Loads the roster with `load` and keeps it; on an error the roster
    /// kept so far stays (and the error is returned).
    pub fn reload<E>(&self, load: impl FnOnce() -> Result<Roster, E>) -> Result<Arc<Roster>, E> {
        self.set(load()?);
        Ok(self.roster())
    }

    /// `did`'s role: the owner is an admin; others as the roster says.
    pub fn role(&self, did: &str) -> Option<Role> {
        if did == self.owner {
            return Some(Role::Admin);
        }
        self.roster().role(did)
    }

    /// May `did` use `provider`'s `connection`?
    pub fn may_use(&self, did: &str, provider: &str, connection: &str) -> bool {
        did == self.owner || self.roster().may_use(did, provider, connection)
    }

    /// May `did` export `provider`'s `connection`?
    pub fn may_export(&self, did: &str, provider: &str, connection: &str) -> bool {
        did == self.owner || self.roster().may_export(did, provider, connection)
    }

    /// The identities the daemon trusts: the owner and every member.
    pub fn trusted(&self) -> Vec<String> {
        let roster = self.roster();
        std::iter::once(self.owner.clone())
            .chain(roster.members.iter().map(|m| m.did.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(did: &str, role: Role) -> Member {
        Member {
            did: did.into(),
            role,
            added_by: None,
            added_at: 0,
        }
    }

    fn grant(did: &str, p: &str, c: &str, export: bool) -> Grant {
        Grant {
            did: did.into(),
            provider: p.into(),
            connection: c.into(),
            allow_export: export,
            granted_by: None,
            granted_at: 0,
        }
    }

    fn roster() -> Roster {
        Roster {
            members: vec![
                member("did:a", Role::Admin),
                member("did:m", Role::Member),
                member("did:n", Role::Member),
            ],
            grants: vec![
                grant("did:m", "github", "*", false),
                grant("did:m", "openai", "work", true),
                grant("did:x", "github", "*", true),
            ],
        }
    }

    #[test]
    fn roles_and_grants() {
        let r = roster();
        assert_eq!(r.role("did:a"), Some(Role::Admin));
        assert_eq!(r.role("did:m"), Some(Role::Member));
        assert_eq!(r.role("did:x"), None, "a grant alone makes no member");
        assert!(r.may_use("did:m", "github", "default"));
        assert!(r.may_use("did:m", "github", "other"), "* matches any");
        assert!(r.may_use("did:m", "openai", "work"));
        assert!(!r.may_use("did:m", "openai", "default"));
        assert!(!r.may_use("did:m", "slack", "default"));
        assert!(!r.may_use("did:n", "github", "default"));
        assert!(!r.may_use("did:x", "github", "default"), "not a member");
        assert!(r.may_use("did:a", "slack", "anything"), "admins use all");
        assert_eq!(
            r.granted("did:m"),
            vec![
                ("github".to_string(), "*".to_string()),
                ("openai".to_string(), "work".to_string())
            ]
        );
        assert!(r.granted("did:n").is_empty());
        assert_eq!(r.admins(), 1);
    }

    #[test]
    fn export_needs_its_own_permission() {
        let r = roster();
        assert!(!r.may_export("did:m", "github", "default"));
        assert!(r.may_export("did:m", "openai", "work"));
        assert!(!r.may_export("did:m", "openai", "default"));
        assert!(!r.may_export("did:x", "github", "default"));
        assert!(r.may_export("did:a", "github", "default"));
    }

    #[test]
    fn the_owner_is_always_an_admin_and_trusted() {
        let t = Team::new("did:owner");
        assert_eq!(t.role("did:owner"), Some(Role::Admin));
        assert_eq!(t.role("did:m"), None);
        assert_eq!(t.trusted(), vec!["did:owner".to_string()]);
        assert!(t.may_use("did:owner", "github", "x"));
        t.reload(|| Ok::<_, ()>(roster())).unwrap();
        assert_eq!(t.role("did:m"), Some(Role::Member));
        assert_eq!(t.trusted().len(), 4);
        assert!(t.may_use("did:m", "github", "default"));
        assert!(!t.may_export("did:m", "github", "default"));
        // A failed load keeps what was there.
        assert!(t.reload(|| Err::<Roster, _>("db down")).is_err());
        assert_eq!(t.role("did:m"), Some(Role::Member));
        t.set(Roster::default());
        assert_eq!(t.role("did:m"), None);
        assert_eq!(t.role("did:owner"), Some(Role::Admin));
    }

    #[test]
    fn roles_parse_and_print() {
        for r in [Role::Admin, Role::Member] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert_eq!(Role::parse("root"), None);
        assert_eq!(serde_json::to_string(&Role::Admin).unwrap(), "\"admin\"");
    }

    #[test]
    fn who_lost_something_between_two_rosters() {
        let m = |did: &str, role| Member {
            did: did.into(),
            role,
            added_by: None,
            added_at: 0,
        };
        let g = |did: &str, p: &str, export| Grant {
            did: did.into(),
            provider: p.into(),
            connection: "*".into(),
            allow_export: export,
            granted_by: None,
            granted_at: 0,
        };
        let before = Roster {
            members: vec![
                m("a", Role::Admin),
                m("b", Role::Admin),
                m("c", Role::Member),
                m("d", Role::Member),
            ],
            grants: vec![g("c", "github", true), g("d", "openai", false)],
        };
        let after = Roster {
            members: vec![
                m("a", Role::Admin),
                m("b", Role::Member),
                m("c", Role::Member),
                m("d", Role::Member),
                m("e", Role::Member),
            ],
            grants: vec![g("c", "github", false), g("d", "openai", true)],
        };
        let mut lost = Roster::lost(&before, &after);
        lost.sort();
        // b demoted, c's export taken back; d gained, e is new, a unchanged
        assert_eq!(lost, vec!["b".to_string(), "c".to_string()]);
        assert!(Roster::lost(&after, &after).is_empty());
    }
}
