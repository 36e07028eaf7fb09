//! Someone with write access to vault.db moves, truncates or flips bytes:
//! the affected records fail to open with a clear message, the others keep
//! working, nothing panics and nothing is rewritten.

use rusqlite::{Connection, params};

use crate::common::TestHome;

fn db(h: &TestHome) -> Connection {
    Connection::open(h.path("vault.db")).unwrap()
}

#[test]
fn swapped_ciphertext_fails_only_for_that_record() {
    let h = TestHome::new();
    h.login("ahrefs", "ahrefs-key");
    h.login("apollo", "apollo-key");
    {
        let c = db(&h);
        let blob: Vec<u8> = c
            .query_row(
                "SELECT api_key FROM connections WHERE provider = 'ahrefs'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        c.execute(
            "UPDATE connections SET api_key = ?1 WHERE provider = 'apollo'",
            params![blob],
        )
        .unwrap();
    }
    h.cmd(["export", "apollo"])
        .run()
        .code(5)
        .stderr_has("connection apollo/default (api_key) failed its integrity check")
        .stderr_has("authsome doctor");
    assert_eq!(
        h.cmd(["export", "ahrefs"]).run().success().stdout,
        "AHREFS_API_KEY=ahrefs-key\n"
    );
    h.cmd(["list"]).run().success().stdout_has("apollo");
    h.cmd(["doctor"])
        .run()
        .code(1)
        .stdout_has("✗ integrity")
        .stdout_has("apollo/default");
    // the damaged record can be removed and stored again
    h.cmd(["logout", "apollo"]).run().success();
    h.login("apollo", "apollo-key-2");
    h.cmd(["doctor"]).run().success();
}

#[test]
fn truncated_and_bit_flipped_rows_are_integrity_errors() {
    let h = TestHome::new();
    for p in ["ahrefs", "apollo", "beehiiv"] {
        h.login(p, &format!("{p}-key"));
    }
    {
        let c = db(&h);
        c.execute(
            "UPDATE connections SET api_key = substr(api_key, 1, 7) WHERE provider = 'ahrefs'",
            [],
        )
        .unwrap();
        let mut blob: Vec<u8> = c
            .query_row(
                "SELECT api_key FROM connections WHERE provider = 'apollo'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        let last = blob.len() - 1;
        blob[last] ^= 0x01;
        c.execute(
            "UPDATE connections SET api_key = ?1 WHERE provider = 'apollo'",
            params![blob],
        )
        .unwrap();
    }
    h.cmd(["export", "ahrefs"])
        .run()
        .code(5)
        .stderr_has("integrity check");
    h.cmd(["export", "apollo"])
        .run()
        .code(5)
        .stderr_has("integrity check");
    h.cmd(["export", "beehiiv"]).run().success();
    let d = h.cmd(["doctor", "--json"]).run().code(1).json();
    let integ = d["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "integrity")
        .unwrap()
        .clone();
    let detail = integ["detail"].as_str().unwrap();
    assert!(detail.starts_with("2 of 3 records"), "{detail}");
}

#[test]
fn damaged_key_check_record_is_corruption_not_wrong_key() {
    let h = TestHome::new();
    h.login("ahrefs", "k");
    h.stop_daemon();
    db(&h)
        .execute("UPDATE meta SET value = x'0102' WHERE name = 'kcv'", [])
        .unwrap();
    h.cmd(["list"])
        .run()
        .code(5)
        .stderr_has("key-check record failed its integrity check");
}

#[test]
fn garbage_vault_file_is_a_clear_error() {
    let h = TestHome::new();
    h.login("ahrefs", "k");
    h.stop_daemon();
    for ext in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(h.path(&format!("vault.db{ext}")));
    }
    std::fs::write(
        h.path("vault.db"),
        b"this is not a database, just some text that is long enough",
    )
    .unwrap();
    std::fs::set_permissions(
        h.path("vault.db"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let out = h.cmd(["list"]).run();
    assert_ne!(out.code, 0);
    assert!(out.stderr.starts_with("authsome: error:"), "{}", out.stderr);
    assert!(!out.stderr.contains("panicked"), "{}", out.stderr);
}

#[test]
fn vault_from_a_newer_schema_is_refused() {
    let h = TestHome::new();
    h.login("ahrefs", "k");
    h.stop_daemon();
    db(&h).pragma_update(None, "user_version", 99).unwrap();
    h.cmd(["list"]).run().code(4).stderr_has("newer authsome");
}

#[test]
fn an_offline_edit_of_a_stored_provider_definition_is_refused() {
    let h = TestHome::new();
    let f = h.dir.path().join("acme.json");
    std::fs::write(
        &f,
        r#"{"name":"acme","auth_type":"api_key","flow":"api_key","api_url":["api.acme.test"],"api_key":{"header_name":"X-Acme-Key"},"export":{"ACME_KEY":"api_key"}}"#,
    )
    .unwrap();
    h.cmd(["provider", "register", f.to_str().unwrap()])
        .run()
        .success();
    h.login("acme", "AKCANARY_acme");
    h.stop_daemon();
    {
        let c = db(&h);
        let def: String = c
            .query_row(
                "SELECT definition FROM custom_providers WHERE name = 'acme'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(def.contains("api.acme.test"), "{def}");
        c.execute(
            "UPDATE custom_providers SET definition = ?1 WHERE name = 'acme'",
            params![def.replace("api.acme.test", "evil.test")],
        )
        .unwrap();
    }
    h.cmd(["export", "acme"])
        .run()
        .code(5)
        .stderr_has("the stored definition of provider `acme` failed its integrity check");
    let show = h.cmd(["provider", "show", "acme"]).run().code(5);
    assert!(!show.stdout.contains("evil.test"), "{}", show.stdout);
    // Dropping the tag is no better than forging one.
    h.stop_daemon();
    db(&h)
        .execute("UPDATE custom_providers SET tag = NULL", [])
        .unwrap();
    h.cmd(["export", "acme"]).run().code(5);
    // Nor is deleting whatever says old rows were tagged already: untagged
    // rows are tagged only in the open that adds the tag column.
    h.stop_daemon();
    db(&h)
        .execute("DELETE FROM meta WHERE name LIKE '%tag%'", [])
        .unwrap();
    h.cmd(["export", "acme"]).run().code(5);
    // Winding the schema version back to run that migration again fails
    // (the column exists), and nothing is exported.
    h.stop_daemon();
    let version: u32 = db(&h)
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert!(version >= 7);
    db(&h).pragma_update(None, "user_version", 6).unwrap();
    let out = h.cmd(["export", "acme"]).run();
    assert_ne!(out.code, 0, "{out:?}");
    assert!(!out.stdout.contains("AKCANARY_acme"), "{out:?}");
    db(&h).pragma_update(None, "user_version", version).unwrap();
    // Registering the file again restores it.
    h.cmd(["provider", "register", f.to_str().unwrap(), "--force"])
        .run()
        .success();
    h.cmd(["export", "acme"])
        .run()
        .success()
        .stdout_has("ACME_KEY=AKCANARY_acme");
}
