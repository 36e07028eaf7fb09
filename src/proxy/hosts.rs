//! Host names as the proxy sees them: the canonical form it compares
//! ([`normalize_host`]), IP literals in every form the system resolver
//! accepts ([`literal_ip`]), and the refusal for a request to the proxy
//! itself ([`loop_refused`]). Pure; used by the decisions (`decide.rs`) and
//! the tunnels (`tunnel.rs`).

use std::net::IpAddr;

use http::StatusCode;

use super::error::{ProxyError, Source};

/// The canonical form of a host: lowercase, one trailing dot dropped,
/// letters/digits/`-`/`_`/`.` only (or an IP literal). `None` for anything
/// else (percent signs, backslashes, control bytes, empty labels).
pub fn normalize_host(host: &str) -> Option<String> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner
            .parse::<std::net::Ipv6Addr>()
            .ok()
            .map(|ip| format!("[{ip}]"));
    }
    let h = host.strip_suffix('.').unwrap_or(host);
    if h.is_empty()
        || h.len() > 253
        || h.split('.').any(|l| l.is_empty() || l.len() > 63)
        || !h
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return None;
    }
    if h.bytes().any(|b| b.is_ascii_uppercase()) {
        Some(h.to_ascii_lowercase())
    } else {
        Some(h.to_string())
    }
}

/// The address a host literal names, including the legacy IPv4 forms the
/// system resolver accepts (`127.1`, `2130706433`, `0x7f.1`, `0177.0.0.1`).
pub fn literal_ip(host: &str) -> Option<IpAddr> {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Some(ip);
    }
    let parts: Vec<&str> = h.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let num = |p: &str| -> Option<u64> {
        if let Some(x) = p.strip_prefix("0x").or_else(|| p.strip_prefix("0X")) {
            u64::from_str_radix(x, 16).ok()
        } else if p.len() > 1 && p.starts_with('0') {
            u64::from_str_radix(&p[1..], 8).ok()
        } else {
            p.parse().ok()
        }
    };
    let nums: Vec<u64> = parts.iter().map(|p| num(p)).collect::<Option<_>>()?;
    let (last, head) = nums.split_last()?;
    if head.iter().any(|n| *n > 255) {
        return None;
    }
    let mut v: u64 = 0;
    for n in head {
        v = (v << 8) | n;
    }
    let shift = 8 * (4 - head.len() as u32);
    if *last >= (1u64 << shift) {
        return None;
    }
    v = (v << shift) | last;
    Some(IpAddr::V4(std::net::Ipv4Addr::from(v as u32)))
}

/// The proxy was asked to forward to itself.
pub fn loop_refused(host: &str, port: u16) -> ProxyError {
    ProxyError::new(
        StatusCode::FORBIDDEN,
        "authsome_loop_refused",
        Source::Downstream,
        format!("{host}:{port} is authsome itself; the proxy does not forward there"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_normalise_and_look_alikes_fail() {
        assert_eq!(
            normalize_host("Api.GitHub.TEST.").as_deref(),
            Some("api.github.test")
        );
        assert_eq!(normalize_host("[::1]").as_deref(), Some("[::1]"));
        for bad in [
            "",
            ".",
            "a..b",
            "api.github.test..",
            "api%2egithub.test",
            "api.github.test\\@evil.test",
            "user@evil.test",
            "a b",
            "a\0b",
            "аpi.github.test",
        ] {
            assert_eq!(normalize_host(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn legacy_ipv4_forms_are_recognised() {
        for (h, ip) in [
            ("127.1", "127.0.0.1"),
            ("2130706433", "127.0.0.1"),
            ("0x7f.1", "127.0.0.1"),
            ("0177.0.0.1", "127.0.0.1"),
            ("0", "0.0.0.0"),
            ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
        ] {
            assert_eq!(literal_ip(h), Some(ip.parse().unwrap()), "{h}");
        }
        assert_eq!(literal_ip("api.acme.test"), None);
        assert_eq!(literal_ip("256.1.1.1"), None);
        assert!(
            literal_ip("[::ffff:127.0.0.1]")
                .unwrap()
                .to_canonical()
                .is_loopback()
        );
    }
}
