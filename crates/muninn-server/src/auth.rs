//! Authentication: bearer tokens with scopes (`ingest`, `read`, `admin`), checked on every API
//! route and on OTLP/gRPC (docs/security.md). The server keeps only each token's SHA-256 (a
//! token is 32 random bytes, so a plain hash is as strong as the token) and compares hashes in
//! constant time. A missing or unknown token is answered `401` with `WWW-Authenticate`; a token
//! without the scope a route needs, `403` naming the scope.

use std::fmt;
use std::sync::Arc;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::server::AppState;

/// What a token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    /// Send spans and counts (`/api/v1/spans`, OTLP, Zipkin's POST), read the sampling config.
    Ingest,
    /// Every question: queries, Jaeger's and Zipkin's query APIs, the archive's messages.
    Read,
    /// Change sampling rules, flush, compact.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Ingest, Scope::Read, Scope::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|scope| scope.name() == text)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.name())
    }
}

/// The SHA-256 of a token, written `sha256:` and 64 hex digits in configuration files.
#[derive(Clone, PartialEq, Eq)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(token: &str) -> TokenHash {
        TokenHash(Sha256::digest(token.as_bytes()).into())
    }

    /// `sha256:` and 64 hex digits; the error says what is valid.
    pub fn parse(text: &str) -> Result<TokenHash, String> {
        let problem =
            || "use `sha256:` and 64 hex digits, as `muninn token new` prints them".to_string();
        let hex = text.strip_prefix("sha256:").ok_or_else(problem)?;
        if hex.len() != 64 {
            return Err(problem());
        }
        let mut bytes = [0u8; 32];
        for (index, byte) in bytes.iter_mut().enumerate() {
            *byte =
                u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16).map_err(|_| problem())?;
        }
        Ok(TokenHash(bytes))
    }
}

impl fmt::Display for TokenHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("sha256:")?;
        self.0
            .iter()
            .try_for_each(|byte| write!(formatter, "{byte:02x}"))
    }
}

// A hash in a log line is harmless, but there is no need for it there.
impl fmt::Debug for TokenHash {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("TokenHash(…)")
    }
}

/// A new token: `mnn_` and 32 random bytes in hex, from the operating system's generator
/// (through `rand`'s thread generator, which it seeds).
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    let mut token = String::with_capacity(68);
    token.push_str("mnn_");
    for byte in bytes {
        token.push_str(&format!("{byte:02x}"));
    }
    token
}

/// One accepted token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// Who holds it (in logs and errors; never the token).
    pub name: String,
    pub hash: TokenHash,
    pub scopes: Vec<Scope>,
    /// Its ingest rate limit (`rate_limit.rs`); `None`: unlimited.
    pub ingest_rate: Option<crate::rate_limit::RateLimit>,
    /// The tenant whose data it writes and reads (`tenant.rs`); `None`: the default tenant, or
    /// the one a trusted proxy names in `X-Scope-OrgID`.
    pub tenant: Option<crate::tenant::TenantId>,
}

impl ApiToken {
    /// The entry accepting `token` (what `muninn token new` prints for it, as a value).
    pub fn for_token(name: &str, token: &str, scopes: &[Scope]) -> ApiToken {
        ApiToken {
            name: name.to_string(),
            hash: TokenHash::of(token),
            scopes: scopes.to_vec(),
            ingest_rate: None,
            tenant: None,
        }
    }
}

/// `[auth]`: the tokens accepted, and which monitoring routes stay open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthConfig {
    pub tokens: Vec<ApiToken>,
    /// `/healthz` answers without a token (the default: probes rarely carry one).
    pub open_healthz: bool,
    /// `/metrics` answers without a token (the default: Prometheus scrapes without one unless
    /// told).
    pub open_metrics: bool,
}

impl AuthConfig {
    pub fn new(tokens: Vec<ApiToken>) -> AuthConfig {
        AuthConfig {
            tokens,
            open_healthz: true,
            open_metrics: true,
        }
    }

    /// The token whose hash `presented` has, comparing every configured hash in constant time.
    pub fn find(&self, presented: &str) -> Option<&ApiToken> {
        let hash = TokenHash::of(presented);
        let mut found = None;
        for token in &self.tokens {
            if bool::from(token.hash.0.ct_eq(&hash.0)) {
                found = Some(token);
            }
        }
        found
    }

    /// Checks a request's `authorization` value against the scope its route needs; the token
    /// that was presented.
    pub fn check(&self, authorization: Option<&str>, needs: Needs) -> Result<&ApiToken, Refusal> {
        let Some(authorization) = authorization else {
            return Err(Refusal::Missing);
        };
        let Some(presented) = bearer(authorization) else {
            return Err(Refusal::NotBearer);
        };
        let token = self.find(presented).ok_or(Refusal::Unknown)?;
        if needs
            .scopes()
            .iter()
            .any(|scope| token.scopes.contains(scope))
        {
            Ok(token)
        } else {
            Err(Refusal::Scope {
                token: token.name.clone(),
                needs,
            })
        }
    }
}

/// The token of `Bearer TOKEN` (the scheme in any case, as RFC 7235 has it).
fn bearer(authorization: &str) -> Option<&str> {
    let (scheme, token) = authorization.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// The scope a route needs: one, or either of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    One(Scope),
    Either(Scope, Scope),
}

impl Needs {
    fn scopes(self) -> Vec<Scope> {
        match self {
            Needs::One(scope) => vec![scope],
            Needs::Either(first, second) => vec![first, second],
        }
    }
}

impl fmt::Display for Needs {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Needs::One(scope) => write!(formatter, "the {scope} scope"),
            Needs::Either(first, second) => write!(formatter, "the {first} or the {second} scope"),
        }
    }
}

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    NotBearer,
    Unknown,
    Scope { token: String, needs: Needs },
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::Scope { .. } => StatusCode::FORBIDDEN,
            _ => StatusCode::UNAUTHORIZED,
        }
    }

    /// The message, naming what the request lacked and how to get it; `what` names the
    /// request (`POST /api/v1/admin/flush`).
    pub fn message(&self, what: &str) -> String {
        match self {
            Refusal::Missing => format!(
                "{what} needs a token: send `Authorization: Bearer TOKEN` (muninn token new \
                 creates one)"
            ),
            Refusal::NotBearer => format!(
                "{what}: the Authorization header must be `Bearer TOKEN`, with a token from \
                 `muninn token new`"
            ),
            Refusal::Unknown => {
                format!("{what}: the token is not one this server accepts ([auth] tokens)")
            }
            Refusal::Scope { token, needs } => format!(
                "{what} needs {needs}, which token `{token}` does not have; create a token with \
                 `muninn token new --scope {}`",
                needs.scopes()[0]
            ),
        }
    }

    /// `WWW-Authenticate`, as RFC 6750 writes it.
    pub fn challenge(&self) -> String {
        match self {
            Refusal::Missing | Refusal::NotBearer => "Bearer realm=\"muninn\"".to_string(),
            Refusal::Unknown => "Bearer realm=\"muninn\", error=\"invalid_token\"".to_string(),
            Refusal::Scope { needs, .. } => format!(
                "Bearer realm=\"muninn\", error=\"insufficient_scope\", scope=\"{}\"",
                needs
                    .scopes()
                    .iter()
                    .map(|scope| scope.name())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }
    }

    /// The gRPC status of the same refusal.
    pub fn grpc_status(&self, what: &str) -> tonic::Status {
        match self {
            Refusal::Scope { .. } => tonic::Status::permission_denied(self.message(what)),
            _ => tonic::Status::unauthenticated(self.message(what)),
        }
    }
}

/// The scope a request needs, by route and method; `None` for a route open to anyone.
pub fn needs(config: &AuthConfig, method: &Method, route: &str) -> Option<Needs> {
    match route {
        "/healthz" if config.open_healthz => return None,
        "/metrics" if config.open_metrics => return None,
        // The API's description holds no data.
        "/api/v1/openapi.yaml" => return None,
        // The SDKs read it with their ingest token; the UI with its read token.
        "/api/v1/sampling/config" => return Some(Needs::Either(Scope::Ingest, Scope::Read)),
        _ => {}
    }
    let read = *method == Method::GET || *method == Method::HEAD;
    let scope = match route {
        "/api/v1/spans" | "/v1/traces" | "/api/v1/counts" | "/api/v2/spans" if !read => {
            Scope::Ingest
        }
        _ if read => Scope::Read,
        // Flush, compact, and changes of sampling rules; and any other method, to be safe.
        _ => Scope::Admin,
    };
    Some(Needs::One(scope))
}

/// The middleware in front of every API route (not the UI's pages and files, which hold no
/// data: the UI's calls to the API carry its token).
pub(crate) async fn require_token(
    State(state): State<Arc<AppState>>,
    request: Request,
    next: Next,
) -> Response {
    let Some(auth) = &state.auth else {
        return next.run(request).await;
    };
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string())
        .unwrap_or_else(|| request.uri().path().to_string());
    let Some(needed) = needs(auth, request.method(), &route) else {
        return next.run(request).await;
    };
    match auth.check(authorization(request.headers()), needed) {
        Ok(token) => {
            let mut request = request;
            // For the tenant's state (`tenant::TenantState`).
            request.extensions_mut().insert(token.clone());
            if needed != Needs::One(Scope::Ingest) {
                return next.run(request).await;
            }
            match limit_rate(&state, &token.name, request) {
                Ok(request) => next.run(request).await,
                Err(refused) => refused,
            }
        }
        Err(refusal) => {
            state.metrics.count_auth_refusal(&refusal);
            let what = format!("{} {}", request.method(), request.uri().path());
            refuse(&refusal, &what)
        }
    }
}

/// Admits an ingest request under its token's rate limit (`rate_limit.rs`): a body of known
/// length is charged now, one of unknown length as it arrives; or the `429` refusing it.
#[allow(clippy::result_large_err)]
fn limit_rate(state: &Arc<AppState>, token: &str, request: Request) -> Result<Request, Response> {
    if state.rate_limits.limit(token).is_none() {
        return Ok(request);
    }
    let length = axum::body::HttpBody::size_hint(request.body()).exact();
    if let Err(refused) = crate::rate_limit::admit(state, token, length) {
        let mut response =
            ApiError::new(axum::http::StatusCode::TOO_MANY_REQUESTS, refused.message)
                .into_response();
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from(refused.retry_after_seconds),
        );
        return Err(response);
    }
    if length.is_some() {
        return Ok(request);
    }
    let (parts, body) = request.into_parts();
    let charged = state.clone();
    let token = token.to_string();
    let body = http_body_util::BodyExt::map_frame(body, move |frame| {
        if let Some(data) = frame.data_ref() {
            charged
                .rate_limits
                .charge(&token, data.len() as u64, std::time::Instant::now());
        }
        frame
    });
    Ok(Request::from_parts(parts, axum::body::Body::new(body)))
}

fn refuse(refusal: &Refusal, what: &str) -> Response {
    let mut response = ApiError::new(refusal.status(), refusal.message(what)).into_response();
    if let Ok(value) = HeaderValue::from_str(&refusal.challenge()) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

/// The `authorization` header as text, if it is text.
pub fn authorization(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_reads_back_as_written_and_bad_ones_say_what_is_valid() {
        let token = new_token();
        assert!(token.starts_with("mnn_") && token.len() == 68, "{token}");
        let hash = TokenHash::of(&token);
        assert_eq!(TokenHash::parse(&hash.to_string()).unwrap(), hash);
        for bad in [
            "",
            "sha256:",
            "md5:00",
            &format!("sha256:{}", "zz".repeat(32)),
        ] {
            assert!(TokenHash::parse(bad).unwrap_err().contains("64 hex digits"));
        }
        assert_ne!(new_token(), token);
    }

    #[test]
    fn tokens_are_checked_for_the_scope_the_route_needs() {
        let writer = new_token();
        let admin = new_token();
        let config = AuthConfig::new(vec![
            ApiToken::for_token("writer", &writer, &[Scope::Ingest]),
            ApiToken::for_token("ops", &admin, &[Scope::Admin, Scope::Read]),
        ]);
        let post_spans = needs(&config, &Method::POST, "/api/v1/spans").unwrap();
        let flush = needs(&config, &Method::POST, "/api/v1/admin/flush").unwrap();
        let lineage = needs(&config, &Method::GET, "/api/v1/lineage").unwrap();
        let rules = needs(&config, &Method::GET, "/api/v1/sampling/config").unwrap();
        let bearer = |token: &str| format!("Bearer {token}");
        let name = |result: Result<&ApiToken, Refusal>| result.map(|token| token.name.clone());
        let (writer_name, ops) = (Ok("writer".to_string()), Ok("ops".to_string()));
        assert_eq!(
            name(config.check(Some(&bearer(&writer)), post_spans)),
            writer_name
        );
        assert_eq!(
            name(config.check(Some(&bearer(&writer)), rules)),
            writer_name
        );
        assert_eq!(name(config.check(Some(&bearer(&admin)), rules)), ops);
        assert_eq!(
            name(config.check(Some(&format!("bearer  {admin} ")), flush)),
            ops
        );
        assert_eq!(name(config.check(Some(&bearer(&admin)), lineage)), ops);
        assert_eq!(
            config.check(Some(&bearer(&writer)), lineage),
            Err(Refusal::Scope {
                token: "writer".into(),
                needs: Needs::One(Scope::Read)
            })
        );
        assert_eq!(config.check(None, lineage), Err(Refusal::Missing));
        assert_eq!(
            config.check(Some(&format!("Basic {admin}")), lineage),
            Err(Refusal::NotBearer)
        );
        assert_eq!(
            config.check(Some(&bearer(&new_token())), lineage),
            Err(Refusal::Unknown)
        );
        assert_eq!(needs(&config, &Method::GET, "/healthz"), None);
        let closed = AuthConfig {
            open_metrics: false,
            ..config.clone()
        };
        assert_eq!(
            needs(&closed, &Method::GET, "/metrics"),
            Some(Needs::One(Scope::Read))
        );
        assert_eq!(
            needs(&config, &Method::DELETE, "/api/v1/sampling/rules/{id}"),
            Some(Needs::One(Scope::Admin))
        );
    }
}
