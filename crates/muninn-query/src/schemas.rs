//! A type's schemas, per producer, over everything retained: from the roll-up keys' totals
//! (first and last seen, producer spans carrying the schema), and for each schema the
//! producer instance and version that sent it first, which the roll-ups keep per cell. Cells
//! from blocks written before that was kept have none: their first span is then read back
//! from the store once and remembered.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use muninn_model::{Action, NANOS_PER_SECOND, RollupKey, Span, format_rfc3339_nanos};
use muninn_store::{FirstSpan, RollupCell, SpanQuery, Store};
use serde::Serialize;

/// One schema as one producer sent it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaUse {
    pub schema: String,
    /// Producer spans that carried this schema (sampled: schemas are only on spans).
    pub spans: u64,
    pub first_seen: String,
    pub last_seen: String,
    /// Streams as `broker/stream`.
    pub streams: Vec<String>,
}

/// The schemas one producer sent, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProducerSchemas {
    pub service: String,
    pub schemas: Vec<SchemaUse>,
    /// The schema of this producer's most recent span.
    pub current: String,
}

/// The producer (service, instance and version from its resource) whose span first carried a
/// schema, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirstSender {
    pub service: String,
    /// `service.instance.id`, else `host.name`, when the producer's resource has one.
    pub instance: Option<String>,
    /// `service.version`, when the producer's resource has one.
    pub version: Option<String>,
    pub at: String,
    pub trace_id: String,
    pub span_id: String,
}

/// One schema of the type, across producers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SchemaSummary {
    pub schema: String,
    pub spans: u64,
    pub first_seen: String,
    pub last_seen: String,
    pub producers: Vec<String>,
    /// `None` when the first span could not be read back (its block unreadable, or the
    /// first minute already past retention with no span left).
    pub first_sent_by: Option<FirstSender>,
}

/// `GET /api/v1/event-types/{type}/schemas`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventTypeSchemas {
    pub event_type: String,
    /// Oldest first: the last one is the newest schema.
    pub schemas: Vec<SchemaSummary>,
    pub producers: Vec<ProducerSchemas>,
    /// Producer spans of the type that named no schema.
    pub spans_without_schema: u64,
}

/// Every retained roll-up key (with its totals) that `keep` accepts.
pub(crate) fn retained_keys(
    store: &Store,
    keep: impl Fn(&RollupKey) -> bool,
) -> Vec<(RollupKey, RollupCell)> {
    let mut keys = Vec::new();
    store.with_rollups(|rollups| {
        rollups.keys(|key, total| {
            if keep(key) {
                keys.push((key.clone(), *total));
            }
        })
    });
    keys
}

/// Whether any retained key names `event_type`.
pub(crate) fn type_is_known(store: &Store, event_type: &str) -> bool {
    let mut known = false;
    store.with_rollups(|rollups| rollups.keys(|key, _| known |= key.event_type == event_type));
    known
}

#[derive(Debug, Clone, Copy)]
struct Seen {
    spans: u64,
    first: i64,
    last: i64,
}

impl Seen {
    fn new() -> Self {
        Seen {
            spans: 0,
            first: i64::MAX,
            last: i64::MIN,
        }
    }
    fn add(&mut self, total: &RollupCell) {
        self.spans += total.spans;
        self.first = self.first.min(total.first_unix_nanos);
        self.last = self.last.max(total.last_unix_nanos);
    }
}

/// When a schema was first sent, by which service, and by whom when the roll-ups know it.
type FirstSeenBy = (i64, String, Option<FirstSpan>);

impl FirstSender {
    fn from_span(service: &str, first: &FirstSpan) -> FirstSender {
        FirstSender {
            service: service.to_owned(),
            instance: first.instance.clone(),
            version: first.version.clone(),
            at: format_rfc3339_nanos(first.at_unix_nanos),
            trace_id: first.trace_id.to_hex(),
            span_id: first.span_id.to_hex(),
        }
    }
}

/// First senders found, by (type, service, schema, first seen): a key's first span never
/// changes while it is retained, so each is read from the store once.
#[derive(Debug, Default)]
pub struct FirstSenders {
    found: Mutex<HashMap<(String, String, String, i64), FirstSender>>,
}

/// Beyond this many remembered first senders the memory starts afresh.
const MAX_REMEMBERED: usize = 100_000;

impl FirstSenders {
    fn remembered(&self, key: &(String, String, String, i64)) -> Option<FirstSender> {
        let found = self
            .found
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        found.get(key).cloned()
    }

    fn remember(&self, key: (String, String, String, i64), sender: FirstSender) {
        let mut found = self
            .found
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if found.len() >= MAX_REMEMBERED {
            found.clear();
        }
        found.insert(key, sender);
    }

    /// The earliest producer span of `service` carrying `schema` for `event_type` from
    /// `first` on (the key's first seen, exact for spans; within the first minute when the
    /// minute before was dropped by retention).
    async fn find(
        &self,
        store: &Store,
        event_type: &str,
        service: &str,
        schema: &str,
        first: i64,
    ) -> Option<FirstSender> {
        let key = (
            event_type.to_owned(),
            service.to_owned(),
            schema.to_owned(),
            first,
        );
        if let Some(sender) = self.remembered(&key) {
            return Some(sender);
        }
        let matches = |span: &Span| {
            span.action() == Some(Action::Produced)
                && span.event.event_type.as_deref() == Some(event_type)
                && span.event.schema.as_deref() == Some(schema)
        };
        let mut earliest: Option<Span> = None;
        for width in [1, 60 * NANOS_PER_SECOND] {
            let mut query = SpanQuery::new(first, first.saturating_add(width), 1_000);
            query.service = Some(service.to_owned());
            let found = store.find_traces(&query, Some(&matches)).await;
            let Some(hit) = found
                .traces
                .iter()
                .min_by_key(|hit| (hit.latest_start_unix_nanos, hit.trace_id))
            else {
                continue;
            };
            earliest = store
                .spans_by_trace_id(hit.trace_id)
                .await
                .spans
                .into_iter()
                .filter(|span| {
                    span.service == service && matches(span) && span.start_unix_nanos >= first
                })
                .min_by_key(|span| (span.start_unix_nanos, span.span_id));
            if earliest.is_some() {
                break;
            }
        }
        let span = earliest?;
        let sender = FirstSender::from_span(&span.service, &FirstSpan::of(&span));
        self.remember(key, sender.clone());
        Some(sender)
    }
}

/// The schemas of `event_type` over everything retained; `None` when the type is unknown.
pub async fn schemas(
    store: &Store,
    first_senders: &FirstSenders,
    event_type: &str,
) -> Option<EventTypeSchemas> {
    if !type_is_known(store, event_type) {
        return None;
    }
    let keys = retained_keys(store, |key| {
        key.event_type == event_type && key.action == Action::Produced
    });
    // Per key: who sent its earliest retained span, when the roll-ups know it, else from when
    // to look for it.
    let first_spans: Vec<Option<(i64, Option<FirstSpan>)>> = store.with_rollups(|rollups| {
        keys.iter()
            .map(|(key, total)| {
                if key.schema.is_empty() {
                    return None;
                }
                let (minute, first) = rollups.first_span(key)?;
                Some(match first {
                    Some(first) => (first.at_unix_nanos, Some(first.clone())),
                    None => (
                        (minute * NANOS_PER_SECOND).max(total.first_unix_nanos),
                        None,
                    ),
                })
            })
            .collect()
    });
    let mut spans_without_schema = 0;
    // (service, schema) → seen, streams; schema → (seen, producers, the first producer).
    let mut per_producer: BTreeMap<(String, String), (Seen, BTreeSet<String>)> = BTreeMap::new();
    let mut per_schema: BTreeMap<String, (Seen, BTreeSet<String>, FirstSeenBy)> = BTreeMap::new();
    for ((key, total), first_span) in keys.iter().zip(first_spans) {
        if key.schema.is_empty() {
            spans_without_schema += total.spans;
            continue;
        }
        if total.spans == 0 {
            continue;
        }
        let (seen, streams) = per_producer
            .entry((key.service.to_string(), key.schema.to_string()))
            .or_insert_with(|| (Seen::new(), BTreeSet::new()));
        seen.add(total);
        streams.insert(format!("{}/{}", key.broker.as_str(), key.stream));
        let (seen, producers, first) =
            per_schema.entry(key.schema.to_string()).or_insert_with(|| {
                let nobody = (i64::MAX, String::new(), None);
                (Seen::new(), BTreeSet::new(), nobody)
            });
        seen.add(total);
        producers.insert(key.service.to_string());
        let (at, first_span) = first_span.unwrap_or((total.first_unix_nanos, None));
        if (at, key.service.as_str()) < (first.0, first.1.as_str()) {
            *first = (at, key.service.to_string(), first_span);
        }
    }

    let mut producers: BTreeMap<String, Vec<(Seen, SchemaUse)>> = BTreeMap::new();
    for ((service, schema), (seen, streams)) in per_producer {
        producers.entry(service).or_default().push((
            seen,
            SchemaUse {
                schema,
                spans: seen.spans,
                first_seen: format_rfc3339_nanos(seen.first),
                last_seen: format_rfc3339_nanos(seen.last),
                streams: streams.into_iter().collect(),
            },
        ));
    }
    let producers = producers
        .into_iter()
        .map(|(service, mut uses)| {
            uses.sort_by(|(left, a), (right, b)| {
                (left.first, &a.schema).cmp(&(right.first, &b.schema))
            });
            let current = uses
                .iter()
                .max_by(|(left, a), (right, b)| {
                    (left.last, &a.schema).cmp(&(right.last, &b.schema))
                })
                .map(|(_, schema_use)| schema_use.schema.clone())
                .unwrap_or_default();
            ProducerSchemas {
                service,
                current,
                schemas: uses.into_iter().map(|(_, schema_use)| schema_use).collect(),
            }
        })
        .collect();

    let mut ordered: Vec<_> = per_schema.into_iter().collect();
    ordered.sort_by(|(a, (left, ..)), (b, (right, ..))| (left.first, a).cmp(&(right.first, b)));
    let mut schemas = Vec::with_capacity(ordered.len());
    for (schema, (seen, producers, (first, first_service, first_span))) in ordered {
        let first_sent_by = match first_span {
            Some(first_span) => Some(FirstSender::from_span(&first_service, &first_span)),
            None => {
                first_senders
                    .find(store, event_type, &first_service, &schema, first)
                    .await
            }
        };
        schemas.push(SchemaSummary {
            schema,
            spans: seen.spans,
            first_seen: format_rfc3339_nanos(seen.first),
            last_seen: format_rfc3339_nanos(seen.last),
            producers: producers.into_iter().collect(),
            first_sent_by,
        });
    }
    Some(EventTypeSchemas {
        event_type: event_type.to_owned(),
        schemas,
        producers,
        spans_without_schema,
    })
}
