//! What the dashboard and `GET /api/proxy/runs` show of a run's command.
//!
//! `authsome run` sends its child's argv; a command line may hold what the
//! user typed as a secret (`--api-key sk-…`, `TOKEN=… cmd`,
//! `https://user:pass@host`, `-H "Authorization: Bearer …"`). The daemon
//! keeps only the masked form ([`mask`]), never the raw one. The rule:
//!
//! - at most [`MAX_ARGS`] arguments of at most [`MAX_ARG_CHARS`] characters
//!   each are kept (the rest is cut, marked `…`; `run` sends at most 64 of
//!   512);
//! - each argument is read word by word (split on white space, so the
//!   script of `sh -c "…"` is read too), and a word becomes [`HIDDEN`] when:
//!   - it follows a flag whose name says it carries a secret (a name
//!     holding `key`, `token`, `secret`, `passw`, `auth`, `credential`,
//!     `cookie`, `session`, `bearer`, `private`, `signature`), as in
//!     `--api-key VALUE`, or follows `-u`/`--user` (the part after `:`);
//!   - it is `NAME=VALUE` or `--NAME=VALUE` with such a name (the value is
//!     hidden), also in a URL's query (`?api_key=…&token=…`);
//!   - it follows `NAME:` with such a name in the same argument (a header:
//!     `Authorization: Bearer …` hides everything after the colon);
//!   - it holds a URL with a password (`scheme://user:***@host`);
//!   - it, or a run of 20+ letters, digits, `_`, `-`, `+`, `=` inside it,
//!     looks random (letters and digits mixed) or matches a provider's
//!     `key_pattern`.
//!
//! Over-hiding is the price of never showing a typed secret: a long hex
//! commit id is hidden too.

/// What a hidden value shows as.
pub const HIDDEN: &str = "•••";
/// What stands for the arguments cut off.
pub const MORE: &str = "… (more arguments)";
/// Arguments kept.
pub const MAX_ARGS: usize = 32;
/// Characters kept of one argument.
pub const MAX_ARG_CHARS: usize = 256;

/// Names that say a value is a secret (compared lowercased, `-` and `_`
/// ignored).
const SECRET_NAMES: &[&str] = &[
    "key",
    "token",
    "secret",
    "passw",
    "pwd",
    "auth",
    "credential",
    "cookie",
    "session",
    "bearer",
    "private",
    "signature",
];

fn secret_name(name: &str) -> bool {
    let n: String = name
        .trim_start_matches('-')
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.'))
        .flat_map(char::to_lowercase)
        .collect();
    !n.is_empty() && SECRET_NAMES.iter().any(|s| n.contains(s))
}

/// The provider patterns a word is checked against (compiled once per run).
#[derive(Debug, Default)]
pub struct Patterns(Vec<regex_lite::Regex>);

impl Patterns {
    /// Compiles `patterns` (those that do not compile are skipped: the
    /// registry refuses them anyway).
    pub fn new<'a>(patterns: impl IntoIterator<Item = &'a str>) -> Patterns {
        Patterns(
            patterns
                .into_iter()
                .filter_map(|p| regex_lite::Regex::new(p).ok())
                .collect(),
        )
    }

    fn matches(&self, s: &str) -> bool {
        self.0.iter().any(|r| r.is_match(s))
    }
}

/// A run of characters that could be a token.
fn token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '=' | '/')
}

/// Looks like a random token: 20+ characters with letters and digits
/// mixed, or 32+ of mixed case.
fn random_looking(s: &str) -> bool {
    let core = s.trim_end_matches('=');
    if core.len() < 20 {
        return false;
    }
    // A path (`/usr/lib/x86_64-linux-gnu`) is not a token: its parts are.
    if core.contains('/') {
        return core.split('/').any(random_looking);
    }
    let digits = core.chars().filter(char::is_ascii_digit).count();
    let letters = core.chars().filter(char::is_ascii_alphabetic).count();
    let upper = core.chars().filter(char::is_ascii_uppercase).count();
    (digits >= 2 && letters >= 4) || (core.len() >= 32 && upper >= 2 && upper < letters)
}

/// A word that is a secret by its shape.
fn secret_shape(word: &str, patterns: &Patterns) -> bool {
    if patterns.matches(word) {
        return true;
    }
    word.split(|c: char| !token_char(c))
        .any(|run| random_looking(run) || (run.len() >= 8 && patterns.matches(run)))
}

/// Hides the values of `name=value` pairs with a secret name, in a query
/// (`a=1&token=x`) or alone.
fn mask_pairs(word: &str, sep: char) -> Option<String> {
    let mut changed = false;
    let out: Vec<String> = word
        .split(sep)
        .map(|pair| match pair.split_once('=') {
            Some((k, v)) if !v.is_empty() && secret_name(k) => {
                changed = true;
                format!("{k}={HIDDEN}")
            }
            _ => pair.to_string(),
        })
        .collect();
    changed.then(|| out.join(&sep.to_string()))
}

/// A URL's password, and its query's secret parameters.
fn mask_url(word: &str) -> Option<String> {
    let (scheme, rest) = word.split_once("://")?;
    let mut changed = false;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            changed = true;
            match userinfo.split_once(':') {
                Some((user, _)) if !secret_shape(user, &Patterns::default()) => {
                    format!("{user}:{HIDDEN}@{host}")
                }
                _ => format!("{HIDDEN}@{host}"),
            }
        }
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => match mask_pairs(query, '&') {
            Some(q) => {
                changed = true;
                format!("{path}?{q}")
            }
            None => tail.to_string(),
        },
        None => tail.to_string(),
    };
    changed.then(|| format!("{scheme}://{authority}{tail}"))
}

/// One word, given what came before it.
fn mask_word(word: &str, after_secret_flag: bool, after_user_flag: bool, p: &Patterns) -> String {
    if after_secret_flag && !word.starts_with('-') {
        return HIDDEN.into();
    }
    if after_user_flag
        && !word.starts_with('-')
        && let Some((user, _)) = word.split_once(':')
    {
        return format!("{user}:{HIDDEN}");
    }
    if let Some(m) = mask_url(word) {
        return if secret_shape(&m.replace(HIDDEN, ""), p) {
            HIDDEN.into()
        } else {
            m
        };
    }
    if let Some((k, v)) = word.split_once('=')
        && !v.is_empty()
        && secret_name(k)
    {
        return format!("{k}={HIDDEN}");
    }
    if let Some(m) = mask_pairs(word, '&') {
        return m;
    }
    if secret_shape(word, p) {
        return HIDDEN.into();
    }
    word.to_string()
}

/// Is `word` a flag that takes a secret as its next word?
fn secret_flag(word: &str) -> bool {
    word.starts_with('-') && !word.contains('=') && secret_name(word)
}

/// Cuts `s` to `max` characters, marking the cut.
fn cap(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

/// The command as it may be shown: capped, with every secret-looking value
/// replaced by [`HIDDEN`].
pub fn mask(argv: &[String], patterns: &Patterns) -> Vec<String> {
    let mut out = Vec::new();
    let mut secret_next = false;
    let mut user_next = false;
    for arg in argv.iter().take(MAX_ARGS) {
        let arg = cap(arg, MAX_ARG_CHARS);
        let mut words = Vec::new();
        // After `Authorization:` (a header) the rest of the argument hides.
        let mut rest_hidden = false;
        for word in arg.split_whitespace() {
            if rest_hidden {
                if words.last().map(String::as_str) != Some(HIDDEN) {
                    words.push(HIDDEN.to_string());
                }
                continue;
            }
            // Shell punctuation around a word stays (`--key X;` shows `--key •••;`).
            let core = word.trim_start_matches(['\'', '"', '(']);
            let lead = &word[..word.len() - core.len()];
            let core = core.trim_end_matches([';', '&', '|', ')', '\'', '"']);
            let trail = &word[lead.len() + core.len()..];
            if core.is_empty() {
                words.push(word.to_string());
                continue;
            }
            let masked = format!(
                "{lead}{}{trail}",
                mask_word(core, secret_next, user_next, patterns)
            );
            let word = core;
            secret_next = secret_flag(word);
            user_next = word == "-u" || word == "--user";
            if let Some(name) = word.strip_suffix(':')
                && secret_name(name)
            {
                rest_hidden = true;
            } else if let Some((name, _)) = word.split_once(':')
                && !word.contains("://")
                && secret_name(name)
            {
                words.push(format!("{name}:{HIDDEN}"));
                rest_hidden = true;
                continue;
            }
            words.push(masked);
        }
        // Keep an argument's own spacing when nothing in it was hidden.
        let joined = words.join(" ");
        if joined == arg.split_whitespace().collect::<Vec<_>>().join(" ") {
            out.push(arg);
        } else {
            out.push(joined);
        }
    }
    if argv.len() > MAX_ARGS {
        out.push(MORE.into());
    }
    out
}

/// One line for display: arguments with white space (or none) quoted.
pub fn display(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if a.is_empty() || (a.chars().any(char::is_whitespace) && a != MORE) {
                format!("'{}'", a.replace('\'', r"'\''"))
            } else {
                a.clone()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(args: &[&str]) -> String {
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let p = Patterns::new(["^sk-ant-[A-Za-z0-9_-]+$", "^xoxb-[0-9A-Za-z-]+$"]);
        display(&mask(&argv, &p))
    }

    #[test]
    fn plain_commands_are_shown_as_typed() {
        assert_eq!(
            m(&["curl", "-sS", "https://api.acme.test/v1/models"]),
            "curl -sS https://api.acme.test/v1/models"
        );
        assert_eq!(m(&["claude", "--model", "opus"]), "claude --model opus");
        assert_eq!(m(&["sh", "-c", "echo hi  there"]), "sh -c 'echo hi  there'");
        assert_eq!(
            m(&["ls", "/usr/lib/x86_64-linux-gnu"]),
            "ls /usr/lib/x86_64-linux-gnu"
        );
        assert_eq!(m(&["git", "commit", "-m", ""]), "git commit -m ''");
    }

    #[test]
    fn values_of_secret_flags_are_hidden() {
        assert_eq!(m(&["tool", "--api-key", "abc"]), "tool --api-key •••");
        assert_eq!(m(&["tool", "--token=abc", "x"]), "tool --token=••• x");
        assert_eq!(m(&["tool", "--password", "hunter2"]), "tool --password •••");
        assert_eq!(m(&["tool", "--auth-header", "-v"]), "tool --auth-header -v");
        assert_eq!(m(&["mysql", "-u", "me", "db"]), "mysql -u me db");
        assert_eq!(m(&["curl", "-u", "me:pw", "x"]), "curl -u me:••• x");
        assert_eq!(m(&["curl", "--user", "me:pw"]), "curl --user me:•••");
    }

    #[test]
    fn environment_assignments_and_queries_are_hidden() {
        assert_eq!(
            m(&[
                "env",
                "OPENAI_API_KEY=abc",
                "GITHUB_TOKEN=x",
                "LANG=C",
                "cmd"
            ]),
            "env OPENAI_API_KEY=••• GITHUB_TOKEN=••• LANG=C cmd"
        );
        assert_eq!(
            m(&["sh", "-c", "SECRET=abc ./go --key xyz"]),
            "sh -c 'SECRET=••• ./go --key •••'"
        );
        assert_eq!(
            m(&["sh", "-c", "x --token abc; y \"--key=abc\" | z"]),
            "sh -c 'x --token •••; y \"--key=•••\" | z'"
        );
        assert_eq!(
            m(&["curl", "https://h.test/a?x=1&api_key=abc&access_token=d"]),
            "curl https://h.test/a?x=1&api_key=•••&access_token=•••"
        );
    }

    #[test]
    fn url_userinfo_and_headers_are_hidden() {
        assert_eq!(
            m(&["git", "clone", "https://me:pw@git.test/r.git"]),
            "git clone https://me:•••@git.test/r.git"
        );
        assert_eq!(
            m(&["git", "clone", "https://ghp_abc@git.test/r.git"]),
            "git clone https://•••@git.test/r.git"
        );
        assert_eq!(
            m(&["curl", "-H", "Authorization: Bearer abc", "u"]),
            "curl -H 'Authorization: •••' u"
        );
        assert_eq!(
            m(&["curl", "-H", "X-Api-Key:abc", "u"]),
            "curl -H X-Api-Key:••• u"
        );
        assert_eq!(
            m(&["curl", "-H", "Accept: text/html", "u"]),
            "curl -H 'Accept: text/html' u"
        );
    }

    #[test]
    fn random_looking_words_and_provider_keys_are_hidden() {
        assert_eq!(m(&["tool", "sk-ant-api03-Zq9xWv7Lm2Np4Rt6"]), "tool •••");
        assert_eq!(m(&["tool", "xoxb-1-a"]), "tool •••");
        assert_eq!(m(&["tool", "ghp_A1b2C3d4E5f6G7h8I9j0K1l2"]), "tool •••");
        assert_eq!(
            m(&["sh", "-c", "call ghp_A1b2C3d4E5f6G7h8I9j0K1l2 now"]),
            "sh -c 'call ••• now'"
        );
        assert_eq!(
            m(&["tool", "--x", "prefix:ghp_A1b2C3d4E5f6G7h8I9j0K1l2"]),
            "tool --x •••"
        );
        // Words are not secrets.
        assert_eq!(
            m(&["npm", "run", "build-production-bundle-for-release"]),
            "npm run build-production-bundle-for-release"
        );
    }

    #[test]
    fn long_commands_are_capped() {
        let many: Vec<String> = (0..40).map(|i| format!("a{i}")).collect();
        let out = mask(&many, &Patterns::default());
        assert_eq!(out.len(), MAX_ARGS + 1);
        assert_eq!(out[MAX_ARGS], MORE);
        let long = vec!["x".repeat(1000)];
        let out = mask(&long, &Patterns::default());
        assert_eq!(out[0].chars().count(), MAX_ARG_CHARS + 1);
        assert!(out[0].ends_with('…'));
    }
}
