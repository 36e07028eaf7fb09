//! The proxy's own threads.
//!
//! Each worker is one OS thread driving a current-thread tokio runtime, and
//! every proxy listener is served on all workers (the same socket, accepted
//! by whichever thread wakes first). A connection, its TLS sessions, the
//! request handler and the pooled upstream connection it uses therefore live
//! on one thread: a request crosses no thread inside the proxy. On a
//! multi-thread runtime, hyper's connection tasks and the handler's task
//! land on different workers, and every hand-off between them is a
//! cross-CPU wake-up, which on a small VM costs more than the proxy's own
//! work (see the README's benchmark section).
//!
//! The daemon's axum routes, login flows and refresh loop stay on the main
//! runtime; blocking work of the proxy (a vault read on a cache miss) goes
//! to each worker runtime's blocking pool.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::runtime::Handle;
use tokio::task::JoinSet;

use super::{Shared, serve};
use crate::error::{Error, Result};

/// The proxy's worker threads. Dropping this stops them.
pub struct Workers {
    handles: Vec<Handle>,
    /// Dropped with `Workers`: each thread's runtime then returns.
    _stop: Vec<tokio::sync::oneshot::Sender<()>>,
}

impl std::fmt::Debug for Workers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Workers")
            .field("threads", &self.handles.len())
            .finish()
    }
}

impl Workers {
    /// Starts `n` worker threads (at least one).
    pub fn start(n: usize) -> Result<Workers> {
        let mut handles = Vec::new();
        let mut stops = Vec::new();
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                // Linux shows 15 bytes of a thread name.
                .thread_name("authsome-pblock")
                .build()
                .map_err(|e| Error::io("cannot start the proxy's runtime", e))?;
            handles.push(rt.handle().clone());
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            stops.push(tx);
            std::thread::Builder::new()
                .name(format!("authsome-proxy{i}"))
                .spawn(move || {
                    rt.block_on(async move {
                        tokio::select! {
                            _ = rx => {}
                            () = anchor() => {}
                        }
                    });
                })
                .map_err(|e| Error::io("cannot start a proxy thread", e))?;
        }
        Ok(Workers {
            handles,
            _stop: stops,
        })
    }

    /// How many threads serve each listener.
    pub fn threads(&self) -> usize {
        self.handles.len()
    }

    /// Serves the proxy on `listener` on every worker until `shutdown`
    /// resolves (or a worker's server fails, which stops the others).
    pub async fn serve(
        &self,
        listener: std::net::TcpListener,
        shared: Arc<Shared>,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let mut set = JoinSet::new();
        for handle in &self.handles {
            let own = listener
                .try_clone()
                .map_err(|e| Error::io("cannot share the proxy's listener", e))?;
            let shared = shared.clone();
            let mut stop = stop_rx.clone();
            set.spawn_on(
                async move {
                    let listener = TcpListener::from_std(own)
                        .map_err(|e| Error::io("cannot register the proxy's listener", e))?;
                    let stopped = async move {
                        stop.wait_for(|s| *s).await.ok();
                    };
                    serve(listener, shared, stopped).await
                },
                handle,
            );
        }
        drop(listener);
        let mut result = Ok(());
        tokio::select! {
            () = shutdown => {}
            Some(first) = set.join_next() => result = joined(first),
        }
        stop_tx.send(true).ok();
        while let Some(r) = set.join_next().await {
            if result.is_ok() {
                result = joined(r);
            }
        }
        result
    }
}

/// How often each worker's anchor timer fires (see [`anchor`]).
const ANCHOR_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// Keeps a timer due within [`ANCHOR_EVERY`] on the worker's runtime, for
/// ever.
///
/// tokio's timer wheel wakes its own thread (an eventfd write, then one
/// more trip through `epoll_wait`) whenever a timer is armed that is due
/// before every timer armed so far, or when none is. hyper arms its 30 s
/// header-read timer each time a keep-alive connection goes back to
/// reading, which on an otherwise timer-free thread is after every
/// response: two syscalls and a spurious wake-up per request (seen with
/// `strace` on the proxy thread). With this timer always due sooner, a
/// request's timers never are the earliest, and the wheel stays quiet; it
/// costs one wake-up every five seconds.
async fn anchor() {
    loop {
        tokio::time::sleep(ANCHOR_EVERY).await;
    }
}

fn joined(r: std::result::Result<Result<()>, tokio::task::JoinError>) -> Result<()> {
    r.map_err(|e| {
        Error::io(
            "a proxy thread failed",
            std::io::Error::other(e.to_string()),
        )
    })?
}

/// A loopback listener with TCP_NODELAY (accepted sockets inherit it; without
/// it HTTP/2 clients stall ~40 ms on Nagle + delayed ACK), non-blocking, for
/// [`Workers::serve`].
pub fn bind_loopback(port: u16) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_tcp_nodelay(true)?;
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listeners_are_nodelay_loopback_and_nonblocking() {
        let l = bind_loopback(0).unwrap();
        let addr = l.local_addr().unwrap();
        assert!(addr.ip().is_loopback());
        assert_ne!(addr.port(), 0);
        // Non-blocking: accept with nobody connecting returns at once.
        let e = l.accept().unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock);
        let c = std::net::TcpStream::connect(addr).unwrap();
        let mut accepted = None;
        for _ in 0..1000 {
            match l.accept() {
                Ok((s, _)) => {
                    accepted = Some(s);
                    break;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(1))
                }
                Err(e) => panic!("{e}"),
            }
        }
        let s = accepted.expect("the connection was never accepted");
        assert!(s.nodelay().unwrap(), "accepted sockets inherit TCP_NODELAY");
        drop(c);
    }
}
