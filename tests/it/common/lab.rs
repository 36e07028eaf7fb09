//! The loopback proxy lab: a home whose daemon reaches a local HTTPS
//! upstream through the resolver override, with a provider `acme` on
//! `api.acme.test:<port>` logged in with a canary key.

use super::upstream::Upstream;
use super::{Cmd, Out, TestHome, canary};

pub const CA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/certs/test-ca.pem");

pub struct Lab {
    pub home: TestHome,
    /// Shared by the homes of several daemons (`Arc`).
    pub up: std::sync::Arc<Upstream>,
    /// The API key stored for `acme`.
    pub key: String,
}

impl Lab {
    /// Upstream + home + `acme` provider logged in.
    pub fn new() -> Lab {
        let lab = Lab::bare();
        lab.provider(
            "acme",
            &format!("api.acme.test:{}", lab.up.port),
            r#""api_key":{"header_name":"Authorization","header_prefix":"Bearer"},"export":{"ACME_API_KEY":"api_key"}"#,
        );
        let key = lab.key.clone();
        lab.cmd(["login", "acme", "--with-api-key"])
            .stdin(&key)
            .run()
            .success();
        lab
    }

    /// Upstream + home, no provider.
    pub fn bare() -> Lab {
        Lab {
            home: TestHome::new(),
            up: std::sync::Arc::new(Upstream::start()),
            key: canary("AKCANARY_"),
        }
    }

    /// Registers a custom provider with one host rule and extra JSON fields.
    pub fn provider(&self, name: &str, rule: &str, extra: &str) {
        self.provider_json(
            name,
            &format!(
                r#"{{"name":"{name}","auth_type":"api_key","flow":"api_key","api_url":["{rule}"],{extra}}}"#
            ),
        );
    }

    /// Registers a custom provider from a whole definition.
    pub fn provider_json(&self, name: &str, json: &str) {
        let f = self.home.dir.path().join(format!("{name}.json"));
        std::fs::write(&f, json).unwrap();
        self.cmd(["provider", "register", f.to_str().unwrap()])
            .run()
            .success();
    }

    /// `authsome ARGS` with the lab's resolver override and upstream CA.
    pub fn cmd<I, S>(&self, args: I) -> Cmd
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut c = self.home.cmd(args);
        for (k, v) in Lab::env() {
            c = c.env(k, v);
        }
        c
    }

    /// The variables `cmd` adds to the home's (for a program that runs
    /// `authsome` itself, such as the browser test's script).
    pub fn env() -> [(&'static str, &'static str); 4] {
        [
            (
                "AUTHSOME_RESOLVE",
                "api.acme.test=127.0.0.1,upstream.test=127.0.0.1,evil.test=127.0.0.1,x.acme.test=127.0.0.1,auth.acme.test=127.0.0.1",
            ),
            ("AUTHSOME_UPSTREAM_CA_FILE", CA),
            ("AUTHSOME_PROXY_PORT", "0"),
            // Every `run` in the suite is confined, or fails loudly (exit 8)
            // on a kernel that cannot: the client matrix proves the sandbox.
            ("AUTHSOME_SANDBOX", "require"),
        ]
    }

    /// `authsome run -- sh -c SCRIPT` (the script sees `$URL`, `$UP`, `$BIN`).
    pub fn run_sh(&self, script: &str) -> Out {
        self.run_sh_with(&[], script)
    }

    /// Like `run_sh`, with `authsome run` flags before `--`.
    pub fn run_sh_with(&self, flags: &[&str], script: &str) -> Out {
        let mut args = vec!["run".to_string()];
        args.extend(flags.iter().map(|s| s.to_string()));
        args.extend(["--", "sh", "-c", script].map(String::from));
        self.cmd(args)
            .env("URL", &self.url(""))
            .env("UP", &self.up.port.to_string())
            .env("HTTP_UP", &self.up.http_port.to_string())
            .env("BIN", super::bin())
            .env(
                "CLIENTS",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients"),
            )
            .run()
    }

    /// `https://api.acme.test:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("https://api.acme.test:{}{path}", self.up.port)
    }

    /// The Authorization values of every recorded request.
    pub fn auths(&self) -> Vec<Vec<String>> {
        self.up
            .records()
            .iter()
            .map(|r| r.all("authorization"))
            .collect()
    }
}
