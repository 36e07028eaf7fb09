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
//!   script of `sh -c "…"` is read too). A *secret name* is one holding
//!   `key`, `token`, `secret`, `passw`, `pwd`, `auth`, `credential`,
//!   `cookie`, `session`, `bearer`, `private` or `signature`, or with a part
//!   (split at `-`, `_`, `.` and camelCase) that is `pass`, `pw`, `cred`,
//!   `sig`, `pin`, `otp` or `totp` (so `DB_PASS` is one, `compass` is not).
//!   A word becomes [`HIDDEN`] (or its value part does) when:
//!   - it follows a flag with a secret name (`--api-key VALUE`), or a bare
//!     word ending in one (`aws configure set aws_secret_access_key VALUE`,
//!     `Bearer VALUE`); when such a flag (or one of the next two rules')
//!     ends its argument, the whole next argument is its value;
//!   - it follows `-p`, `-P`, `-a` or `-k` (`sshpass -p …`, `redis-cli -a
//!     …`), or is attached to one (`-pVALUE`), unless it is a number
//!     (`-p 8080`, `-p 8080:80`), a URL or a path starting with `/`, `./`,
//!     `../` or `~/`; a bundle of up to three letters (`-al`, `-avz`) and a
//!     few known words (`-print`, `-path`, `-pthread`…) stay flags;
//!   - it is the part after `:` of `USER:PASSWORD` after `-u`, `-U`,
//!     `--user`, `--proxy-user`, or in `--user=…` or `-uUSER:…`;
//!   - it is the value of `NAME=VALUE` with a secret name anywhere in the
//!     word (`--token=…`, `DB_PASS=…`, `--from-literal=password=…`: the rest
//!     of the word hides), of a URL's query or fragment parameter
//!     (`?api_key=…&sig=…`), or of `"NAME":VALUE` in JSON (each pair);
//!   - it follows `NAME:` with a secret name (a header, or `pass:…`, also
//!     as `--header=Authorization: …`): the
//!     rest of the argument hides, and when the argument ends there (or
//!     with an auth scheme like `Bearer`), the following arguments hide too
//!     up to one that starts with `-` or holds a URL;
//!   - it holds a URL with a password (`scheme://user:***@host`);
//!   - what is left of it looks random or matches a provider's
//!     `key_pattern`: a run of 20+ letters, digits, `_`, `-`, `+`, `/`
//!     (`%XX` counts as one) with letters and digits mixed, or 32+ of mixed
//!     case. A run is judged as a path, part by part between the `/`, only
//!     when it starts with `/` (as after `/`, `./`, `../`, `~/`) or has no
//!     capital letter; otherwise it is judged whole (base64 holds `/`).
//!
//! It over-hides on purpose (a long hex commit id, `mkdir -p build`'s
//! directory). It is a filter for what people usually type, not a proof: a
//! secret of plain words (`CorrectHorseBatteryStaple`) passed where no name
//! says what it is still shows, so pass secrets through the environment or
//! the vault, not on the command line.

/// What a hidden value shows as.
pub const HIDDEN: &str = "•••";
/// What stands for the arguments cut off.
pub const MORE: &str = "… (more arguments)";
/// Arguments kept.
pub const MAX_ARGS: usize = 32;
/// Characters kept of one argument.
pub const MAX_ARG_CHARS: usize = 256;

/// Names that say a value is a secret when they appear anywhere in a name
/// (compared lowercased, `-`, `_` and `.` ignored).
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
    "passphrase",
];

/// Short names that say so only as a whole part of a name (`DB_PASS`,
/// `--pin`, `sig=`), so that `compass`, `pinned` or `signal` do not.
const SECRET_PARTS: &[&str] = &["pass", "pw", "cred", "sig", "pin", "otp", "totp"];

/// Endings of a bare word that names a secret (`aws_secret_access_key`):
/// the word after it is its value.
const SECRET_NOUNS: &[&str] = &[
    "key",
    "token",
    "secret",
    "password",
    "passwd",
    "passphrase",
    "credential",
    "credentials",
    "cookie",
    "signature",
    "bearer",
];

/// The words of a name: split at anything but a letter or digit, and where
/// the case turns (`dbPass`, `APIKey`), lowercased.
fn name_parts(name: &str) -> Vec<String> {
    let chars: Vec<char> = name.chars().collect();
    let mut parts = Vec::new();
    let mut cur = String::new();
    for (i, &c) in chars.iter().enumerate() {
        if !c.is_ascii_alphanumeric() {
            if !cur.is_empty() {
                parts.push(std::mem::take(&mut cur));
            }
            continue;
        }
        let prev = i.checked_sub(1).map(|j| chars[j]);
        let next = chars.get(i + 1).copied();
        let turn = c.is_ascii_uppercase()
            && prev.is_some_and(|p| {
                p.is_ascii_lowercase()
                    || p.is_ascii_digit()
                    || (p.is_ascii_uppercase() && next.is_some_and(|n| n.is_ascii_lowercase()))
            });
        if turn && !cur.is_empty() {
            parts.push(std::mem::take(&mut cur));
        }
        cur.push(c.to_ascii_lowercase());
    }
    if !cur.is_empty() {
        parts.push(cur);
    }
    parts
}

fn squashed(name: &str) -> String {
    name.trim_start_matches('-')
        .chars()
        .filter(|c| !matches!(c, '-' | '_' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn secret_part(part: &str) -> bool {
    SECRET_PARTS
        .iter()
        .any(|s| part == *s || part.strip_suffix('s') == Some(*s))
}

/// `author`, `authority` (`git log --author`): not `auth`, unless
/// `authorization` or another `auth` is there too.
fn author(n: &str) -> bool {
    n.matches("auth").count() == n.matches("author").count() && !n.contains("authoriz")
}

fn secret_name(name: &str) -> bool {
    let n = squashed(name);
    !n.is_empty()
        && (SECRET_NAMES
            .iter()
            .any(|s| n.contains(s) && !(*s == "auth" && author(&n)))
            || name_parts(name).iter().any(|p| secret_part(p)))
}

/// A bare word (not a flag) that names a secret, so the next word is its
/// value: `aws_secret_access_key`, `password`, `DB_PASS`.
fn secret_noun(word: &str) -> bool {
    if word.starts_with('-')
        || word.is_empty()
        || !word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    {
        return false;
    }
    let n = squashed(word);
    SECRET_NOUNS.iter().any(|s| n.ends_with(s))
        || name_parts(word).last().is_some_and(|p| secret_part(p))
}

/// The characters of a name before `=` or `:`.
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
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
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+' | '/')
}

/// Looks like a random token: 20+ characters with letters and digits
/// mixed, or 32+ of mixed case.
fn random_looking(s: &str) -> bool {
    if s.len() < 20 {
        return false;
    }
    // A path (`/usr/lib/x86_64-linux-gnu`, `src/daemon/mod`) is not a token:
    // its parts are. Base64 holds `/` too, and capitals: judged whole.
    if s.contains('/') && (s.starts_with('/') || !s.chars().any(|c| c.is_ascii_uppercase())) {
        return s.split('/').any(random_looking);
    }
    let digits = s.chars().filter(char::is_ascii_digit).count();
    let letters = s.chars().filter(char::is_ascii_alphabetic).count();
    let upper = s.chars().filter(char::is_ascii_uppercase).count();
    (digits >= 2 && letters >= 4) || (s.len() >= 32 && upper >= 2 && upper < letters)
}

/// `%XX` as one token character (`+`), so an encoded secret stays one run.
fn decode_percent(word: &str) -> String {
    let b = word.as_bytes();
    let mut out = String::with_capacity(word.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            out.push('+');
            i += 3;
        } else {
            let c = word[i..].chars().next().unwrap_or(' ');
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// A word that is a secret by its shape.
fn secret_shape(word: &str, patterns: &Patterns) -> bool {
    if patterns.matches(word) {
        return true;
    }
    decode_percent(word)
        .split(|c: char| !token_char(c))
        .any(|run| random_looking(run) || (run.len() >= 8 && patterns.matches(run)))
}

/// The value of the first `NAME=` with a secret name hides, with the rest of
/// the word (`--token=…`, `DB_PASS=…`, `--from-literal=password=…`).
fn mask_assignment(word: &str) -> Option<String> {
    word.match_indices('=')
        .map(|(i, _)| i)
        .find(|&i| i + 1 < word.len() && secret_name(trailing_name(&word[..i])))
        .map(|i| format!("{}={HIDDEN}", &word[..i]))
}

/// Hides the values of the `name=value` pairs with a secret name of a
/// query or a fragment (`a=1&token=x`).
fn mask_pairs(query: &str) -> Option<String> {
    let mut changed = false;
    let out: String = query
        .split_inclusive(['&', ';'])
        .map(|piece| {
            let pair = piece.trim_end_matches(['&', ';']);
            let sep = &piece[pair.len()..];
            match pair.split_once('=') {
                Some((k, v)) if !v.is_empty() && secret_name(k) => {
                    changed = true;
                    format!("{k}={HIDDEN}{sep}")
                }
                _ => piece.to_string(),
            }
        })
        .collect();
    changed.then_some(out)
}

/// A URL's password and its query's and fragment's secret parameters;
/// `None` when `word` is not a URL.
fn mask_url(word: &str, p: &Patterns) -> Option<String> {
    let (scheme, rest) = word.split_once("://")?;
    if scheme.is_empty()
        || !scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    {
        return None;
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) if !secret_shape(user, p) => format!("{user}:{HIDDEN}@{host}"),
            _ => format!("{HIDDEN}@{host}"),
        },
        None => authority.to_string(),
    };
    let (tail, fragment) = match tail.split_once('#') {
        Some((t, f)) => (t, Some(f)),
        None => (tail, None),
    };
    let (path, query) = match tail.split_once('?') {
        Some((a, q)) => (a, Some(q)),
        None => (tail, None),
    };
    let query = query.map(|q| mask_pairs(q).unwrap_or_else(|| q.to_string()));
    let fragment = fragment.map(|f| mask_pairs(f).unwrap_or_else(|| f.to_string()));
    // What shows must not look like a secret: the host, the path (judged
    // as a path, part by part), the parameters.
    let shown = |s: &str| secret_shape(&s.replace(HIDDEN, " "), p);
    if shown(&authority)
        || shown(path)
        || query.as_deref().is_some_and(shown)
        || fragment.as_deref().is_some_and(shown)
    {
        return Some(HIDDEN.into());
    }
    let mut out = format!("{scheme}://{authority}{path}");
    if let Some(q) = query {
        out.push('?');
        out.push_str(&q);
    }
    if let Some(f) = fragment {
        out.push('#');
        out.push_str(&f);
    }
    Some(out)
}

/// Hides the value of every `"NAME":VALUE` with a secret name (JSON, or a
/// Python dict with `'`), keeping the quotes.
fn mask_json(word: &str) -> Option<String> {
    let b = word.as_bytes();
    let mut out = String::new();
    let mut copied = 0;
    let mut i = 0;
    let mut changed = false;
    while i < b.len() {
        let q = b[i];
        // The end of a quoted name: `"` then `:`.
        if (q == b'"' || q == b'\'') && b.get(i + 1) == Some(&b':') {
            let start = word[..i].rfind(q as char).map_or(0, |j| j + 1);
            if secret_name(&word[start..i]) {
                let vstart = i + 2;
                let vend = match b.get(vstart) {
                    Some(&vq) if vq == b'"' || vq == b'\'' => {
                        let mut j = vstart + 1;
                        while j < b.len() && b[j] != vq {
                            j += if b[j] == b'\\' { 2 } else { 1 };
                        }
                        j.min(b.len())
                    }
                    Some(_) => word[vstart..]
                        .find([',', '}', ']'])
                        .map_or(b.len(), |j| vstart + j),
                    None => vstart,
                };
                let (vs, ve) = match b.get(vstart) {
                    Some(&vq) if vq == b'"' || vq == b'\'' => (vstart + 1, vend),
                    _ => (vstart, vend),
                };
                if ve > vs {
                    out.push_str(&word[copied..vs]);
                    out.push_str(HIDDEN);
                    copied = ve;
                    changed = true;
                }
                i = vend.max(i + 1);
                continue;
            }
        }
        i += 1;
    }
    if !changed {
        return None;
    }
    out.push_str(&word[copied..]);
    Some(out)
}

/// A number, as a port or a mapping (`8080`, `8080:80`, `127.0.0.1:80:80/tcp`).
fn numeric(v: &str) -> bool {
    let v = v
        .strip_suffix("/tcp")
        .or_else(|| v.strip_suffix("/udp"))
        .unwrap_or(v);
    !v.is_empty()
        && v.chars().any(|c| c.is_ascii_digit())
        && v.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '.' | ':' | ',' | '-'))
}

/// The value of `-p`, `-P`, `-a`, `-k` may show: a number, a URL, a path.
fn plain_short_value(v: &str) -> bool {
    numeric(v) || v.contains("://") || ["/", "./", "../", "~/"].iter().any(|p| v.starts_with(p))
}

/// Short flags that often take a password (`mysql -p`, `sshpass -p`,
/// `redis-cli -a`, `zip -P`, `openssl -k`).
const SHORT_SECRET_FLAGS: &[&str] = &["-p", "-P", "-a", "-k"];

/// Single-dash words that start like one of them and are flags, not a value
/// attached to one.
const SHORT_FLAG_WORDS: &[&str] = &[
    "-print",
    "-print0",
    "-printf",
    "-prune",
    "-perm",
    "-path",
    "-pthread",
    "-pedantic",
    "-pipe",
    "-pie",
    "-passin",
    "-passout",
    "-atime",
    "-amin",
    "-anewer",
    "-and",
    "-ansi",
    "-arch",
];

/// `-pVALUE`: the flag and its attached value, when that value must hide.
fn attached_short_secret(word: &str) -> Option<&str> {
    if word.starts_with("--") || SHORT_FLAG_WORDS.contains(&word) {
        return None;
    }
    let flag = SHORT_SECRET_FLAGS
        .iter()
        .find(|f| word.len() > 2 && word.starts_with(*f))?;
    let value = &word[2..];
    let bundle = value.len() <= 3 && value.chars().all(|c| c.is_ascii_alphabetic());
    (!bundle && !plain_short_value(value)).then_some(flag)
}

/// `USER:PASSWORD` with the password hidden.
fn user_password(v: &str) -> Option<String> {
    let (user, _) = v.split_once(':')?;
    Some(format!("{user}:{HIDDEN}"))
}

/// What the word before says of this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Plain,
    /// The value of a secret flag or name.
    Secret,
    /// After `-u`: `USER:PASSWORD`.
    User,
    /// After `-p`, `-P`, `-a`, `-k`.
    Short,
}

/// One word, given what came before it.
fn mask_word(word: &str, next: Next, p: &Patterns) -> String {
    let flag = word.starts_with('-');
    match next {
        Next::Secret if !flag => return HIDDEN.into(),
        Next::User if !flag => {
            if let Some(m) = user_password(word) {
                return m;
            }
        }
        Next::Short if !flag && !plain_short_value(word) => return HIDDEN.into(),
        _ => {}
    }
    for f in ["--user=", "--proxy-user="] {
        if let Some(v) = word.strip_prefix(f)
            && let Some(m) = user_password(v)
        {
            return format!("{f}{m}");
        }
    }
    for f in ["-u", "-U"] {
        if let Some(v) = word.strip_prefix(f)
            && !v.starts_with('-')
            && let Some(m) = user_password(v)
        {
            return format!("{f}{m}");
        }
    }
    // A URL's parts were judged on their own (its path as a path).
    if let Some(m) = mask_url(word, p) {
        return m;
    }
    let masked = match mask_json(word).or_else(|| mask_assignment(word)) {
        Some(m) => m,
        None => match attached_short_secret(word) {
            Some(f) if !secret_flag(word) => return format!("{f}{HIDDEN}"),
            _ => word.to_string(),
        },
    };
    // What still shows must not look like a secret.
    if secret_shape(&masked.replace(HIDDEN, " "), p) {
        return HIDDEN.into();
    }
    masked
}

/// Is `word` a flag that takes a secret as its next word?
fn secret_flag(word: &str) -> bool {
    word.starts_with('-') && !word.contains('=') && secret_name(word)
}

/// Auth schemes: after `Authorization: Bearer` the token is still to come.
fn auth_scheme(word: &str) -> bool {
    ["bearer", "basic", "token", "bot", "digest", "negotiate"]
        .contains(&word.to_ascii_lowercase().as_str())
}

/// `NAME:` at the end of a word, `NAME` a secret name (`Authorization:`,
/// `"password":`).
fn ends_with_secret_name(word: &str) -> bool {
    word.strip_suffix(':')
        .is_some_and(|n| secret_name(trailing_name(n.trim_end_matches(['"', '\'']))))
}

/// The name at the end of `s` (`--header=Authorization` → `Authorization`).
fn trailing_name(s: &str) -> &str {
    let start = s
        .char_indices()
        .rev()
        .take_while(|(_, c)| name_char(*c))
        .last()
        .map_or(s.len(), |(i, _)| i);
    &s[start..]
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
    let mut next = Next::Plain;
    // After an argument that ended with `Authorization:` (or `… Bearer`),
    // the arguments up to the next flag or URL are the header's value.
    let mut carried = false;
    for arg in argv.iter().take(MAX_ARGS) {
        let arg = cap(arg, MAX_ARG_CHARS);
        if carried {
            let first = arg.split_whitespace().next().unwrap_or("");
            if first.starts_with('-') || arg.contains("://") {
                carried = false;
            } else {
                out.push(HIDDEN.to_string());
                continue;
            }
        }
        // The value of a flag that ended the previous argument is this whole
        // argument (`--cookie "sid=a; uid=b"`, `-p 'two words'`).
        if !arg.starts_with('-') {
            let whole = match next {
                Next::Secret => Some(HIDDEN.to_string()),
                Next::Short if !plain_short_value(arg.trim()) => Some(HIDDEN.to_string()),
                Next::User => user_password(&arg),
                _ => None,
            };
            if let Some(w) = whole {
                out.push(w);
                next = Next::Plain;
                continue;
            }
        }
        let mut words = Vec::new();
        // After `Authorization:` (a header) the rest of the argument hides;
        // what was hidden of it so far.
        let mut rest_hidden: Option<Vec<String>> = None;
        for word in arg.split_whitespace() {
            if let Some(hidden) = rest_hidden.as_mut() {
                hidden.push(word.to_string());
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
                // `;`, `&&`, `|`: a new command starts.
                next = Next::Plain;
                words.push(word.to_string());
                continue;
            }
            let masked = format!("{lead}{}{trail}", mask_word(core, next, patterns));
            let value_of_secret = next == Next::Secret && !core.starts_with('-');
            let word = core;
            next = if secret_flag(word) || (next != Next::Secret && secret_noun(word)) {
                Next::Secret
            } else if matches!(word, "-u" | "-U" | "--user" | "--proxy-user") {
                Next::User
            } else if SHORT_SECRET_FLAGS.contains(&word) {
                Next::Short
            } else {
                Next::Plain
            };
            if trail.contains([';', '&', '|']) {
                next = Next::Plain;
            }
            if value_of_secret {
                // Already hidden whole (`-pass pass:…`).
            } else if ends_with_secret_name(word) {
                rest_hidden = Some(Vec::new());
            } else if let Some((name, value)) = word.split_once(':')
                && !word.contains("://")
                && !value.is_empty()
                && secret_name(trailing_name(name))
            {
                words.push(format!("{lead}{name}:{HIDDEN}"));
                rest_hidden = Some(vec![value.to_string()]);
                next = Next::Plain;
                continue;
            }
            words.push(masked);
        }
        if let Some(hidden) = &rest_hidden {
            carried = match hidden.as_slice() {
                [] => true,
                [one] => one.is_empty() || auth_scheme(one.trim_matches(['\'', '"'])),
                _ => false,
            };
            next = Next::Plain;
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
    fn base64_with_slashes_is_judged_whole() {
        assert_eq!(
            m(&[
                "aws",
                "configure",
                "set",
                "aws_secret_access_key",
                "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
            ]),
            "aws configure set aws_secret_access_key •••"
        );
        // Without the name before it, by its shape alone.
        assert_eq!(
            m(&["tool", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"]),
            "tool •••"
        );
        assert_eq!(
            m(&["tool", "Ab/cdEfGh/ijKlMnOp/qRsTuVwXyZ/AbCd"]),
            "tool •••"
        );
        // Paths still show.
        assert_eq!(
            m(&["ls", "/usr/lib/x86_64-linux-gnu", "./target/x86_64/release"]),
            "ls /usr/lib/x86_64-linux-gnu ./target/x86_64/release"
        );
        assert_eq!(
            m(&[
                "cat",
                "src/daemon/routes/ui/pages.rs",
                "~/projects/x86_64-linux/a"
            ]),
            "cat src/daemon/routes/ui/pages.rs ~/projects/x86_64-linux/a"
        );
        assert_eq!(
            m(&["cp", "--target-directory=/opt/app2024/releases_2024_11"]),
            "cp --target-directory=/opt/app2024/releases_2024_11"
        );
    }

    #[test]
    fn random_base64_secrets_are_hidden_unless_they_start_with_a_slash() {
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rand = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut tried, mut slash_first) = (0, 0);
        for len in [40, 44] {
            for _ in 0..2000 {
                let s: String = (0..len)
                    .map(|_| B64[(rand() % 64) as usize] as char)
                    .collect();
                // A word starting with `/` is read as a path (its parts are
                // judged one by one): the known gap.
                if s.starts_with('/') {
                    slash_first += 1;
                    continue;
                }
                tried += 1;
                assert_eq!(m(&["tool", &s]), "tool •••", "{s}");
            }
        }
        assert!(tried > 3800 && slash_first > 0, "{tried} {slash_first}");
    }

    #[test]
    fn user_passwords_in_every_form_are_hidden() {
        assert_eq!(m(&["curl", "--user=me:hunter2"]), "curl --user=me:•••");
        assert_eq!(m(&["curl", "-ume:hunter2"]), "curl -ume:•••");
        assert_eq!(m(&["curl", "-U", "me:hunter2"]), "curl -U me:•••");
        assert_eq!(
            m(&["curl", "--proxy-user=me:hunter2"]),
            "curl --proxy-user=me:•••"
        );
        assert_eq!(m(&["mysql", "-uroot", "db"]), "mysql -uroot db");
    }

    #[test]
    fn compact_json_hides_every_secret_pair() {
        assert_eq!(
            m(&["curl", "-d", r#"{"user":"me","password":"hunter2"}"#]),
            r#"curl -d {"user":"me","password":"•••"}"#
        );
        assert_eq!(
            m(&[
                "curl",
                "-d",
                r#"{"password":"a","x":1,"api_key":"b","pin":1234,"token":"c\"d"}"#
            ]),
            r#"curl -d {"password":"•••","x":1,"api_key":"•••","pin":•••,"token":"•••"}"#
        );
        assert_eq!(
            m(&["sh", "-c", r#"curl -d '{"otp":"123456"}' u"#]),
            r#"sh -c 'curl -d '\''{"otp":"•••"}'\'' u'"#
        );
        // With spaces, the rest of the argument hides.
        assert_eq!(
            m(&["curl", "-d", r#"{"user": "me", "password": "hunter2"}"#]),
            r#"curl -d '{"user": "me", "password": •••'"#
        );
        assert_eq!(
            m(&["curl", "-d", r#"{"user":"me","name":"x"}"#]),
            r#"curl -d {"user":"me","name":"x"}"#
        );
    }

    #[test]
    fn a_header_split_across_arguments_stays_hidden() {
        assert_eq!(
            m(&[
                "curl",
                "-H",
                "Authorization:",
                "Bearer",
                "hunter2hunter2",
                "-s"
            ]),
            "curl -H Authorization: ••• ••• -s"
        );
        assert_eq!(
            m(&[
                "curl",
                "-H",
                "Authorization: Bearer",
                "tok",
                "https://api.acme.test/v1"
            ]),
            "curl -H 'Authorization: •••' ••• https://api.acme.test/v1"
        );
        assert_eq!(
            m(&["curl", "-H", "Authorization:Bearer", "tok"]),
            "curl -H Authorization:••• •••"
        );
        // A complete header does not hide what follows.
        assert_eq!(
            m(&["curl", "-H", "X-Api-Key: abc", "https://api.acme.test"]),
            "curl -H 'X-Api-Key: •••' https://api.acme.test"
        );
        assert_eq!(
            m(&["curl", "-H", "X-Api-Key:abc", "list"]),
            "curl -H X-Api-Key:••• list"
        );
    }

    #[test]
    fn a_flag_ending_an_argument_hides_all_of_the_next_one() {
        assert_eq!(
            m(&["curl", "--cookie", "sid=abc; uid=xyz", "u"]),
            "curl --cookie ••• u"
        );
        assert_eq!(
            m(&["sshpass", "-p", "two words", "ssh"]),
            "sshpass -p ••• ssh"
        );
        assert_eq!(m(&["curl", "-u", "me:two words"]), "curl -u me:•••");
        assert_eq!(
            m(&["curl", "--header=Authorization: Bearer abc", "u"]),
            "curl '--header=Authorization: •••' u"
        );
        assert_eq!(
            m(&["curl", "--header=Authorization:Bearer", "abc"]),
            "curl --header=Authorization:••• •••"
        );
        assert_eq!(m(&["echo", "Bearer", "abc"]), "echo Bearer •••");
    }

    #[test]
    fn short_password_flags_hide_their_value_unless_a_number() {
        for (argv, shown) in [
            (
                &["docker", "login", "-u", "me", "-p", "hunter2"][..],
                "docker login -u me -p •••",
            ),
            (
                &["sshpass", "-p", "hunter2", "ssh", "h"],
                "sshpass -p ••• ssh h",
            ),
            (&["mysql", "-phunter2", "db"], "mysql -p••• db"),
            (&["redis-cli", "-a", "hunter2"], "redis-cli -a •••"),
            (&["http", "-a", "me:hunter2", "u"], "http -a ••• u"),
            (&["zip", "-P", "x", "a.zip"], "zip -P ••• a.zip"),
            (&["openssl", "enc", "-k", "hunter2"], "openssl enc -k •••"),
            (
                &["openssl", "enc", "-pass", "pass:hunter2"],
                "openssl enc -pass •••",
            ),
            (
                &["openssl", "enc", "-passin", "pass:hunter2"],
                "openssl enc -passin pass:•••",
            ),
        ] {
            assert_eq!(m(argv), shown);
        }
        // Numbers, URLs, paths and flag bundles show.
        for argv in [
            &["ssh", "-p", "2222", "host"][..],
            &["python3", "-m", "http.server", "-p", "8080"],
            &["docker", "run", "-p", "8080:80", "img"],
            &["mysql", "-P3306", "db"],
            &["sort", "-k2,2", "f"],
            &["curl", "-k", "https://api.acme.test/v1"],
            &["mkdir", "-p", "/tmp/out/x86_64"],
            &["ls", "-la"],
            &["ls", "-al"],
            &["ps", "-aux"],
            &["rsync", "-avz", "/src/", "/dst/"],
            &["find", ".", "-path", "./x", "-print"],
            &["cc", "-pthread", "a.c"],
        ] {
            assert_eq!(m(argv), argv.join(" "));
        }
        assert_eq!(m(&["mkdir", "-p", "build"]), "mkdir -p •••", "over-hides");
    }

    #[test]
    fn short_secret_names_hide_as_name_parts() {
        for (argv, shown) in [
            (&["tool", "--pass", "x"][..], "tool --pass •••"),
            (&["tool", "--passphrase", "x"], "tool --passphrase •••"),
            (&["tool", "--creds", "x"], "tool --creds •••"),
            (&["tool", "--pin", "1234"], "tool --pin •••"),
            (&["tool", "--otp", "123456"], "tool --otp •••"),
            (&["env", "DB_PASS=x", "cmd"], "env DB_PASS=••• cmd"),
            (
                &["env", "GPG_PASSPHRASE=x", "cmd"],
                "env GPG_PASSPHRASE=••• cmd",
            ),
            (&["env", "dbPass=x"], "env dbPass=•••"),
            (
                &["kubectl", "create", "cm", "--from-literal=password=x"],
                "kubectl create cm --from-literal=password=•••",
            ),
        ] {
            assert_eq!(m(argv), shown);
        }
        for argv in [
            &["tool", "--compass", "north"][..],
            &["tool", "--pinned", "yes"],
            &["kill", "--signal", "TERM", "1"],
            &["tool", "--passes", "3"],
            &["env", "COMPASS=x", "SIGNAL=y", "BYPASS=z", "cmd"],
        ] {
            assert_eq!(m(argv), argv.join(" "));
        }
    }

    #[test]
    fn a_bare_secret_name_hides_the_next_word() {
        assert_eq!(
            m(&["aws", "configure", "set", "aws_secret_access_key", "abc"]),
            "aws configure set aws_secret_access_key •••"
        );
        assert_eq!(
            m(&["sh", "-c", "printf %s password hunter2 | x"]),
            "sh -c 'printf %s password ••• | x'"
        );
        // Names that only hold such a word do not.
        assert_eq!(m(&["authsome", "status"]), "authsome status");
        assert_eq!(m(&["ssh-keygen", "-t", "ed25519"]), "ssh-keygen -t ed25519");
        assert_eq!(m(&["git", "checkout", "keyboard"]), "git checkout keyboard");
    }

    #[test]
    fn encoded_signatures_in_queries_are_hidden() {
        assert_eq!(
            m(&[
                "curl",
                "https://acct.blob.core.windows.net/c/b?sv=2022&sig=abc%2Bdef%2Fghi%3D"
            ]),
            "curl https://acct.blob.core.windows.net/c/b?sv=2022&sig=•••"
        );
        assert_eq!(
            m(&["open", "https://app.test/cb#access_token=abc&state=x"]),
            "open https://app.test/cb#access_token=•••&state=x"
        );
        // An encoded token in a parameter of any name, by its shape.
        assert_eq!(
            m(&["curl", "https://h.test/?q=aB3dE5fG7h%2BiJ9kL1mN3oP5"]),
            "curl •••"
        );
    }

    #[test]
    fn benign_commands_show_as_typed() {
        for argv in [
            &["ls", "/usr/lib/x86_64-linux-gnu"][..],
            &["ls", "-la"],
            &["python3", "-m", "http.server", "8000"],
            &["git", "commit", "-m", "fix typo"],
            &["cargo", "test", "--lib"],
            &[
                "curl",
                "https://github.com/rust-lang/rust/pull/12345?tab=files",
            ],
            &["curl", "https://docs.rs/tokio/1.40.0/tokio/"],
            &[
                "curl",
                "-sS",
                "https://api.acme.test/v1/models?limit=20&after=abc",
            ],
            &["git", "log", "--author", "me"],
            &["sh", "-c", "cd /tmp && ls; pwd | cat"],
        ] {
            let shown = m(argv);
            assert!(!shown.contains(HIDDEN), "{argv:?} -> {shown}");
        }
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
