//! `authsome log`: the audit trail of every kind of change, without secrets.

use crate::common::TestHome;

#[test]
fn audit_log_records_each_kind_of_event_and_no_secret() {
    let h = TestHome::new();
    let secret = crate::common::canary("AKCANARY_");
    h.login("ahrefs", &secret);
    h.cmd(["login", "openai", "--with-api-key"])
        .stdin("not-an-openai-key")
        .run()
        .code(4);
    h.cmd(["export", "ahrefs"]).run().success();
    h.cmd(["login", "ahrefs", "-c", "two", "--with-api-key"])
        .stdin("k2")
        .run()
        .success();
    h.cmd(["set-default", "ahrefs", "two"]).run().success();
    h.cmd(["logout", "ahrefs", "-c", "two"]).run().success();
    let f = h.dir.path().join("p.json");
    std::fs::write(&f, r#"{"name":"acme","auth_type":"api_key","flow":"api_key","api_url":["api.acme.test"],"api_key":{}}"#).unwrap();
    h.cmd(["provider", "register", f.to_str().unwrap()])
        .run()
        .success();
    h.cmd(["provider", "remove", "acme"]).run().success();
    // refused changes are on the record too (issue #11)
    h.cmd(["logout", "ahrefs", "-c", "nope"]).run().code(3);
    h.cmd(["set-default", "ahrefs", "nope"]).run().code(3);
    h.cmd(["provider", "remove", "ahrefs"]).run().code(4);

    let entries = h.cmd(["log", "--json"]).run().success().json();
    let events: Vec<(String, String)> = entries
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().to_string(),
                e["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("login", "ok"),
        ("login", "refused"),
        ("export", "ok"),
        ("set_default", "ok"),
        ("logout", "ok"),
        ("provider.register", "ok"),
        ("provider.remove", "ok"),
        ("logout", "refused"),
        ("set_default", "refused"),
        ("provider.remove", "refused"),
    ] {
        assert!(
            events.contains(&(want.0.into(), want.1.into())),
            "missing {want:?} in {events:?}"
        );
    }
    let refusal = entries
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event"] == "logout" && e["outcome"] == "refused")
        .unwrap();
    assert_eq!(refusal["detail"]["code"], "connection_not_found");
    // newest first, and the actor is this home's identity
    assert_eq!(events[0], ("provider.remove".into(), "refused".into()));
    let did = h.cmd(["whoami", "--json"]).run().success().json()["did"].clone();
    assert_eq!(entries[0]["actor"], did);
    assert!(!entries.to_string().contains(&secret));
    let human = h.cmd(["log", "-n", "3"]).run().success();
    assert_eq!(
        human.stdout.lines().count(),
        4,
        "header + 3 rows:\n{}",
        human.stdout
    );
    assert!(human.stdout.contains("provider.remove"));
    assert!(human.stdout.contains("refused"));
}
