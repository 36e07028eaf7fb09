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
use super::record::{Recorder, count_up};
use super::send::upstream_error;
use super::shared::{Handler, Note, refuse};

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
        // Not reached: requests are sent by `send`, never by hudsucker.
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
            let start = std::time::Instant::now();
            self.note = Note::default();
            let method = req.method().clone();
            let (host, port) = self.target_of(&req);
            let mut recorder = Recorder::new(
                self.shared.log.clone(),
                &self.shared.run_id,
                start,
                &self.shared.placeholders.mask(method.as_str()),
                &host,
                port,
                &self.shared.placeholders.mask(req.uri().path()),
            );
            let mut req = req;
            recorder.bytes_up = count_up(&mut req);
            let res = match self.decide(req).await {
                Ok(RequestOrResponse::Request(req)) if req.method() == Method::CONNECT => {
                    self.refused(misdirected_connect())
                }
                Ok(RequestOrResponse::Request(req)) => {
                    recorder.note(&self.note);
                    return self.send(req, recorder).await;
                }
                // A CONNECT answered: its tunnel records itself (a blind one
                // as a tunnel, an intercepted one request by request).
                Ok(RequestOrResponse::Response(res)) if method == Method::CONNECT => return res,
                Ok(RequestOrResponse::Response(res)) => res,
                Err(e) => self.refused(e),
            };
            recorder.note(&self.note);
            recorder.attach(res)
        })
    }

    /// Answers a refusal: counted for `authsome run` to show, noted for
    /// the request log.
    fn refused(&mut self, e: super::error::ProxyError) -> Response<Body> {
        self.note.refused = Some(e.code);
        refuse(e, &self.shared.stats)
    }

    /// The host and port a request is for, as far as the request log goes
    /// (the tunnel's, or the absolute-form target's).
    fn target_of(&self, req: &Request<Body>) -> (String, u16) {
        if let Some(t) = &self.tunnel {
            return (t.host.clone(), t.port);
        }
        let https = req.uri().scheme() == Some(&http::uri::Scheme::HTTPS)
            || req.method() == Method::CONNECT;
        match req.uri().authority() {
            Some(a) => (
                super::hosts::normalize_host(a.host()).unwrap_or_default(),
                a.port_u16().unwrap_or(if https { 443 } else { 80 }),
            ),
            None => (String::new(), 0),
        }
    }
}
