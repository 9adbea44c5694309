//! A query node's store (`StoreRole::ReadOnly`): it reads the committed blocks of every node
//! under `nodes/` of a shared bucket and mirrors what each ingest node holds in its head, so
//! that its answers are those of one node holding everything. Every `refresh_every` it lists
//! the blocks again (new flushes and compactions appear, replaced blocks go), asks each ingest
//! node (its URL in `nodes/<node>/node.json`) for the WAL records of its head past those it
//! has, drops the mirrored records the node's committed blocks now hold (by WAL sequence
//! number: a flush's blocks name the last record they hold), and rebuilds the roll-ups from the
//! blocks' cells and the mirrored records. An ingest node that does not answer keeps its last
//! mirror, and look-ups name it as missing until it answers again.
//!
//! An ingest node serves its head with `head_since` and registers its URL with
//! `register_node`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures::future::BoxFuture;
use muninn_model::{EventCount, Span};
use object_store::ObjectStoreExt;
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use super::head::{Head, HeadBatch};
use super::recovery::{self, cells_to_delta};
use super::{Store, StoreRole};
use crate::block::{BlockHandle, NODES_PREFIX};
use crate::error::{StoreError, StoreErrorKind};
use crate::rollup::{self, RollupDelta, Rollups};

/// Asks the ingest node at a URL for its head's records past a WAL sequence number: the
/// `postcard` bytes of `HeadRecords` (`GET {url}/api/v1/internal/head?after={seq}`), or why
/// not. Set by the server (`Store::set_head_fetcher`), which owns the HTTP client.
pub type HeadFetcher =
    Arc<dyn Fn(String, u64) -> BoxFuture<'static, Result<Vec<u8>, String>> + Send + Sync>;

/// What an ingest node's head holds past a sequence number, oldest first.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct HeadRecords {
    pub records: Vec<HeadRecord>,
}

/// One WAL record still in an ingest node's head.
#[derive(Debug, Serialize, Deserialize)]
pub struct HeadRecord {
    pub seq: u64,
    pub spans: Vec<Span>,
    pub counts: Vec<EventCount>,
}

/// An ingest node's registration, `nodes/<node>/node.json`.
#[derive(Debug, Serialize, Deserialize)]
struct NodeFile {
    node: String,
    url: String,
}

/// A query node's view of the cluster, beyond its blocks.
#[derive(Default)]
pub(crate) struct ClusterState {
    /// Each block's roll-up cells, read once.
    block_deltas: HashMap<Path, Arc<RollupDelta>>,
    /// By node prefix (`nodes/<node>`).
    mirrors: BTreeMap<String, NodeMirror>,
}

#[derive(Default)]
struct NodeMirror {
    /// The node's records not yet in its committed blocks, by sequence number.
    records: BTreeMap<u64, (Arc<HeadBatch>, RollupDelta)>,
    last_seq: u64,
}

impl Store {
    /// Whether this is a query node's store.
    pub fn is_read_only(&self) -> bool {
        matches!(self.shared.config.role, StoreRole::ReadOnly { .. })
    }

    /// The refusal of a write to a query node's store.
    pub(crate) fn refuse_if_read_only(&self, what: &str) -> Result<(), StoreError> {
        if self.is_read_only() {
            return Err(StoreError::new(
                StoreErrorKind::ReadOnly,
                format!(
                    "this node is a query node (role query): {what} happens on the ingest nodes"
                ),
            ));
        }
        Ok(())
    }

    /// How a query node asks ingest nodes for their heads (without one, it answers from
    /// committed blocks alone).
    pub fn set_head_fetcher(&self, fetcher: HeadFetcher) {
        if let Ok(mut slot) = self.shared.head_fetcher.write() {
            *slot = Some(fetcher);
        }
    }

    /// An ingest node's head past WAL record `after`, for a query node: the heads being
    /// flushed, then the live one. The batches are decoded after the locks are let go.
    pub fn head_since(&self, after: u64) -> Result<HeadRecords, StoreError> {
        let shared = &self.shared;
        let mut batches: Vec<Arc<HeadBatch>> = Vec::new();
        let mut collect = |head: &Head| {
            batches.extend(
                head.batches
                    .iter()
                    .filter(|batch| batch.seq > after)
                    .cloned(),
            );
        };
        if let Ok(flushing) = shared.flushing.read() {
            for head in flushing.iter() {
                collect(head);
            }
        }
        if let Ok(head) = shared.head.read() {
            collect(&head);
        }
        let mut records = Vec::with_capacity(batches.len());
        for batch in batches {
            records.push(HeadRecord {
                seq: batch.seq,
                spans: batch.spans()?,
                counts: batch.counts.clone(),
            });
        }
        records.sort_by_key(|record| record.seq);
        Ok(HeadRecords { records })
    }

    /// Writes `node.json` for a node with `[storage] node`: where query nodes ask for its head.
    pub async fn register_node(&self, node: &str, url: &str) -> Result<(), StoreError> {
        let path = Path::from("node.json");
        let bytes = serde_json::to_vec_pretty(&NodeFile {
            node: node.to_string(),
            url: url.to_string(),
        })
        .map_err(|error| StoreError::corrupt(error.to_string()))?;
        self.shared
            .object_store
            .put(&path, bytes.into())
            .await
            .map_err(|error| StoreError::object_store(&path, error))?;
        Ok(())
    }

    /// The ingest nodes a query node could not reach at its last refresh, as look-ups name
    /// them.
    pub(crate) fn missing_nodes(&self) -> Vec<String> {
        self.shared
            .missing_nodes
            .read()
            .map(|missing| missing.clone())
            .unwrap_or_default()
    }

    /// A query node: lists the nodes' committed blocks again, asks each ingest node for its
    /// head, and takes the new view (blocks still there keep what they have opened) with
    /// roll-ups rebuilt from it. Returns whether anything changed; a read-write store never
    /// changes here.
    pub async fn refresh_cluster(&self) -> Result<bool, StoreError> {
        if !self.is_read_only() {
            return Ok(false);
        }
        let shared = &self.shared;
        let mut state = shared.cluster.lock().await;
        let found = recovery::load_cluster_blocks(&shared.object_store).await?;
        let current: HashMap<Path, Arc<BlockHandle>> = shared
            .blocks
            .read()
            .map(|blocks| {
                blocks
                    .iter()
                    .map(|handle| (handle.dir.clone(), handle.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let mut changed = found.len() != current.len()
            || found
                .iter()
                .any(|handle| !current.contains_key(&handle.dir));
        let mut blocks = Vec::with_capacity(found.len());
        let mut committed: HashMap<String, u64> = HashMap::new();
        for handle in found {
            let handle = match current.get(&handle.dir) {
                Some(opened) => opened.clone(),
                None => {
                    let room = shared.trace_filter_room(&[]);
                    let _ = handle.warm(&shared.object_store, room).await;
                    handle
                }
            };
            if !state.block_deltas.contains_key(&handle.dir) {
                let cells = handle.read_rollup(&shared.object_store).await?;
                state
                    .block_deltas
                    .insert(handle.dir.clone(), Arc::new(cells_to_delta(cells)));
            }
            let node = node_of(&handle.dir);
            let seq = committed.entry(node).or_default();
            *seq = (*seq).max(handle.meta.flush_seq);
            blocks.push(handle);
        }
        state
            .block_deltas
            .retain(|dir, _| blocks.iter().any(|handle| &handle.dir == dir));
        let (mirrors_changed, missing) = self.mirror_heads(&mut state, &committed).await;
        changed |= mirrors_changed;
        if let Ok(mut slot) = shared.missing_nodes.write() {
            *slot = missing;
        }
        if changed {
            let mut rollups = Rollups::default();
            for handle in &blocks {
                if let Some(delta) = state.block_deltas.get(&handle.dir) {
                    rollups.apply(delta);
                }
            }
            let mut head = Head::default();
            for mirror in state.mirrors.values() {
                for (batch, delta) in mirror.records.values() {
                    rollups.apply(delta);
                    head.n_spans += batch.n_spans();
                    head.batches.push(batch.clone());
                }
            }
            if let Ok(mut slot) = shared.blocks.write() {
                *slot = blocks;
            }
            if let Ok(mut slot) = shared.head.write() {
                *slot = head;
            }
            if let Ok(mut slot) = shared.rollups.write() {
                *slot = rollups;
            }
            shared.count_index_bytes();
        }
        drop(state);
        self.copy_newest_blocks().await;
        Ok(changed)
    }

    /// Brings each ingest node's mirror up to date: drops what its committed blocks hold and
    /// adds what its head holds past the mirror. Returns whether a mirror changed, and the
    /// nodes that did not answer.
    async fn mirror_heads(
        &self,
        state: &mut ClusterState,
        committed: &HashMap<String, u64>,
    ) -> (bool, Vec<String>) {
        let shared = &self.shared;
        let fetcher = shared
            .head_fetcher
            .read()
            .ok()
            .and_then(|fetcher| fetcher.clone());
        let nodes = match shared
            .object_store
            .list_with_delimiter(Some(&Path::from(NODES_PREFIX)))
            .await
        {
            Ok(listed) => listed.common_prefixes,
            Err(error) => {
                return (false, vec![format!("listing the ingest nodes: {error}")]);
            }
        };
        let mut changed = false;
        let mut missing = Vec::new();
        let listed: Vec<String> = nodes.iter().map(ToString::to_string).collect();
        let before = state.mirrors.len();
        state.mirrors.retain(|node, _| listed.contains(node));
        changed |= state.mirrors.len() != before;
        for node in nodes {
            let name = node.to_string();
            let committed_seq = committed.get(&name).copied().unwrap_or(0);
            let mirror = state.mirrors.entry(name.clone()).or_default();
            let before = mirror.records.len();
            mirror.records.retain(|seq, _| *seq > committed_seq);
            changed |= mirror.records.len() != before;
            let Some(fetcher) = &fetcher else {
                continue;
            };
            let url = match read_node_file(shared, &node).await {
                Ok(Some(file)) => file.url,
                // A node that never registered has no head to ask.
                Ok(None) => continue,
                Err(reason) => {
                    missing.push(format!("ingest node {name}: {reason}"));
                    continue;
                }
            };
            let after = mirror.last_seq.max(committed_seq);
            let answer = fetcher(url.clone(), after).await.and_then(|bytes| {
                postcard::from_bytes::<HeadRecords>(&bytes).map_err(|error| error.to_string())
            });
            match answer {
                Ok(head) => {
                    for record in head.records {
                        if record.seq <= after {
                            continue;
                        }
                        let delta = rollup::batch_delta(&record.spans, &record.counts);
                        let mut batch = match HeadBatch::with_counts(record.spans, record.counts) {
                            Ok(batch) => batch,
                            Err(error) => {
                                missing.push(format!(
                                    "ingest node {name}: record {} of its head could not be \
                                     kept in memory ({error})",
                                    record.seq
                                ));
                                break;
                            }
                        };
                        batch.seq = record.seq;
                        mirror.last_seq = mirror.last_seq.max(record.seq);
                        mirror.records.insert(record.seq, (Arc::new(batch), delta));
                        changed = true;
                    }
                }
                Err(reason) => missing.push(format!(
                    "ingest node {name} at {url} did not answer ({reason}): what it has not \
                     flushed is missing"
                )),
            }
        }
        (changed, missing)
    }

    /// Copies the newest blocks into the local tier, newest partition first, up to its bound
    /// and at most `COPY_PER_REFRESH` bytes a refresh (so that listing stays prompt).
    async fn copy_newest_blocks(&self) {
        let Some(tiered) = self
            .shared
            .tiers
            .lock()
            .ok()
            .and_then(|tiers| tiers.clone())
        else {
            return;
        };
        let mut dirs: Vec<(i64, Path, &str)> = self
            .shared
            .blocks
            .read()
            .map(|blocks| {
                blocks
                    .iter()
                    .map(|handle| {
                        (
                            handle.meta.partition_unix_seconds,
                            handle.dir.clone(),
                            handle.meta.rollup_file(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort_by(|left, right| right.cmp(left));
        let mut copied = 0;
        for (_, dir, rollup_file) in dirs {
            for file in ["meta.json", rollup_file, "spans.parquet"] {
                match tiered.prefetch(&dir.clone().join(file)).await {
                    Ok(bytes) => copied += bytes,
                    Err(error) => {
                        tracing::warn!(%error, "copying a block to local disk; it is read from the object store");
                        return;
                    }
                }
            }
            if copied >= COPY_PER_REFRESH {
                return;
            }
        }
    }
}

/// The most a refresh copies of the newest blocks to local disk.
const COPY_PER_REFRESH: u64 = 512 << 20;

/// `nodes/<node>` of a block directory under it.
fn node_of(dir: &Path) -> String {
    dir.parts()
        .take(2)
        .map(|part| part.as_ref().to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// A node's `node.json`, if it registered.
async fn read_node_file(shared: &super::Shared, node: &Path) -> Result<Option<NodeFile>, String> {
    let path = node.clone().join("node.json");
    let bytes = match shared.object_store.get(&path).await {
        Ok(object) => object.bytes().await.map_err(|error| error.to_string())?,
        Err(object_store::Error::NotFound { .. }) => return Ok(None),
        Err(error) => return Err(error.to_string()),
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|error| format!("{path}: {error}"))
}
