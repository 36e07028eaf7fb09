//! The daemon's few HTML pages: the API-key form, the OAuth client form,
//! and the outcome pages a browser sees at the end of a login. Every page
//! is self-contained (no script, no external asset), cannot be framed, and
//! escapes everything it shows.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

use crate::auth_flow::{SessionStatus, SessionView};

/// The OAuth client form: the app's client id (and secret), scopes, and the
/// instance URL for self-hosted providers.
pub fn client_form_page(
    status: StatusCode,
    def: &crate::providers::ProviderDef,
    view: &SessionView,
    csrf: &str,
    error: Option<&str>,
) -> Response {
    let err = error.map(error_paragraph).unwrap_or_default();
    let scopes = def
        .oauth
        .as_ref()
        .map(|o| o.scopes.join(","))
        .unwrap_or_default();
    let base = if def.oauth.as_ref().is_some_and(|o| o.base_url.is_some()) {
        r#"<label>Instance URL (self-hosted only) <input name="base_url" spellcheck="false" placeholder="https://gitlab.example.com"></label>"#
    } else {
        ""
    };
    let body = format!(
        r#"<p>To sign in to <b>{d}</b>, authsome needs the OAuth app you registered with {d}. The client secret is stored encrypted on this machine; next you are sent to {d} to approve <code>{p}/{c}</code>.</p>
{err}<form method="post" action="/api/auth/sessions/{id}/input" autocomplete="off">
<input type="hidden" name="csrf" value="{csrf}">
<label>Client ID <input name="client_id" required autofocus spellcheck="false"></label>
<label>Client secret (if the app has one) <input type="password" name="client_secret" spellcheck="false"></label>
<label>Scopes (comma-separated) <input name="scopes" value="{scopes}" spellcheck="false"></label>
{base}<button type="submit">Continue to {d}</button>
</form>"#,
        d = escape(&def.display_name),
        p = escape(&view.provider),
        c = escape(&view.connection),
        id = escape(&view.id),
        csrf = escape(csrf),
        scopes = escape(&scopes),
    );
    let mut resp = page(status, &format!("Connect {}", def.display_name), &body);
    // Its submission answers with a redirect to the provider's authorization
    // server, which browsers check against `form-action` (Chromium refuses
    // it under `'self'`). The form's own action is fixed and same-origin.
    resp.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    resp
}

/// An error for a page: escaped, with the hint's `backticked` commands
/// shown as code rather than as raw Markdown.
fn error_paragraph(e: &str) -> String {
    let mut out = String::from(r#"<p class="err">"#);
    let paired = e.matches('`').count().is_multiple_of(2);
    for (i, part) in e.split('`').enumerate() {
        let inside = !i.is_multiple_of(2);
        if inside && paired {
            out.push_str(&format!("<code>{}</code>", escape(part)));
        } else if inside {
            // An unpaired backtick: keep it as text.
            out.push('`');
            out.push_str(&escape(part));
        } else {
            out.push_str(&escape(part));
        }
    }
    out.push_str("</p>");
    out
}

/// Escapes text for HTML.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

pub fn form_page(
    status: StatusCode,
    display: &str,
    view: &SessionView,
    csrf: &str,
    error: Option<&str>,
) -> Response {
    let err = error.map(error_paragraph).unwrap_or_default();
    let body = format!(
        r#"<p>Paste your <b>{d}</b> API key. It is stored encrypted on this machine as <code>{p}/{c}</code>; agents you run with authsome use it without seeing it.</p>
{err}<form method="post" action="/api/auth/sessions/{id}/input" autocomplete="off">
<input type="hidden" name="csrf" value="{csrf}">
<label>API key <input type="password" name="api_key" required autofocus spellcheck="false"></label>
<button type="submit">Save</button>
</form>"#,
        d = escape(display),
        p = escape(&view.provider),
        c = escape(&view.connection),
        id = escape(&view.id),
        csrf = escape(csrf),
    );
    page(status, &format!("Connect {display}"), &body)
}

pub fn finished_page(view: &SessionView) -> Response {
    match view.status {
        SessionStatus::Completed => page(
            StatusCode::OK,
            "Connected",
            &format!(
                "<p>Saved the key for <code>{}/{}</code>. You can close this tab.</p>",
                escape(&view.provider),
                escape(&view.connection)
            ),
        ),
        SessionStatus::Expired => page(
            StatusCode::GONE,
            "Expired",
            "<p>This login expired. Start again with <code>authsome login</code>.</p>",
        ),
        _ => page(
            StatusCode::CONFLICT,
            "Login ended",
            &format!(
                "<p>This login has ended: {}</p>",
                escape(
                    view.error
                        .as_ref()
                        .map(|e| e.message.as_str())
                        .unwrap_or("failed")
                )
            ),
        ),
    }
}

pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>authsome: {t}</title><style>body{{font:16px system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}
input[type=password]{{width:100%;padding:.5rem;margin:.5rem 0;font:inherit}}button{{padding:.5rem 1rem;font:inherit}}.err{{color:#b00}}code{{background:#eee;padding:0 .2rem}}</style></head>
<body><h1>{t}</h1>{body}</body></html>"#,
        t = escape(title)
    );
    let mut resp = (status, Html(html)).into_response();
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    resp
}

#[cfg(test)]
mod page_tests {
    #[test]
    fn an_errors_backticks_become_code_and_nothing_is_unescaped() {
        assert_eq!(
            super::error_paragraph("bad key (run `authsome login <x>`)"),
            r#"<p class="err">bad key (run <code>authsome login &lt;x&gt;</code>)</p>"#
        );
        assert_eq!(
            super::error_paragraph("one ` tick"),
            r#"<p class="err">one ` tick</p>"#
        );
    }
}
