//! What the dashboard and `GET /api/proxy/runs` show of a run's command.
//!
//! `authsome run` sends its child's argv; a command line may hold what the
//! user typed as a secret (`--api-key sk-…`, `TOKEN=… cmd`,
//! `https://user:pass@host`, `-H "Authorization: Bearer …"`). The daemon
//! keeps only the masked form ([`mask`]), never the raw one. The rule:
//!
//! - at most [`MAX_ARGS`] arguments of at most [`MAX_ARG_CHARS`] characters
//!   each are shown (the rest is cut, marked `…`; `run` sends at most 64
//!   of 512);
//! - each argument is read word by word (split on white space, so the
//!   script of `sh -c "…"` is read too). A *secret name* is one holding
//!   `key`, `token`, `secret`, `passw`, `pwd`, `auth`, `credential`,
//!   `cookie`, `session`, `bearer`, `private` or `signature`, or with a part
//!   (split at `-`, `_`, `.` and camelCase) that is `pass`, `pw`, `cred`,
//!   `sig`, `pin`, `otp` or `totp` (so `DB_PASS` is one, `compass` is not).
//!   A word becomes [`HIDDEN`] (or its value part does) when:
//!   - it follows a flag with a secret name (`--api-key VALUE`), or a bare
//!     word ending in one (`aws configure set aws_secret_access_key VALUE`,
//!     `Bearer VALUE`; a verb right after the name shows: `gh secret set`,
//!     `kubectl create secret generic`); when such a flag (or one of the
//!     next two rules') ends its argument, the whole next argument is its
//!     value;
//!   - it follows a short flag that takes a password *for this program*,
//!     or is attached to one: `mysql -pVALUE` (attached only: a separate
//!     word is the database), `sshpass -p`, `redis-cli -a`, `zip`/`unzip
//!     -P`, `7z -pVALUE`, `docker`/`podman`/`helm … login -p`, `az -p`,
//!     `mongo* -p`, `sqlcmd -P`, `ldapsearch -w`, `openssl -k` (see
//!     `password_flag`); then even a number hides. The program is the
//!     first word of the command (after `sudo`, `env`, `NAME=VALUE`…, and
//!     again after `;`, `&&`, `|`, `$(`, `--` and in `sh -c` scripts), or a
//!     later word naming one of these programs (`docker exec db mysql`).
//!     Other programs' `-p`, `-a`, `-k` are plain flags (`claude -p`,
//!     `cargo test -p`, `mkdir -p`, `cp -a`, `pytest -k`);
//!   - it is the part after `:` of `USER:PASSWORD` after `-u`, `-U`,
//!     `--user`, `--proxy-user`, httpie's `-a`, or in `--user=…` or
//!     `-uUSER:…`; all of it when the password is empty or the user looks
//!     like a secret (an API key as the user: `curl -u sk_test_…:`);
//!     smbclient's `-U USER%PASSWORD` too;
//!   - it is the value after curl's `-b` when it holds `=` (a cookie, not a
//!     file), or the value flag (`--body`, `-b`, `--value`, `--data`, `-d`)
//!     after a bare secret name (`gh secret set API_KEY --body VALUE`);
//!   - it is the value of `NAME=VALUE` with a secret name anywhere in the
//!     word (`--token=…`, `DB_PASS=…`, `--from-literal=password=…`: the rest
//!     of the word hides), of a URL's query or fragment parameter
//!     (`?api_key=…&sig=…`), or of `"NAME":VALUE` in JSON (each pair);
//!   - it follows `NAME:` with a secret name, at any `:` of the word
//!     outside URLs (a header, `pass:…`, `--header=Authorization: …`, a JS
//!     object `{headers:{Authorization:"…"}}`): the rest of the argument
//!     hides, and when the argument ends there (or with an auth scheme like
//!     `Bearer`), the following arguments hide too up to one that starts
//!     with `-` or holds a URL;
//!   - it is the password of a URL anywhere in the word (the scheme is the
//!     run of letters, digits, `+`, `-`, `.` before `://`, so
//!     `DATABASE_URL=postgres://u:•••@h/db`, `{"url":"https://u:•••@h"}`),
//!     or of `USER:PASSWORD@host` without a scheme (`curl -x
//!     bob:•••@proxy:3128`); the user hides too when it looks like a secret;
//!   - what is left of it looks random or matches a provider's
//!     `key_pattern`: a run of 20+ letters, digits, `_`, `-`, `+`, `/`
//!     (`%XX` counts as one) with letters and digits mixed, or 32+ of mixed
//!     case, unless its pieces between `-` and `_` are all words, numbers or
//!     short codes (`claude-sonnet-4-5-20250929`, `gpt-4o-mini-2024-07-18`,
//!     `x86_64-unknown-linux-gnu`); a UUID hides. A run is judged as a
//!     path, part by part between the `/`, only when it starts with `/` (as
//!     after `/`, `./`, `../`, `~/`) or has no capital letter; otherwise it
//!     is judged whole (base64 holds `/`).
//!
//! Each argument is masked first (up to [`MAX_ARG_CHARS`] × 4 characters,
//! cut at white space) and cut after, at white space when there is some, so
//! a cut never shows the start of a secret.
//!
//! It over-hides on purpose (a long hex commit id, a UUID, the word after
//! `token` in a commit message). It is a filter for what people usually type, not a proof: a
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
/// mixed, or 32+ of mixed case; but not a run of words, numbers and short
/// codes between `-` and `_` (`claude-sonnet-4-5-20250929`,
/// `x86_64-unknown-linux-gnu`), unless it has the shape of a UUID.
fn random_looking(s: &str) -> bool {
    if s.len() < 20 {
        return false;
    }
    // A path (`/usr/lib/x86_64-linux-gnu`, `src/daemon/mod`) is not a token:
    // its parts are. Base64 holds `/` too, and capitals: judged whole.
    if s.contains('/') && (s.starts_with('/') || !s.chars().any(|c| c.is_ascii_uppercase())) {
        return s.split('/').any(random_looking);
    }
    if uuid(s) {
        return true;
    }
    let digits = s.chars().filter(char::is_ascii_digit).count();
    let letters = s.chars().filter(char::is_ascii_alphabetic).count();
    let upper = s.chars().filter(char::is_ascii_uppercase).count();
    let mixed = (digits >= 2 && letters >= 4) || (s.len() >= 32 && upper >= 2 && upper < letters);
    // Judged piece by piece between `-` and `_` (base64 with `+` or `/`
    // stays whole): one piece that is not a word, a number or a short code
    // is enough (`sk-proj-<random>`, `ghp_<random>`).
    mixed
        && !(s.contains(['-', '_'])
            && !s.contains(['+', '/'])
            && s.split(['-', '_']).all(plain_piece))
}

/// `8-4-4-4-12` hex digits.
fn uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).eq([8, 4, 4, 4, 12])
        && parts
            .iter()
            .all(|p| p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// A piece of a name that does not look random: a number, a word (one
/// case, or camelCase of parts of 2+ letters), a short code (`4o`, `x86`,
/// `api03`, `aarch64`: letters of one case, at most two turns between
/// letters and digits).
fn plain_piece(s: &str) -> bool {
    if s.len() <= 3 || s.chars().all(|c| c.is_ascii_digit()) {
        return true;
    }
    if !s.chars().all(|c| c.is_ascii_alphanumeric()) {
        return false;
    }
    let letters: String = s.chars().filter(char::is_ascii_alphabetic).collect();
    let one_case = letters.chars().all(|c| c.is_ascii_lowercase())
        || letters.chars().all(|c| c.is_ascii_uppercase())
        || name_parts(&letters) == [letters.to_ascii_lowercase()];
    if letters.len() == s.len() {
        return one_case || name_parts(s).iter().all(|p| p.len() >= 2);
    }
    let turns = s
        .as_bytes()
        .windows(2)
        .filter(|w| w[0].is_ascii_digit() != w[1].is_ascii_digit())
        .count();
    one_case && turns <= 2
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

/// Where the next URL in `word` (from byte `from` on) starts and ends: its
/// scheme is the run of `[A-Za-z0-9+.-]` before `://`, starting with a
/// letter (so `DATABASE_URL=postgres://…`, `{"url":"https://…` find it);
/// it ends before white space or one of `"'}<>,` and a backtick.
fn url_span(word: &str, from: usize) -> Option<(usize, usize)> {
    let b = word.as_bytes();
    let mut search = from;
    loop {
        let i = search + word.get(search..)?.find("://")?;
        let mut s = i;
        while s > from
            && (b[s - 1].is_ascii_alphanumeric() || matches!(b[s - 1], b'+' | b'.' | b'-'))
        {
            s -= 1;
        }
        while s < i && !b[s].is_ascii_alphabetic() {
            s += 1;
        }
        if s < i {
            let rest = &word[i + 3..];
            let end = rest
                .find(|c: char| c.is_whitespace() || "\"'}<>,`".contains(c))
                .unwrap_or(rest.len());
            return Some((s, i + 3 + end));
        }
        search = i + 3;
    }
}

/// A URL's password and its query's and fragment's secret parameters;
/// `url` is one URL, as found by [`url_span`].
fn mask_url(url: &str, p: &Patterns) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return HIDDEN.into();
    };
    let mut end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    // A password holding `/` (`u:pa/ss@host`, which curl takes): what
    // follows the `:` is no port, and an `@` comes before the query.
    if let Some((_, port)) = rest[..end].split_once(':')
        && !rest[..end].contains('@')
        && !port.chars().all(|c| c.is_ascii_digit())
        && let Some(at) = rest[..rest.find(['?', '#']).unwrap_or(rest.len())].rfind('@')
    {
        end = at + rest[at..].find(['/', '?', '#']).unwrap_or(rest.len() - at);
    }
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
        return HIDDEN.into();
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
    out
}

/// Stand-ins for the URLs of a word while the rest of it is judged.
const STAND_IN: u32 = 0xE000;

fn stand_in(c: char) -> bool {
    (STAND_IN..STAND_IN + 0x100).contains(&u32::from(c))
}

/// A word holding URLs: each URL is judged on its own ([`mask_url`]), what
/// is around them as any word. `None` when there is no URL.
fn mask_urls(word: &str, p: &Patterns) -> Option<String> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some((s, e)) = url_span(word, from) {
        spans.push((s, e));
        from = e;
    }
    if spans.is_empty() {
        return None;
    }
    if spans == [(0, word.len())] {
        return Some(mask_url(word, p));
    }
    if spans.len() > 0x100 || word.chars().any(stand_in) {
        return Some(HIDDEN.into());
    }
    let mut text = String::with_capacity(word.len());
    let mut urls = Vec::new();
    let mut copied = 0;
    for (k, &(s, e)) in spans.iter().enumerate() {
        text.push_str(&word[copied..s]);
        text.push(char::from_u32(STAND_IN + k as u32).unwrap_or(' '));
        urls.push(mask_url(&word[s..e], p));
        copied = e;
    }
    text.push_str(&word[copied..]);
    let mut out = mask_plain(&text, p);
    for (k, url) in urls.iter().enumerate() {
        let c = char::from_u32(STAND_IN + k as u32).unwrap_or(' ');
        out = out.replacen(c, url, 1);
    }
    Some(out)
}

/// `USER:PASSWORD@host` without a scheme (`curl -x bob:pw@proxy:3128`):
/// the password hides, when a host name (and maybe `:port`, a path) follows
/// the `@`.
fn mask_userinfo(word: &str, p: &Patterns) -> Option<String> {
    let b = word.as_bytes();
    for (at, _) in word.match_indices('@') {
        let host = word[at + 1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '-'))
            .map_or(word.len(), |j| at + 1 + j);
        let after = &word[host..];
        let port_ok = |a: &str| {
            let digits = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
            digits > 0 && (a.len() == digits || a[digits..].starts_with('/'))
        };
        let host_ok = host > at + 1
            && (after.is_empty()
                || after.starts_with('/')
                || after.strip_prefix(':').is_some_and(port_ok));
        if !host_ok {
            continue;
        }
        let start = word[..at]
            .rfind(|c: char| c.is_whitespace() || "=/\"'{}(),<>[]".contains(c) || stand_in(c))
            .map_or(0, |j| {
                j + word[j..].chars().next().map_or(1, char::len_utf8)
            });
        if !word[start..at].contains(':') || b.get(start) == Some(&b'-') {
            continue;
        }
        let shown = user_password(&word[start..at], p)?;
        return Some(format!("{}{shown}{}", &word[..start], &word[at..]));
    }
    None
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

/// How a program takes a password in a short flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Takes {
    /// Only attached (`mysql -pPASSWORD`: a separate word is the database).
    Attached,
    /// Attached or as the next word (`sshpass -p PASSWORD`).
    Both,
    /// Only as the next word (`openssl enc -k PASSWORD`; `-kfile` is a flag).
    Separate,
}

/// The short flag that takes a password for `prog` (`login`: the word
/// `login` came before in this command, as in `docker login -p`).
fn password_flag(prog: &str, login: bool, flag: char) -> Option<Takes> {
    let takes = match (prog, flag) {
        (
            "mysql" | "mariadb" | "mysqldump" | "mysqladmin" | "mysqlimport" | "mysqlshow"
            | "mysqlcheck" | "mysqlpump" | "mysqlbinlog" | "mysqlsh" | "mariadb-dump"
            | "mariadb-admin",
            'p',
        )
        | ("7z" | "7za" | "7zr" | "7zz" | "rar" | "unrar", 'p') => Takes::Attached,
        ("sshpass" | "az" | "hydra" | "smbmap" | "crackmapexec" | "nxc" | "netexec", 'p')
        | (
            "mongo" | "mongosh" | "mongodump" | "mongorestore" | "mongoexport" | "mongoimport"
            | "mongostat" | "mongotop",
            'p',
        )
        | ("redis-cli" | "valkey-cli" | "keydb-cli", 'a')
        | ("zip" | "zipcloak" | "unzip" | "funzip" | "sqlcmd" | "bcp" | "osql", 'P')
        | (
            "ldapsearch" | "ldapadd" | "ldapmodify" | "ldapdelete" | "ldapwhoami" | "ldappasswd"
            | "ldapcompare" | "ldapmodrdn" | "ldapexop",
            'w',
        ) => Takes::Both,
        ("openssl", 'k') => Takes::Separate,
        ("docker" | "podman" | "nerdctl" | "helm" | "buildah" | "skopeo" | "oras", 'p')
            if login =>
        {
            Takes::Both
        }
        _ => return None,
    };
    Some(takes)
}

/// A program named in [`password_flag`] (or `curl`, `http`) is taken as the
/// program wherever it shows in a command (`docker exec db mysql -p…`).
fn known_program(prog: &str) -> bool {
    ['p', 'a', 'P', 'w', 'k']
        .iter()
        .any(|&f| password_flag(prog, true, f).is_some())
        || matches!(prog, "curl" | "http" | "https" | "xh" | "xhs" | "xfreerdp")
}

/// Words before a command's program (`sudo mysql`, `env A=b mysql`).
fn wrapper(word: &str) -> bool {
    matches!(
        word,
        "sudo"
            | "doas"
            | "env"
            | "exec"
            | "nohup"
            | "time"
            | "command"
            | "nice"
            | "timeout"
            | "stdbuf"
            | "if"
            | "then"
            | "else"
            | "elif"
            | "do"
            | "while"
            | "until"
            | "!"
            | "{"
    )
}

fn shell(prog: &str) -> bool {
    matches!(
        prog,
        "sh" | "bash" | "zsh" | "dash" | "ksh" | "ash" | "fish"
    )
}

/// `NAME=VALUE` before a command.
fn env_assignment(word: &str) -> bool {
    word.split_once('=').is_some_and(|(n, _)| {
        !n.is_empty()
            && !n.starts_with('-')
            && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

/// `USER:PASSWORD` with the password hidden; the whole of it when the user
/// looks like a secret or the password is empty (an API key given as the
/// user, `curl -u sk_test_…:`). Samba's `USER%PASSWORD` too.
fn user_password(v: &str, p: &Patterns) -> Option<String> {
    let (user, pw) = v.split_once(':').or_else(|| v.split_once('%'))?;
    if pw.is_empty() || secret_shape(user, p) {
        return Some(HIDDEN.into());
    }
    let sep = &v[user.len()..user.len() + 1];
    Some(format!("{user}{sep}{HIDDEN}"))
}

/// What the word before says of this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    Plain,
    /// The value of a secret flag.
    Secret,
    /// The word after a bare secret name (`password`, `API_KEY`): hidden
    /// like [`Next::Secret`], but a verb (`gh secret set`), `:` or `=`
    /// shows, and a value flag (`--body`) passes it on.
    Noun,
    /// After `-u`: `USER:PASSWORD`; `bare`: a value without `:` hides too
    /// (httpie's `-a TOKEN`).
    User {
        bare: bool,
    },
    /// After a program's password flag (`sshpass -p`): hides whatever it is.
    Short,
    /// After curl's `-b`: hides when it holds `=` (else it is a file).
    Cookie,
}

/// Verbs after a secret noun that are not its value (`gh secret set NAME`,
/// `kubectl create secret generic NAME`).
fn noun_verb(word: &str) -> bool {
    matches!(
        word,
        "set"
            | "get"
            | "list"
            | "ls"
            | "delete"
            | "rm"
            | "remove"
            | "create"
            | "generic"
            | "tls"
            | "show"
            | "view"
            | "edit"
            | "update"
            | "describe"
            | "inspect"
            | "add"
            | "put"
            | "rotate"
    )
}

/// Flags that hand a secret noun's value on (`gh secret set NAME --body V`).
const VALUE_FLAGS: &[&str] = &["--body", "-b", "--value", "--data", "-d"];

/// The command being read: its program and what was read of it.
#[derive(Debug)]
struct Cmd {
    next: Next,
    /// The next word starts a command (its program, or a wrapper's words).
    start: bool,
    /// The program, lowercased basename.
    prog: String,
    /// `login` came in this command.
    login: bool,
    /// The next argument is a shell script (`sh -c`).
    script: bool,
    /// A wrapper's flag takes the next word (`sudo -u root`).
    skip: bool,
}

impl Cmd {
    fn new() -> Cmd {
        Cmd {
            next: Next::Plain,
            start: true,
            prog: String::new(),
            login: false,
            script: false,
            skip: false,
        }
    }

    /// A new command starts (`;`, `&&`, `|`, `$(`).
    fn restart(&mut self) {
        self.next = Next::Plain;
        self.start = true;
        self.login = false;
        self.skip = false;
    }

    /// What `word` (its core) says of the command.
    fn read(&mut self, word: &str) {
        // `x=$(mysql`, `` `mysql ``: the command inside.
        let name = word.rsplit(['(', '`']).next().unwrap_or(word);
        let base = name.rsplit('/').next().unwrap_or(name).to_ascii_lowercase();
        if self.start {
            if self.skip {
                self.skip = false;
            } else if name.starts_with('-') {
                self.skip = matches!(name, "-u" | "-g" | "-n" | "-C" | "-s");
            } else if !(wrapper(&base) || env_assignment(name) || numeric(name)) {
                self.prog = base;
                self.start = false;
            }
        } else if base == "login" {
            self.login = true;
        } else if known_program(&base) {
            self.prog = base;
            self.login = false;
        } else if word == "--" {
            self.restart();
        }
        if shell(&self.prog)
            && !word.starts_with("--")
            && word.starts_with('-')
            && word.ends_with('c')
            && word[1..].chars().all(|c| c.is_ascii_alphabetic())
        {
            self.script = true;
        }
    }

    /// `-pVALUE` with a password for this program: the flag.
    fn attached_password<'a>(&self, word: &'a str) -> Option<&'a str> {
        let mut chars = word.chars();
        let (Some('-'), Some(f)) = (chars.next(), chars.next()) else {
            return None;
        };
        let takes = password_flag(&self.prog, self.login, f);
        (f != '-' && word.len() > 2 && matches!(takes, Some(Takes::Attached | Takes::Both)))
            .then(|| &word[..2])
    }

    /// What a flag word says of the next one.
    fn after_flag(&self, word: &str) -> Next {
        let mut chars = word.chars();
        if let (Some('-'), Some(f), None) = (chars.next(), chars.next(), chars.next())
            && matches!(
                password_flag(&self.prog, self.login, f),
                Some(Takes::Both | Takes::Separate)
            )
        {
            return Next::Short;
        }
        match (self.prog.as_str(), word) {
            (_, "-u" | "-U" | "--user" | "--proxy-user") => Next::User { bare: false },
            ("http" | "https" | "xh" | "xhs", "-a" | "--auth") => Next::User { bare: true },
            ("curl", "-b") => Next::Cookie,
            _ => Next::Plain,
        }
    }
}

/// One word, given what came before it.
fn mask_word(word: &str, cmd: &Cmd, p: &Patterns) -> String {
    let flag = word.starts_with('-');
    match cmd.next {
        Next::Secret | Next::Short if !flag => return HIDDEN.into(),
        Next::Noun if !flag && !noun_verb(word) && !matches!(word, ":" | "=") => {
            return HIDDEN.into();
        }
        Next::Noun | Next::Secret => {
            for f in VALUE_FLAGS.iter().filter(|f| f.starts_with("--")) {
                if word.strip_prefix(*f).is_some_and(|v| v.starts_with('=')) {
                    return format!("{f}={HIDDEN}");
                }
            }
        }
        Next::User { bare } if !flag => match user_password(word, p) {
            Some(m) => return m,
            None if bare => return HIDDEN.into(),
            None => {}
        },
        Next::Cookie if !flag && word.contains('=') => return HIDDEN.into(),
        _ => {}
    }
    for f in ["--user=", "--proxy-user="] {
        if let Some(v) = word.strip_prefix(f)
            && let Some(m) = user_password(v, p)
        {
            return format!("{f}{m}");
        }
    }
    for f in ["-u", "-U"] {
        if let Some(v) = word.strip_prefix(f)
            && !v.starts_with('-')
            && let Some(m) = user_password(v, p)
        {
            return format!("{f}{m}");
        }
    }
    if let Some(f) = cmd.attached_password(word) {
        return format!("{f}{HIDDEN}");
    }
    if cmd.prog == "curl" && word.starts_with("-b") && !word.starts_with("--") && word.contains('=')
    {
        return format!("-b{HIDDEN}");
    }
    if cmd.prog == "xfreerdp" && word.len() > 3 && word.starts_with("/p:") {
        return format!("/p:{HIDDEN}");
    }
    // A URL's parts are judged on their own (its path as a path).
    mask_urls(word, p).unwrap_or_else(|| mask_plain(word, p))
}

/// A word without URLs: its secret pairs hidden, and all of it when what
/// still shows looks like a secret.
fn mask_plain(word: &str, p: &Patterns) -> String {
    let word = mask_userinfo(word, p).unwrap_or_else(|| word.to_string());
    let masked = mask_json(&word)
        .or_else(|| mask_assignment(&word))
        .unwrap_or(word);
    let shown: String = masked
        .replace(HIDDEN, " ")
        .chars()
        .map(|c| if stand_in(c) { ' ' } else { c })
        .collect();
    if secret_shape(&shown, p) {
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

/// The first `NAME:VALUE` in a word with a secret name (a header
/// `X-Api-Key:…`, `pass:…`, a JS object `{headers:{Authorization:"…`),
/// outside URLs; not a quoted JSON name (see [`mask_json`]), not `::`, not
/// before a path (`-v ~/.aws/credentials:/root/.aws/credentials`).
fn secret_colon(word: &str) -> Option<usize> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some((s, e)) = url_span(word, from) {
        spans.push((s, e));
        from = e;
    }
    let b = word.as_bytes();
    word.match_indices(':').map(|(i, _)| i).find(|&i| {
        let value = &word[i + 1..];
        let quoted = i > 0 && matches!(b[i - 1], b':' | b'"' | b'\'');
        let in_url = spans.iter().any(|&(s, e)| (s..e).contains(&i));
        !(in_url || quoted || value.is_empty() || value.starts_with([':', '/', '~']))
            && secret_name(trailing_name(&word[..i]))
    })
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

/// Cuts a masked argument to `max` characters, marking the cut; a word cut
/// in two is left out when there is a word before it.
fn cap(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => {
            let head = &s[..i];
            let head = match head.rfind(char::is_whitespace) {
                Some(j) if !s[i..].starts_with(char::is_whitespace) => &head[..j],
                _ => head,
            };
            format!("{}…", head.trim_end())
        }
        None => s.to_string(),
    }
}

/// Characters of one argument read before masking (`run` sends 512).
const MAX_READ: usize = 4 * MAX_ARG_CHARS;

/// The command as it may be shown: capped, with every secret-looking value
/// replaced by [`HIDDEN`].
pub fn mask(argv: &[String], patterns: &Patterns) -> Vec<String> {
    let mut out = Vec::new();
    let mut cmd = Cmd::new();
    // After an argument that ended with `Authorization:` (or `… Bearer`),
    // the arguments up to the next flag or URL are the header's value.
    let mut carried = false;
    for arg in argv.iter().take(MAX_ARGS) {
        // Masked first, then cut: a cut must not show the start of a secret.
        // Past what is read, a word cut in two is left out.
        let (arg, read_cut) = match arg.char_indices().nth(MAX_READ) {
            Some((i, _)) => {
                let head = &arg[..i];
                let end = head.rfind(char::is_whitespace).unwrap_or(0);
                (&head[..end], true)
            }
            None => (arg.as_str(), false),
        };
        let masked = mask_arg(arg, &mut cmd, &mut carried, patterns);
        let mut shown = cap(&masked, MAX_ARG_CHARS);
        if read_cut && !shown.ends_with('…') {
            shown.push_str(if shown.is_empty() {
                "•••…"
            } else {
                " …"
            });
        }
        out.push(shown);
    }
    if argv.len() > MAX_ARGS {
        out.push(MORE.into());
    }
    out
}

/// One argument, given the command read so far.
fn mask_arg(arg: &str, cmd: &mut Cmd, carried: &mut bool, patterns: &Patterns) -> String {
    if std::mem::take(&mut cmd.script) {
        cmd.restart();
    }
    if *carried {
        let first = arg.split_whitespace().next().unwrap_or("");
        if first.starts_with('-') || arg.contains("://") {
            *carried = false;
        } else {
            return HIDDEN.to_string();
        }
    }
    // The value of a flag that ended the previous argument is this whole
    // argument (`--cookie "sid=a; uid=b"`, `-p 'two words'`).
    if !arg.starts_with('-') {
        let whole = match cmd.next {
            Next::Secret | Next::Short => Some(HIDDEN.to_string()),
            Next::Noun if arg.contains(char::is_whitespace) => Some(HIDDEN.to_string()),
            Next::Cookie if arg.contains('=') => Some(HIDDEN.to_string()),
            Next::User { bare } if arg.contains(char::is_whitespace) || bare => {
                Some(user_password(arg, patterns).unwrap_or_else(|| HIDDEN.to_string()))
            }
            Next::User { .. } => user_password(arg, patterns),
            _ => None,
        };
        if let Some(w) = whole {
            cmd.next = Next::Plain;
            return w;
        }
    }
    let mut words = Vec::new();
    // After `Authorization:` (a header) the rest of the argument hides;
    // what was hidden of it so far.
    let mut rest_hidden: Option<Vec<String>> = None;
    for word in arg.split_whitespace() {
        if let Some(hidden) = rest_hidden.as_mut() {
            hidden.push(word.to_string());
            if !words.last().is_some_and(|w: &String| w.ends_with(HIDDEN)) {
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
            cmd.restart();
            words.push(word.to_string());
            continue;
        }
        if lead.contains('(') || core.contains("$(") || core.contains('`') {
            cmd.restart();
        }
        let masked = format!("{lead}{}{trail}", mask_word(core, cmd, patterns));
        let prev = cmd.next;
        let value_of_secret = matches!(prev, Next::Secret | Next::Noun)
            && !core.starts_with('-')
            && !masked.contains(core);
        let word = core;
        cmd.read(word);
        cmd.next = if secret_flag(word) {
            Next::Secret
        } else if matches!(prev, Next::Noun | Next::Secret) && VALUE_FLAGS.contains(&word) {
            prev
        } else if (prev == Next::Noun && matches!(word, ":" | "="))
            || (!matches!(prev, Next::Secret | Next::Noun) && secret_noun(word))
        {
            Next::Noun
        } else if word.starts_with('-') {
            cmd.after_flag(word)
        } else {
            Next::Plain
        };
        if trail.contains([';', '&', '|']) {
            cmd.restart();
        }
        if value_of_secret {
            // Already hidden whole (`-pass pass:…`).
        } else if ends_with_secret_name(word) {
            rest_hidden = Some(Vec::new());
        } else if let Some(i) = secret_colon(word) {
            let name = mask_word(&word[..i], &Cmd::new(), patterns);
            words.push(format!("{lead}{name}:{HIDDEN}"));
            rest_hidden = Some(vec![word[i + 1..].to_string()]);
            cmd.next = Next::Plain;
            continue;
        }
        words.push(masked);
    }
    if let Some(hidden) = &rest_hidden {
        *carried = match hidden.as_slice() {
            [] => true,
            [one] => one.is_empty() || auth_scheme(one.trim_matches(['\'', '"', '{', '('])),
            _ => false,
        };
        cmd.next = Next::Plain;
    }
    // Keep an argument's own spacing when nothing in it was hidden.
    let joined = words.join(" ");
    if joined == arg.split_whitespace().collect::<Vec<_>>().join(" ") {
        arg.to_string()
    } else {
        joined
    }
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

    /// What `argv` shows as when nothing hides.
    fn typed(args: &[&str]) -> String {
        display(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>())
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
    fn short_password_flags_hide_only_for_programs_that_take_one() {
        for (argv, shown) in [
            (
                &["docker", "login", "-u", "me", "-p", "hunter2"][..],
                "docker login -u me -p •••",
            ),
            (
                &["podman", "login", "-phunter2", "r"],
                "podman login -p••• r",
            ),
            (
                &["sshpass", "-p", "hunter2", "ssh", "h"],
                "sshpass -p ••• ssh h",
            ),
            (&["sshpass", "-p", "12345678", "ssh"], "sshpass -p ••• ssh"),
            (&["mysql", "-phunter2", "db"], "mysql -p••• db"),
            (&["mysql", "-p12345678", "db"], "mysql -p••• db"),
            (
                &["/usr/bin/mysqldump", "-p1234", "db"],
                "/usr/bin/mysqldump -p••• db",
            ),
            (&["redis-cli", "-a", "hunter2"], "redis-cli -a •••"),
            (&["redis-cli", "-a", "/tmp/x"], "redis-cli -a •••"),
            (&["http", "-a", "me:hunter2", "u"], "http -a me:••• u"),
            (
                &["http", "-A", "bearer", "-a", "tok", "u"],
                "http -A bearer -a ••• u",
            ),
            (&["zip", "-P", "x", "a.zip"], "zip -P ••• a.zip"),
            (&["unzip", "-P1234", "a.zip"], "unzip -P••• a.zip"),
            (&["7z", "x", "-phunter2", "a.7z"], "7z x -p••• a.7z"),
            (
                &["az", "login", "-u", "me", "-p", "hunter2"],
                "az login -u me -p •••",
            ),
            (
                &["ldapsearch", "-x", "-w", "hunter2"],
                "ldapsearch -x -w •••",
            ),
            (&["openssl", "enc", "-k", "hunter2"], "openssl enc -k •••"),
            (
                &["openssl", "enc", "-pass", "pass:hunter2"],
                "openssl enc -pass •••",
            ),
            (
                &["openssl", "enc", "-passin", "pass:hunter2"],
                "openssl enc -passin pass:•••",
            ),
            (
                &["smbclient", "-U", "me%hunter2", "//h/s"],
                "smbclient -U me%••• //h/s",
            ),
            // After a wrapper, a separator, in a script, inside another command.
            (
                &["sudo", "-u", "root", "mysql", "-phunter2"],
                "sudo -u root mysql -p•••",
            ),
            (
                &["sh", "-c", "cd /srv && MYSQL_HOST=db mysql -phunter2 app"],
                "sh -c 'cd /srv && MYSQL_HOST=db mysql -p••• app'",
            ),
            (
                &["bash", "-lc", "ls; sshpass -p 1234 ssh h"],
                "bash -lc 'ls; sshpass -p ••• ssh h'",
            ),
            (
                &["docker", "exec", "db", "mysql", "-uroot", "-phunter2"],
                "docker exec db mysql -uroot -p•••",
            ),
            (
                &["sh", "-c", "x=$(redis-cli -a hunter2 ping)"],
                "sh -c 'x=$(redis-cli -a ••• ping)'",
            ),
        ] {
            assert_eq!(m(argv), shown);
        }
        // Other programs' `-p`, `-P`, `-a`, `-k` are plain flags; mysql's
        // separate `-p` prompts (the next word is the database).
        for argv in [
            &["ssh", "-p", "2222", "host"][..],
            &["python3", "-m", "http.server", "-p", "8080"],
            &["docker", "run", "-p", "8080:80", "img"],
            &["docker", "push", "-p", "x"],
            &["mysql", "-P3306", "db"],
            &["mysql", "-p", "db"],
            &["sort", "-k2,2", "f"],
            &["curl", "-k", "https://api.acme.test/v1"],
            &["mkdir", "-p", "/tmp/out/x86_64"],
            &["mkdir", "-p", "build"],
            &["cp", "-a", "src", "dst"],
            &["rsync", "-a", "build/", "h:/srv/"],
            &["claude", "-p", "fix the failing test"],
            &["gemini", "-p", "fix the build"],
            &["cargo", "test", "-p", "authsome", "--lib"],
            &["pytest", "-k", "test_login and not slow"],
            &["make", "-k", "all"],
            &["git", "log", "-p", "src/main.rs"],
            &["sh", "-c", "mkdir -p out && cp -a src out"],
            &["ls", "-la"],
            &["ls", "-al"],
            &["ps", "-aux"],
            &["rsync", "-avz", "/src/", "/dst/"],
            &["find", ".", "-path", "./x", "-print"],
            &["cc", "-pthread", "a.c"],
            &["openssl", "enc", "-kfile", "k.txt"],
        ] {
            assert_eq!(m(argv), typed(argv));
        }
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
    fn urls_inside_a_word_hide_their_password() {
        for (argv, shown) in [
            (
                &[
                    "sh",
                    "-c",
                    "DATABASE_URL=postgres://app:s3cret@localhost/app npm test",
                ][..],
                "sh -c 'DATABASE_URL=postgres://app:•••@localhost/app npm test'",
            ),
            (
                &[
                    "env",
                    "DATABASE_URL=postgres://app:s3cret@localhost/app",
                    "npm",
                    "test",
                ],
                "env DATABASE_URL=postgres://app:•••@localhost/app npm test",
            ),
            (
                &["pg_dump", "--dbname=postgresql://u:hunter2@db/x"],
                "pg_dump --dbname=postgresql://u:•••@db/x",
            ),
            (
                &[
                    "docker",
                    "run",
                    "-e",
                    "REDIS_URL=redis://:hunter2@r:6379",
                    "img",
                ],
                "docker run -e REDIS_URL=redis://:•••@r:6379 img",
            ),
            (
                &[
                    "sh",
                    "-c",
                    "export https_proxy=http://bob:hunter2@proxy:3128",
                ],
                "sh -c 'export https_proxy=http://bob:•••@proxy:3128'",
            ),
            (
                &[
                    "kubectl",
                    "create",
                    "secret",
                    "generic",
                    "s",
                    "--from-literal=DB_URL=postgres://u:hunter2@h/d",
                ],
                "kubectl create secret generic s --from-literal=DB_URL=postgres://u:•••@h/d",
            ),
            (
                &[
                    "curl",
                    "-d",
                    r#"{"url":"https://u:hunter2@h/x"}"#,
                    "https://x",
                ],
                r#"curl -d {"url":"https://u:•••@h/x"} https://x"#,
            ),
            (
                &[
                    "curl",
                    "-d",
                    r#"{"url":"https://u:hunter2@h/x","token":"abc"}"#,
                ],
                r#"curl -d {"url":"https://u:•••@h/x","token":"•••"}"#,
            ),
            (&["tool", "--token=https://h.test/x"], "tool --token=•••"),
            (
                &["curl", "https://u:pa/ss@host/x"],
                "curl https://u:•••@host/x",
            ),
            (
                &["tool", "a=https://u:p1@h,b=ftp://v:p2@g"],
                "tool a=https://u:•••@h,b=ftp://v:•••@g",
            ),
            // A proxy's user and password without a scheme.
            (
                &["curl", "-x", "bob:hunter2@proxy:3128", "https://x"],
                "curl -x bob:•••@proxy:3128 https://x",
            ),
            (
                &["curl", "--proxy", "bob:hunter2@proxy.test", "u"],
                "curl --proxy bob:•••@proxy.test u",
            ),
            (
                &["curl", "--proxy-user", "bob:hunter2", "u"],
                "curl --proxy-user bob:••• u",
            ),
        ] {
            assert_eq!(m(argv), shown);
        }
        for argv in [
            &["git", "clone", "git@github.com:org/repo.git"][..],
            &["docker", "pull", "nginx:1.25@sha256:4f3a9c"],
            &["env", "API_BASE=https://api.acme.test/v1", "cmd"],
            &["scp", "me@host:/srv/a", "."],
            &["curl", "http://h.test:8080/@scope/pkg"],
            &["curl", "https://medium.com/@someone/a-post"],
        ] {
            assert_eq!(m(argv), typed(argv));
        }
    }

    #[test]
    fn a_key_given_as_the_user_hides_whole() {
        for (argv, shown) in [
            (
                &[
                    "curl",
                    "https://api.stripe.com/v1/charges",
                    "-u",
                    "sk_test_4eC39HqLyjWDarjtT1zdp7dc:",
                ][..],
                "curl https://api.stripe.com/v1/charges -u •••",
            ),
            (
                &["curl", "--user=sk_test_4eC39HqLyjWDarjtT1zdp7dc:", "x"],
                "curl --user=••• x",
            ),
            (
                &["curl", "-usk_live_4eC39HqLyjWDarjtT1zdp7dc:", "x"],
                "curl -u••• x",
            ),
            (&["curl", "-u", "somekey:", "x"], "curl -u ••• x"),
            (
                &["curl", "-u", "ghp_A1b2C3d4E5f6G7h8I9j0K1l2:x-oauth-basic"],
                "curl -u •••",
            ),
            (&["curl", "-u", "me:pw", "x"], "curl -u me:••• x"),
            (
                &["curl", "-u", "api:key-3ax6xnjp29jd6fds4gc373sgvjxteol0"],
                "curl -u api:•••",
            ),
        ] {
            assert_eq!(m(argv), shown);
        }
    }

    #[test]
    fn agent_commands_stay_readable() {
        for argv in [
            &["claude", "-p", "fix the failing test"][..],
            &["claude", "--model", "claude-sonnet-4-5-20250929"],
            &[
                "claude",
                "--model",
                "claude-3-5-sonnet-20241022",
                "-p",
                "hi",
            ],
            &["codex", "exec", "add a test for the parser"],
            &["codex", "-m", "gpt-4o-mini-2024-07-18"],
            &["gemini", "-m", "gemini-2.5-pro", "-p", "fix the build"],
            &["cargo", "build", "--target", "x86_64-unknown-linux-gnu"],
            &["cargo", "build", "--target", "aarch64-apple-darwin"],
            &["ls", "docs/2024-01-15-release-notes.md"],
            &["python3", "scripts/gen_fixtures_v2_2024.py"],
            &["ollama", "run", "Qwen2.5-Coder-32B-Instruct"],
            &["tool", "--name", "getUserById-v2-20240101"],
            &["sh", "-c", "cargo test -p authsome && pytest -k login"],
        ] {
            assert_eq!(m(argv), typed(argv), "{argv:?}");
        }
        // Real token shapes still hide, with or without `-` and `_`.
        for word in [
            "sk-proj-Zq9xWv7Lm2Np4Rt6Ab3Cd5Ef7Gh9",
            "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "0123456789abcdef0123456789abcdef01234567",
            "550e8400-e29b-41d4-a716-446655440000",
            "key-3ax6xnjp29jd6fds4gc373sgvjxteol0",
            "ya29.a0AfH6SMBx-Yk3_qLm9ZtR7vW2nPq",
            "AKIAZ3MF7QX2LNB4YT6W",
        ] {
            assert_eq!(m(&["tool", word]), "tool •••", "{word}");
        }
    }

    #[test]
    fn random_base64url_secrets_with_dashes_are_hidden() {
        const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut rand = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for len in [32, 43] {
            for _ in 0..2000 {
                let s: String = (0..len)
                    .map(|_| B64[(rand() % 64) as usize] as char)
                    .collect();
                if s.starts_with('-') {
                    continue;
                }
                assert_eq!(m(&["tool", &s]), "tool •••", "{s}");
            }
        }
    }

    #[test]
    fn more_leaks_of_the_review_are_closed() {
        for (argv, shown) in [
            (
                &["gh", "secret", "set", "API_KEY", "--body", "hunter2"][..],
                "gh secret set API_KEY --body •••",
            ),
            (
                &["gh", "secret", "set", "API_KEY", "-b", "hunter2"],
                "gh secret set API_KEY -b •••",
            ),
            (
                &["gh", "secret", "set", "API_KEY", "--body=hunter2"],
                "gh secret set API_KEY --body=•••",
            ),
            (
                &[
                    "node",
                    "-e",
                    r#"fetch(u,{headers:{Authorization:"Bearer hunter2"}})"#,
                ],
                "node -e fetch(u,{headers:{Authorization:•••",
            ),
            (
                &[
                    "node",
                    "-e",
                    r#"fetch("https://x.test/a",{headers:{"x-api-key":k,Authorization:"Bearer hunter2"}})"#,
                ],
                r#"node -e fetch("https://x.test/a",{headers:{"x-api-key":•••,Authorization:•••"#,
            ),
            (&["curl", "-b", "sid=hunter2", "u"], "curl -b ••• u"),
            (&["curl", "-bsid=hunter2", "u"], "curl -b••• u"),
            (
                &["curl", "--cookie", "sid=hunter2", "u"],
                "curl --cookie ••• u",
            ),
            (
                &["curl", "-d", r#"{"user":"u", "password" : "hunter2"}"#],
                r#"curl -d '{"user":"u", "password" : "•••'"#,
            ),
            (
                &["xfreerdp", "/v:h", "/u:me", "/p:hunter2"],
                "xfreerdp /v:h /u:me /p:•••",
            ),
        ] {
            assert_eq!(m(argv), shown);
        }
        for argv in [
            &["curl", "-b", "cookies.txt", "u"][..],
            &[
                "kubectl",
                "create",
                "secret",
                "generic",
                "db",
                "--from-file=./x",
            ],
            &["docker", "run", "-v", "/srv/secrets:/run/secrets", "img"],
            &["git", "log", "-b", "main"],
        ] {
            assert_eq!(m(argv), typed(argv));
        }
    }

    #[test]
    fn the_cap_shows_no_part_of_a_cut_secret() {
        // A token that the cap would cut: hidden whole, the text before shows.
        let arg = format!(
            "{} ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
            "a ".repeat(120)
        );
        let out = mask(&[arg], &Patterns::default());
        assert!(!out[0].contains("ghp_"), "{}", out[0]);
        assert!(
            out[0].ends_with("•••") && out[0].starts_with("a a"),
            "{}",
            out[0]
        );
        // Masked first: a cut word is left out, not shown in part.
        let arg = format!("{} {}", "a".repeat(250), "abcdefghij".repeat(3));
        let out = mask(&[arg], &Patterns::default());
        assert_eq!(out[0], format!("{}…", "a".repeat(250)));
        // Past what is read, a word cut in two is left out too.
        let arg = format!(
            "{} --token abc {}",
            "w ".repeat(505),
            "ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
        );
        let out = mask(&[arg], &Patterns::default());
        assert!(
            !out[0].contains("ghp") && out[0].ends_with('…'),
            "{}",
            out[0]
        );
    }

    #[test]
    fn other_scripts_and_odd_input_do_not_panic() {
        for arg in [
            "\u{3000}bob:pw@proxy:80",
            "x\u{e000}https://u:p@h/\u{e001}",
            "é://x:y@h é:pw@h -é -pé a=\u{1F600}://u:p@h",
            "{\"url\":\"https://u:pw@h\u{e000}\"}",
            "://:@:",
            "a@b:c@",
        ] {
            for prog in ["curl", "mysql", "sh"] {
                let out = m(&[prog, "-c", arg, "-p", arg]);
                assert!(!out.contains("pw@") && !out.contains(":p@"), "{out}");
            }
        }
    }

    #[test]
    fn random_punctuation_and_multibyte_input_never_panics() {
        const ALPHABET: &[&str] = &[
            "a", "Z", "0", "7", ":", "@", "/", "=", "\"", "'", "-", "p", " ", "é", "\u{3000}",
            "\u{e000}", "%4", "?", "#", "{", "}", "$(", "`", "://", ";", "|", "_", ".", "ü",
        ];
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let mut rand = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..3000 {
            let len = (rand() % 40) as usize;
            let arg: String = (0..len)
                .map(|_| ALPHABET[(rand() % ALPHABET.len() as u64) as usize])
                .collect();
            let prog = ["curl", "mysql", "sh", "redis-cli"][(rand() % 4) as usize];
            let out = mask(
                &[prog.to_string(), "-p".into(), arg.clone(), "-c".into(), arg],
                &Patterns::default(),
            );
            assert_eq!(out.len(), 5);
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
