//! The dashboard's pages (`GET`, read only): connections, providers, a
//! provider's connect form, the revoke confirmation, runs, requests, health.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::html::{self, button, enc, esc, page};
use super::{TokenQuery, authed, exchange, locked};
use crate::clock::now_unix;
use crate::daemon::state::AppState;
use crate::providers::{AuthType, ProviderDef, ProviderSource};
use crate::request_log::{Entry, EntryKind, Filter, StatusFilter};

/// The wire name of an enum (`connected`, `oauth2`, `pkce`…).
pub fn wire<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// A failed read, as a page of the session.
fn failed(current: &str, csrf: &str, e: impl std::fmt::Display) -> Response {
    page(
        StatusCode::INTERNAL_SERVER_ERROR,
        current,
        "Error",
        csrf,
        &format!(r#"<p class="flash err">{}</p>"#, esc(&e.to_string())),
    )
}

/// An expiry, with a warning when it is near (a day) or past.
fn expiry(ts: Option<i64>, refreshes: bool, now: i64) -> String {
    let Some(ts) = ts else {
        return r#"<span class="muted">never</span>"#.into();
    };
    let when = format!(
        r#"<span title="{}">{}</span>"#,
        esc(&html::time(ts)),
        esc(&html::relative(ts, now))
    );
    let note = if refreshes {
        r#" <span class="muted">(refreshes)</span>"#
    } else {
        ""
    };
    if ts <= now {
        format!(r#"<span class="bad">expired</span> {when}{note}"#)
    } else if ts - now < 86_400 {
        format!(r#"<span class="warn">expires soon</span> {when}{note}"#)
    } else {
        format!("{when}{note}")
    }
}

/// `GET /`: trades `?t=` for a session; otherwise the connections.
pub async fn home(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> Response {
    if let Some(t) = q.t.as_deref() {
        return exchange(&state, t).await;
    }
    let Some(a) = authed(&state, &headers) else {
        return locked();
    };
    let csrf = a.csrf.expose();
    let conns = match state.read(|svc| svc.list_connections()).await {
        Ok(c) => c,
        Err(e) => return failed("/", csrf, e.message),
    };
    let provider = q.p.as_deref().unwrap_or("");
    let flash = match q.done.as_deref() {
        Some("connected") => format!("Connected {}.", esc(provider)),
        Some("logged_out") => format!("Logged out of {}.", esc(provider)),
        Some("revoked") => format!("Revoked every connection of {}.", esc(provider)),
        Some("default") => format!("Changed the default connection of {}.", esc(provider)),
        _ => String::new(),
    };
    let mut body = String::new();
    if !flash.is_empty() {
        body.push_str(&format!(r#"<p class="flash" role="status">{flash}</p>"#));
    }
    if conns.is_empty() {
        body.push_str(
            r#"<p>No connections yet. <a href="/ui/providers">Connect a provider</a>.</p>"#,
        );
        return page(StatusCode::OK, "/", "Connections", csrf, &body);
    }
    // Connected providers that claim the same host rule: the proxy refuses
    // their requests until one is chosen (as `authsome login` warns); "Make
    // default" on one of them chooses it.
    if let Ok(list) = state.read(|svc| svc.list_providers()).await {
        let connected: Vec<_> = list.iter().filter(|p| p.connections > 0).collect();
        let mut seen = std::collections::BTreeSet::new();
        for (i, a) in connected.iter().enumerate() {
            for b in &connected[i + 1..] {
                // (None when one of them was chosen there with set-default.)
                let unchosen = |u: &&String| !connected.iter().any(|p| p.chosen_on.contains(u));
                for rule in a
                    .api_url
                    .iter()
                    .filter(|u| b.api_url.contains(u))
                    .filter(unchosen)
                {
                    if !seen.insert((a.name.clone(), b.name.clone(), rule.clone())) {
                        continue;
                    }
                    let names: [std::sync::Arc<str>; 2] =
                        [a.name.as_str().into(), b.name.as_str().into()];
                    let (msg, hint) = crate::routing::conflict_message(rule, &names);
                    body.push_str(&format!(
                        r#"<p class="flash err conflict" role="alert">{}. {}.</p>"#,
                        esc(&msg),
                        esc(&hint)
                    ));
                }
            }
        }
    }
    let now = now_unix();
    body.push_str(
        r#"<table id="connections"><thead><tr><th scope="col">Provider</th><th scope="col">Connection</th><th scope="col">Kind</th><th scope="col">Status</th><th scope="col">Expires</th><th scope="col">Scopes</th><th scope="col">Actions</th></tr></thead><tbody>"#,
    );
    for c in &conns {
        let r = &c.record;
        let (p, n) = (r.provider.as_str(), r.name.as_str());
        let kind = match (r.auth_type.as_str(), r.flow.as_deref()) {
            ("api_key", _) => "API key".to_string(),
            ("oauth2", Some(f)) => format!("OAuth ({f})"),
            ("oauth2", None) => "OAuth".to_string(),
            (other, _) => other.to_string(),
        };
        let status = wire(&r.status);
        let status_html = if status == "connected" {
            format!(r#"<span class="ok">{}</span>"#, esc(&status))
        } else {
            format!(r#"<span class="bad">{}</span>"#, esc(&status))
        };
        let default = if r.is_default {
            r#" <span class="badge default">default</span>"#
        } else {
            ""
        };
        let scopes = if r.scopes.is_empty() {
            r#"<span class="muted">–</span>"#.to_string()
        } else {
            esc(&r.scopes.join(" "))
        };
        let base = format!("/ui/connections/{}/{}", enc(p), enc(n));
        let mut actions = button(&format!("{base}/logout"), csrf, "Log out", "", &[]);
        if !r.is_default {
            actions.push(' ');
            actions.push_str(&button(
                &format!("{base}/default"),
                csrf,
                "Make default",
                "",
                &[],
            ));
        }
        actions.push_str(&format!(
            r#" <a href="/ui/providers/{pe}/connect?connection={ne}">Log in again</a> <a href="/ui/connections/{pe}/revoke" class="bad">Revoke…</a>"#,
            pe = enc(p),
            ne = enc(n)
        ));
        body.push_str(&format!(
            r#"<tr data-provider="{pa}" data-connection="{na}"><td><b>{d}</b> <code>{pa}</code></td><td>{na}{default}</td><td>{kind}</td><td>{status_html}</td><td>{exp}</td><td>{scopes}</td><td class="actions">{actions}</td></tr>"#,
            pa = esc(p),
            na = esc(n),
            d = esc(&c.display_name),
            kind = esc(&kind),
            exp = expiry(r.expires_at, r.has_refresh_token, now),
        ));
    }
    body.push_str("</tbody></table>");
    page(StatusCode::OK, "/", "Connections", csrf, &body)
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct SearchQuery {
    q: Option<String>,
    /// A note after a change (a fixed code, never free text).
    done: Option<String>,
}

/// What a provider needs, in words.
fn needs(auth: AuthType, flow: &str) -> String {
    match auth {
        AuthType::ApiKey => "API key".into(),
        AuthType::Oauth2 => format!("OAuth sign-in ({flow})"),
        AuthType::Browser => "browser session (not supported yet)".into(),
    }
}

/// `GET /ui/providers?q=`: the catalogue, searchable by name and host.
pub async fn providers(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<SearchQuery>,
) -> Response {
    let Some(a) = authed(&state, &headers) else {
        return locked();
    };
    let csrf = a.csrf.expose();
    let list = match state.read(|svc| svc.list_providers()).await {
        Ok(l) => l,
        Err(e) => return failed("/ui/providers", csrf, e.message),
    };
    let needle = q.q.as_deref().unwrap_or("").trim().to_lowercase();
    let shown: Vec<_> = list
        .iter()
        .filter(|p| {
            needle.is_empty()
                || p.name.to_lowercase().contains(&needle)
                || p.display_name.to_lowercase().contains(&needle)
                || p.api_url.iter().any(|h| h.to_lowercase().contains(&needle))
        })
        .collect();
    let flash = match q.done.as_deref() {
        Some("registered") => format!(
            r#"<p class="flash" role="status">Registered {}.</p>"#,
            esc(&needle)
        ),
        Some("removed") => format!(
            r#"<p class="flash" role="status">Removed {}.</p>"#,
            esc(&needle)
        ),
        _ => String::new(),
    };
    let mut body = flash;
    body.push_str(&format!(
        r#"<form class="search" method="get" action="/ui/providers" role="search"><label>Name or host <input type="search" name="q" value="{}" autofocus></label><button type="submit">Search</button></form>
<p class="muted">{} of {} providers.</p>"#,
        esc(&needle),
        shown.len(),
        list.len()
    ));
    body.push_str(
        r#"<table id="providers"><thead><tr><th scope="col">Provider</th><th scope="col">Needs</th><th scope="col">Hosts</th><th scope="col">Source</th><th scope="col">Connections</th><th scope="col"><span class="sr-only">Actions</span></th></tr></thead><tbody>"#,
    );
    for p in shown {
        let mut connect = if p.auth_type == AuthType::Browser {
            String::new()
        } else {
            format!(
                r#"<a href="/ui/providers/{}/connect">Connect</a>"#,
                enc(&p.name)
            )
        };
        if wire(&p.source) != "bundled" {
            connect.push(' ');
            connect.push_str(&button(
                &format!("/ui/providers/{}/remove", enc(&p.name)),
                csrf,
                "Remove",
                "danger",
                &[],
            ));
        }
        body.push_str(&format!(
            r#"<tr data-provider="{n}"><td><b>{d}</b> <code>{n}</code></td><td>{needs}</td><td class="mono">{hosts}</td><td>{src}</td><td>{count}</td><td>{connect}</td></tr>"#,
            n = esc(&p.name),
            d = esc(&p.display_name),
            needs = esc(&needs(p.auth_type, &wire(&p.flow))),
            hosts = esc(&p.api_url.join(" ")),
            src = esc(&wire(&p.source)),
            count = p.connections,
        ));
    }
    body.push_str("</tbody></table>");
    body.push_str(&format!(
        r#"<h2>Add a custom provider</h2><form method="post" action="/ui/providers/register" class="card" id="register">
<input type="hidden" name="csrf" value="{}">
<p class="muted">A provider definition file (JSON, comments allowed), as <code>authsome provider register FILE</code> takes it.</p>
<label>File <input type="file" id="definition-file" accept=".json,.jsonc,application/json"></label>
<label>Definition <textarea name="definition" rows="8" cols="70" spellcheck="false" required class="mono"></textarea></label>
<label><input type="checkbox" name="force" value="1"> Replace a custom provider of that name, or override a bundled one</label>
<button type="submit" class="primary">Register</button></form>"#,
        esc(csrf)
    ));
    page(StatusCode::OK, "/ui/providers", "Providers", csrf, &body)
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct ConnectQuery {
    connection: Option<String>,
}

/// The connect form of a provider (also shown again, with `error`, after a
/// refused submission; the key is never put back).
pub fn connect_form(
    status: StatusCode,
    def: &ProviderDef,
    source: ProviderSource,
    connection: &str,
    csrf: &str,
    error: Option<&str>,
) -> Response {
    let err = error
        .map(|e| format!(r#"<p class="flash err" role="alert">{}</p>"#, esc(e)))
        .unwrap_or_default();
    let action = format!("/ui/providers/{}/connect", enc(&def.name));
    // Where the secret will go, before it is typed: a definition added on
    // this machine decides that, so say so.
    let hosts: Vec<String> = def
        .api_url
        .iter()
        .map(|h| format!("<code>{}</code>", esc(h)))
        .collect();
    let origin = match source {
        ProviderSource::Bundled => String::new(),
        ProviderSource::Custom => r#" <span class="warn">This definition was added on this machine, not shipped with authsome: check these hosts before you enter a secret.</span>"#.into(),
        ProviderSource::Override => r#" <span class="warn">This definition was added on this machine and replaces the one shipped with authsome: check these hosts before you enter a secret.</span>"#.into(),
    };
    let err = format!(
        r#"{err}<p id="where">authsome adds this credential only to requests for {}.{origin}</p>"#,
        hosts.join(", ")
    );
    let conn_field = format!(
        r#"<label>Connection name <input type="text" name="connection" value="{}" required spellcheck="false"></label>"#,
        esc(connection)
    );
    let form = match def.auth_type {
        AuthType::ApiKey => format!(
            r#"<p>The key is stored encrypted on this machine; agents run with <code>authsome run</code> use it without seeing it.</p>
{err}<form method="post" action="{action}" autocomplete="off" class="card">
<input type="hidden" name="csrf" value="{csrf}">
{conn_field}
<label>API key <input type="password" name="api_key" required autofocus spellcheck="false" autocomplete="off"></label>
<label><input type="checkbox" name="force" value="1"> Replace an existing connection of this name</label>
<button type="submit" class="primary">Save</button>
</form>"#,
            csrf = esc(csrf),
        ),
        AuthType::Oauth2 => format!(
            r#"<p>Signs in with OAuth, as <code>authsome login {n}</code> does: you approve access at {d}, and the tokens are stored encrypted on this machine.</p>
{err}<form method="post" action="{action}" class="card">
<input type="hidden" name="csrf" value="{csrf}">
{conn_field}
<label><input type="checkbox" name="force" value="1"> Replace an existing connection of this name</label>
<details{open}><summary>Your own OAuth client (optional)</summary>
<p class="muted">Needed when no client is configured for {d} (as <code>--client-id</code> is); stored encrypted with its connections.</p>
<label>Client ID <input type="text" name="client_id" spellcheck="false" autocomplete="off"></label>
<label>Client secret <input type="password" name="client_secret" spellcheck="false" autocomplete="off"></label>
</details>
<button type="submit" class="primary">Sign in with {d}</button>
</form>"#,
            n = esc(&def.name),
            d = esc(&def.display_name),
            csrf = esc(csrf),
            open = if error.is_some() { " open" } else { "" },
        ),
        AuthType::Browser => format!(
            "{err}<p>{d} signs in with a browser session: run <code>authsome login {n}</code> in a terminal on this machine. It opens Chromium or Chrome at {d}'s sign-in page and keeps the session's cookies once you are signed in.</p>",
            d = esc(&def.display_name),
            n = esc(&def.name)
        ),
    };
    page(
        status,
        "/ui/providers",
        &format!("Connect {}", def.display_name),
        csrf,
        &form,
    )
}

/// `GET /ui/providers/{provider}/connect?connection=`.
pub async fn connect(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(provider): Path<String>,
    Query(q): Query<ConnectQuery>,
) -> Response {
    let Some(a) = authed(&state, &headers) else {
        return locked();
    };
    let csrf = a.csrf.expose();
    let Some(def) = state.logins.provider_def(&provider) else {
        return page(
            StatusCode::NOT_FOUND,
            "/ui/providers",
            "Unknown provider",
            csrf,
            r#"<p>No such provider. <a href="/ui/providers">See the catalogue</a>.</p>"#,
        );
    };
    let connection = q
        .connection
        .unwrap_or_else(|| crate::credentials::DEFAULT_CONNECTION.into());
    let source = state
        .logins
        .provider_source(&provider)
        .unwrap_or(ProviderSource::Custom);
    connect_form(StatusCode::OK, &def, source, &connection, csrf, None)
}

/// `GET /ui/connections/{provider}/revoke`: the confirmation step.
pub async fn revoke_confirm(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(provider): Path<String>,
) -> Response {
    let Some(a) = authed(&state, &headers) else {
        return locked();
    };
    let csrf = a.csrf.expose();
    let p = provider.clone();
    let names = match state
        .read(move |svc| {
            Ok(svc
                .list_connections()?
                .into_iter()
                .filter(|c| c.record.provider == p)
                .map(|c| c.record.name)
                .collect::<Vec<_>>())
        })
        .await
    {
        Ok(n) => n,
        Err(e) => return failed("/", csrf, e.message),
    };
    let list: String = names
        .iter()
        .map(|n| format!("<li><code>{}</code></li>", esc(n)))
        .collect();
    let body = format!(
        r#"<div class="card"><p>Revoke removes <b>every</b> connection of <code>{p}</code> ({count}) and asks the provider to revoke its tokens where it can:</p><ul>{list}</ul>
<p>Agents using them fail from their next request.</p>{btn} <a href="/">Cancel</a></div>"#,
        p = esc(&provider),
        count = names.len(),
        btn = button(
            &format!("/ui/connections/{}/revoke", enc(&provider)),
            csrf,
            "Revoke them",
            "danger",
            &[("confirm", "yes")]
        ),
    );
    page(
        StatusCode::OK,
        "/",
        &format!("Revoke {provider}?"),
        csrf,
        &body,
    )
}

/// `GET /ui/runs`: the open `authsome run`s.
pub async fn runs(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let Some(a) = authed(&state, &headers) else {
        return locked();
    };
    let csrf = a.csrf.expose();
    let runs = state.runs.list();
    let now = now_unix();
    let mut body = String::new();
    if runs.is_empty() {
        body.push_str(r#"<p>No <code>authsome run</code> is active.</p>"#);
    } else {
        body.push_str(
            r#"<table id="runs"><thead><tr><th scope="col">Run</th><th scope="col">Command</th><th scope="col">Process</th><th scope="col">Started</th><th scope="col">Providers</th><th scope="col">Hosts</th><th scope="col">Sandboxed</th><th scope="col">Requests</th><th scope="col">Injected</th><th scope="col">Refused</th><th scope="col">Proxy port</th></tr></thead><tbody>"#,
        );
        for r in &runs {
            let s = r.stats;
            let total = s.injected + s.passed + s.tunnels + s.refused;
            body.push_str(&format!(
                r#"<tr data-run="{id}"><td><a href="/ui/requests?run={ide}" class="mono">{id}</a></td><td class="command"><code>{command}</code></td><td>{pid}</td><td><span title="{abs}">{rel}</span></td><td>{providers}</td><td class="mono">{hosts}</td><td>{sandboxed}</td><td>{total}</td><td>{inj}</td><td>{refused}</td><td class="mono">127.0.0.1:{port}</td></tr>"#,
                id = esc(&r.id),
                ide = enc(&r.id),
                command = esc(&crate::daemon::command::display(&r.command)),
                pid = r.pid.map(|p| p.to_string()).unwrap_or_else(|| "–".into()),
                abs = esc(&html::time(r.started_at)),
                rel = esc(&html::relative(r.started_at, now)),
                providers = esc(&r.providers.join(", ")),
                hosts = esc(&r.hosts.join(" ")),
                sandboxed = if r.sandbox {
                    r#"<span class="ok">yes</span>"#
                } else {
                    r#"<span class="warn">no</span>"#
                },
                inj = s.injected,
                refused = if s.refused > 0 {
                    format!(r#"<span class="bad">{}</span>"#, s.refused)
                } else {
                    "0".into()
                },
                port = r.port,
            ));
        }
        body.push_str("</tbody></table>");
    }
    body.push_str("<h2>System-wide listener</h2>");
    body.push_str(&match state.runs.system_listener() {
        Some((port, s)) => format!(
            r#"<p id="system">Listening on <code>127.0.0.1:{port}</code>: {} requests so far ({} injected, {} refused). <a href="/ui/requests?run=system">Its requests</a>.</p>"#,
            s.injected + s.passed + s.tunnels + s.refused,
            s.injected,
            s.refused
        ),
        None => r#"<p id="system" class="muted">Not listening. <code>authsome proxy env</code> starts it.</p>"#.into(),
    });
    page(StatusCode::OK, "/ui/runs", "Runs", csrf, &body)
}

#[derive(Debug, Default, serde::Deserialize)]
pub struct RequestsQuery {
    provider: Option<String>,
    run: Option<String>,
    status: Option<String>,
}

/// The filters of the requests page and its event stream.
pub fn requests_filter(
    provider: Option<&str>,
    run: Option<&str>,
    status: Option<&str>,
) -> Result<Filter, String> {
    let text = |v: Option<&str>| v.map(str::trim).filter(|s| !s.is_empty()).map(String::from);
    let status = match text(status) {
        Some(s) => Some(s.parse::<StatusFilter>().map_err(|e| e.to_string())?),
        None => None,
    };
    Ok(Filter {
        provider: text(provider),
        run: text(run),
        status,
        limit: 200,
        after: None,
    })
}

/// One row of the request log (the live rows are built alike by `app.js`).
fn request_row(e: &Entry) -> String {
    let class = if e.refused.is_some() || e.tripwire.is_some() {
        "refused"
    } else if e.redactions > 0 {
        "redacted"
    } else {
        ""
    };
    let mut notes = Vec::new();
    if let Some(r) = &e.refused {
        notes.push(format!("refused: {r}"));
    }
    if e.redactions > 0 {
        notes.push(format!("redacted ×{}", e.redactions));
    }
    if e.tripwire.is_some() {
        notes.push("tripwire".into());
    }
    if e.kind == EntryKind::Dropped {
        notes.push(format!("{} entries dropped", e.dropped));
    }
    let method = if e.kind == EntryKind::Tunnel {
        "CONNECT".to_string()
    } else {
        e.method.clone().unwrap_or_default()
    };
    let who = match (&e.provider, &e.connection) {
        (Some(p), Some(c)) => format!("{p}/{c}"),
        (Some(p), None) => p.clone(),
        _ => String::new(),
    };
    format!(
        r#"<tr class="{class}" data-seq="{seq}"><td class="mono">{t}</td><td>{run}</td><td>{who}</td><td>{method}</td><td class="mono">{target}</td><td>{status}</td><td>{inj}</td><td>{notes}</td><td class="mono">{ms} ms</td></tr>"#,
        seq = e.seq,
        t = esc(&html::time_ms(e.ts_ms)),
        run = esc(e.run.as_deref().unwrap_or("")),
        who = esc(&who),
        method = esc(&method),
        target = esc(&format!(
            "{}:{}{}",
            e.host,
            e.port,
            e.path.as_deref().unwrap_or("")
        )),
        status = e.status.map(|s| s.to_string()).unwrap_or_default(),
        inj = if e.injected { "injected" } else { "" },
        notes = esc(&notes.join(", ")),
        ms = e.duration_ms.round(),
    )
}

/// `GET /ui/requests?provider=&run=&status=`: the log, newest first, then live.
pub async fn requests(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RequestsQuery>,
) -> Response {
    let Some(a) = authed(&state, &headers) else {
        return locked();
    };
    let csrf = a.csrf.expose();
    let form = format!(
        r#"<form class="filters" method="get" action="/ui/requests" role="search">
<label>Provider <input name="provider" value="{p}" spellcheck="false"></label>
<label>Run <input name="run" value="{r}" spellcheck="false"></label>
<label>Status <input name="status" value="{s}" placeholder="404, 4xx, refused" spellcheck="false"></label>
<button type="submit">Filter</button> <a href="/ui/requests">Clear</a></form>"#,
        p = esc(q.provider.as_deref().unwrap_or("")),
        r = esc(q.run.as_deref().unwrap_or("")),
        s = esc(q.status.as_deref().unwrap_or("")),
    );
    let filter = match requests_filter(q.provider.as_deref(), q.run.as_deref(), q.status.as_deref())
    {
        Ok(f) => f,
        Err(e) => {
            let body = format!(r#"{form}<p class="flash err" role="alert">{}</p>"#, esc(&e));
            return page(
                StatusCode::BAD_REQUEST,
                "/ui/requests",
                "Requests",
                csrf,
                &body,
            );
        }
    };
    let log = state.requests.clone();
    let f = filter.clone();
    let (entries, last) = match tokio::task::spawn_blocking(move || log.query(&f)).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => return failed("/ui/requests", csrf, e),
        Err(e) => return failed("/ui/requests", csrf, e),
    };
    let mut events = format!("/ui/requests/events?after={last}");
    for (k, v) in [
        ("provider", &filter.provider),
        ("run", &filter.run),
        ("status", &q.status),
    ] {
        if let Some(v) = v.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
            events.push_str(&format!("&{k}={}", enc(v)));
        }
    }
    let mut body = form;
    body.push_str(&format!(
        r#"<p class="muted">Newest first; never a header value, query or body. <span id="live" class="live" role="status">connecting…</span>{}</p>"#,
        if state.requests.dropped() > 0 {
            format!(
                r#" <span class="warn">{} entries were dropped since the daemon started</span>"#,
                state.requests.dropped()
            )
        } else {
            String::new()
        }
    ));
    body.push_str(&format!(
        r#"<table id="requests" data-events="{}"><thead><tr><th scope="col">Time (UTC)</th><th scope="col">Run</th><th scope="col">Provider</th><th scope="col">Method</th><th scope="col">Target</th><th scope="col">Status</th><th scope="col">Credential</th><th scope="col">Notes</th><th scope="col">Took</th></tr></thead><tbody aria-live="polite" aria-relevant="additions">"#,
        esc(&events)
    ));
    for e in &entries {
        body.push_str(&request_row(e));
    }
    if entries.is_empty() {
        body.push_str(r#"<tr id="empty"><td colspan="9" class="muted">No requests yet.</td></tr>"#);
    }
    body.push_str("</tbody></table>");
    page(StatusCode::OK, "/ui/requests", "Requests", csrf, &body)
}

/// `GET /ui/health`: what `authsome doctor` says, run by this daemon, in
/// words with the hints; then the daemon's readiness.
pub async fn health(State(state): State<AppState>, headers: HeaderMap) -> Response {
    use crate::daemon::state::HealthStatus;
    let Some(a) = authed(&state, &headers) else {
        return locked();
    };
    let csrf = a.csrf.expose();
    let source = state.health.clone();
    let checks = match tokio::task::spawn_blocking(move || source.checks()).await {
        Ok(c) => c,
        Err(e) => return failed("/ui/health", csrf, e),
    };
    // The dashboard is the server's own user (loopback, its own session): an admin.
    let owner = crate::daemon::Caller {
        did: state.team.owner().to_string(),
        role: crate::team::Role::Admin,
    };
    let ready = match crate::daemon::routes::health::ready(
        State(state.clone()),
        axum::extract::Extension(owner),
    )
    .await
    {
        Ok(axum::Json(r)) => r,
        Err(e) => return failed("/ui/health", csrf, e.message),
    };
    let count = |s: HealthStatus| checks.iter().filter(|c| c.status == s).count();
    let (fails, warns) = (count(HealthStatus::Fail), count(HealthStatus::Warn));
    let (cls, summary) = match (fails, warns) {
        (0, 0) => ("ok", "Every check passes.".to_string()),
        (0, w) => ("warn", format!("No problem; {w} warning(s) below.")),
        (f, _) => ("bad", format!("{f} check(s) fail: see the hints below.")),
    };
    let mut body = format!(
        r#"<p class="{cls}" role="status">{summary}</p>
<table id="checks"><caption>What <code>authsome doctor</code> checks, run by this daemon with its settings</caption><thead><tr><th scope="col">Check</th><th scope="col">Result</th><th scope="col">Found</th><th scope="col">What to do</th></tr></thead><tbody>"#,
        summary = esc(&summary),
    );
    for c in &checks {
        let (cls, mark, word) = match c.status {
            HealthStatus::Pass => ("ok", "✓", "passes"),
            HealthStatus::Warn => ("warn", "!", "warning"),
            HealthStatus::Fail => ("bad", "✗", "fails"),
        };
        body.push_str(&format!(
            r#"<tr class="check-{cls}" data-check="{n}"><th scope="row">{n}</th><td><span class="{cls}"><span aria-hidden="true">{mark}</span> {word}</span></td><td>{detail}</td><td class="hint">{hint}</td></tr>"#,
            n = esc(&c.name),
            detail = esc(&c.detail),
            hint = c.hint.as_deref().map(esc).unwrap_or_default(),
        ));
    }
    body.push_str("</tbody></table>");
    body.push_str(&format!(
        r#"<div class="recheck"><p class="muted">The checks' result is kept for a few seconds (they are costly: the vault is opened and read, a sandbox probe started).</p>{}</div>"#,
        button("/ui/health", csrf, "Check again", "", &[])
    ));
    let ready_ok = ready.status == crate::api::ReadyStatus::Ready;
    body.push_str(&format!(
        r#"<h2>This daemon</h2><ul><li>Readiness (<code>/api/ready</code>): {r}</li><li>Version {v}</li><li>Secrets encrypted with {enc}</li><li>{runs} open run(s)</li><li>Request log: {dropped} entries dropped since start</li></ul>"#,
        r = if ready_ok {
            r#"<span class="ok">ready</span>"#
        } else {
            r#"<span class="bad">not ready</span>"#
        },
        v = esc(&state.info.version),
        enc = esc(&ready.encryption_backend),
        runs = state.runs.list().len(),
        dropped = state.requests.dropped(),
    ));
    for (title, list, cls) in [
        ("Readiness problems", &ready.issues, "bad"),
        ("Readiness warnings", &ready.warnings, "warn"),
    ] {
        if !list.is_empty() {
            body.push_str(&format!("<h2>{title}</h2><ul>"));
            for i in list {
                body.push_str(&format!(
                    r#"<li><span class="{cls}">{}</span></li>"#,
                    esc(i)
                ));
            }
            body.push_str("</ul>");
        }
    }
    body.push_str(r#"<p class="muted">The same checks from a terminal, with this shell's settings: <code>authsome doctor</code>.</p>"#);
    page(StatusCode::OK, "/ui/health", "Health", csrf, &body)
}
