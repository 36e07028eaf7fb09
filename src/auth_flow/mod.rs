//! Login sessions: the state machine the daemon runs for each `authsome login`.
//!
//! A session is created by the CLI (PoP-authenticated), waits for input (an
//! API key typed into the browser form, or sent by the CLI with
//! `--with-api-key`), and ends `completed`, `failed` or `expired`. OAuth flows
//! will add their own waiting states on the same machinery.
//!
//! Sessions live in memory only: a daemon restart loses sessions in flight,
//! never anything stored. Ids and CSRF tokens are 128-bit random values; the
//! id in the form URL is the capability that reaches the input page.

pub mod logins;
pub mod oauth;

use std::collections::HashMap;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::providers::Flow;
use crate::secret::Secret;

/// Default lifetime of a session, seconds.
pub const SESSION_TTL: i64 = 300;

/// Lifetime of a browser-session login, seconds: the CLI waits at most
/// [`BROWSER_LOGIN_MAX_WAIT`] for the user to sign in, then sends the cookies.
pub const BROWSER_SESSION_TTL: i64 = BROWSER_LOGIN_MAX_WAIT + 60;

/// The longest `authsome login --timeout` of a browser-session login, seconds.
pub const BROWSER_LOGIN_MAX_WAIT: i64 = 30 * 60;

/// Where a session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// Waiting for the user to submit the input form (or the CLI to send the key).
    WaitingForInput,
    /// Waiting for the user at the provider: browser consent (the callback
    /// completes it) or device approval (the daemon polls).
    WaitingForUser,
    /// The credential is stored.
    Completed,
    /// The flow ended with an error; `error` says which.
    Failed,
    /// Nobody completed it in time.
    Expired,
}

impl SessionStatus {
    /// True when the session will not change any more.
    pub fn is_final(self) -> bool {
        !matches!(
            self,
            SessionStatus::WaitingForInput | SessionStatus::WaitingForUser
        )
    }
}

/// An error recorded on a failed session (safe to show: never a secret).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionError {
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// What the client should do next.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum NextAction {
    /// Open this URL in a browser.
    OpenUrl { url: String },
    /// Show this code and where to enter it (RFC 8628).
    DeviceCode {
        user_code: String,
        verification_uri: String,
        #[serde(skip_serializing_if = "Option::is_none")]
        verification_uri_complete: Option<String>,
    },
    /// Nothing: the session is final.
    None,
}

/// A session as returned to clients.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionView {
    pub id: String,
    pub provider: String,
    pub connection: String,
    pub flow: Flow,
    pub status: SessionStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<SessionError>,
    pub created_at: i64,
    pub expires_at: i64,
    pub next_action: NextAction,
    /// A note for the user ("already connected").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What the OAuth callback needs to finish an authorization-code flow.
/// Held in memory only; taken (single use) by the callback.
#[derive(Debug)]
pub struct PendingOAuth {
    pub redirect_uri: String,
    pub verifier: Secret<String>,
    pub client: crate::credentials::oauth::ClientInfo,
    pub endpoints: oauth::Endpoints,
    pub scopes: Vec<String>,
    /// The `iss` an RFC 9207 response must carry, when it carries one.
    pub issuer: Option<String>,
    /// True when `issuer` came from metadata (compared exactly); otherwise
    /// it is the authorization endpoint's origin and `iss` must share it.
    pub issuer_exact: bool,
    /// The server promised `iss` in its responses (RFC 9207 metadata): a
    /// response without it is refused.
    pub iss_required: bool,
    /// A client given with `--client-id`, stored once the login succeeds
    /// (so a failed login never replaces the client other connections use).
    pub new_client: Option<crate::credentials::oauth::OAuthClient>,
    pub force: bool,
}

struct Session {
    view: SessionView,
    force: bool,
    csrf: Secret<String>,
    input_url: String,
    state: Option<String>,
}

/// The in-memory session store.
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    /// OAuth `state` → (session id, what the callback needs).
    pending: Mutex<HashMap<String, (String, PendingOAuth)>>,
    ttl: i64,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// What the input form needs to render and to check a submission.
#[derive(Debug)]
pub struct InputContext {
    pub view: SessionView,
    pub force: bool,
    pub csrf: Secret<String>,
}

fn random_hex() -> Result<String> {
    let mut b = [0u8; 16];
    crate::secret::fill_random(&mut b)?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

impl Sessions {
    /// A store whose sessions live `ttl` seconds.
    pub fn new(ttl: i64) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            pending: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a session; `base_url` is the daemon's advertised URL.
    pub fn create(
        &self,
        provider: &str,
        connection: &str,
        flow: Flow,
        force: bool,
        base_url: &str,
        now: i64,
    ) -> Result<SessionView> {
        let id = random_hex()?;
        let input_url = format!(
            "{}/api/auth/sessions/{id}/input",
            base_url.trim_end_matches('/')
        );
        let view = SessionView {
            id: id.clone(),
            provider: provider.into(),
            connection: connection.into(),
            flow,
            status: SessionStatus::WaitingForInput,
            error: None,
            created_at: now,
            expires_at: now + self.ttl,
            next_action: NextAction::OpenUrl {
                url: input_url.clone(),
            },
            message: None,
        };
        let mut map = self.lock();
        // Forget finished sessions an hour after they expired.
        map.retain(|_, s| s.view.expires_at + 3600 > now);
        map.insert(
            id,
            Session {
                view: view.clone(),
                force,
                csrf: Secret::new(random_hex()?),
                input_url,
                state: None,
            },
        );
        Ok(view)
    }

    /// Starts a session that waits for the user at the provider. With
    /// `pending` (authorization code), `state` finds it from the callback.
    #[allow(clippy::too_many_arguments)]
    pub fn create_waiting(
        &self,
        provider: &str,
        connection: &str,
        flow: Flow,
        next_action: NextAction,
        lifetime: i64,
        state: Option<(String, PendingOAuth)>,
        now: i64,
    ) -> Result<SessionView> {
        let id = random_hex()?;
        let view = SessionView {
            id: id.clone(),
            provider: provider.into(),
            connection: connection.into(),
            flow,
            status: SessionStatus::WaitingForUser,
            error: None,
            created_at: now,
            expires_at: now + lifetime,
            next_action,
            message: None,
        };
        let state_key = state.as_ref().map(|(s, _)| s.clone());
        {
            let mut map = self.lock();
            map.retain(|_, s| s.view.expires_at + 3600 > now);
            map.insert(
                id.clone(),
                Session {
                    view: view.clone(),
                    force: false,
                    csrf: Secret::new(random_hex()?),
                    input_url: String::new(),
                    state: state_key,
                },
            );
        }
        if let Some((st, p)) = state {
            let live: std::collections::HashSet<String> = self.lock().keys().cloned().collect();
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.retain(|_, (sid, _)| live.contains(sid));
            pending.insert(st, (id, p));
        }
        Ok(view)
    }

    /// Moves a session that waited for input (the OAuth client form) on to
    /// waiting for the user at the provider, with `state` for the callback.
    pub fn continue_at_provider(
        &self,
        id: &str,
        next_action: NextAction,
        state: (String, PendingOAuth),
        now: i64,
    ) -> Option<SessionView> {
        let view = {
            let mut map = self.lock();
            let s = map.get_mut(id)?;
            expire(s, now);
            if s.view.status != SessionStatus::WaitingForInput {
                return None;
            }
            s.view.status = SessionStatus::WaitingForUser;
            s.view.next_action = next_action;
            s.state = Some(state.0.clone());
            s.view.clone()
        };
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(state.0, (id.to_string(), state.1));
        Some(view)
    }

    /// Makes a session replace an existing connection when it completes.
    pub fn set_force(&self, id: &str, force: bool) {
        if let Some(s) = self.lock().get_mut(id) {
            s.force = force;
        }
    }

    /// A session that is already over (`completed` with a message).
    pub fn create_completed(
        &self,
        provider: &str,
        connection: &str,
        flow: Flow,
        message: &str,
        now: i64,
    ) -> Result<SessionView> {
        let v = self.create_waiting(
            provider,
            connection,
            flow,
            NextAction::None,
            self.ttl,
            None,
            now,
        )?;
        let mut map = self.lock();
        let s = map
            .get_mut(&v.id)
            .ok_or_else(|| crate::error::Error::invalid("session vanished", None))?;
        s.view.status = SessionStatus::Completed;
        s.view.message = Some(message.to_string());
        Ok(s.view.clone())
    }

    /// The pending authorization-code flow for `state`, removed (a state is
    /// good for one callback). `None` for unknown, used or expired states.
    pub fn take_state(&self, state: &str, now: i64) -> Option<(SessionView, PendingOAuth)> {
        let (id, pending) = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(state)?;
        let mut map = self.lock();
        let s = map.get_mut(&id)?;
        expire(s, now);
        if s.view.status != SessionStatus::WaitingForUser || s.state.as_deref() != Some(state) {
            return None;
        }
        Some((s.view.clone(), pending))
    }

    /// The session's current view, `None` for unknown ids.
    pub fn get(&self, id: &str, now: i64) -> Option<SessionView> {
        let mut map = self.lock();
        let s = map.get_mut(id)?;
        expire(s, now);
        Some(s.view.clone())
    }

    /// The input context of a session that still waits for input.
    pub fn input_context(&self, id: &str, now: i64) -> Option<InputContext> {
        let mut map = self.lock();
        let s = map.get_mut(id)?;
        expire(s, now);
        Some(InputContext {
            view: s.view.clone(),
            force: s.force,
            csrf: s.csrf.duplicate(),
        })
    }

    /// Marks a waiting session completed. Returns the new view, or `None`
    /// when it was not waiting (already finished or expired).
    pub fn complete(&self, id: &str, now: i64) -> Option<SessionView> {
        self.finish(id, now, SessionStatus::Completed, None)
    }

    /// Marks a waiting session completed with a note.
    pub fn complete_with(&self, id: &str, now: i64, message: &str) -> Option<SessionView> {
        let v = self.finish(id, now, SessionStatus::Completed, None)?;
        let mut map = self.lock();
        let s = map.get_mut(id)?;
        s.view.message = Some(message.to_string());
        Some(s.view.clone()).or(Some(v))
    }

    /// Marks a waiting session failed.
    pub fn fail(&self, id: &str, now: i64, error: SessionError) -> Option<SessionView> {
        self.finish(id, now, SessionStatus::Failed, Some(error))
    }

    fn finish(
        &self,
        id: &str,
        now: i64,
        status: SessionStatus,
        error: Option<SessionError>,
    ) -> Option<SessionView> {
        let mut map = self.lock();
        let s = map.get_mut(id)?;
        expire(s, now);
        if s.view.status.is_final() {
            return None;
        }
        s.view.status = status;
        s.view.error = error;
        s.view.next_action = NextAction::None;
        Some(s.view.clone())
    }

    /// The form URL of a session (what `next_action` pointed at).
    pub fn input_url(&self, id: &str) -> Option<String> {
        self.lock().get(id).map(|s| s.input_url.clone())
    }
}

fn expire(s: &mut Session, now: i64) {
    if !s.view.status.is_final() && now >= s.view.expires_at {
        s.view.status = SessionStatus::Expired;
        s.view.next_action = NextAction::None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifecycle_and_expiry() {
        let s = Sessions::new(300);
        let v = s
            .create(
                "openai",
                "default",
                Flow::ApiKey,
                false,
                "http://127.0.0.1:7998",
                1000,
            )
            .unwrap();
        assert_eq!(v.id.len(), 32);
        assert!(
            matches!(&v.next_action, NextAction::OpenUrl { url } if url.ends_with(&format!("/api/auth/sessions/{}/input", v.id)))
        );
        assert_eq!(
            s.get(&v.id, 1299).unwrap().status,
            SessionStatus::WaitingForInput
        );
        assert_eq!(s.get(&v.id, 1300).unwrap().status, SessionStatus::Expired);
        assert!(
            s.complete(&v.id, 1301).is_none(),
            "an expired session cannot complete"
        );

        let w = s
            .create("openai", "default", Flow::ApiKey, false, "http://x", 2000)
            .unwrap();
        assert_eq!(
            s.complete(&w.id, 2001).unwrap().status,
            SessionStatus::Completed
        );
        assert!(s.complete(&w.id, 2002).is_none(), "single use");
        assert!(s.get("nope", 2000).is_none());
    }

    #[test]
    fn ids_and_csrf_tokens_differ() {
        let s = Sessions::new(300);
        let a = s
            .create("p", "c", Flow::ApiKey, false, "http://x", 0)
            .unwrap();
        let b = s
            .create("p", "c", Flow::ApiKey, false, "http://x", 0)
            .unwrap();
        assert_ne!(a.id, b.id);
        let ca = s.input_context(&a.id, 0).unwrap().csrf;
        let cb = s.input_context(&b.id, 0).unwrap().csrf;
        assert_ne!(ca.expose(), cb.expose());
    }
}
