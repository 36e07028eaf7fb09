//! The hudsucker adapter.
//!
//! [`Handler`] implements hudsucker's `HttpHandler` and does nothing
//! itself: every request goes to `decide` (in `decide.rs`) and, unless it
//! was refused or was a CONNECT, to `send` (in `send.rs`). hudsucker's own
//! client, WebSocket path and CONNECT handling are never used; it accepts
//! connections and hands their requests here.
//!
//! Where the rest lives: the types every request of a listener shares
//! (`Shared`, `Stats`, the handler itself) in `shared.rs`; the decisions
//! (proxy authentication, CONNECT, tunnel binding, route + credential +
//! inject, the loop guard and the pure helpers they use) in `decide.rs`;
//! sending upstream in the child's protocol, the WebSocket relay and
//! upstream errors in words in `send.rs`; dialling, blind tunnels and
//! serving intercepted tunnels in `tunnel.rs`.

use http::{Method, Request, Response};
use hudsucker::{Body, HttpContext, HttpHandler, RequestOrResponse};

use super::decide::misdirected_connect;
use super::send::upstream_error;
use super::shared::Handler;
use super::shared::refuse;

impl HttpHandler for Handler {
    async fn handle_request(
        &mut self,
        _ctx: &HttpContext,
        req: Request<Body>,
    ) -> RequestOrResponse {
        RequestOrResponse::Response(self.answer(req).await)
    }

    async fn should_intercept_connect(&mut self, _ctx: &HttpContext, _req: &Request<Body>) -> bool {
        // Every CONNECT is answered by `decide` (intercepted tunnels are
        // served by `serve_tunnel`); hudsucker never opens one itself.
        false
    }

    async fn handle_error(
        &mut self,
        _ctx: &HttpContext,
        err: hyper_util::client::legacy::Error,
    ) -> Response<Body> {
        upstream_error(&err, self.target.as_deref().unwrap_or("the upstream")).into_response()
    }
}

impl Handler {
    /// Decides and, for anything but a refusal or a CONNECT (answered by
    /// `decide`), sends. hudsucker's own client and CONNECT handling are
    /// never used: it would dial names itself, past the loop guard.
    ///
    /// Boxed: a request inside an intercepted tunnel is answered here too,
    /// from the task the CONNECT spawned (a cycle of futures otherwise).
    pub(super) fn answer(
        &mut self,
        req: Request<Body>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send + '_>> {
        Box::pin(async move {
            match self.decide(req).await {
                Ok(RequestOrResponse::Request(req)) if req.method() == Method::CONNECT => {
                    refuse(misdirected_connect(), &self.shared.stats)
                }
                Ok(RequestOrResponse::Request(req)) => self.send(req).await,
                Ok(RequestOrResponse::Response(res)) => res,
                Err(e) => refuse(e, &self.shared.stats),
            }
        })
    }
}
