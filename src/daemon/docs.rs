//! `/openapi.json`, generated from [`endpoints`], and
//! `/docs`, a small interactive page that works offline: no CDN, no
//! external script, just this daemon's own HTML and JavaScript.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use serde_json::{Map, Value, json};

use super::state::AppState;
use super::{Auth, endpoints};

/// The OpenAPI 3.1 description of every endpoint.
pub fn document(version: &str) -> Value {
    let mut paths = Map::new();
    for e in endpoints() {
        let params: Vec<Value> = e
            .path
            .split('/')
            .filter_map(|seg| seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
            .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
            .collect();
        let mut op = json!({
            "summary": e.summary,
            "operationId": format!("{}_{}", e.method.as_str().to_lowercase(), e.path.trim_matches('/').replace(['/', '{', '}'], "_").trim_matches('_')),
            "tags": [e.path.trim_start_matches('/').split('/').next().unwrap_or("")],
            "parameters": params,
            "security": if e.auth == Auth::Open { json!([]) } else { json!([{"PoP": []}]) },
            "x-admin-only": e.auth == Auth::Admin,
            "responses": {
                "200": {"description": "success"},
                "400": {"$ref": "#/components/responses/Error"},
                "401": {"$ref": "#/components/responses/Error"},
                "404": {"$ref": "#/components/responses/Error"},
            },
        });
        if let Some(example) = e.body {
            let ex: Value = serde_json::from_str(example).unwrap_or(Value::Null);
            op["requestBody"] =
                json!({"required": true, "content": {"application/json": {"example": ex}}});
        }
        let entry = paths
            .entry(format!("/api{}", e.path))
            .or_insert_with(|| json!({}));
        entry[e.method.as_str().to_lowercase()] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "authsome daemon",
            "version": version,
            "description": "The local control API of authsome. Every route is also served without the /api prefix. \
                            Protected routes need `Authorization: PoP <jwt>`: an EdDSA JWT signed by this home's identity, \
                            bound to the request's method, path and body, valid 60 s, single use. The CLI signs for you."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {"PoP": {"type": "apiKey", "in": "header", "name": "Authorization",
                "description": "PoP <EdDSA JWT with iss, aud=authsome-daemon, iat, exp, jti, htm, htu, body_sha256>"}},
            "responses": {"Error": {"description": "an error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
            "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "object",
                "required": ["code", "message"], "properties": {
                    "code": {"type": "string", "description": "stable, machine-readable"},
                    "message": {"type": "string"}, "hint": {"type": "string"}}}}}}
        }
    })
}

/// `GET /openapi.json`
pub async fn openapi(State(state): State<AppState>) -> Json<Value> {
    Json(document(&state.info.version))
}

/// `GET /docs`
pub async fn page() -> Response {
    let mut r = Html(PAGE).into_response();
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; style-src 'unsafe-inline'; frame-ancestors 'none'",
        ),
    );
    r
}

/// `GET /docs/app.js`
pub async fn script() -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        SCRIPT,
    )
        .into_response()
}

const PAGE: &str = r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>authsome daemon API</title>
<style>body{font:15px system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
details{border:1px solid #ddd;border-radius:6px;margin:.4rem 0;padding:.4rem .7rem}summary{cursor:pointer}
.m{display:inline-block;min-width:4.2rem;font-weight:600}.GET{color:#06c}.POST{color:#080}.DELETE{color:#b00}
.lock{color:#a60;font-size:.85em;margin-left:.5rem}textarea{width:100%;font:13px monospace}pre{background:#f6f6f6;padding:.5rem;overflow:auto}
input{font:inherit}</style></head><body>
<h1>authsome daemon API</h1>
<p>Generated from <a href="/openapi.json">/openapi.json</a>. Routes marked <span class="lock">PoP</span> need a
proof-of-possession signature from this home's identity: the <code>authsome</code> CLI adds it; from this page they answer 401.</p>
<div id="ops">Loading…</div>
<script src="/docs/app.js"></script></body></html>"#;

const SCRIPT: &str = r#"(async () => {
  const spec = await (await fetch('/openapi.json')).json();
  const root = document.getElementById('ops');
  root.textContent = '';
  for (const [path, ops] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const d = document.createElement('details');
      const s = document.createElement('summary');
      const m = document.createElement('span');
      m.className = 'm ' + method.toUpperCase(); m.textContent = method.toUpperCase();
      s.append(m, path + '  ', op.summary);
      if (op.security.length) { const l = document.createElement('span'); l.className = 'lock'; l.textContent = 'PoP'; s.append(l); }
      d.append(s);
      const inputs = {};
      for (const p of op.parameters) {
        const label = document.createElement('label');
        const i = document.createElement('input'); i.placeholder = p.name; inputs[p.name] = i;
        label.append(p.name + ' ', i, ' '); d.append(label);
      }
      let body = null;
      if (op.requestBody) {
        body = document.createElement('textarea'); body.rows = 4;
        body.value = JSON.stringify(op.requestBody.content['application/json'].example, null, 2);
        d.append(body);
      }
      const b = document.createElement('button'); b.textContent = 'Send';
      const out = document.createElement('pre');
      b.onclick = async () => {
        let url = path;
        for (const [k, i] of Object.entries(inputs)) url = url.replace('{' + k + '}', encodeURIComponent(i.value));
        const init = { method: method.toUpperCase(), headers: {} };
        if (body) { init.body = body.value; init.headers['content-type'] = 'application/json'; }
        try {
          const r = await fetch(url, init);
          const t = await r.text();
          let shown = t; try { shown = JSON.stringify(JSON.parse(t), null, 2); } catch (e) {}
          out.textContent = r.status + ' ' + r.statusText + '\n' + shown;
        } catch (e) { out.textContent = String(e); }
      };
      d.append(b, out);
      root.append(d);
    }
  }
})();"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_documented_with_its_auth() {
        let doc = document("t");
        for e in endpoints() {
            let op = &doc["paths"][format!("/api{}", e.path)][e.method.as_str().to_lowercase()];
            assert!(op.is_object(), "{} {} missing", e.method, e.path);
            assert_eq!(
                op["security"].as_array().unwrap().is_empty(),
                e.auth == Auth::Open,
                "{}",
                e.path
            );
        }
        assert_eq!(
            doc["paths"]["/api/connections/{provider}/{connection}"]["get"]["parameters"][1]["name"],
            "connection"
        );
    }

    #[test]
    fn examples_are_valid_json() {
        for e in endpoints() {
            if let Some(b) = e.body {
                serde_json::from_str::<Value>(b).unwrap_or_else(|err| panic!("{}: {err}", e.path));
            }
        }
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for text in [PAGE, SCRIPT] {
            assert!(
                !text.contains("http://") && !text.contains("https://") && !text.contains("//cdn"),
                "external reference"
            );
        }
    }
}
