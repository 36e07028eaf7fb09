//! Response redaction and placeholders (issue #13), end to end: the real
//! binary, a real TLS upstream on loopback that echoes the credential it
//! received (in a body split across chunks, response headers, a
//! `Location`, a `Set-Cookie`, an SSE event split across chunks, a gzip
//! body, a fragmented WebSocket message), and real clients (curl, Python,
//! the OpenAI and Anthropic SDKs) through `authsome run`. The child must
//! receive none of the secret's bytes in any form, and its placeholder in
//! their place.

use base64::Engine;

use crate::common::lab::Lab;

/// Every form of `key` an echo could carry.
fn forms(key: &str) -> Vec<String> {
    let b = key.as_bytes();
    let mut v = vec![
        key.to_string(),
        authsome::percent::encode(key),
        base64::engine::general_purpose::STANDARD.encode(b),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b),
    ];
    v.sort();
    v.dedup();
    v
}

fn assert_no_secret(key: &str, text: &str) {
    for f in forms(key) {
        assert!(
            !text.contains(&f),
            "a form of the secret ({f}) reached the child:\n{text}"
        );
    }
}

/// The value of `NAME=` on a line of the child's output.
fn held(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name}= line in:\n{out}"))
        .trim()
        .to_string()
}

#[test]
fn echoed_secrets_reach_the_child_only_as_its_placeholder() {
    let lab = Lab::new();
    let out = lab
        .run_sh(
            "echo \"PH=$ACME_API_KEY\"; \
             curl -sS -D - \"$URL/echo/header\"; echo; \
             curl -sSN \"$URL/echo/sse\"; echo; \
             curl -sS --compressed \"$URL/echo/gzip\"; echo; \
             curl -sS -H 'Accept-Encoding: gzip, br, zstd' \"$URL/v1/headers\"; echo; \
             python3 \"$CLIENTS/ws.py\" api.acme.test $UP /echo/ws",
        )
        .success();
    let all = format!("{}\n{}", out.stdout, out.stderr);
    assert_no_secret(&lab.key, &all);
    let ph = held(&out.stdout, "PH");
    assert!(ph.starts_with("authsome-") && ph.len() == 41, "{ph}");
    let s = &out.stdout;
    // Response headers, a Location and a Set-Cookie.
    assert!(s.contains(&format!("x-echo: Bearer {ph}")), "{s}");
    assert!(s.contains(&format!("token={ph}")), "{s}");
    assert!(s.contains(&format!("set-cookie: k={ph}")), "{s}");
    // A body with the secret split across two chunks 100 ms apart.
    assert!(s.contains(&format!("you sent {ph} (that was it)")), "{s}");
    // An SSE event whose data is split across two chunks 300 ms apart.
    assert!(s.contains("data: hello"), "{s}");
    assert!(s.contains(&format!("\"auth\":\"Bearer {ph}\"")), "{s}");
    // The gzip body and the plain JSON echo (asked with encodings authsome
    // cannot redact: it asks the upstream for what it can).
    assert!(
        s.matches(&format!("Bearer {ph}")).count() >= 4,
        "expected the placeholder in the SSE, gzip, JSON and WebSocket echoes:\n{s}"
    );
    // The WebSocket message, fragmented inside the secret with a ping
    // between the fragments.
    assert!(s.contains("HTTP/1.1 101"), "{s}");
    assert!(s.contains(&format!("{{\"auth\":\"Bearer {ph}\"}}")), "{s}");
    // The upstream got the real key every time, and never a compression
    // authsome cannot undo.
    let recs = lab.up.records();
    assert_eq!(recs.len(), 5, "{recs:?}");
    for r in &recs {
        assert_eq!(
            r.all("authorization"),
            vec![format!("Bearer {}", lab.key)],
            "{r:?}"
        );
        for ae in r.all("accept-encoding") {
            assert!(!ae.contains("br") && !ae.contains("zstd"), "{ae}");
        }
        assert!(r.all("sec-websocket-extensions").is_empty(), "{r:?}");
    }
}

#[test]
fn ranges_reason_phrases_and_head_cannot_carry_the_secret_out() {
    let lab = Lab::new();
    let out = lab
        .run_sh(
            "for r in 0-19 20-39 40-59; do curl -sS -H \"Range: bytes=$r\" \"$URL/echo/range\"; echo; done; \
             curl -sS -w '\\n%{http_code}\\n' \"$URL/echo/partial\"; \
             curl -sS --http1.1 -D - -o /dev/null \"$URL/echo/reason\"; \
             curl -sS -I \"$URL/echo/gzip\" -H 'Accept-Encoding: gzip'; \
             curl -sS --http1.1 -I \"$URL/echo/gzip\" -H 'Accept-Encoding: gzip'",
        )
        .success();
    let all = format!("{}\n{}", out.stdout, out.stderr);
    assert_no_secret(&lab.key, &all);
    // Range is not sent: each answer is the whole echo, redacted.
    assert_eq!(
        out.stdout.matches("\"auth\":\"Bearer authsome-").count(),
        3,
        "{}",
        out.stdout
    );
    // An upstream that answers 206 anyway: refused, not passed on.
    assert!(
        out.stdout.contains("authsome_unredactable_response"),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("\n502\n"), "{}", out.stdout);
    // The reason phrase is the standard one.
    assert!(out.stdout.contains("HTTP/1.1 200 OK\r\n"), "{}", out.stdout);
    // HEAD gets the headers the GET would: not gzip (the GET is decoded).
    let head = out
        .stdout
        .rsplit("HTTP/")
        .next()
        .unwrap()
        .to_ascii_lowercase();
    assert!(!head.contains("content-encoding: gzip"), "{head}");
    let recs = lab.up.records();
    assert!(recs.iter().all(|r| r.all("range").is_empty()), "{recs:?}");
}

#[test]
fn placeholders_are_fresh_for_every_run() {
    let lab = Lab::new();
    let one = held(
        &lab.run_sh("echo \"PH=$ACME_API_KEY\"").success().stdout,
        "PH",
    );
    let two = held(
        &lab.run_sh("echo \"PH=$ACME_API_KEY\"").success().stdout,
        "PH",
    );
    assert_ne!(one, two);
    assert_ne!(one, lab.key);
}

#[test]
fn query_and_basic_credentials_are_redacted_in_the_forms_they_were_sent() {
    let lab = Lab::bare();
    // A key with characters the query form percent-encodes.
    let key = format!("{}/+=:x", lab.key);
    lab.provider(
        "qkey",
        &format!("api.acme.test:{}", lab.up.port),
        r#""api_key":{"format":"query","query_param":"api_key"},"export":{"QKEY_API_KEY":"api_key"}"#,
    );
    lab.cmd(["login", "qkey", "--with-api-key"])
        .stdin(&key)
        .run()
        .success();
    lab.provider(
        "bkey",
        &format!("x.acme.test:{}", lab.up.port),
        r#""api_key":{"format":"basic"},"export":{"BKEY_API_KEY":"api_key"}"#,
    );
    lab.cmd(["login", "bkey", "--with-api-key"])
        .stdin(&key)
        .run()
        .success();
    let out = lab
        .run_sh(
            "echo \"PQ=$QKEY_API_KEY\"; echo \"PB=$BKEY_API_KEY\"; \
             curl -sS \"$URL/v1/list?page=1\"; echo; \
             curl -sS \"https://x.acme.test:$UP/v1/me\"; echo",
        )
        .success();
    let all = format!("{}\n{}", out.stdout, out.stderr);
    assert_no_secret(&key, &all);
    let recs = lab.up.records();
    assert_eq!(recs.len(), 2, "{recs:?}");
    // The query form as sent upstream, and the Basic token as sent.
    let sent_query = recs[0].path.clone();
    assert!(
        sent_query.contains(&authsome::percent::encode(&key)),
        "{sent_query}"
    );
    let basic = recs[1].all("authorization").remove(0);
    let token = basic.strip_prefix("Basic ").unwrap();
    assert!(
        !all.contains(token),
        "the Basic token reached the child:\n{all}"
    );
    let pq = held(&out.stdout, "PQ");
    let pb = held(&out.stdout, "PB");
    assert!(
        out.stdout.contains(&format!("api_key={pq}")),
        "{}",
        out.stdout
    );
    let pb_token = base64::engine::general_purpose::STANDARD.encode(format!("{pb}:"));
    assert!(
        out.stdout.contains(&format!("Basic {pb_token}")),
        "{}",
        out.stdout
    );
}

#[test]
fn redaction_off_shows_raw_bytes_and_says_so() {
    let lab = Lab::new();
    let out = lab
        .cmd(["run", "--", "sh", "-c", "curl -sS \"$URL/echo/header\""])
        .env("URL", &lab.url(""))
        .env("AUTHSOME_REDACT", "off")
        .run()
        .success();
    assert!(out.stderr.contains("redaction is off"), "{}", out.stderr);
    assert!(
        out.stdout
            .contains(&format!("you sent {} (that was it)", lab.key)),
        "{}",
        out.stdout
    );
    lab.cmd(["run", "--", "true"])
        .env("AUTHSOME_REDACT", "sometimes")
        .run()
        .code(4)
        .stderr_has("AUTHSOME_REDACT");
}

#[test]
fn a_placeholder_sent_to_another_providers_host_trips_the_wire() {
    let lab = Lab::new();
    lab.provider(
        "beta",
        &format!("x.acme.test:{}", lab.up.port),
        r#""api_key":{"header_name":"X-Beta-Key","header_prefix":null},"export":{"BETA_API_KEY":"api_key"}"#,
    );
    lab.cmd(["login", "beta", "--with-api-key"])
        .stdin("BETAKEY_0123456789abcdef")
        .run()
        .success();
    let beta = format!("https://x.acme.test:{}", lab.up.port);
    // Without --deny-unknown: recorded, forwarded.
    let out = lab
        .run_sh(&format!(
            "curl -sS -o /dev/null -w '%{{http_code}}\\n' -H \"X-Leak: $ACME_API_KEY\" '{beta}/v1/a'; \
             curl -sS -o /dev/null -w '%{{http_code}}\\n' -d \"{{\\\"k\\\":\\\"$ACME_API_KEY\\\"}}\" '{beta}/v1/b'; \
             curl -sS -o /dev/null -w '%{{http_code}}\\n' \"$URL/v1/own?k=$ACME_API_KEY\""
        ))
        .success();
    assert_eq!(
        out.stdout.lines().collect::<Vec<_>>(),
        ["200", "200", "200"],
        "{}",
        out.stdout
    );
    // With it: refused before anything is sent.
    let before = lab.up.records().len();
    let out = lab
        .run_sh_with(
            &["--deny-unknown"],
            &format!(
                "curl -sS -w '\\n%{{http_code}}\\n' \"{beta}/v1/c?q=$ACME_API_KEY\"; \
                 curl -sS -o /dev/null -w '%{{http_code}}\\n' -d \"quoted: $ACME_API_KEY\" \"{beta}/v1/d\"; \
                 curl -sS -o /dev/null -w '%{{http_code}}\\n' -H \"X-Own: $ACME_API_KEY\" \"$URL/v1/own\""
            ),
        )
        .success();
    assert!(
        out.stdout.contains("authsome_placeholder_misuse"),
        "{}",
        out.stdout
    );
    // Refused in the query; a body that quotes a placeholder (tool output
    // sent to a model) is recorded, not refused; the own host is fine.
    let codes: Vec<&str> = out.stdout.lines().rev().take(3).collect();
    assert_eq!(codes, ["200", "200", "403"], "{}", out.stdout);
    let recs = lab.up.records();
    assert_eq!(recs.len(), before + 2, "{recs:?}");
    assert_eq!(recs[before].path, "/v1/d");
    assert_eq!(recs.last().unwrap().path, "/v1/own");
    // On the record: the four trips, with where, never the value.
    let log = lab.cmd(["log", "--json", "-n", "100"]).run().success();
    let entries = log.json();
    let trips: Vec<&serde_json::Value> = entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "proxy.placeholder_misuse")
        .collect();
    assert_eq!(trips.len(), 4, "{}", log.stdout);
    let wheres: Vec<&str> = trips
        .iter()
        .map(|e| e["detail"]["location"].as_str().unwrap())
        .collect();
    for w in ["header", "body", "query"] {
        assert!(wheres.contains(&w), "{wheres:?}");
    }
    for t in &trips {
        assert_eq!(t["detail"]["placeholder_of"], "acme", "{t}");
    }
    assert!(
        !log.stdout.contains("authsome-"),
        "a placeholder's value in the audit log:\n{}",
        log.stdout
    );
}

#[test]
fn the_openai_and_anthropic_sdks_start_with_their_placeholders() {
    if std::process::Command::new("python3")
        .args(["-c", "import openai, anthropic"])
        .status()
        .map(|s| !s.success())
        .unwrap_or(true)
    {
        assert!(
            std::env::var_os("AUTHSOME_TEST_REQUIRE_CLIENTS").is_none(),
            "the OpenAI and Anthropic SDKs are required (pip install openai anthropic)"
        );
        eprintln!("skipped: the OpenAI and Anthropic SDKs are not installed");
        return;
    }
    let lab = Lab::bare();
    let port = lab.up.port;
    // The bundled definitions' shapes, on hosts the lab reaches.
    lab.provider_json(
        "openai-local",
        &format!(
            r#"{{"name":"openai-local","auth_type":"api_key","flow":"api_key","api_url":["api.acme.test:{port}"],
                "api_key":{{"header_name":"Authorization","header_prefix":"Bearer","key_pattern":"^sk-[A-Za-z0-9_-]{{20,}}$"}},
                "export":{{"OPENAI_API_KEY":"api_key"}},"placeholder":{{"prefix":"sk-","length":51}}}}"#
        ),
    );
    lab.provider_json(
        "anthropic-local",
        &format!(
            r#"{{"name":"anthropic-local","auth_type":"api_key","flow":"api_key","api_url":["x.acme.test:{port}"],
                "api_key":{{"header_name":"x-api-key","header_prefix":null,"key_pattern":"^sk-ant-[A-Za-z0-9_-]+$"}},
                "export":{{"ANTHROPIC_API_KEY":"api_key"}},"placeholder":{{"prefix":"sk-ant-api03-","length":108}}}}"#
        ),
    );
    let okey = format!("sk-{}", lab.key);
    let akey = format!("sk-ant-{}", lab.key);
    lab.cmd(["login", "openai-local", "--with-api-key"])
        .stdin(&okey)
        .run()
        .success();
    lab.cmd(["login", "anthropic-local", "--with-api-key"])
        .stdin(&akey)
        .run()
        .success();
    let out = lab
        .run_sh(&format!(
            "python3 \"$CLIENTS/sdk.py\" openai \"$URL/v1\" && \
             python3 \"$CLIENTS/sdk.py\" anthropic \"https://x.acme.test:{port}\""
        ))
        .success();
    let all = format!("{}\n{}", out.stdout, out.stderr);
    assert_no_secret(&okey, &all);
    assert_no_secret(&akey, &all);
    let helds: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| l.strip_prefix("HELD="))
        .collect();
    assert_eq!(helds.len(), 2, "{}", out.stdout);
    assert!(
        helds[0].starts_with("sk-") && helds[0].len() == 51,
        "{}",
        helds[0]
    );
    assert!(
        helds[1].starts_with("sk-ant-api03-") && helds[1].len() == 108,
        "{}",
        helds[1]
    );
    assert_eq!(
        out.stdout.matches("STATUS=200").count(),
        2,
        "{}",
        out.stdout
    );
    // The echo shows each SDK its own placeholder where the key was.
    assert!(
        out.stdout.contains(&format!("Bearer {}", helds[0])),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains(helds[1]), "{}", out.stdout);
    let recs = lab.up.records();
    assert_eq!(recs.len(), 2, "{recs:?}");
    assert_eq!(recs[0].all("authorization"), vec![format!("Bearer {okey}")]);
    assert_eq!(recs[1].all("x-api-key"), vec![akey.clone()]);
}

#[test]
fn every_request_is_on_the_record_without_a_secret_a_query_value_or_a_placeholder() {
    let lab = Lab::new();
    let out = lab
        .run_sh(
            "echo \"PH=$ACME_API_KEY\"; \
             curl -sS -o /dev/null \"$URL/v1/models?q=QUERYCANARY_1&k=$ACME_API_KEY\"; \
             curl -sS -o /dev/null \"$URL/echo/header\"; \
             curl -sS -o /dev/null \"$URL/bot$ACME_API_KEY/send\"; \
             curl -sS -o /dev/null \"http://evil.test:$HTTP_UP/plain?x=QUERYCANARY_2\"; \
             curl -sS -o /dev/null -k \"https://upstream.test:$UP/blind\"; \
             curl -sS -o /dev/null \"http://api.acme.test:$UP/plaintext\"; \
             echo done",
        )
        .success();
    let ph = held(&out.stdout, "PH");
    let log = lab
        .cmd(["log", "--requests", "--json", "-n", "100"])
        .run()
        .success();
    let entries = log.json();
    let entries = entries.as_array().unwrap();
    let find = |path: &str| {
        entries
            .iter()
            .find(|e| e["path"] == path)
            .unwrap_or_else(|| panic!("no entry for {path}:\n{}", log.stdout))
    };
    let models = find("/v1/models");
    assert_eq!(models["kind"], "request");
    assert_eq!(models["provider"], "acme");
    assert_eq!(models["connection"], "default");
    assert_eq!(models["method"], "GET");
    assert_eq!(models["host"], "api.acme.test");
    assert_eq!(models["status"], 200);
    assert_eq!(models["injected"], true);
    assert!(models["bytes_down"].as_u64().unwrap() > 0, "{models}");
    assert!(models["latency_ms"].as_f64().unwrap() > 0.0, "{models}");
    assert!(
        models["run"].as_str().is_some_and(|r| !r.is_empty()),
        "{models}"
    );
    let echo = find("/echo/header");
    assert!(echo["redactions"].as_u64().unwrap() >= 4, "{echo}");
    let wheres: Vec<&str> = echo["redacted_in"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w.as_str().unwrap())
        .collect();
    assert_eq!(wheres, ["header", "body"], "{echo}");
    find("/bot[placeholder]/send");
    let plain = find("/plain");
    assert_eq!(plain["injected"], false);
    assert_eq!(plain["host"], "evil.test");
    let refused = find("/plaintext");
    assert_eq!(
        refused["refused"], "authsome_plaintext_refused",
        "{refused}"
    );
    assert_eq!(refused["status"], 403);
    let tunnel = entries
        .iter()
        .find(|e| e["kind"] == "tunnel")
        .unwrap_or_else(|| panic!("no tunnel entry:\n{}", log.stdout));
    assert_eq!(tunnel["host"], "upstream.test");
    assert!(tunnel["bytes_up"].as_u64().unwrap() > 0, "{tunnel}");
    // The files themselves: no secret form, no query value, no placeholder.
    let dir = lab.home.path("logs");
    let mut text = String::new();
    for f in ["requests.jsonl", "requests.jsonl.1"] {
        if let Ok(t) = std::fs::read_to_string(dir.join(f)) {
            text.push_str(&t);
        }
    }
    assert!(text.contains("/v1/models"), "{text}");
    assert_no_secret(&lab.key, &text);
    assert_no_secret(&lab.key, &log.stdout);
    for needle in ["QUERYCANARY", ph.as_str()] {
        assert!(
            !text.contains(needle),
            "{needle} in the request log:\n{text}"
        );
        assert!(!log.stdout.contains(needle), "{needle} in `log --requests`");
    }
    // Filters and the table.
    let acme = lab
        .cmd(["log", "--requests", "--json", "--provider", "acme"])
        .run()
        .success();
    assert!(
        acme.json()
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["provider"] == "acme"),
        "{}",
        acme.stdout
    );
    let table = lab
        .cmd(["log", "--requests", "--status", "refused"])
        .run()
        .success();
    assert!(
        table.stdout.contains("plaintext_refused"),
        "{}",
        table.stdout
    );
    assert!(!table.stdout.contains("/v1/models"), "{}", table.stdout);
    // The redaction is in the audit log too, by where and how many.
    let audit = lab.cmd(["log", "--json", "-n", "100"]).run().success();
    let audit_entries = audit.json();
    let redacted: Vec<&serde_json::Value> = audit_entries
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "proxy.redacted")
        .collect();
    // The JSON echoes (`/v1/models`, `/bot…/send`) carried the key in
    // their bodies, `/echo/header` in headers and body: one entry per run,
    // host and kind every 10 s (the second body echo is folded).
    assert_eq!(redacted.len(), 2, "{}", audit.stdout);
    assert!(
        redacted
            .iter()
            .all(|e| e["detail"]["host"] == "api.acme.test")
    );
    assert!(
        redacted
            .iter()
            .any(|e| e["detail"]["where"] == serde_json::json!(["header", "body"])),
        "{}",
        audit.stdout
    );
    assert_no_secret(&lab.key, &audit.stdout);
}
