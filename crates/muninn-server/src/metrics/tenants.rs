//! Metrics of the tenants (`tenant.rs`): how many are open, and each open tenant's store by
//! `tenant` label — spans not yet in blocks, blocks, their bytes and spans, the WAL's bytes,
//! quarantined blocks — read from the stores at each scrape. The unlabelled store figures are
//! the default tenant's.

use std::sync::Arc;

use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Labels;
use crate::server::AppState;
use crate::tenant::TenantId;

pub(crate) struct TenantMetrics {
    open: Gauge,
    head_spans: Family<Labels, Gauge>,
    blocks: Family<Labels, Gauge>,
    block_bytes: Family<Labels, Gauge>,
    block_spans: Family<Labels, Gauge>,
    wal_bytes: Family<Labels, Gauge>,
    quarantined: Family<Labels, Gauge>,
}

impl TenantMetrics {
    pub(crate) fn register(registry: &mut Registry) -> TenantMetrics {
        let metrics = TenantMetrics {
            open: Gauge::default(),
            head_spans: Family::default(),
            blocks: Family::default(),
            block_bytes: Family::default(),
            block_spans: Family::default(),
            wal_bytes: Family::default(),
            quarantined: Family::default(),
        };
        registry.register(
            "tenants_open",
            "Tenants with a store open now, besides the default tenant (at most max_tenants)",
            metrics.open.clone(),
        );
        for (name, help, family) in [
            (
                "tenant_head_spans",
                "A tenant's spans acknowledged and not yet in blocks",
                &metrics.head_spans,
            ),
            ("tenant_blocks", "A tenant's blocks", &metrics.blocks),
            (
                "tenant_block_bytes",
                "Bytes of a tenant's blocks",
                &metrics.block_bytes,
            ),
            (
                "tenant_block_spans",
                "Spans in a tenant's blocks",
                &metrics.block_spans,
            ),
            (
                "tenant_wal_bytes",
                "Bytes of a tenant's write-ahead log",
                &metrics.wal_bytes,
            ),
            (
                "tenant_blocks_quarantined",
                "A tenant's blocks quarantined as damaged",
                &metrics.quarantined,
            ),
        ] {
            registry.register(name, help, family.clone());
        }
        metrics
    }

    /// Reads the open tenants' stores into the gauges.
    pub(crate) fn set(&self, tenants: &[(TenantId, Arc<AppState>)]) {
        self.open
            .set(i64::try_from(tenants.len()).unwrap_or(i64::MAX));
        let as_i64 = |value: u64| i64::try_from(value).unwrap_or(i64::MAX);
        for (id, state) in tenants {
            let stats = state.store.stats();
            let labels = vec![("tenant".to_string(), id.to_string())];
            for (family, value) in [
                (&self.head_spans, stats.head_spans + stats.flushing_spans),
                (&self.blocks, stats.n_blocks),
                (&self.block_bytes, stats.block_bytes),
                (&self.block_spans, stats.block_spans),
                (&self.wal_bytes, stats.wal_bytes),
                (&self.quarantined, stats.quarantined_blocks),
            ] {
                family.get_or_create(&labels).set(as_i64(value));
            }
        }
    }
}
