//! `authsome team …`: the members of a shared daemon and what each may
//! use (admins only; the daemon's own home is always an admin).
//!
//! - `team add DID --role admin|member`: add a member (the `did:key` its
//!   `authsome whoami` prints), or change its role;
//! - `team remove DID`: remove it, its grants and its runs;
//! - `team list`: the members, their roles and grants;
//! - `team grant DID PROVIDER[/CONNECTION] [--export]`: let it use a
//!   connection (all of the provider's without `/CONNECTION`);
//! - `team revoke DID PROVIDER[/CONNECTION]`: take that back.

use super::Ctx;
use super::client::DaemonError;
use super::exit::ExitStatus;
use super::printer::{format_time, table};
use super::seg;
use crate::api::{Role, TeamAdd, TeamGrantRequest, TeamList, TeamRemoved, TeamRevoked};

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Add a member (its `did:key`, from its `authsome whoami`), or change its role.
    Add {
        /// The member's identity: `did:key:z6Mk…`.
        did: String,
        /// `member`: uses what it is granted; `admin`: everything, and manages the team.
        #[arg(long, value_enum, default_value_t = RoleArg::Member)]
        role: RoleArg,
    },
    /// Remove a member, its grants and its runs (its next request is refused).
    Remove { did: String },
    /// List the members, their roles and grants.
    List,
    /// Let a member use a provider's connection (every connection without `/CONNECTION`).
    Grant {
        did: String,
        /// `PROVIDER` or `PROVIDER/CONNECTION`.
        target: String,
        /// Also allow `authsome export` of it (the secret then leaves the server).
        #[arg(long)]
        export: bool,
    },
    /// Take back a member's grant (`PROVIDER`: every grant of the provider).
    Revoke {
        did: String,
        /// `PROVIDER` or `PROVIDER/CONNECTION`.
        target: String,
    },
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum RoleArg {
    Admin,
    Member,
}

impl From<RoleArg> for Role {
    fn from(r: RoleArg) -> Role {
        match r {
            RoleArg::Admin => Role::Admin,
            RoleArg::Member => Role::Member,
        }
    }
}

/// Refuses what is not a did:key before anything is sent (exit 4).
fn check_did(did: &str) -> anyhow::Result<()> {
    if crate::identity::parse_did_key(did).is_some() {
        return Ok(());
    }
    Err(crate::Error::invalid(
        format!("`{did}` is not a did:key identity"),
        Some(
            "ask the member to run `authsome whoami` and send the `did:key:z6Mk…` it prints".into(),
        ),
    )
    .into())
}

/// `PROVIDER[/CONNECTION]`.
fn split_target(target: &str) -> anyhow::Result<(String, Option<String>)> {
    let (p, c) = match target.split_once('/') {
        Some((p, c)) => (p, Some(c)),
        None => (target, None),
    };
    if p.is_empty() || c.is_some_and(str::is_empty) {
        return Err(crate::Error::invalid(
            format!("`{target}` is not PROVIDER or PROVIDER/CONNECTION"),
            Some("e.g. `github` or `github/work`".into()),
        )
        .into());
    }
    Ok((p.to_string(), c.map(String::from)))
}

/// A daemon answer "not a member" as exit 3 (not found).
fn not_found(ctx: &Ctx, err: anyhow::Error) -> anyhow::Result<ExitStatus> {
    match err.downcast_ref::<DaemonError>() {
        Some(e) if e.code == "member_not_found" => {
            ctx.printer.error(&e.message, e.hint.as_deref());
            Ok(ExitStatus::NotFound)
        }
        _ => Err(err),
    }
}

pub fn run(ctx: &Ctx, cmd: Command) -> anyhow::Result<ExitStatus> {
    match cmd {
        Command::Add { did, role } => {
            check_did(&did)?;
            let role = Role::from(role);
            let team: TeamList = ctx.client()?.post(
                "/api/team/members",
                &TeamAdd {
                    did: did.clone(),
                    role,
                },
            )?;
            if ctx.printer.json {
                ctx.printer.json(&team);
            } else {
                ctx.printer.success(&format!("{did} is a team {role}"));
                ctx.printer.status(&format!(
                    "hint: `authsome team grant {did} PROVIDER` lets it use a connection"
                ));
            }
            Ok(ExitStatus::Success)
        }
        Command::Remove { did } => {
            check_did(&did)?;
            let out: TeamRemoved = match ctx
                .client()?
                .delete(&format!("/api/team/members/{}", seg(&did)))
            {
                Ok(v) => v,
                Err(e) => return not_found(ctx, e),
            };
            if ctx.printer.json {
                ctx.printer.json(&out);
            } else {
                ctx.printer.success(&format!(
                    "removed {did} ({} run{} ended)",
                    out.runs_ended,
                    if out.runs_ended == 1 { "" } else { "s" }
                ));
            }
            Ok(ExitStatus::Success)
        }
        Command::List => {
            let team: TeamList = ctx.client()?.get("/api/team/members")?;
            if ctx.printer.json {
                ctx.printer.json(&team);
                return Ok(ExitStatus::Success);
            }
            print_list(ctx, &team);
            Ok(ExitStatus::Success)
        }
        Command::Grant {
            did,
            target,
            export,
        } => {
            check_did(&did)?;
            let (provider, connection) = split_target(&target)?;
            let req = TeamGrantRequest {
                did: did.clone(),
                provider,
                connection,
                export,
            };
            let team: TeamList = match ctx.client()?.post("/api/team/grants", &req) {
                Ok(v) => v,
                Err(e) => return not_found(ctx, e),
            };
            if ctx.printer.json {
                ctx.printer.json(&team);
            } else {
                ctx.printer.success(&format!(
                    "{did} may use {target}{}",
                    if export { ", and export it" } else { "" }
                ));
            }
            Ok(ExitStatus::Success)
        }
        Command::Revoke { did, target } => {
            check_did(&did)?;
            let (provider, connection) = split_target(&target)?;
            let mut path = format!(
                "/api/team/grants?did={}&provider={}",
                seg(&did),
                seg(&provider)
            );
            if let Some(c) = &connection {
                path.push_str(&format!("&connection={}", seg(c)));
            }
            let out: TeamRevoked = ctx.client()?.delete(&path)?;
            if ctx.printer.json {
                ctx.printer.json(&out);
            } else if out.removed == 0 {
                ctx.printer.warn(&format!("{did} had no grant of {target}"));
            } else {
                ctx.printer
                    .success(&format!("{did} may no longer use {target}"));
            }
            Ok(ExitStatus::Success)
        }
    }
}

fn print_list(ctx: &Ctx, team: &TeamList) {
    let mut rows = vec![vec![
        team.owner.clone(),
        "admin".into(),
        "(this daemon's home)".into(),
        "-".into(),
    ]];
    for m in team.members.iter().filter(|m| m.did != team.owner) {
        let grants = match m.role {
            Role::Admin => "everything".to_string(),
            Role::Member if m.grants.is_empty() => "-".into(),
            Role::Member => m
                .grants
                .iter()
                .map(|g| {
                    format!(
                        "{}/{}{}",
                        g.provider,
                        g.connection,
                        if g.export { " (export)" } else { "" }
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
        };
        rows.push(vec![
            m.did.clone(),
            m.role.to_string(),
            grants,
            format_time(m.added_at),
        ]);
    }
    for line in table(&["DID", "ROLE", "GRANTS", "ADDED"], &rows) {
        ctx.printer.data(&line);
    }
    for i in &team.ignored {
        ctx.printer.warn(&format!(
            "ignored {i}: the row was written outside authsome (its integrity tag does not open)"
        ));
    }
}
