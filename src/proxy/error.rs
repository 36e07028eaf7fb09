//! The proxy's own answers: every refusal and failure is a JSON body with a
//! stable `error` code (`authsome_…`), a sentence for the person reading it,
//! whose fault it was, and a hint with the command that fixes it. The same
//! code is in the `x-authsome-error` header for clients that hide bodies.

use http::{Response, StatusCode, header};
use hudsucker::Body;
use serde_json::json;

/// Whose fault a failure is (picks the log level, shown in the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The client (the agent) sent something we refuse.
    Downstream,
    /// The upstream could not be reached or misbehaved.
    Upstream,
    /// authsome itself (configuration, vault, credentials).
    Internal,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Source::Downstream => "client",
            Source::Upstream => "upstream",
            Source::Internal => "authsome",
        }
    }
}

/// A refusal or failure the proxy answers itself.
#[derive(Debug, Clone)]
pub struct ProxyError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub source: Source,
    pub hint: Option<String>,
    pub provider: Option<String>,
    pub host: Option<String>,
    /// An expected step rather than a problem (the `407` challenge a
    /// client answers by retrying with its credentials): recorded in the
    /// request log, not shown by `authsome run`.
    pub quiet: bool,
}

impl ProxyError {
    /// A new error.
    pub fn new(
        status: StatusCode,
        code: &'static str,
        source: Source,
        message: impl Into<String>,
    ) -> ProxyError {
        ProxyError {
            status,
            code,
            message: message.into(),
            source,
            hint: None,
            provider: None,
            host: None,
            quiet: false,
        }
    }

    /// Marks an expected step (see [`ProxyError::quiet`]).
    pub fn quiet(mut self) -> ProxyError {
        self.quiet = true;
        self
    }

    /// Adds a hint.
    pub fn hint(mut self, hint: impl Into<String>) -> ProxyError {
        self.hint = Some(hint.into());
        self
    }

    /// Names the provider.
    pub fn provider(mut self, provider: &str) -> ProxyError {
        self.provider = Some(provider.to_string());
        self
    }

    /// Names the host.
    pub fn host(mut self, host: &str) -> ProxyError {
        self.host = Some(host.to_string());
        self
    }

    /// The response the client gets.
    pub fn into_response(self) -> Response<Body> {
        match self.source {
            Source::Downstream => {
                tracing::info!(code = self.code, host = ?self.host, "refused: {}", self.message)
            }
            Source::Upstream => {
                tracing::warn!(code = self.code, host = ?self.host, "upstream failed: {}", self.message)
            }
            Source::Internal => {
                tracing::warn!(code = self.code, provider = ?self.provider, "{}", self.message)
            }
        }
        let mut body = json!({
            "error": self.code,
            "message": format!("authsome: {}", self.message),
            "fault": self.source.as_str(),
        });
        if let Some(p) = &self.provider {
            body["provider"] = json!(p);
        }
        if let Some(h) = &self.host {
            body["host"] = json!(h);
        }
        if let Some(h) = &self.hint {
            body["hint"] = json!(h);
        }
        let mut b = Response::builder()
            .status(self.status)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-authsome-error", self.code)
            .header(header::CACHE_CONTROL, "no-store");
        if self.status == StatusCode::PROXY_AUTHENTICATION_REQUIRED {
            b = b.header(header::PROXY_AUTHENTICATE, "Basic realm=\"authsome\"");
        }
        let text = format!("{body}\n");
        b.body(Body::from(text.clone()))
            .unwrap_or_else(|_e| Response::new(Body::from(text)))
    }
}
