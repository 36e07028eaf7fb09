//! Percent-encoding, the one copy: URL path segments, query strings,
//! `application/x-www-form-urlencoded` bodies (RFC 3986 unreserved
//! characters pass, every other byte becomes `%XX`).

/// Encodes `s`; only `A-Z a-z 0-9 - . _ ~` pass unchanged.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` (and, with `plus_is_space`, `+` as a space, as in forms and
/// queries). Malformed escapes are kept as written.
pub fn decode_bytes(b: &[u8], plus_is_space: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Some(v) = std::str::from_utf8(&b[i + 1..i + 3])
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(if plus_is_space && b[i] == b'+' {
            b' '
        } else {
            b[i]
        });
        i += 1;
    }
    out
}

/// Decodes a form or query value (`+` is a space); invalid UTF-8 is replaced.
pub fn decode(s: &str) -> String {
    String::from_utf8_lossy(&decode_bytes(s.as_bytes(), true)).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_tolerates_junk() {
        let s = "a b&c=d/é+%";
        assert_eq!(decode(&encode(s)), s);
        assert_eq!(encode("a/b c"), "a%2Fb%20c");
        assert_eq!(decode("a+b%41%zz%4"), "a bA%zz%4");
        assert_eq!(decode_bytes(b"a+b", false), b"a+b");
    }
}
