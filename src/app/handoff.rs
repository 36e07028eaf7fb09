//! The daemon's Unix socket `$AUTHSOME_HOME/run.sock`, where `authsome run`
//! hands over the listening socket its sandboxed child opened inside its own
//! network namespace. The proxy then accepts the child's connections on it
//! directly: no forwarding process, no extra copy.
//!
//! Who may use it: the socket lives in the 0700 home (which a sandboxed
//! child cannot see), the peer must be the daemon's own uid (checked with
//! `SO_PEERCRED`), and the message must name a run and carry that run's
//! proxy token. One message per connection: `"<run id> <token>"` with the
//! listener attached (SCM_RIGHTS); the answer is one line, `ok` or
//! `error: …`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use super::runs::Runs;

/// `$AUTHSOME_HOME/run.sock`.
pub fn socket_path(home: &Path) -> PathBuf {
    home.join("run.sock")
}

/// Binds `run.sock` (replacing a stale one), mode 0600.
pub fn bind(home: &Path) -> std::io::Result<tokio::net::UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(home);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let l = tokio::net::UnixListener::bind(&path)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

/// Serves hand-overs until `shutdown`.
pub async fn serve(
    listener: tokio::net::UnixListener,
    runs: Arc<Runs>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => return,
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "run.sock: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let runs = runs.clone();
        tokio::spawn(async move {
            match stream.peer_cred() {
                Ok(c) if c.uid() == rustix::process::geteuid().as_raw() => {}
                Ok(c) => {
                    tracing::warn!(uid = c.uid(), "run.sock: refused a peer of another user");
                    return;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "run.sock: cannot read the peer's credentials");
                    return;
                }
            }
            let Ok(std_stream) = stream.into_std() else {
                return;
            };
            let r = tokio::task::spawn_blocking(move || handle(std_stream, &runs)).await;
            if let Ok(Err(e)) = r {
                tracing::warn!(error = %e, "run.sock: hand-over failed");
            }
        });
    }
}

fn handle(mut s: std::os::unix::net::UnixStream, runs: &Runs) -> std::io::Result<()> {
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    let answer = match crate::sandbox::recv_listener(&s) {
        Ok((text, Some(fd))) => {
            let text = String::from_utf8_lossy(&text);
            let mut parts = text.split_whitespace();
            match (parts.next(), parts.next()) {
                (Some(id), Some(token)) => {
                    match runs.attach(id, token, std::net::TcpListener::from(fd)) {
                        Ok(()) => "ok\n".to_string(),
                        Err(e) => format!("error: {e}\n"),
                    }
                }
                _ => "error: expected `<run id> <token>`\n".to_string(),
            }
        }
        Ok((_, None)) => "error: no listener attached\n".to_string(),
        Err(e) => format!("error: {e}\n"),
    };
    s.write_all(answer.as_bytes())
}

/// The CLI's side: hands `listener` over for run `id`.
pub fn hand_over(
    home: &Path,
    id: &str,
    token: &str,
    listener: &std::net::TcpListener,
) -> anyhow::Result<()> {
    use anyhow::Context;
    use std::io::Read;
    let path = socket_path(home);
    let mut s = std::os::unix::net::UnixStream::connect(&path)
        .with_context(|| format!("cannot reach the daemon at {}", path.display()))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    crate::sandbox::send_listener(&s, format!("{id} {token}").as_bytes(), listener)
        .context("cannot hand the sandbox's socket to the daemon")?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)
        .context("no answer from the daemon about the sandbox's socket")?;
    match answer.trim() {
        "ok" => Ok(()),
        other => Err(anyhow::anyhow!(
            "the daemon refused the sandbox's socket: {}",
            other.trim_start_matches("error: ")
        )),
    }
}
