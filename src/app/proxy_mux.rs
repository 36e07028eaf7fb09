//! The team server's proxy listener (`daemon serve --proxy-listen`): where
//! a remote `authsome run` sends its child's traffic.
//!
//! Each run keeps its own proxy on the server's loopback (its CA, token and
//! settings, exactly as for a local run). This listener takes a
//! connection (over TLS, with the `--listen` certificate), reads the first
//! request's head (at most [`MAX_HEAD`] bytes, within [`HEAD_TIMEOUT`]),
//! finds the run whose token is in its `Proxy-Authorization` and splices
//! the connection, head included, into that run's loopback proxy. The run's
//! proxy checks the token again on every request, so a later request on
//! the connection with another token is refused there. A head without a
//! known token gets `407` and the connection is closed: nothing is dialled.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::runs::Runs;

/// The largest request head read before the run is known.
pub const MAX_HEAD: usize = 16 * 1024;
/// How long a client may take to send its first request head.
pub const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

const REFUSED: &[u8] = b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"authsome\"\r\nContent-Type: text/plain\r\nContent-Length: 62\r\nConnection: close\r\n\r\nauthsome: this proxy needs the per-run token of a running run\n";

/// Serves `listener` until `shutdown` resolves.
pub async fn serve<L>(
    mut listener: L,
    runs: Arc<Runs>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) where
    L: axum::serve::Listener,
{
    tokio::pin!(shutdown);
    loop {
        let (io, _) = tokio::select! {
            () = &mut shutdown => return,
            c = listener.accept() => c,
        };
        let runs = runs.clone();
        tokio::spawn(async move {
            handle(io, &runs).await;
        });
    }
}

async fn handle<IO>(mut io: IO, runs: &Runs)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let head = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut io)).await {
        Ok(Some(h)) => h,
        _ => return,
    };
    let Some(port) = proxy_token(&head).and_then(|t| runs.port_for_token(&t)) else {
        io.write_all(REFUSED).await.ok();
        io.shutdown().await.ok();
        return;
    };
    let Ok(mut run) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return;
    };
    run.set_nodelay(true).ok();
    if run.write_all(&head).await.is_err() {
        return;
    }
    tokio::io::copy_bidirectional(&mut io, &mut run).await.ok();
}

/// Reads until the end of the first request head (`\r\n\r\n`); what was
/// read (possibly a little of what follows), or `None` past [`MAX_HEAD`]
/// or at end of stream.
async fn read_head<IO: AsyncRead + Unpin>(io: &mut IO) -> Option<Vec<u8>> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = io.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        let from = buf.len().saturating_sub(3);
        buf.extend_from_slice(&chunk[..n]);
        if buf[from..].windows(4).any(|w| w == b"\r\n\r\n") {
            return Some(buf);
        }
        if buf.len() > MAX_HEAD {
            return None;
        }
    }
}

/// The password of the first `Proxy-Authorization: Basic …` in `head`.
fn proxy_token(head: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(head).ok()?;
    let end = text.find("\r\n\r\n").unwrap_or(text.len());
    text[..end].split("\r\n").skip(1).find_map(|line| {
        let (name, value) = line.split_once(':')?;
        if !name.trim().eq_ignore_ascii_case("proxy-authorization") {
            return None;
        }
        let (scheme, cred) = value.trim().split_once(' ')?;
        if !scheme.eq_ignore_ascii_case("basic") {
            return None;
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(cred.trim())
            .ok()?;
        let decoded = String::from_utf8(decoded).ok()?;
        decoded.split_once(':').map(|(_, p)| p.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_the_basic_password_of_the_first_head() {
        let b64 = base64::engine::general_purpose::STANDARD.encode("authsome:tok123");
        let head = format!(
            "CONNECT api.acme.test:443 HTTP/1.1\r\nHost: api.acme.test:443\r\nproxy-authorization:  Basic {b64}\r\n\r\nrest"
        );
        assert_eq!(proxy_token(head.as_bytes()).as_deref(), Some("tok123"));
        let none = "CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n";
        assert_eq!(proxy_token(none.as_bytes()), None);
        let bearer = "CONNECT a:443 HTTP/1.1\r\nProxy-Authorization: Bearer tok\r\n\r\n";
        assert_eq!(proxy_token(bearer.as_bytes()), None);
        // Only the head counts, not a body that looks like a header.
        let body =
            format!("POST http://a/ HTTP/1.1\r\n\r\nProxy-Authorization: Basic {b64}\r\n\r\n");
        assert_eq!(proxy_token(body.as_bytes()), None);
    }

    #[tokio::test]
    async fn heads_end_at_the_blank_line_and_are_bounded() {
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        a.write_all(b"CONNECT x:1 HTTP/1.1\r\nHost: x:1\r")
            .await
            .unwrap();
        a.write_all(b"\n\r\nTLS").await.unwrap();
        let got = read_head(&mut b).await.unwrap();
        assert!(got.starts_with(b"CONNECT") && got.ends_with(b"\r\n\r\nTLS"));
        let (mut a, mut b) = tokio::io::duplex(64 * 1024);
        a.write_all(&vec![b'a'; MAX_HEAD + 10]).await.unwrap();
        assert!(read_head(&mut b).await.is_none());
    }
}
