//! The daemon answers only its own user. Its port is on loopback, where any
//! local user can connect; the API's PoP signatures keep them out of `/api`,
//! but the browser-facing routes (the dashboard's one-time link, the login
//! forms, the OAuth callback) are guarded by tokens that pass through
//! process arguments (`xdg-open URL`), which every user can read in
//! `/proc/*/cmdline`. So every connection is checked when it is accepted:
//! on Linux the kernel's socket table (`/proc/net/tcp`, `/proc/net/tcp6`)
//! names the uid that owns the client's end, and a connection from any other
//! uid gets a plain `403` and is closed before a byte of it is read.
//! Elsewhere no such table exists and the check is skipped (documented).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// A listener that hands the server only connections of this process's uid.
/// Connections are checked concurrently (each reads the socket table on the
/// blocking pool), at most [`PENDING`] at a time, so a flood of connections
/// from anyone delays the others only by that bound.
#[derive(Debug)]
pub struct OwnUserOnly {
    accepted: tokio::sync::mpsc::Receiver<(TcpStream, SocketAddr)>,
    local: std::io::Result<SocketAddr>,
}

/// Connections being checked at once.
const PENDING: usize = 32;

impl OwnUserOnly {
    pub fn new(inner: TcpListener) -> OwnUserOnly {
        let uid = rustix::process::geteuid().as_raw();
        let local = inner.local_addr();
        let (tx, accepted) = tokio::sync::mpsc::channel(PENDING);
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(PENDING));
        let mut inner = inner;
        tokio::spawn(async move {
            loop {
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (io, peer) = tokio::select! {
                    () = tx.closed() => return,
                    c = axum::serve::Listener::accept(&mut inner) => c,
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _slot = slot;
                    let Ok(local) = io.local_addr() else {
                        return;
                    };
                    let found = tokio::task::spawn_blocking(move || owner(peer, local))
                        .await
                        .unwrap_or(Owner::Unknown);
                    match found {
                        Owner::Uid(u) if u == uid => {
                            tx.send((io, peer)).await.ok();
                        }
                        Owner::Unchecked => {
                            tx.send((io, peer)).await.ok();
                        }
                        found => {
                            tracing::warn!(%peer, owner = ?found, "connection from another user refused");
                            refuse(io).await;
                        }
                    }
                });
            }
        });
        OwnUserOnly { accepted, local }
    }
}

impl axum::serve::Listener for OwnUserOnly {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        match self.accepted.recv().await {
            Some(c) => c,
            // The accepting task ended (the runtime is shutting down).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        match &self.local {
            Ok(a) => Ok(*a),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        }
    }
}

/// Who owns the client's end of a connection.
#[derive(Debug, PartialEq, Eq)]
enum Owner {
    Uid(u32),
    /// Not in the socket table (or the table unreadable): refused.
    Unknown,
    /// No socket table on this platform.
    #[cfg_attr(target_os = "linux", allow(dead_code))]
    Unchecked,
}

#[cfg(target_os = "linux")]
fn owner(peer: SocketAddr, local: SocketAddr) -> Owner {
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        if let Some(uid) = find_uid(&text, peer, local) {
            return Owner::Uid(uid);
        }
    }
    Owner::Unknown
}

#[cfg(not(target_os = "linux"))]
fn owner(_peer: SocketAddr, _local: SocketAddr) -> Owner {
    Owner::Unchecked
}

/// The uid of the socket whose local address is `peer` and whose remote
/// address is `local` (the client's end of our connection) in a
/// `/proc/net/tcp`-format table. Only an established socket counts: a
/// client that closes before the daemon accepts leaves a row owned by no
/// one (uid 0 once orphaned) while its request still waits to be read.
fn find_uid(table: &str, peer: SocketAddr, local: SocketAddr) -> Option<u32> {
    const ESTABLISHED: &str = "01";
    let canon = |a: SocketAddr| SocketAddr::new(a.ip().to_canonical(), a.port());
    let (peer, local) = (canon(peer), canon(local));
    table.lines().skip(1).find_map(|line| {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (l, r, st, uid) = (f.get(1)?, f.get(2)?, f.get(3)?, f.get(7)?);
        (parse_addr(l)? == peer && parse_addr(r)? == local && *st == ESTABLISHED)
            .then(|| uid.parse().ok())
            .flatten()
    })
}

/// `0100007F:1F3E` (IPv4) or 32 hex digits `:PORT` (IPv6): each 32-bit
/// word printed from the kernel's memory, so its bytes are in native order.
fn parse_addr(s: &str) -> Option<SocketAddr> {
    let (ip, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| -> Option<[u8; 4]> {
        Some(
            u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16)
                .ok()?
                .to_ne_bytes(),
        )
    };
    let ip = match ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(0)?)),
        32 => {
            let mut b = [0u8; 16];
            for i in 0..4 {
                b[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            IpAddr::V6(Ipv6Addr::from(b))
        }
        _ => return None,
    };
    Some(SocketAddr::new(ip.to_canonical(), port))
}

/// A short answer for a connection of another user, then close.
async fn refuse(mut io: TcpStream) {
    let body = "this authsome daemon serves another user: run your own \
                (`authsome daemon start`, with your own AUTHSOME_HOME)\n";
    let head = format!(
        "HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain; charset=utf-8\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let write = async {
        io.write_all(head.as_bytes()).await?;
        io.write_all(body.as_bytes()).await?;
        io.shutdown().await
    };
    tokio::time::timeout(Duration::from_secs(2), write)
        .await
        .ok();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex4(a: Ipv4Addr, port: u16) -> String {
        format!("{:08X}:{port:04X}", u32::from_ne_bytes(a.octets()))
    }

    #[test]
    fn finds_the_client_end_of_a_loopback_connection() {
        let server: SocketAddr = "127.0.0.1:7998".parse().unwrap();
        let client: SocketAddr = "127.0.0.1:51000".parse().unwrap();
        let other: SocketAddr = "127.0.0.1:51001".parse().unwrap();
        let lo = Ipv4Addr::LOCALHOST;
        let row = |n: usize, l: String, r: String, uid: u32| {
            format!(
                "{n:4}: {l} {r} 01 00000000:00000000 00:00000000 00000000 {uid:5}        0 1234 1 0000000000000000 20 4 30 10 -1"
            )
        };
        let table = [
            "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode".to_string(),
            row(0, hex4(lo, 7998), hex4(Ipv4Addr::UNSPECIFIED, 0), 0),
            // The server's end of the connection: owned by the daemon.
            row(1, hex4(lo, 7998), hex4(lo, 51000), 1000),
            // Another client of another user.
            row(2, hex4(lo, 51001), hex4(lo, 7998), 65534),
            row(3, hex4(lo, 51000), hex4(lo, 7998), 1001),
            // Closed before it was accepted (FIN_WAIT2, orphaned: uid 0).
            row(4, hex4(lo, 51003), hex4(lo, 7998), 0).replacen(" 01 ", " 05 ", 1),
        ]
        .join("\n");
        assert_eq!(find_uid(&table, client, server), Some(1001));
        assert_eq!(find_uid(&table, other, server), Some(65534));
        let stranger: SocketAddr = "127.0.0.1:51002".parse().unwrap();
        assert_eq!(find_uid(&table, stranger, server), None);
        let closed: SocketAddr = "127.0.0.1:51003".parse().unwrap();
        assert_eq!(find_uid(&table, closed, server), None, "not established");
        assert_eq!(find_uid("garbage\n1: x y", client, server), None);
    }

    #[test]
    fn reads_ipv6_and_mapped_addresses() {
        // ::ffff:127.0.0.1 as the kernel prints it on this machine's endianness.
        let mapped = Ipv6Addr::from(Ipv4Addr::LOCALHOST.to_ipv6_mapped().octets());
        let o = mapped.octets();
        let words: String = (0..4)
            .map(|i| {
                let w = [o[i * 4], o[i * 4 + 1], o[i * 4 + 2], o[i * 4 + 3]];
                format!("{:08X}", u32::from_ne_bytes(w))
            })
            .collect();
        let a = parse_addr(&format!("{words}:1F3E")).unwrap();
        assert_eq!(a, "127.0.0.1:7998".parse().unwrap());
        assert_eq!(parse_addr("0100007F:zz"), None);
        assert_eq!(parse_addr("0100:0050"), None);
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_real_connection_is_owned_by_this_process() {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let c = TcpStream::connect(addr).await.unwrap();
        let (s, peer) = l.accept().await.unwrap();
        assert_eq!(peer, c.local_addr().unwrap());
        let me = rustix::process::geteuid().as_raw();
        assert_eq!(owner(peer, s.local_addr().unwrap()), Owner::Uid(me));
        drop(c);
    }
}
