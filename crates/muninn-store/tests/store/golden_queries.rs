//! The questions every golden data directory must answer, each with the text of its answer:
//! trace and event look-ups, many-id look-ups, spans linking to a trace, trace search,
//! operations and roll-ups. The variants of a format hold the same data, so this one table
//! serves them all; a variant that answers one question differently fails with the list of
//! questions it got wrong.
//!
//! Answers name spans `<trace number>.<span number>` (see `support::trace_id` and
//! `support::span_id`), times as `HH:MM:SS.mmm` on 2026-11-20 UTC.

use std::collections::{BTreeMap, HashSet};
use std::fmt;

use muninn_model::{AttributeValue, Span, SpanId, StatusCode, TraceId};
use muninn_store::{Lookup, SpanFields, SpanFilter, SpanQuery, Store};

use crate::support::{NANOS_PER_MILLISECOND, at, event_id, trace_id};

/// One question, as the query layer asks it of the store.
pub enum Query {
    Trace(u64),
    Event(u64),
    Traces(&'static [u64]),
    Events(&'static [u64]),
    LinkingTo(&'static [u64]),
    Search(Search),
    Operations(&'static str, &'static str),
    Rollups(&'static str, &'static str),
}

/// A trace search: `Store::find_traces` with its pushed-down predicates and span filter.
pub struct Search {
    from: &'static str,
    to: &'static str,
    service: Option<&'static str>,
    name: Option<&'static str>,
    min_duration_nanos: Option<i64>,
    max_duration_nanos: Option<i64>,
    max_traces: usize,
    filter: Option<NamedFilter>,
}

/// A filter on whole spans, and its name in messages.
type NamedFilter = (&'static str, fn(&Span) -> bool);

fn search(from: &'static str, to: &'static str) -> Search {
    Search {
        from,
        to,
        service: None,
        name: None,
        min_duration_nanos: None,
        max_duration_nanos: None,
        max_traces: 20,
        filter: None,
    }
}

impl Search {
    fn service(self, service: &'static str) -> Self {
        Search {
            service: Some(service),
            ..self
        }
    }
    fn name(self, name: &'static str) -> Self {
        Search {
            name: Some(name),
            ..self
        }
    }
    fn min_duration(self, nanos: i64) -> Self {
        Search {
            min_duration_nanos: Some(nanos),
            ..self
        }
    }
    fn max_duration(self, nanos: i64) -> Self {
        Search {
            max_duration_nanos: Some(nanos),
            ..self
        }
    }
    fn max_traces(self, max_traces: usize) -> Self {
        Search { max_traces, ..self }
    }
    fn filter(self, name: &'static str, filter: fn(&Span) -> bool) -> Self {
        Search {
            filter: Some((name, filter)),
            ..self
        }
    }
}

fn is_error(span: &Span) -> bool {
    span.status.code == StatusCode::Error
}

fn pays_with_acme(span: &Span) -> bool {
    span.attributes.iter().any(|(key, value)| {
        key == "payment.provider" && *value == AttributeValue::String("acme".into())
    })
}

const MILLISECOND: i64 = NANOS_PER_MILLISECOND;

/// Every question and its answer.
pub fn queries() -> Vec<(Query, &'static str)> {
    use Query::*;
    vec![
        (Trace(1), "1.9 1.1 1.2 1.3"),
        (Trace(5), "5.1 5.2 5.3"),
        (Trace(9), "9.1 9.2 9.3 9.9"),
        (Trace(12), "12.1 12.2 12.3"),
        (Trace(13), "-"),
        (Event(1), "1.9 1.1 1.2"),
        (Event(6), "6.1 6.2"),
        (Event(9), "9.1 9.2 9.9"),
        (Event(13), "-"),
        (
            Traces(&[1, 5, 9, 13]),
            "1.9 1.1 1.2 1.3 5.1 5.2 5.3 9.1 9.2 9.3 9.9",
        ),
        (Traces(&[]), "-"),
        (Events(&[2, 7, 12, 99]), "2.1 2.2 7.1 7.2 12.1 12.2"),
        (Events(&[]), "-"),
        (LinkingTo(&[1001]), "1.9"),
        (LinkingTo(&[2001]), "1.9"),
        (LinkingTo(&[2009]), "9.9"),
        (LinkingTo(&[1001, 1005, 2009]), "1.9 9.9"),
        (LinkingTo(&[1005]), "-"),
        (LinkingTo(&[1]), "-"),
        (LinkingTo(&[]), "-"),
        (
            Search(search("10:00", "12:00")),
            "9@11:20:00.000 12@11:14:00.003 11@11:13:00.003 10@11:12:00.003 \
             8@11:04:00.003 7@11:03:00.003 6@11:02:00.003 5@11:01:00.003 \
             4@10:54:00.003 3@10:53:00.003 2@10:52:00.003 1@10:51:00.003",
        ),
        (
            Search(search("10:00", "12:00").max_traces(3)),
            "9@11:20:00.000 12@11:14:00.003 11@11:13:00.003",
        ),
        (
            Search(search("10:00", "12:00").max_traces(6)),
            "9@11:20:00.000 12@11:14:00.003 11@11:13:00.003 10@11:12:00.003 \
             8@11:04:00.003 7@11:03:00.003",
        ),
        (Search(search("10:46", "10:52")), "1@10:51:00.003"),
        (
            Search(search("10:00", "12:00").service("fulfilment")),
            "9@11:20:00.000 1@10:45:00.123",
        ),
        (
            Search(search("11:00", "11:10").name("consume order.placed")),
            "8@11:04:00.002 7@11:03:00.002 6@11:02:00.002 5@11:01:00.002",
        ),
        (
            Search(
                search("10:00", "12:00")
                    .service("billing")
                    .name("charge card")
                    .min_duration(5 * MILLISECOND),
            ),
            "12@11:14:00.003 11@11:13:00.003 10@11:12:00.003 9@11:11:00.003 \
             8@11:04:00.003 7@11:03:00.003 6@11:02:00.003 5@11:01:00.003 \
             4@10:54:00.003 3@10:53:00.003 2@10:52:00.003 1@10:51:00.003",
        ),
        (
            Search(
                search("10:00", "12:00")
                    .min_duration(1_200_000)
                    .max_duration(2 * MILLISECOND),
            ),
            "9@11:20:00.000 1@10:45:00.123",
        ),
        (
            Search(search("10:00", "11:00").max_duration(MILLISECOND)),
            "4@10:54:00.002 3@10:53:00.002 2@10:52:00.002 1@10:51:00.002",
        ),
        (
            Search(search("10:00", "12:00").filter("errors", is_error)),
            "9@11:20:00.000 1@10:45:00.123",
        ),
        (
            Search(
                search("10:30", "11:05")
                    .service("billing")
                    .filter("payment.provider=acme", pays_with_acme),
            ),
            "8@11:04:00.003 7@11:03:00.003 6@11:02:00.003 5@11:01:00.003 \
             4@10:54:00.003 3@10:53:00.003 2@10:52:00.003 1@10:51:00.003",
        ),
        (Search(search("10:00", "12:00").service("nobody")), "-"),
        (
            Operations("10:00", "12:00"),
            "billing/charge card/internal; billing/consume order.placed/consumer; \
             checkout/publish order.placed/producer; fulfilment/republish order.placed/producer",
        ),
        (
            Operations("10:00", "11:00"),
            "billing/charge card/internal; billing/consume order.placed/consumer; \
             checkout/publish order.placed/producer; fulfilment/republish order.placed/producer",
        ),
        (Operations("12:00", "13:00"), "-"),
        (
            Rollups("10:00", "12:00"),
            "billing consumed order.placed@ orders/kafka: \
             1 minutes, 0 spans, 38 seen, 10:30:00.000..10:30:00.000; \
             billing consumed order.placed@v2 orders/kafka: \
             12 minutes, 12 spans, 0 seen, 10:51:00.002..11:14:00.002; \
             checkout produced order.placed@ orders/kafka: \
             2 minutes, 0 spans, 65 seen, 10:30:00.000..11:10:00.000; \
             checkout produced order.placed@v2 orders/kafka: \
             12 minutes, 13 spans, 0 seen, 10:51:00.000..11:14:00.000; \
             fulfilment produced order.placed@sha256:abcdef orders.retry/rabbitmq modified: \
             2 minutes, 2 spans, 0 seen, 10:45:00.123..11:20:00.000",
        ),
        (
            Rollups("10:00", "11:00"),
            "billing consumed order.placed@ orders/kafka: \
             1 minutes, 0 spans, 38 seen, 10:30:00.000..10:30:00.000; \
             billing consumed order.placed@v2 orders/kafka: \
             4 minutes, 4 spans, 0 seen, 10:51:00.002..10:54:00.002; \
             checkout produced order.placed@ orders/kafka: \
             1 minutes, 0 spans, 40 seen, 10:30:00.000..10:30:00.000; \
             checkout produced order.placed@v2 orders/kafka: \
             4 minutes, 5 spans, 0 seen, 10:51:00.000..10:54:00.000; \
             fulfilment produced order.placed@sha256:abcdef orders.retry/rabbitmq modified: \
             1 minutes, 1 spans, 0 seen, 10:45:00.123..10:45:00.123",
        ),
        (
            Rollups("11:15", "11:30"),
            "fulfilment produced order.placed@sha256:abcdef orders.retry/rabbitmq modified: \
             1 minutes, 1 spans, 0 seen, 11:20:00.000..11:20:00.000",
        ),
    ]
}

/// Unix nanoseconds of `HH:MM` on the golden day.
fn time(hour_minute: &str) -> i64 {
    at(&format!("2026-11-20T{hour_minute}:00Z"))
}

fn clock(unix_nanos: i64) -> String {
    chrono::DateTime::from_timestamp_nanos(unix_nanos)
        .format("%H:%M:%S%.3f")
        .to_string()
}

fn trace_number(trace_id: TraceId) -> u64 {
    u64::from_be_bytes(trace_id.0[8..].try_into().unwrap())
}

fn span_number(span_id: SpanId) -> u64 {
    u64::from_be_bytes(span_id.0) & 0xffff
}

fn list(items: impl IntoIterator<Item = String>, separator: &str) -> String {
    let items: Vec<String> = items.into_iter().collect();
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(separator)
    }
}

fn spans_answer(lookup: Lookup) -> String {
    if !lookup.unreadable_blocks.is_empty() {
        return format!("unreadable: {:?}", lookup.unreadable_blocks);
    }
    list(
        lookup.spans.iter().map(|span| {
            format!(
                "{}.{}",
                trace_number(span.trace_id),
                span_number(span.span_id)
            )
        }),
        " ",
    )
}

fn trace_ids(trace_numbers: &[u64]) -> HashSet<TraceId> {
    trace_numbers.iter().copied().map(trace_id).collect()
}

/// The store's answer to `query`, as text.
pub async fn answer(store: &Store, query: &Query) -> String {
    match query {
        Query::Trace(number) => spans_answer(store.spans_by_trace_id(trace_id(*number)).await),
        Query::Event(number) => spans_answer(store.spans_by_event_id(&event_id(*number)).await),
        Query::Traces(numbers) => spans_answer(
            store
                .spans_by_trace_ids(&trace_ids(numbers), SpanFields::All)
                .await,
        ),
        Query::Events(numbers) => {
            let ids: HashSet<String> = numbers.iter().copied().map(event_id).collect();
            spans_answer(store.spans_by_event_ids(&ids, SpanFields::All).await)
        }
        Query::LinkingTo(numbers) => spans_answer(
            store
                .spans_linking_to(&trace_ids(numbers), SpanFields::All)
                .await,
        ),
        Query::Search(search) => {
            let query = SpanQuery {
                service: search.service.map(String::from),
                name: search.name.map(String::from),
                min_duration_nanos: search.min_duration_nanos,
                max_duration_nanos: search.max_duration_nanos,
                ..SpanQuery::new(time(search.from), time(search.to), search.max_traces)
            };
            let filter = search.filter.map(|(_, filter)| filter);
            let filter: Option<SpanFilter<'_>> = filter.as_ref().map(|filter| filter as _);
            let found = store.find_traces(&query, filter).await;
            if !found.unreadable_blocks.is_empty() {
                return format!("unreadable: {:?}", found.unreadable_blocks);
            }
            list(
                found.traces.iter().map(|hit| {
                    format!(
                        "{}@{}",
                        trace_number(hit.trace_id),
                        clock(hit.latest_start_unix_nanos)
                    )
                }),
                " ",
            )
        }
        Query::Operations(from, to) => {
            let catalog = store.operations(time(from), time(to)).await;
            if !catalog.unreadable_blocks.is_empty() {
                return format!("unreadable: {:?}", catalog.unreadable_blocks);
            }
            list(
                catalog.operations.iter().map(|operation| {
                    format!(
                        "{}/{}/{}",
                        operation.service,
                        operation.name,
                        operation.kind.as_str()
                    )
                }),
                "; ",
            )
        }
        Query::Rollups(from, to) => {
            // Per key: minutes, spans, events seen, first and last time.
            let mut by_key: BTreeMap<String, (usize, u64, u64, i64, i64)> = BTreeMap::new();
            store.with_rollups(|rollups| {
                rollups.scan(time(from), time(to), |_, key, cell| {
                    let name = format!(
                        "{} {} {}@{} {}/{}{}",
                        key.service,
                        key.action.as_str(),
                        key.event_type,
                        key.schema,
                        key.stream,
                        key.broker.as_str(),
                        if key.modified { " modified" } else { "" }
                    );
                    let entry = by_key.entry(name).or_insert((0, 0, 0, i64::MAX, i64::MIN));
                    entry.0 += 1;
                    entry.1 += cell.spans;
                    entry.2 += cell.seen;
                    entry.3 = entry.3.min(cell.first_unix_nanos);
                    entry.4 = entry.4.max(cell.last_unix_nanos);
                })
            });
            list(
                by_key
                    .into_iter()
                    .map(|(key, (minutes, spans, seen, first, last))| {
                        format!(
                            "{key}: {minutes} minutes, {spans} spans, {seen} seen, {}..{}",
                            clock(first),
                            clock(last)
                        )
                    }),
                "; ",
            )
        }
    }
}

impl fmt::Display for Query {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Query::Trace(number) => write!(formatter, "trace {number}"),
            Query::Event(number) => write!(formatter, "event {number}"),
            Query::Traces(numbers) => write!(formatter, "traces {numbers:?}"),
            Query::Events(numbers) => write!(formatter, "events {numbers:?}"),
            Query::LinkingTo(numbers) => write!(formatter, "linking to {numbers:?}"),
            Query::Search(search) => {
                write!(formatter, "search {}..{}", search.from, search.to)?;
                if let Some(service) = search.service {
                    write!(formatter, " service={service}")?;
                }
                if let Some(name) = search.name {
                    write!(formatter, " name={name:?}")?;
                }
                if let Some(min) = search.min_duration_nanos {
                    write!(formatter, " min={min}ns")?;
                }
                if let Some(max) = search.max_duration_nanos {
                    write!(formatter, " max={max}ns")?;
                }
                if let Some((name, _)) = search.filter {
                    write!(formatter, " filter={name}")?;
                }
                write!(formatter, " limit={}", search.max_traces)
            }
            Query::Operations(from, to) => write!(formatter, "operations {from}..{to}"),
            Query::Rollups(from, to) => write!(formatter, "roll-ups {from}..{to}"),
        }
    }
}

/// Asks `store` every question; fails with each question answered differently.
pub async fn assert_answers(store: &Store, what: &str) {
    let mut wrong = Vec::new();
    for (query, expected) in queries() {
        let actual = answer(store, &query).await;
        if actual != expected {
            wrong.push(format!(
                "  {query}\n    expected: {expected}\n    actual:   {actual}"
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{what} answers {} question(s) differently:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}
