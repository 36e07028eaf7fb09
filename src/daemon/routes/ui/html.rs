//! The dashboard's page frame, its two assets and small formatters. Every
//! value shown goes through [`esc`]; nothing here reads state.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

pub use crate::daemon::routes::pages::escape as esc;

/// The stylesheet (`/ui/style.css`).
pub const STYLE: &str = include_str!("assets/style.css");
/// The one script (`/ui/app.js`): the provider file picker, live rows on the Requests page.
pub const SCRIPT: &str = include_str!("assets/app.js");

/// The pages of the navigation bar: (path, title).
pub const NAV: &[(&str, &str)] = &[
    ("/", "Connections"),
    ("/ui/providers", "Providers"),
    ("/ui/runs", "Runs"),
    ("/ui/requests", "Requests"),
    ("/ui/health", "Health"),
];

/// A page of a signed-in session: navigation, a sign-out button, `body`.
pub fn page(status: StatusCode, current: &str, title: &str, csrf: &str, body: &str) -> Response {
    let nav: String = NAV
        .iter()
        .map(|(path, name)| {
            let cur = if *path == current {
                r#" aria-current="page""#
            } else {
                ""
            };
            format!(r#"<a href="{path}"{cur}>{name}</a>"#)
        })
        .collect();
    let html = format!(
        r##"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{t} · authsome</title><link rel="stylesheet" href="/ui/style.css"></head>
<body><a class="skip" href="#main">Skip to the content</a><header><span class="brand">authsome</span><nav aria-label="Dashboard">{nav}</nav>
<form method="post" action="/ui/signout"><input type="hidden" name="csrf" value="{csrf}"><button type="submit">Sign out</button></form></header>
<main id="main" tabindex="-1"><h1>{t}</h1>
{body}</main><script src="/ui/app.js"></script></body></html>"##,
        t = esc(title),
        csrf = esc(csrf),
    );
    (status, Html(html)).into_response()
}

/// What every dashboard URL answers without a session: no data at all.
pub fn locked(status: StatusCode, why: &str) -> Response {
    let html = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>authsome dashboard</title><link rel="stylesheet" href="/ui/style.css"></head>
<body><main><h1>authsome dashboard</h1><div class="card"><p>{why}</p>
<p>Open it with <code>authsome dashboard</code> in a terminal: it opens this page with a one-time link.</p></div></main></body></html>"#,
        why = esc(why),
    );
    (status, Html(html)).into_response()
}

/// An asset with its content type (no data; served without a session).
pub fn asset(content_type: &'static str, text: &'static str) -> Response {
    let mut r = (StatusCode::OK, text).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// A small form with one button that POSTs to `action` with the session's
/// CSRF token (and `fields`, escaped).
pub fn button(
    action: &str,
    csrf: &str,
    label: &str,
    class: &str,
    fields: &[(&str, &str)],
) -> String {
    let extra: String = fields
        .iter()
        .map(|(k, v)| {
            format!(
                r#"<input type="hidden" name="{}" value="{}">"#,
                esc(k),
                esc(v)
            )
        })
        .collect();
    format!(
        r#"<form method="post" action="{}"><input type="hidden" name="csrf" value="{}">{extra}<button type="submit" class="{}">{}</button></form>"#,
        esc(action),
        esc(csrf),
        esc(class),
        esc(label)
    )
}

/// Unix seconds as `2026-12-01 22:33 UTC`.
pub fn time(ts: i64) -> String {
    let (y, m, d, hh, mm, _) = civil(ts);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02} UTC")
}

/// Unix milliseconds as `2026-12-01 22:33:05`.
pub fn time_ms(ms: i64) -> String {
    let (y, m, d, hh, mm, ss) = civil(ms.div_euclid(1000));
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
}

/// (year, month, day, hour, minute, second) in UTC (Howard Hinnant's
/// days-to-civil algorithm).
fn civil(ts: i64) -> (i64, i64, i64, i64, i64, i64) {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d, secs / 3600, secs % 3600 / 60, secs % 60)
}

/// "in 3 h", "in 2 days", "5 min ago".
pub fn relative(ts: i64, now: i64) -> String {
    let delta = ts - now;
    let a = delta.abs();
    if a < 2 {
        return "just now".into();
    }
    let span = if a < 120 {
        format!("{a} s")
    } else if a < 2 * 3600 {
        format!("{} min", a / 60)
    } else if a < 2 * 86_400 {
        format!("{} h", a / 3600)
    } else {
        format!("{} days", a / 86_400)
    };
    if delta >= 0 {
        format!("in {span}")
    } else {
        format!("{span} ago")
    }
}

/// Percent-encodes a query or path value.
pub fn enc(s: &str) -> String {
    crate::percent::encode(s)
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_utc_calendar_dates() {
        assert_eq!(super::time(0), "1970-01-01 00:00 UTC");
        assert_eq!(super::time(1_796_164_382), "2026-12-01 22:33 UTC");
        assert_eq!(super::time_ms(951_782_400_000), "2000-02-29 00:00:00");
        assert_eq!(super::relative(100, 0), "in 100 s");
        assert_eq!(super::relative(7, 7), "just now");
        assert_eq!(super::relative(0, 7200), "2 h ago");
        assert_eq!(super::relative(3 * 86_400, 0), "in 3 days");
    }

    #[test]
    fn buttons_escape_what_they_carry() {
        let b = super::button("/ui/x", "c\"srf", "<b>", "danger", &[("p", "a&b")]);
        assert!(b.contains(r#"value="c&quot;srf""#));
        assert!(b.contains("&lt;b&gt;"));
        assert!(b.contains(r#"value="a&amp;b""#));
    }
}
