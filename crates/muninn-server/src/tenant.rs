//! Tenants: each tenant's spans, counts, roll-ups, sampling rules and idempotency keys live in a
//! store of its own (`<data_dir>/tenants/<id>/`, blocks under `tenants/<id>` of `[storage]`), so
//! no answer can mix them (docs/security.md#tenants). A request's tenant is its token's
//! (`[[auth.tokens]] tenant`), or the `X-Scope-OrgID` header set by a trusted proxy
//! (`tenant_header`), as Tempo and Mimir take it; a request with neither is the default tenant,
//! whose store is the data directory itself. Stores open on first use and at start for every
//! tenant directory found, each with its own maintenance (flushes, compaction, retention, scrub).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use muninn_store::{Store, StoreConfig};
use tokio::task::JoinHandle;

use crate::auth::ApiToken;
use crate::error::ApiError;
use crate::sampling::RuleSet;
use crate::server::AppState;
use crate::tail::{TailSampler, TailSamplingConfig};

/// The header a trusted proxy names the tenant in (Tempo's and Mimir's).
pub const TENANT_HEADER: &str = "X-Scope-OrgID";

/// Where tenants' stores live under the data directory and under `[storage]`.
const TENANTS_DIR: &str = "tenants";

/// The default of `TenancyConfig::max_tenants`.
pub const DEFAULT_MAX_TENANTS: usize = 64;

/// How requests name their tenant, and how many tenants one server holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenancyConfig {
    /// Take the tenant from `X-Scope-OrgID` when the token names none (the header is set by a
    /// proxy in front that authenticates callers); then a request with neither is refused
    /// (400, naming the header).
    /// Off (the default): a request carrying the header is refused, so that a caller expecting
    /// isolation never lands in the default tenant unawares.
    pub header: bool,
    /// Tenants with a store open at once, besides the default; a new tenant past it is
    /// answered 503. Each tenant's store has the store's memory bound of its own.
    pub max_tenants: usize,
}

impl Default for TenancyConfig {
    fn default() -> Self {
        TenancyConfig {
            header: false,
            max_tenants: DEFAULT_MAX_TENANTS,
        }
    }
}

/// A tenant's name: 1 to 64 of ASCII letters, digits, `-`, `_` and `.`, not starting with `.`
/// (it names a directory and an object-store prefix).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TenantId(String);

impl TenantId {
    /// The name, or what a valid one is.
    pub fn parse(text: &str) -> Result<TenantId, String> {
        let valid = !text.is_empty()
            && text.len() <= 64
            && !text.starts_with('.')
            && text
                .bytes()
                .all(|byte| byte.is_ascii_alphanumeric() || b"-_.".contains(&byte));
        if valid {
            Ok(TenantId(text.to_string()))
        } else {
            Err(format!(
                "{text:?} is not a tenant name; use 1 to 64 ASCII letters, digits, `-`, `_` and \
                 `.`, not starting with `.`"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.0)
    }
}

/// The tenant of a request, from its token and its `X-Scope-OrgID` value (`Err` when the header
/// is not text); `None` is the default tenant.
pub(crate) fn resolve(
    config: &TenancyConfig,
    header: Result<Option<&str>, ()>,
    token: Option<&ApiToken>,
) -> Result<Option<TenantId>, ApiError> {
    let refuse = |status, message: String| {
        Err(ApiError {
            field: Some(TENANT_HEADER.to_string()),
            ..ApiError::new(status, message)
        })
    };
    let header = match header {
        Err(()) => {
            return refuse(
                StatusCode::BAD_REQUEST,
                format!("{TENANT_HEADER} must be text, a tenant name"),
            );
        }
        Ok(header) => header.map(str::trim),
    };
    if let Some(tenant) = token.and_then(|token| token.tenant.as_ref()) {
        return match header {
            Some(named) if named != tenant.as_str() => refuse(
                StatusCode::FORBIDDEN,
                format!(
                    "token `{}` belongs to tenant `{tenant}`, and cannot act for `{named}`; \
                     leave {TENANT_HEADER} out, or use a token of that tenant",
                    token.map(|token| token.name.as_str()).unwrap_or_default()
                ),
            ),
            _ => Ok(Some(tenant.clone())),
        };
    }
    match header {
        Some(_) if !config.header => refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "this server does not take tenants from {TENANT_HEADER}; give the token a \
                 tenant ([[auth.tokens]] tenant), or set tenant_header = true when a trusted \
                 proxy sets the header"
            ),
        ),
        Some(named) => TenantId::parse(named).map(Some).or_else(|problem| {
            refuse(
                StatusCode::BAD_REQUEST,
                format!("{TENANT_HEADER}: {problem}"),
            )
        }),
        None if config.header => refuse(
            StatusCode::BAD_REQUEST,
            format!(
                "no tenant: send {TENANT_HEADER} naming the tenant (tenant_header is on), or use \
                 a token with a tenant"
            ),
        ),
        None => Ok(None),
    }
}

/// The tenants' states, opened on first use.
pub(crate) struct Tenants {
    config: TenancyConfig,
    /// The default tenant's store settings, of which each tenant's are made.
    store: StoreConfig,
    tail: Option<TailSamplingConfig>,
    open: RwLock<BTreeMap<TenantId, Arc<AppState>>>,
    /// Held while a store opens, so that two requests of a new tenant open it once.
    opening: tokio::sync::Mutex<()>,
    tasks: Mutex<Vec<(JoinHandle<()>, bool)>>,
    stop: tokio::sync::watch::Sender<bool>,
}

impl Tenants {
    pub fn new(
        config: TenancyConfig,
        store: StoreConfig,
        tail: Option<TailSamplingConfig>,
    ) -> Tenants {
        Tenants {
            config,
            store,
            tail,
            open: RwLock::new(BTreeMap::new()),
            opening: tokio::sync::Mutex::new(()),
            tasks: Mutex::new(Vec::new()),
            stop: tokio::sync::watch::channel(false).0,
        }
    }

    pub fn config(&self) -> &TenancyConfig {
        &self.config
    }

    /// The tenants whose directories the data directory holds, to open at start (their WAL
    /// replayed, their maintenance running) before any request of theirs.
    pub fn found_on_disk(&self) -> Vec<TenantId> {
        let Ok(entries) = std::fs::read_dir(self.store.data_dir.join(TENANTS_DIR)) else {
            return Vec::new();
        };
        let mut found: Vec<TenantId> = entries
            .flatten()
            .filter(|entry| entry.file_type().is_ok_and(|kind| kind.is_dir()))
            .filter_map(|entry| TenantId::parse(entry.file_name().to_str()?).ok())
            .collect();
        found.sort();
        found
    }

    /// Tenants with a store open now.
    pub fn open_count(&self) -> usize {
        self.open.read().map(|open| open.len()).unwrap_or_default()
    }

    /// The state of tenant `id`, made of `base` (the default tenant's) with the tenant's own
    /// store, rules, tail sampler, idempotency keys and schemas' first senders, and no archive.
    pub async fn state(
        &self,
        base: &Arc<AppState>,
        id: &TenantId,
    ) -> Result<Arc<AppState>, ApiError> {
        if let Some(state) = self.get(id) {
            return Ok(state);
        }
        let _opening = self.opening.lock().await;
        if let Some(state) = self.get(id) {
            return Ok(state);
        }
        if self.open_count() >= self.config.max_tenants {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!(
                    "tenant `{id}` cannot be opened: this server holds max_tenants ({}) tenants \
                     already; raise max_tenants",
                    self.config.max_tenants
                ),
            ));
        }
        let state = self.open_tenant(base, id).await?;
        if let Ok(mut open) = self.open.write() {
            open.insert(id.clone(), state.clone());
        }
        tracing::info!(tenant = %id, "tenant store opened");
        Ok(state)
    }

    /// The open tenants' states, by name.
    pub fn open_states(&self) -> Vec<(TenantId, Arc<AppState>)> {
        self.open
            .read()
            .map(|open| {
                open.iter()
                    .map(|(id, state)| (id.clone(), state.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn get(&self, id: &TenantId) -> Option<Arc<AppState>> {
        self.open.read().ok()?.get(id).cloned()
    }

    async fn open_tenant(
        &self,
        base: &Arc<AppState>,
        id: &TenantId,
    ) -> Result<Arc<AppState>, ApiError> {
        let unavailable = |what: String| {
            tracing::error!(tenant = %id, "{what}");
            ApiError::new(StatusCode::SERVICE_UNAVAILABLE, what)
        };
        let data_dir = tenant_dir(&self.store.data_dir, id);
        let mut config = StoreConfig {
            data_dir: data_dir.clone(),
            ..self.store.clone()
        };
        if let Some(blocks) = &mut config.blocks {
            blocks.location = blocks.location.child(TENANTS_DIR).child(id.as_str());
        }
        let sampling = RuleSet::load(&data_dir)
            .map_err(|problem| unavailable(format!("tenant `{id}`: {problem}")))?;
        let store = Store::open(config)
            .await
            .map_err(|error| unavailable(format!("opening the store of tenant `{id}`: {error}")))?;
        let mut tasks = Vec::new();
        let mut stopped = self.stop.subscribe();
        let maintained = store.clone();
        tasks.push((
            tokio::spawn(async move {
                maintained
                    .run_maintenance(async move {
                        let _ = stopped.wait_for(|stop| *stop).await;
                    })
                    .await;
            }),
            true,
        ));
        // A tenant's tail sampler counts into metrics of its own, which /metrics does not show:
        // the tail sampler's metrics are the default tenant's.
        let tail_sampler = self.tail.clone().map(|tail| {
            let sampler = Arc::new(TailSampler::new(
                tail,
                Arc::new(crate::tail::SystemClock::new()),
            ));
            crate::tail::install(&store, &sampler);
            tasks.push((
                tokio::spawn(crate::tail::run_ticker(sampler.clone())),
                false,
            ));
            sampler
        });
        if let Ok(mut all) = self.tasks.lock() {
            all.extend(tasks);
        }
        Ok(Arc::new(AppState {
            store,
            sampling: Arc::new(sampling),
            tail_sampler,
            idempotency: Default::default(),
            archive: None,
            first_senders: Default::default(),
            tenant: Some(id.clone()),
            ..(**base).clone()
        }))
    }

    /// Stops every tenant's maintenance, which flushes its head to blocks first.
    pub async fn stop(&self) {
        let _ = self.stop.send(true);
        let tasks = self
            .tasks
            .lock()
            .map(|mut tasks| std::mem::take(&mut *tasks))
            .unwrap_or_default();
        for (task, awaited) in tasks {
            if awaited {
                let _ = task.await;
            } else {
                task.abort();
            }
        }
        // Each tenant's state holds these `Tenants`: dropping the states ends the cycle, so
        // their stores close (a request still in flight keeps its own `Arc`).
        if let Ok(mut open) = self.open.write() {
            open.clear();
        }
    }
}

/// Where tenant `id`'s WAL (and, without `[storage]`, its blocks) live.
fn tenant_dir(data_dir: &Path, id: &TenantId) -> std::path::PathBuf {
    data_dir.join(TENANTS_DIR).join(id.as_str())
}

/// The state of the request's tenant (its token's, or `X-Scope-OrgID`'s; see [`resolve`]), for
/// the handlers of every route that reads or writes a tenant's data.
pub(crate) struct TenantState(pub Arc<AppState>);

impl FromRequestParts<Arc<AppState>> for TenantState {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let header = match parts.headers.get(TENANT_HEADER) {
            None => Ok(None),
            Some(value) => value.to_str().map(Some).map_err(|_| ()),
        };
        // The authentication middleware leaves the accepted token here.
        let token = parts.extensions.get::<ApiToken>();
        match resolve(state.tenants.config(), header, token)? {
            None => Ok(TenantState(state.clone())),
            Some(id) => state.tenants.state(state, &id).await.map(TenantState),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{Scope, new_token};

    #[test]
    fn tenant_names_are_path_segments_and_errors_say_what_is_valid() {
        for good in ["team-a", "A_1", "x", "org.example", &"a".repeat(64)] {
            assert_eq!(TenantId::parse(good).unwrap().as_str(), good);
        }
        for bad in ["", ".", "..", ".hidden", "a/b", "a b", "ü", &"a".repeat(65)] {
            assert!(
                TenantId::parse(bad)
                    .unwrap_err()
                    .contains("1 to 64 ASCII letters"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_tokens_tenant_wins_and_the_header_is_taken_only_when_trusted() {
        let mut with_tenant = ApiToken::for_token("a-writer", &new_token(), &[Scope::Ingest]);
        with_tenant.tenant = Some(TenantId::parse("a").unwrap());
        let plain = ApiToken::for_token("proxy", &new_token(), &[Scope::Ingest]);
        let off = TenancyConfig::default();
        let on = TenancyConfig {
            header: true,
            ..off
        };
        let tenant = |name: &str| Some(TenantId::parse(name).unwrap());
        let status = |result: Result<Option<TenantId>, ApiError>| result.unwrap_err().status;

        assert_eq!(resolve(&off, Ok(None), None).unwrap(), None);
        assert_eq!(resolve(&off, Ok(None), Some(&plain)).unwrap(), None);
        assert_eq!(
            resolve(&off, Ok(None), Some(&with_tenant)).unwrap(),
            tenant("a")
        );
        assert_eq!(
            resolve(&off, Ok(Some("a")), Some(&with_tenant)).unwrap(),
            tenant("a")
        );
        assert_eq!(
            status(resolve(&off, Ok(Some("b")), Some(&with_tenant))),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(resolve(&off, Ok(Some("b")), None)),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            resolve(&on, Ok(Some("b")), Some(&plain)).unwrap(),
            tenant("b")
        );
        assert_eq!(resolve(&on, Ok(Some(" b ")), None).unwrap(), tenant("b"));
        assert_eq!(
            status(resolve(&on, Ok(None), Some(&plain))),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(resolve(&on, Ok(Some("../b")), None)),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(status(resolve(&on, Err(()), None)), StatusCode::BAD_REQUEST);
        let error = resolve(&on, Ok(Some("b")), Some(&with_tenant)).unwrap_err();
        assert!(
            error.message.contains("belongs to tenant `a`"),
            "{}",
            error.message
        );
    }
}
