//! Who may see the dashboard: one-time links and browser sessions, held in
//! this daemon's memory only (a restart signs every browser out).
//!
//! `authsome dashboard` asks for a link (`POST /api/dashboard/links`, PoP):
//! a random 256-bit token, valid [`LINK_TTL`] seconds, single use. The
//! browser trades it at `GET /?t=TOKEN` for a session: a random 256-bit
//! cookie value (`HttpOnly; SameSite=Strict`) and a per-session CSRF token
//! that every form carries. Only SHA-256 digests of the link and cookie
//! values are kept, so the map lookups reveal nothing about a value through
//! their timing; the CSRF token is compared in constant time.
//!
//! Pure bookkeeping: the caller passes the time, so tests can move it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

use crate::error::Result;
use crate::secret::{Secret, ct_eq, fill_random};

/// How long a one-time link may wait to be opened, in seconds.
pub const LINK_TTL: i64 = 60;
/// How long a browser session lasts, in seconds (or until the daemon stops).
pub const SESSION_TTL: i64 = 12 * 3600;
/// At most this many unopened links; the oldest goes first.
const MAX_LINKS: usize = 32;
/// At most this many browser sessions; the oldest goes first.
const MAX_SESSIONS: usize = 16;
/// Live request streams (`/ui/requests/events`) one session may hold open.
pub const MAX_STREAMS_PER_SESSION: usize = 4;
/// Live request streams of all sessions together: each costs a task that
/// reads the request log twice a second, in the process the proxy runs in.
pub const MAX_STREAMS: usize = 16;

/// The links and sessions of one daemon.
#[derive(Debug, Default)]
pub struct DashboardAuth {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// SHA-256 of the token → when it stops working.
    links: HashMap<[u8; 32], i64>,
    /// SHA-256 of the cookie value → the session.
    sessions: HashMap<[u8; 32], Entry>,
    /// Open streams per session digest.
    streams: HashMap<[u8; 32], usize>,
}

#[derive(Debug)]
struct Entry {
    csrf: Secret<String>,
    created_at: i64,
    expires_at: i64,
}

/// A session just opened: what goes into `Set-Cookie`.
#[derive(Debug)]
pub struct NewSession {
    pub cookie: Secret<String>,
    pub expires_at: i64,
}

/// A valid session, as a page sees it.
#[derive(Debug)]
pub struct Session {
    /// The token every form of this session carries.
    pub csrf: Secret<String>,
    pub expires_at: i64,
}

fn digest(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// 32 random bytes, hex.
fn random_token() -> Result<Secret<String>> {
    let mut b = [0u8; 32];
    fill_random(&mut b)?;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    b.fill(0);
    Ok(Secret::new(hex))
}

/// Keeps at most `max` entries: the expired go, then the oldest.
fn prune<V>(map: &mut HashMap<[u8; 32], V>, now: i64, max: usize, expiry: impl Fn(&V) -> i64) {
    map.retain(|_, v| expiry(v) > now);
    while map.len() >= max {
        let Some(oldest) = map.iter().min_by_key(|(_, v)| expiry(v)).map(|(k, _)| *k) else {
            break;
        };
        map.remove(&oldest);
    }
}

impl DashboardAuth {
    pub fn new() -> DashboardAuth {
        DashboardAuth::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// A fresh one-time token and when it expires.
    pub fn issue_link(&self, now: i64) -> Result<(Secret<String>, i64)> {
        let token = random_token()?;
        let expires_at = now + LINK_TTL;
        let mut inner = self.lock();
        prune(&mut inner.links, now, MAX_LINKS, |e| *e);
        inner.links.insert(digest(token.expose()), expires_at);
        Ok((token, expires_at))
    }

    /// Trades a one-time token for a session. `None` when the token is
    /// unknown, used or expired; it never works twice.
    pub fn redeem(&self, token: &str, now: i64) -> Result<Option<NewSession>> {
        let mut inner = self.lock();
        match inner.links.remove(&digest(token)) {
            Some(expires_at) if expires_at > now => {}
            _ => return Ok(None),
        }
        let cookie = random_token()?;
        let csrf = random_token()?;
        let expires_at = now + SESSION_TTL;
        prune(&mut inner.sessions, now, MAX_SESSIONS, |e| e.expires_at);
        inner.sessions.insert(
            digest(cookie.expose()),
            Entry {
                csrf,
                created_at: now,
                expires_at,
            },
        );
        Ok(Some(NewSession { cookie, expires_at }))
    }

    /// The session of a cookie value, while it lasts.
    pub fn session(&self, cookie: &str, now: i64) -> Option<Session> {
        let mut inner = self.lock();
        let key = digest(cookie);
        match inner.sessions.get(&key) {
            Some(e) if e.expires_at > now && e.created_at <= now => Some(Session {
                csrf: e.csrf.duplicate(),
                expires_at: e.expires_at,
            }),
            Some(_) => {
                inner.sessions.remove(&key);
                None
            }
            None => None,
        }
    }

    /// True when `csrf` is the token of the session of `cookie` (constant time).
    pub fn csrf_ok(&self, cookie: &str, csrf: &str, now: i64) -> bool {
        self.session(cookie, now)
            .is_some_and(|s| ct_eq(s.csrf.expose().as_bytes(), csrf.as_bytes()))
    }

    /// Ends the session of `cookie` (sign out).
    pub fn end(&self, cookie: &str) {
        self.lock().sessions.remove(&digest(cookie));
    }

    /// A slot for one live stream of this session, or `None` when the
    /// session has no valid session or the session or the daemon already
    /// holds as many as allowed. The slot is given back when dropped.
    pub fn open_stream(self: &Arc<Self>, cookie: &str, now: i64) -> Option<StreamSlot> {
        self.session(cookie, now)?;
        let key = digest(cookie);
        let mut inner = self.lock();
        let total: usize = inner.streams.values().sum();
        let mine = inner.streams.get(&key).copied().unwrap_or(0);
        if total >= MAX_STREAMS || mine >= MAX_STREAMS_PER_SESSION {
            return None;
        }
        inner.streams.insert(key, mine + 1);
        Some(StreamSlot {
            auth: Arc::clone(self),
            key,
        })
    }
}

/// One open live stream (see [`DashboardAuth::open_stream`]).
#[derive(Debug)]
pub struct StreamSlot {
    auth: Arc<DashboardAuth>,
    key: [u8; 32],
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut inner = self.auth.lock();
        if let Some(n) = inner.streams.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                inner.streams.remove(&self.key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_works_once_and_only_in_time() {
        let a = DashboardAuth::new();
        let (t, exp) = a.issue_link(1000).unwrap();
        assert_eq!(exp, 1000 + LINK_TTL);
        assert_eq!(t.expose().len(), 64, "256 bits, hex");
        let s = a.redeem(t.expose(), 1001).unwrap().expect("first use");
        assert!(a.redeem(t.expose(), 1002).unwrap().is_none(), "single use");
        assert!(a.session(s.cookie.expose(), 1003).is_some());
        let (late, _) = a.issue_link(2000).unwrap();
        assert!(
            a.redeem(late.expose(), 2000 + LINK_TTL).unwrap().is_none(),
            "expired"
        );
        assert!(a.redeem("", 2000).unwrap().is_none());
        assert!(a.redeem("00", 2000).unwrap().is_none());
    }

    #[test]
    fn live_streams_are_capped_per_session_and_in_all() {
        let a = Arc::new(DashboardAuth::new());
        assert!(a.open_stream("no-such-session", 1000).is_none());
        let mut cookies = Vec::new();
        for _ in 0..(MAX_STREAMS / MAX_STREAMS_PER_SESSION + 1) {
            let (t, _) = a.issue_link(1000).unwrap();
            cookies.push(a.redeem(t.expose(), 1000).unwrap().unwrap().cookie);
        }
        let first = cookies[0].expose();
        let mut held: Vec<StreamSlot> = (0..MAX_STREAMS_PER_SESSION)
            .map(|_| {
                a.open_stream(first, 1001)
                    .expect("within the session's share")
            })
            .collect();
        assert!(a.open_stream(first, 1001).is_none(), "per session");
        held.pop();
        assert!(
            a.open_stream(first, 1001).is_some(),
            "a dropped slot is given back"
        );
        for c in &cookies[1..MAX_STREAMS / MAX_STREAMS_PER_SESSION] {
            for _ in 0..MAX_STREAMS_PER_SESSION {
                held.push(a.open_stream(c.expose(), 1001).unwrap());
            }
        }
        let last = cookies.last().unwrap().expose();
        assert_eq!(held.len(), MAX_STREAMS - 1);
        held.push(a.open_stream(last, 1001).unwrap());
        assert!(a.open_stream(last, 1001).is_none(), "in all");
        held.clear();
        assert!(a.open_stream(last, 1001).is_some());
    }

    #[test]
    fn sessions_expire_and_check_their_csrf_token() {
        let a = DashboardAuth::new();
        let (t, _) = a.issue_link(0).unwrap();
        let s = a.redeem(t.expose(), 0).unwrap().unwrap();
        let c = s.cookie.expose().to_string();
        let csrf = a.session(&c, 1).unwrap().csrf.expose().to_string();
        assert_ne!(csrf, c);
        assert!(a.csrf_ok(&c, &csrf, 1));
        assert!(!a.csrf_ok(&c, "forged", 1));
        assert!(!a.csrf_ok(&c, "", 1));
        assert!(!a.csrf_ok("other", &csrf, 1));
        assert!(a.session(&c, SESSION_TTL).is_none(), "expired");
        assert!(a.session(&c, 1).is_none(), "and forgotten");
        let (t, _) = a.issue_link(0).unwrap();
        let s = a.redeem(t.expose(), 0).unwrap().unwrap();
        a.end(s.cookie.expose());
        assert!(a.session(s.cookie.expose(), 1).is_none(), "signed out");
    }

    #[test]
    fn links_and_sessions_are_bounded() {
        let a = DashboardAuth::new();
        let links: Vec<_> = (0..MAX_LINKS + 5)
            .map(|i| a.issue_link(i as i64).unwrap().0)
            .collect();
        assert!(a.lock().links.len() <= MAX_LINKS);
        // The newest still works.
        let last = links.last().unwrap();
        assert!(a.redeem(last.expose(), 50).unwrap().is_some());
        for i in 0..MAX_SESSIONS + 5 {
            let (t, _) = a.issue_link(100 + i as i64).unwrap();
            a.redeem(t.expose(), 100 + i as i64).unwrap().unwrap();
        }
        assert!(a.lock().sessions.len() <= MAX_SESSIONS);
    }
}
