//! `authsome run` end to end: the real binary, its daemon, a real TLS
//! upstream on loopback and real clients (curl here; Python and Node in
//! `proxy_clients.rs`). "Injected" is always judged by what the upstream
//! recorded, never by authsome's own logs.

use crate::common::lab::{CA, Lab};

/// `-s` and the status on the last line.
const CURL: &str = "curl -sS -w '\\n%{http_code}'";

fn last_line(s: &str) -> &str {
    s.trim_end().lines().last().unwrap_or("")
}

#[test]
fn curl_gets_exactly_one_credential_and_the_clients_own_is_replaced() {
    let lab = Lab::new();
    let out = lab
        .run_sh(&format!(
            "{CURL} -H 'Authorization: Bearer attacker' -H 'authorization: second' -H 'Proxy-Connection: keep-alive' \"$URL/v1/models\""
        ))
        .success();
    assert_eq!(last_line(&out.stdout), "200", "{}", out.stdout);
    let recs = lab.up.records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(
        recs[0].all("authorization"),
        vec![format!("Bearer {}", lab.key)]
    );
    assert!(recs[0].tls);
    assert_eq!(
        (recs[0].method.as_str(), recs[0].path.as_str()),
        ("GET", "/v1/models")
    );
    for (k, v) in &recs[0].headers {
        assert!(
            !k.starts_with("proxy-"),
            "hop-by-hop header {k} reached upstream"
        );
        assert!(
            !v.contains("authsome:"),
            "proxy credentials reached upstream: {k}: {v}"
        );
    }
    // The child only ever sees a placeholder, even in the upstream's echo
    // of the headers it got.
    assert!(out.stdout.contains("\"headers\""), "{}", out.stdout);
    assert!(!out.stdout.contains(&lab.key), "{}", out.stdout);
}

#[test]
fn http2_and_http1_both_get_the_credential_in_the_childs_protocol() {
    let lab = Lab::new();
    let out = lab
        .run_sh(
            "curl -sS --http2 -o /dev/null -w '%{http_version}\\n' \"$URL/a\"; curl -sS --http1.1 -o /dev/null -w '%{http_version}\\n' \"$URL/b\"",
        )
        .success();
    assert_eq!(out.stdout.trim(), "2\n1.1");
    // The upstream leg uses the child's protocol (the upstream offers both).
    let versions: Vec<(String, String)> = lab
        .up
        .records()
        .into_iter()
        .map(|r| (r.path, r.version))
        .collect();
    assert_eq!(
        versions,
        vec![
            ("/a".to_string(), "HTTP/2.0".to_string()),
            ("/b".to_string(), "HTTP/1.1".to_string())
        ]
    );
    let auths = lab.auths();
    assert_eq!(auths.len(), 2);
    for a in auths {
        assert_eq!(a, vec![format!("Bearer {}", lab.key)]);
    }
}

#[test]
fn several_proxy_threads_serve_one_run() {
    let lab = Lab::bare();
    lab.cmd(["daemon", "start"])
        .env("AUTHSOME_PROXY_THREADS", "3")
        .run()
        .success();
    let pid = lab.home.daemon().unwrap()["pid"].as_u64().unwrap();
    let proxy_threads = || -> Vec<String> {
        std::fs::read_dir(format!("/proc/{pid}/task"))
            .unwrap()
            .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
            .map(|c| c.trim().to_string())
            .filter(|c| c.starts_with("authsome-proxy"))
            .collect()
    };
    // A new thread names itself as it starts: allow it a moment (bounded).
    let mut threads = proxy_threads();
    for _ in 0..50 {
        if threads.len() >= 3 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
        threads = proxy_threads();
    }
    assert_eq!(threads.len(), 3, "{threads:?}");
    lab.provider(
        "acme",
        &format!("api.acme.test:{}", lab.up.port),
        r#""api_key":{"header_name":"Authorization","header_prefix":"Bearer"}"#,
    );
    lab.cmd(["login", "acme", "--with-api-key"])
        .stdin(&lab.key)
        .run()
        .success();
    // Twelve connections at once: whichever thread accepts each, every
    // request gets exactly the one credential.
    let out = lab
        .run_sh(
            "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do curl -sS -o /dev/null -w '%{http_code}\\n' \"$URL/t$i\" & done; wait",
        )
        .success();
    assert_eq!(
        out.stdout.lines().filter(|l| *l == "200").count(),
        12,
        "{}",
        out.stdout
    );
    let auths = lab.auths();
    assert_eq!(auths.len(), 12);
    for a in auths {
        assert_eq!(a, vec![format!("Bearer {}", lab.key)]);
    }
}

#[test]
fn the_child_environment_has_placeholders_and_no_secret() {
    let lab = Lab::new();
    let out = lab
        .run_sh(
            "env; cat /proc/self/environ | tr '\\0' '\\n'; cat /proc/$PPID/cmdline | tr '\\0' ' '",
        )
        .success();
    assert!(!out.stdout.contains(&lab.key), "secret in the child's view");
    assert!(!out.stderr.contains(&lab.key));
    for needle in [
        "ACME_API_KEY=authsome-",
        "AUTHSOME_RUN=1",
        "NODE_USE_ENV_PROXY=1",
        "HTTPS_PROXY=http://authsome:",
        "https_proxy=http://authsome:",
        "NO_PROXY=localhost,127.0.0.1,::1",
        "SSL_CERT_FILE=",
        "REQUESTS_CA_BUNDLE=",
        "NODE_EXTRA_CA_CERTS=",
        "CURL_CA_BUNDLE=",
        "GIT_SSL_CAINFO=",
    ] {
        assert!(
            out.stdout.contains(needle),
            "missing {needle}:\n{}",
            out.stdout
        );
    }
}

#[test]
fn the_master_key_is_not_passed_to_the_child() {
    let lab = Lab::bare();
    let out = lab
        .cmd(["run", "--", "env"])
        .env("AUTHSOME_MASTER_KEY", "MKCANARY_passphrase_0123456789")
        .run()
        .success();
    assert!(!out.stdout.contains("MKCANARY"), "{}", out.stdout);
}

#[test]
fn hosts_of_no_provider_are_tunnelled_blind() {
    let lab = Lab::new();
    // With only the lab CA trusted, the non-provider host verifies: the
    // client sees the upstream's own certificate, not one we minted.
    let out = lab
        .run_sh(&format!(
            "{CURL} --cacert {CA} -H 'Authorization: Bearer mine' https://upstream.test:$UP/plain"
        ))
        .success();
    assert_eq!(last_line(&out.stdout), "200", "{}", out.stdout);
    // The provider host, by contrast, is intercepted: the lab CA alone
    // does not verify the run's minted leaf.
    let out = lab
        .run_sh(&format!(
            "{CURL} --cacert {CA} \"$URL/x\"; echo \" curl=$?\""
        ))
        .success();
    assert!(out.stdout.contains("curl=60"), "{}", out.stdout);
    let recs = lab.up.records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(
        recs[0].all("authorization"),
        vec!["Bearer mine".to_string()]
    );
}

#[test]
fn deny_unknown_refuses_other_hosts() {
    let lab = Lab::new();
    let out = lab
        .run_sh_with(
            &["--deny-unknown"],
            &format!("{CURL} https://upstream.test:$UP/x; echo \" curl=$?\"; {CURL} \"$URL/ok\""),
        )
        .success();
    assert!(
        out.stdout.contains("curl=56"),
        "CONNECT refused: {}",
        out.stdout
    );
    assert_eq!(last_line(&out.stdout), "200");
    assert_eq!(lab.up.records().len(), 1);
}

#[test]
fn requests_without_the_proxy_token_get_407() {
    let lab = Lab::new();
    let out = lab
        .run_sh(&format!(
            "P=${{HTTPS_PROXY##*@}}; \
             {CURL} -x http://$P \"$URL/a\"; echo \" curl=$?\"; \
             {CURL} -x http://authsome:wrong@$P \"$URL/b\"; echo \" curl=$?\"; \
             {CURL} -x http://$P http://upstream.test:$HTTP_UP/c"
        ))
        .success();
    assert_eq!(out.stdout.matches("curl=56").count(), 2, "{}", out.stdout);
    assert!(
        out.stdout.contains("authsome_proxy_auth_required"),
        "{}",
        out.stdout
    );
    assert_eq!(last_line(&out.stdout), "407");
    assert!(lab.up.records().is_empty());
    // `run` shows the wrong token, not the bare challenges (which git and
    // libcurl's proxy-anyauth answer by retrying with the token).
    assert_eq!(
        out.stderr.matches("(authsome_proxy_auth_required)").count(),
        1,
        "{}",
        out.stderr
    );
}

#[test]
fn plain_http_to_a_provider_host_is_refused() {
    let lab = Lab::bare();
    lab.provider(
        "plain",
        &format!("api.acme.test:{}", lab.up.http_port),
        r#""api_key":{"header_name":"x-api-key"}"#,
    );
    lab.cmd(["login", "plain", "--with-api-key"])
        .stdin(&lab.key)
        .run()
        .success();
    let out = lab
        .run_sh(&format!("{CURL} http://api.acme.test:$HTTP_UP/x"))
        .success();
    assert_eq!(last_line(&out.stdout), "403", "{}", out.stdout);
    assert!(out.stdout.contains("authsome_plaintext_refused"));
    assert!(
        lab.up.records().is_empty(),
        "nothing may reach the upstream"
    );
}

#[test]
fn plain_http_to_other_hosts_is_forwarded_without_proxy_headers() {
    let lab = Lab::new();
    let out = lab
        .run_sh(&format!("{CURL} http://upstream.test:$HTTP_UP/p"))
        .success();
    assert_eq!(last_line(&out.stdout), "200", "{}", out.stdout);
    let recs = lab.up.records();
    assert_eq!(recs.len(), 1);
    assert!(!recs[0].tls);
    assert!(recs[0].all("proxy-authorization").is_empty(), "{recs:?}");
    assert!(recs[0].all("authorization").is_empty());
}

#[test]
fn a_request_for_another_host_inside_a_tunnel_is_misdirected() {
    let lab = Lab::new();
    let out = lab
        .run_sh(&format!(
            "{CURL} -H 'Host: evil.test' \"$URL/1\"; echo; \
             {CURL} --http2 -H 'Host: evil.test' \"$URL/2\"; echo; \
             {CURL} -H \"Host: evil.test:$UP\" \"$URL/3\"; echo; \
             {CURL} -H \"Host: API.ACME.TEST.:$UP\" \"$URL/4\""
        ))
        .success();
    let codes: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.len() == 3 && l.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(codes, vec!["421", "421", "421", "200"], "{}", out.stdout);
    let recs = lab.up.records();
    assert_eq!(
        recs.len(),
        1,
        "only the well-formed request is forwarded: {recs:?}"
    );
    assert_eq!(recs[0].path, "/4");
}

#[test]
fn sni_that_differs_from_the_connect_target_gets_no_credential() {
    let lab = Lab::new();
    // CONNECT evil.test, then ask TLS for api.acme.test: the tunnel is blind
    // (evil.test is no provider), so the request arrives as the client sent it.
    let script = format!(
        "curl -sS --cacert {CA} --connect-to api.acme.test:$UP:evil.test:$UP \"$URL/sni\"; echo; \
         curl -sS --connect-to api.acme.test:$UP:evil.test:$UP \"$URL/sni2\" ; echo \" curl=$?\""
    );
    let out = lab.run_sh(&script).success();
    for r in lab.up.records() {
        assert!(
            r.all("authorization").is_empty(),
            "credential sent through a mismatched tunnel: {r:?}"
        );
    }
    assert!(!out.stdout.contains(&lab.key));
}

#[test]
fn the_proxy_refuses_to_loop_into_authsome() {
    let lab = Lab::new();
    lab.cmd(["daemon", "start"]).run().success();
    let daemon_port = lab.home.daemon().unwrap()["port"].as_u64().unwrap();
    let out = lab
        .run_sh(&format!(
            "P=${{HTTPS_PROXY##*:}}; \
             {CURL} --noproxy '' -x \"$HTTPS_PROXY\" http://127.0.0.1:$P/; echo; \
             {CURL} --noproxy '' -x \"$HTTPS_PROXY\" http://localhost:{daemon_port}/api/health; echo; \
             {CURL} --noproxy '' -x \"$HTTPS_PROXY\" https://127.0.0.1:{daemon_port}/api/health; echo \" curl=$?\"; \
             {CURL} http://127.0.0.1:$P/"
        ))
        .success();
    assert_eq!(
        out.stdout.matches("authsome_loop_refused").count(),
        2,
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("curl=56"),
        "CONNECT to the daemon refused: {}",
        out.stdout
    );
    // Straight to the proxy port (not as a proxy): refused too.
    assert_eq!(last_line(&out.stdout), "407", "{}", out.stdout);
}

#[test]
fn a_missing_credential_fails_closed_and_logout_takes_effect_at_once() {
    let lab = Lab::new();
    // The child logs out itself, which only an unconfined child can do.
    let out = lab
        .run_sh_with(
            &["--no-sandbox"],
            &format!(
                "{CURL} \"$URL/before\"; echo; \"$BIN\" logout acme >/dev/null 2>&1; {CURL} \"$URL/after\""
            ),
        )
        .success();
    assert_eq!(last_line(&out.stdout), "401", "{}", out.stdout);
    assert!(
        out.stdout
            .contains("\"error\":\"authsome_credential_unavailable\""),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("\"provider\":\"acme\""));
    assert!(out.stdout.contains("authsome login"));
    let recs = lab.up.records();
    assert_eq!(
        recs.len(),
        1,
        "nothing after logout reaches upstream: {recs:?}"
    );
    assert_eq!(recs[0].path, "/before");
}

#[test]
fn connection_flag_picks_another_account() {
    let lab = Lab::new();
    lab.cmd(["login", "acme", "--with-api-key", "--connection", "work"])
        .stdin("AKCANARY_work_key")
        .run()
        .success();
    lab.run_sh_with(
        &["--connection", "acme=work"],
        &format!("{CURL} \"$URL/w\""),
    )
    .success();
    lab.run_sh(&format!("{CURL} \"$URL/d\"")).success();
    assert_eq!(
        lab.auths(),
        vec![
            vec!["Bearer AKCANARY_work_key".to_string()],
            vec![format!("Bearer {}", lab.key)]
        ]
    );
    lab.cmd(["run", "--connection", "acme=nope", "--", "true"])
        .run()
        .code(3)
        .stderr_has("nope");
    // Usage errors (exit 2), not a command to run (issue #12).
    lab.cmd(["run", "--connection", "acme", "--", "true"])
        .run()
        .code(2)
        .stderr_has("PROVIDER=NAME");
    let out = lab
        .cmd(["run", "--frobnicate", "--", "sh", "-c", "echo ran"])
        .run()
        .code(2)
        .stderr_has("--frobnicate")
        .stderr_has("-- <CMD>");
    assert!(!out.stdout.contains("ran"));
    // After the program, options are its own.
    let out = lab
        .cmd(["run", "--", "sh", "-c", "echo \"$@\"", "x", "--a", "-b"])
        .run()
        .success();
    assert_eq!(out.stdout.trim(), "--a -b");
}

#[test]
fn two_connected_providers_on_one_host_are_a_conflict_the_proxy_never_guesses() {
    let lab = Lab::new();
    let rule = format!("api.acme.test:{}", lab.up.port);
    // Registering a second claimant of the same host is allowed (written
    // differently here: it is still the same rule).
    lab.provider(
        "acme-two",
        &format!("https://API.acme.test:{}/", lab.up.port),
        r#""api_key":{"header_name":"Authorization","header_prefix":"Bearer"},"export":{"ACME_TWO_KEY":"api_key"}"#,
    );
    lab.run_sh(&format!("{CURL} \"$URL/only-acme\"")).success();
    // Connecting it is the conflict, reported then, naming both and the ways out.
    lab.cmd(["login", "acme-two", "--with-api-key"])
        .stdin("AKCANARY_two")
        .run()
        .success()
        .stderr_has(&format!(
            "`acme-two` and `acme` are both connected and both claim {rule}"
        ))
        .stderr_has("--connection acme-two=NAME")
        .stderr_has("authsome set-default acme-two CONNECTION")
        .stderr_has("authsome logout acme");
    let json = lab
        .cmd([
            "login",
            "acme-two",
            "-c",
            "second",
            "--with-api-key",
            "--json",
        ])
        .stdin("AKCANARY_two_b")
        .run()
        .success()
        .json();
    assert_eq!(json["conflicts"][0]["provider"], "acme");
    assert_eq!(json["conflicts"][0]["rule"], rule.as_str());
    // Both connected, nothing chosen: refused, nothing reaches upstream.
    let out = lab.run_sh(&format!("{CURL} \"$URL/guess\"")).success();
    assert_eq!(last_line(&out.stdout), "409", "{}", out.stdout);
    assert!(
        out.stdout.contains("authsome_provider_conflict"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("acme and acme-two are both connected"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("authsome set-default PROVIDER CONNECTION"),
        "{}",
        out.stdout
    );
    // A run chooses one with --connection.
    lab.run_sh_with(
        &["--connection", "acme-two=default"],
        &format!("{CURL} \"$URL/chosen\""),
    )
    .success();
    // set-default chooses one for good (runs started later, too).
    lab.cmd(["set-default", "acme-two", "second"])
        .run()
        .success()
        .stderr_has(&format!("acme-two is now the chosen provider on {rule}"));
    lab.run_sh(&format!("{CURL} \"$URL/set-default\""))
        .success();
    // The run's --connection still overrides it.
    lab.run_sh_with(
        &["--connection", "acme=default"],
        &format!("{CURL} \"$URL/override\""),
    )
    .success();
    // A rival connected after the choice keeps it, and the login says so.
    lab.provider(
        "acme-three",
        &rule,
        r#""api_key":{"header_name":"Authorization","header_prefix":"Bearer"}"#,
    );
    lab.cmd(["login", "acme-three", "--with-api-key"])
        .stdin("AKCANARY_three")
        .run()
        .success()
        .stderr_has("requests there go with `acme-two`'s credential")
        .stderr_has("authsome set-default acme-three CONNECTION");
    lab.run_sh(&format!("{CURL} \"$URL/still-chosen\""))
        .success();
    lab.cmd(["logout", "acme-three"]).run().success();
    // Logging out of the chosen one drops the choice; the other, alone, serves.
    lab.cmd(["logout", "acme-two", "-c", "default"])
        .run()
        .success();
    lab.cmd(["logout", "acme-two", "-c", "second"])
        .run()
        .success();
    lab.run_sh(&format!("{CURL} \"$URL/after-logout\""))
        .success();
    // Connecting it again does not bring the old choice back.
    lab.cmd(["login", "acme-two", "--with-api-key"])
        .stdin("AKCANARY_two")
        .run()
        .success()
        .stderr_has("requests there are refused");
    let out = lab.run_sh(&format!("{CURL} \"$URL/again\"")).success();
    assert_eq!(last_line(&out.stdout), "409", "{}", out.stdout);
    let recs = lab.up.records();
    let seen: Vec<(&str, Vec<String>)> = recs
        .iter()
        .map(|r| (r.path.as_str(), r.all("authorization")))
        .collect();
    assert_eq!(
        seen,
        vec![
            ("/only-acme", vec![format!("Bearer {}", lab.key)]),
            ("/chosen", vec!["Bearer AKCANARY_two".to_string()]),
            ("/set-default", vec!["Bearer AKCANARY_two_b".to_string()]),
            ("/override", vec![format!("Bearer {}", lab.key)]),
            ("/still-chosen", vec!["Bearer AKCANARY_two_b".to_string()]),
            ("/after-logout", vec![format!("Bearer {}", lab.key)]),
        ]
    );
}

#[test]
fn server_sent_events_arrive_one_by_one() {
    let lab = Lab::new();
    // Timestamps of each line as curl prints it, unbuffered: the first
    // event must arrive well before the last was sent (400 ms apart).
    let out = lab
        .run_sh(
            "curl -sSN \"$URL/sse\" | while IFS= read -r line; do [ -n \"$line\" ] && echo \"$(date +%s%N) $line\"; done; true",
        )
        .success();
    let times: Vec<u128> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect();
    assert_eq!(times.len(), 3, "{}", out.stdout);
    let spread_ms = (times[2] - times[0]) / 1_000_000;
    assert!(
        spread_ms >= 600,
        "events were buffered: {spread_ms} ms apart\n{}",
        out.stdout
    );
}

#[test]
fn large_bodies_stream_through() {
    let lab = Lab::new();
    let out = lab
        .run_sh("curl -sS \"$URL/bytes/20000000\" | wc -c")
        .success();
    assert_eq!(out.stdout.trim(), "20000000");
}

#[test]
fn upstream_failures_say_whose_fault() {
    let lab = Lab::bare();
    // A provider on a port where nothing listens.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    lab.provider(
        "dead",
        &format!("api.acme.test:{port}"),
        r#""api_key":{"header_name":"x-api-key"}"#,
    );
    lab.cmd(["login", "dead", "--with-api-key"])
        .stdin(&lab.key)
        .run()
        .success();
    // HTTP/2 (hyper-util's pooled client) and HTTP/1.1 (the proxy
    // thread's own connections) alike.
    let out = lab
        .run_sh(&format!(
            "{CURL} https://api.acme.test:{port}/x; echo; {CURL} --http1.1 https://api.acme.test:{port}/x"
        ))
        .success();
    let statuses: Vec<&str> = out.stdout.lines().filter(|l| l.len() == 3).collect();
    assert_eq!(statuses, ["502", "502"], "{}", out.stdout);
    assert_eq!(
        out.stdout.matches("authsome_upstream_unreachable").count(),
        2,
        "{}",
        out.stdout
    );
    assert_eq!(out.stdout.matches("\"fault\":\"upstream\"").count(), 2);
    assert!(!out.stdout.contains(&lab.key));
    // A blind tunnel is dialled before the CONNECT is answered: a dead
    // target gets a 502 the client can read, not a 200 and a hang-up.
    let out = lab
        .run_sh(&format!(
            "python3 \"$CLIENTS/connect.py\" upstream.test {port}"
        ))
        .success();
    assert!(out.stdout.starts_with("HTTP/1.1 502"), "{}", out.stdout);
    assert!(
        out.stdout.contains("authsome_upstream_unreachable"),
        "{}",
        out.stdout
    );
}

#[test]
fn servers_that_speak_first_work_through_a_blind_tunnel() {
    // SMTP-style: the server sends its banner before the client says
    // anything. The tunnel must not wait for the client's first bytes.
    let lab = Lab::new();
    let banner = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = banner.local_addr().unwrap().port();
    banner.set_nonblocking(true).unwrap();
    let server = std::thread::spawn(move || {
        // Bounded: 10 s for the proxy to dial in.
        let mut conn = None;
        for _ in 0..1000 {
            match banner.accept() {
                Ok((c, _)) => {
                    conn = Some(c);
                    break;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
        let Some(mut c) = conn else { return };
        c.set_nonblocking(false).unwrap();
        c.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        std::io::Write::write_all(&mut c, b"220 banner.test ESMTP ready\r\n").unwrap();
        // Hold the connection until the client is done.
        let mut b = [0u8; 1];
        let _ = std::io::Read::read(&mut c, &mut b);
    });
    let out = lab
        .run_sh(&format!(
            "python3 \"$CLIENTS/connect.py\" upstream.test {port} --banner"
        ))
        .success();
    assert!(out.stdout.starts_with("HTTP/1.1 200"), "{}", out.stdout);
    assert!(
        out.stdout.contains("banner: 220 banner.test ESMTP ready"),
        "{}",
        out.stdout
    );
    server.join().unwrap();
}

#[test]
fn exit_codes_pass_through() {
    let lab = Lab::bare();
    lab.cmd(["run", "--", "sh", "-c", "exit 42"]).run().code(42);
    lab.cmd(["run", "--", "true"]).run().code(0);
    lab.cmd(["run", "--", "sh", "-c", "kill -TERM $$"])
        .run()
        .code(143);
    lab.cmd(["run", "--", "sh", "-c", "kill -KILL $$"])
        .run()
        .code(137);
    lab.cmd(["run", "--", "/nonexistent/program"])
        .run()
        .code(127)
        .stderr_has("command not found");
}

#[test]
fn nested_runs_are_refused() {
    let lab = Lab::bare();
    lab.run_sh("\"$BIN\" run -- true; echo \"nested=$?\"")
        .success()
        .stdout_has("nested=4");
}

#[test]
fn the_listener_and_temp_dir_are_gone_after_the_child_exits() {
    let lab = Lab::new();
    let out = lab
        .run_sh("echo \"$HTTPS_PROXY\"; echo \"$SSL_CERT_FILE\"")
        .success();
    let mut lines = out.stdout.lines();
    let proxy = lines.next().unwrap();
    let bundle = lines.next().unwrap();
    let port: u16 = proxy.rsplit(':').next().unwrap().parse().unwrap();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the run's listener is still open"
    );
    assert!(
        !std::path::Path::new(bundle).exists(),
        "{bundle} left behind"
    );
}

#[test]
fn sigterm_is_forwarded_and_the_childs_status_returned() {
    let lab = Lab::bare();
    let marker = lab.home.dir.path().join("trapped");
    let script = format!(
        "trap 'echo got > {}; exit 7' TERM; echo ready; while :; do sleep 0.05; done",
        marker.display()
    );
    let mut child = spawn(&lab, &["run", "--", "sh", "-c", &script], &[]);
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(7));
    assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "got");
}

#[test]
fn a_child_that_ignores_sigterm_is_killed_after_the_grace_period() {
    let lab = Lab::bare();
    let mut child = spawn(
        &lab,
        &[
            "run",
            "--",
            "sh",
            "-c",
            "trap '' TERM; echo ready; while :; do sleep 0.05; done",
        ],
        &[("AUTHSOME_RUN_GRACE", "0.5")],
    );
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let t = std::time::Instant::now();
    std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(137));
    assert!(t.elapsed() < std::time::Duration::from_secs(5));
}

#[test]
fn killing_run_with_sigkill_terminates_the_child_and_closes_the_listener() {
    let lab = Lab::bare();
    let pidfile = lab.home.dir.path().join("child.pid");
    let script = format!(
        "echo $$ > {}; echo \"$HTTPS_PROXY\"; while :; do sleep 0.05; done",
        pidfile.display()
    );
    let mut child = spawn(&lab, &["run", "--", "sh", "-c", &script], &[]);
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    let port: u16 = line.trim().rsplit(':').next().unwrap().parse().unwrap();
    let pid = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .to_string();
    child.kill().unwrap();
    child.wait().unwrap();
    let alive = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z"))
            .unwrap_or(false)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while (alive(&pid) || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(!alive(&pid), "the child outlived `authsome run`");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the run's listener outlived `authsome run`"
    );
}

#[test]
fn a_tunnel_left_open_after_the_run_ends_gets_nothing() {
    let lab = Lab::new();
    let dir = lab.home.dir.path();
    let go = dir.join("go");
    let log = dir.join("keepalive.log");
    // A grandchild that outlives `authsome run` (setsid: not our child, no
    // parent-death signal) and keeps its tunnel open.
    let script = format!(
        "setsid python3 \"$CLIENTS/keepalive.py\" api.acme.test $UP {} > {} 2>&1 & \
         for i in $(seq 100); do grep -q first {} 2>/dev/null && break; sleep 0.05; done",
        go.display(),
        log.display(),
        log.display()
    );
    lab.run_sh(&script).success();
    std::fs::write(&go, "").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut text = String::new();
    while std::time::Instant::now() < deadline {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("second") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(text.contains("first 200"), "{text}");
    assert!(
        text.contains("second 403") && text.contains("authsome_run_ended")
            || text.contains("second failed"),
        "{text}"
    );
    let recs = lab.up.records();
    assert_eq!(
        recs.len(),
        1,
        "only the request made during the run: {recs:?}"
    );
}

#[test]
fn paths_a_server_would_normalise_differently_are_refused_on_provider_hosts() {
    let lab = Lab::new();
    let out = lab
        .run_sh(&format!(
            "{CURL} --path-as-is \"$URL/v1/../admin\"; echo; {CURL} \"$URL/a%2Fb\"; echo; {CURL} --path-as-is https://upstream.test:$UP/x/../y --cacert {CA}"
        ))
        .success();
    assert_eq!(
        out.stdout.matches("authsome_ambiguous_path").count(),
        2,
        "{}",
        out.stdout
    );
    assert_eq!(
        last_line(&out.stdout),
        "200",
        "other hosts are not judged: {}",
        out.stdout
    );
    assert_eq!(lab.up.records().len(), 1);
}

#[test]
fn websocket_handshakes_get_the_credential() {
    // The upgrade goes through the proxy's own client: the resolver
    // override and the upstream CA apply, as for any request.
    let lab = Lab::new();
    let out = lab
        .run_sh("python3 \"$CLIENTS/ws.py\" api.acme.test $UP")
        .success();
    assert!(
        out.stdout.starts_with("HTTP/1.1 101"),
        "{}\n{}",
        out.stdout,
        out.stderr
    );
    assert!(
        out.stdout.contains("hello through authsome"),
        "{}",
        out.stdout
    );
    let recs = lab.up.records();
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0].path, "/ws");
    assert_eq!(
        recs[0].all("authorization"),
        vec![format!("Bearer {}", lab.key)]
    );
}

#[test]
fn ctrl_c_in_a_terminal_reaches_the_child_and_run_waits_for_it() {
    // Under a pty (script(1)), ^C makes the terminal send SIGINT to the
    // foreground process group: `authsome run` and its child. `run` must not
    // die of it: it waits for the child (whose trap handles it) and returns
    // the child's status. (Whether `run` also forwards it cannot be seen
    // here: two SIGINTs that close together coalesce.)
    let lab = Lab::bare();
    let count = lab.home.dir.path().join("ints");
    let inner = format!(
        "trap 'echo x >> {c}' INT; echo ready; i=0; while [ ! -s {c} ] && [ $i -lt 200 ]; do sleep 0.05; i=$((i+1)); done; sleep 0.5; exit 5",
        c = count.display()
    );
    // `exec`: no shell stays between script(1) and `run` (a non-interactive
    // dash that sees ^C while waiting exits itself, whatever its child
    // does); script's `-e` returns `run`'s status. SHELL is pinned so the
    // test is the same wherever it runs.
    let cmdline = format!(
        "exec env AUTHSOME_HOME={} AUTHSOME_PORT=0 AUTHSOME_KEYRING=off AUTHSOME_SANDBOX=require {} run -- sh -c \"{}\"",
        lab.home.home.display(),
        crate::common::bin(),
        inner.replace('"', "\\\"").replace('$', "\\$")
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &cmdline, "/dev/null"])
        .env("SHELL", "/bin/sh")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    loop {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0,
            "no ready line"
        );
        if line.contains("ready") {
            break;
        }
    }
    use std::io::Write;
    child.stdin.as_mut().unwrap().write_all(b"\x03").unwrap();
    child.stdin.as_mut().unwrap().flush().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    drop(child.stdin.take());
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(5),
        "run did not return the child's status: {rest}"
    );
    let n = std::fs::read_to_string(&count).unwrap().lines().count();
    assert!(n >= 1, "the child never got SIGINT");
}

/// `authsome` with `args` against the lab's home, stdout piped (for tests
/// that signal the running process).
fn spawn(lab: &Lab, args: &[&str], env: &[(&str, &str)]) -> std::process::Child {
    std::process::Command::new(crate::common::bin())
        .args(args)
        .env("AUTHSOME_HOME", &lab.home.home)
        .env("AUTHSOME_PORT", "0")
        .env("AUTHSOME_KEYRING", "off")
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_self_signed_ca_certificate_upstream_is_a_tls_failure_in_words() {
    // `openssl req -x509` makes a CA certificate (CA:TRUE): the usual way to
    // "make a certificate", and not one a server may present (issue #12).
    let lab = Lab::bare();
    let dir = lab.home.dir.path();
    let (cert, key) = (dir.join("self.pem"), dir.join("self.key"));
    let st = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ])
        .args(["-days", "2", "-subj", "/CN=selfsigned.test"])
        .args(["-addext", "subjectAltName=DNS:selfsigned.test", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = format!(
        "import ssl,http.server\ns=http.server.HTTPServer(('127.0.0.1',{port}),http.server.SimpleHTTPRequestHandler)\nc=ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\nc.load_cert_chain('{}','{}')\ns.socket=c.wrap_socket(s.socket,server_side=True)\ns.serve_forever()\n",
        cert.display(),
        key.display()
    );
    let mut py = std::process::Command::new("python3")
        .args(["-c", &server])
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let cmd = |args: &[&str]| {
        lab.home
            .cmd(args)
            .env("AUTHSOME_RESOLVE", "selfsigned.test=127.0.0.1")
            .env("AUTHSOME_UPSTREAM_CA_FILE", cert.to_str().unwrap())
            .env("AUTHSOME_PROXY_PORT", "0")
    };
    let f = dir.join("selfie.json");
    std::fs::write(
        &f,
        format!(
            r#"{{"name":"selfie","auth_type":"api_key","flow":"api_key","api_url":["selfsigned.test:{port}"],"api_key":{{"header_name":"Authorization","header_prefix":"Bearer"}}}}"#
        ),
    )
    .unwrap();
    cmd(&["provider", "register", f.to_str().unwrap()])
        .run()
        .success();
    cmd(&["login", "selfie", "--with-api-key"])
        .stdin("AKCANARY_selfie_0123456789")
        .run()
        .success();
    let out = cmd(&[
        "run",
        "--",
        "sh",
        "-c",
        &format!("curl -sS https://selfsigned.test:{port}/x"),
    ])
    .run();
    py.kill().ok();
    py.wait().ok();
    assert!(
        out.stdout
            .contains("\"error\":\"authsome_upstream_tls_failed\""),
        "{out:?}"
    );
    assert!(out.stdout.contains("CA:TRUE"), "{}", out.stdout);
    assert!(
        out.stdout.contains("CA:FALSE"),
        "the hint names the fix: {}",
        out.stdout
    );
    assert!(
        !out.stdout.contains("Other("),
        "no Rust debug text: {}",
        out.stdout
    );
}

#[test]
fn run_shows_the_proxys_refusals_on_its_stderr() {
    // curl says only "CONNECT tunnel failed, response 403"; `run` says why
    // (issue #12), a few lines at a time, and `--quiet` silences it.
    let lab = Lab::new();
    let out = lab
        .run_sh_with(
            &["--deny-unknown"],
            "curl -sS -o /dev/null https://evil.test:$UP/x 2>/dev/null; echo done",
        )
        .success();
    assert_eq!(out.stdout.trim(), "done");
    assert!(
        out.stderr
            .contains("authsome: refused evil.test (authsome_host_denied)"),
        "{}",
        out.stderr
    );
    // A flood is summarised, not printed line by line.
    let out = lab
        .run_sh_with(
            &["--deny-unknown"],
            "for i in $(seq 1 20); do curl -sS -o /dev/null https://evil.test:$UP/x 2>/dev/null; done; echo done",
        )
        .success();
    let lines = out.stderr.matches("authsome: refused").count();
    assert!((1..=12).contains(&lines), "{}", out.stderr);
    assert!(out.stderr.contains("more refusals"), "{}", out.stderr);
    let quiet = lab
        .cmd([
            "--quiet",
            "run",
            "--deny-unknown",
            "--",
            "sh",
            "-c",
            "curl -sS -o /dev/null https://evil.test:443/x 2>/dev/null; true",
        ])
        .run()
        .success();
    assert!(!quiet.stderr.contains("refused"), "{}", quiet.stderr);
}

#[test]
fn back_to_back_requests_in_a_tunnel_share_one_upstream_connection() {
    let lab = Lab::new();
    // One curl, one tunnel, four HTTP/1.1 requests in it.
    let out = lab
        .run_sh(
            "curl -sS --http1.1 -w '%{http_code} %{num_connects}\\n' -o /dev/null \"$URL/a\" -o /dev/null \"$URL/b\" -o /dev/null \"$URL/c\" -o /dev/null \"$URL/d\"",
        )
        .success();
    assert_eq!(out.stdout, "200 1\n200 0\n200 0\n200 0\n", "one tunnel");
    let recs = lab.up.records();
    assert_eq!(recs.len(), 4, "{recs:?}");
    for r in &recs {
        assert_eq!(r.all("authorization"), vec![format!("Bearer {}", lab.key)]);
        assert_eq!(r.version, "HTTP/1.1");
        assert_eq!(
            r.all("host"),
            vec![format!("api.acme.test:{}", lab.up.port)]
        );
    }
    let conns: std::collections::BTreeSet<u64> = recs.iter().map(|r| r.conn).collect();
    assert_eq!(conns.len(), 1, "one upstream connection: {recs:?}");
}

/// An HTTPS upstream on loopback that answers one request per connection
/// and then closes it without saying so beforehand (no `Connection:
/// close`), the way servers with a short keep-alive limit do; it accepts at
/// most `limit` connections, then stops. The connections it accepted.
fn one_answer_upstream(limit: usize) -> (u16, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = std::sync::Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).unwrap();
            let acceptor = tokio_rustls::TlsAcceptor::from(crate::common::upstream::tls_config());
            let mut served = tokio::task::JoinSet::new();
            for _ in 0..limit {
                let Ok((tcp, _)) = l.accept().await else {
                    break;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                served.spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut head = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => head.extend_from_slice(&buf[..n]),
                        }
                    }
                    let _ = tls
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                        .await;
                    let _ = tls.shutdown().await;
                });
            }
            while served.join_next().await.is_some() {}
        });
    });
    (port, accepted)
}

#[test]
fn an_upstream_that_closes_kept_connections_still_gets_every_request() {
    let lab = Lab::bare();
    let (port, accepted) = one_answer_upstream(16);
    lab.provider(
        "flaky",
        &format!("upstream.test:{port}"),
        r#""api_key":{"header_name":"x-api-key"}"#,
    );
    lab.cmd(["login", "flaky", "--with-api-key"])
        .stdin(&lab.key)
        .run()
        .success();
    // Six requests in one tunnel: each finds the connection the previous
    // one used closed (or closing) and goes out on a new one.
    let urls: Vec<String> = (1..=6)
        .map(|i| format!("https://upstream.test:{port}/r{i}"))
        .collect();
    let out = lab
        .run_sh(&format!(
            "curl -sS --http1.1 -w ' %{{http_code}}\\n' {}",
            urls.join(" ")
        ))
        .success();
    assert_eq!(out.stdout, "ok 200\n".repeat(6), "{}", out.stderr);
    assert_eq!(accepted.load(std::sync::atomic::Ordering::SeqCst), 6);
}
