//! The answers of the query API as readable text: one aligned table per question, a tree for
//! traces, a sparkline per throughput series. Shared by `muninn query` and the demo summary.

use std::fmt::Write;

use super::answers::{
    EventTypeSummary, Journey, Participant, ServiceSummary, SpanView, StreamSummary, Throughput,
    TraceNode, TraceTree,
};
use crate::table::Table;

/// Lists of names in table cells wrap after this many characters.
const LIST_WIDTH: usize = 40;

fn list(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_string()
    } else {
        items.join(", ")
    }
}

/// `850ns`, `12µs`, `1.5ms`, `230ms`, `2.4s`.
pub fn format_nanos(nanos: i64) -> String {
    let magnitude = nanos.unsigned_abs() as f64;
    let sign = if nanos < 0 { "-" } else { "" };
    let (value, unit) = if magnitude < 1e3 {
        return format!("{nanos}ns");
    } else if magnitude < 1e6 {
        (magnitude / 1e3, "µs")
    } else if magnitude < 1e9 {
        (magnitude / 1e6, "ms")
    } else {
        (magnitude / 1e9, "s")
    };
    if value < 10.0 {
        format!("{sign}{value:.1}{unit}")
    } else {
        format!("{sign}{value:.0}{unit}")
    }
}

/// `broker/stream`, or `-`.
fn stream_of(span: &SpanView) -> String {
    match (&span.broker, &span.stream) {
        (Some(broker), Some(stream)) => format!("{broker}/{stream}"),
        (None, Some(stream)) => stream.clone(),
        _ => "-".to_string(),
    }
}

fn status_of(span: &SpanView) -> String {
    match &span.status_message {
        Some(message) if span.status == "error" => {
            let short: String = message.chars().take(48).collect();
            format!("error: {short}")
        }
        _ => span.status.clone(),
    }
}

pub fn event_types_table(event_types: &[EventTypeSummary]) -> String {
    if event_types.is_empty() {
        return "no event types in this time range\n".to_string();
    }
    let mut table = Table::new(&[
        "EVENT TYPE",
        "PRODUCED",
        "CONSUMED",
        "PRODUCERS",
        "CONSUMERS",
        "STREAMS",
    ])
    .align_right(&["PRODUCED", "CONSUMED"])
    .wrap_lists(&["PRODUCERS", "CONSUMERS", "STREAMS"], LIST_WIDTH);
    for summary in event_types {
        table.row(vec![
            summary.event_type.clone(),
            summary.count.to_string(),
            summary.consumed.to_string(),
            list(&summary.producers),
            list(&summary.consumers),
            list(&summary.streams),
        ]);
    }
    table.render()
}

pub fn participants_table(
    event_type: &str,
    participants: &[Participant],
    consumers: bool,
) -> String {
    let role = if consumers { "consumers" } else { "producers" };
    if participants.is_empty() {
        return format!("no {role} of {event_type} in this time range\n");
    }
    let mut headers = vec!["SERVICE", "STREAM", "BROKER", "COUNT"];
    if consumers {
        headers.push("MODIFIES");
    }
    headers.extend(["SCHEMAS", "FIRST SEEN", "LAST SEEN"]);
    let mut table = Table::new(&headers).align_right(&["COUNT"]);
    for participant in participants {
        let mut row = vec![
            participant.service.clone(),
            participant.stream.clone(),
            participant.broker.clone(),
            participant.count.to_string(),
        ];
        if consumers {
            row.push(
                if participant.modifies == Some(true) {
                    "yes"
                } else {
                    "no"
                }
                .to_string(),
            );
        }
        row.extend([
            list(&participant.schemas),
            participant.first_seen.clone(),
            participant.last_seen.clone(),
        ]);
        table.row(row);
    }
    table.render()
}

pub fn streams_table(streams: &[StreamSummary]) -> String {
    if streams.is_empty() {
        return "no streams in this time range\n".to_string();
    }
    let mut table = Table::new(&[
        "STREAM",
        "BROKER",
        "PRODUCED",
        "CONSUMED",
        "EVENT TYPES",
        "PRODUCERS",
        "CONSUMERS",
    ])
    .align_right(&["PRODUCED", "CONSUMED"])
    .wrap_lists(&["EVENT TYPES", "PRODUCERS", "CONSUMERS"], LIST_WIDTH);
    for stream in streams {
        table.row(vec![
            stream.stream.clone(),
            stream.broker.clone(),
            stream.produced.to_string(),
            stream.consumed.to_string(),
            list(&stream.event_types),
            list(&stream.producers),
            list(&stream.consumers),
        ]);
    }
    table.render()
}

/// One row per thing a service produces or consumes; the service is named on its first row.
pub fn services_table(services: &[ServiceSummary]) -> String {
    if services.is_empty() {
        return "no services in this time range\n".to_string();
    }
    let mut table = Table::new(&[
        "SERVICE",
        "ACTION",
        "EVENT TYPE",
        "STREAM",
        "COUNT",
        "MODIFIES",
    ])
    .align_right(&["COUNT"]);
    for service in services {
        let flows = service
            .produces
            .iter()
            .map(|flow| ("produces", flow))
            .chain(service.consumes.iter().map(|flow| ("consumes", flow)));
        for (flow_idx, (action, flow)) in flows.enumerate() {
            table.row(vec![
                if flow_idx == 0 {
                    service.service.clone()
                } else {
                    String::new()
                },
                action.to_string(),
                flow.event_type.clone(),
                format!("{}/{}", flow.broker, flow.stream),
                flow.count.to_string(),
                match flow.modifies {
                    Some(true) => "yes".to_string(),
                    Some(false) => "no".to_string(),
                    None => String::new(),
                },
            ]);
        }
    }
    table.render()
}

/// One row per service with its totals: the compact view of the demo summary.
pub fn services_overview_table(services: &[ServiceSummary]) -> String {
    if services.is_empty() {
        return "no services in this time range\n".to_string();
    }
    let mut table = Table::new(&[
        "SERVICE",
        "PRODUCED",
        "CONSUMED",
        "TYPES OUT",
        "TYPES IN",
        "MODIFIES",
    ])
    .align_right(&["PRODUCED", "CONSUMED", "TYPES OUT", "TYPES IN"]);
    for service in services {
        let count_types = |flows: &[super::answers::ServiceFlow]| {
            let mut types: Vec<&str> = flows.iter().map(|flow| flow.event_type.as_str()).collect();
            types.sort_unstable();
            types.dedup();
            types.len()
        };
        let mut modifies: Vec<String> = service
            .consumes
            .iter()
            .filter(|flow| flow.modifies == Some(true))
            .map(|flow| flow.event_type.clone())
            .collect();
        modifies.dedup();
        table.row(vec![
            service.service.clone(),
            service
                .produces
                .iter()
                .map(|flow| flow.count)
                .sum::<u64>()
                .to_string(),
            service
                .consumes
                .iter()
                .map(|flow| flow.count)
                .sum::<u64>()
                .to_string(),
            count_types(&service.produces).to_string(),
            count_types(&service.consumes).to_string(),
            if modifies.is_empty() {
                String::new()
            } else {
                modifies.join(", ")
            },
        ]);
    }
    table.render()
}

/// At most this many characters of sparkline per series; longer series are summed into buckets.
const SPARKLINE_WIDTH: usize = 40;

fn sparkline(counts: &[u64]) -> String {
    if counts.is_empty() {
        return String::new();
    }
    let bucket_size = counts.len().div_ceil(SPARKLINE_WIDTH);
    let buckets: Vec<u64> = counts
        .chunks(bucket_size)
        .map(|chunk| chunk.iter().sum())
        .collect();
    let max = buckets.iter().copied().max().unwrap_or(0).max(1);
    const LEVELS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    buckets
        .iter()
        .map(|&count| {
            if count == 0 {
                ' '
            } else {
                LEVELS[((count * 8 - 1) / max).min(7) as usize]
            }
        })
        .collect()
}

pub fn throughput_text(throughput: &Throughput) -> String {
    let mut out = format!(
        "from {} to {}, step {}s\n",
        throughput.from, throughput.to, throughput.step_seconds
    );
    if throughput.series.is_empty() {
        out.push_str("no events in this time range\n");
        return out;
    }
    let mut table = Table::new(&[
        "SERVICE",
        "ACTION",
        "EVENT TYPE",
        "STREAM",
        "TOTAL",
        "PEAK/STEP",
        "TREND",
    ])
    .align_right(&["TOTAL", "PEAK/STEP"]);
    for series in &throughput.series {
        let counts: Vec<u64> = series.points.iter().map(|point| point.count).collect();
        table.row(vec![
            series.service.clone(),
            series.action.clone(),
            series.event_type.clone(),
            format!("{}/{}", series.broker, series.stream),
            series.total.to_string(),
            counts.iter().copied().max().unwrap_or(0).to_string(),
            sparkline(&counts),
        ]);
    }
    out.push_str(&table.render());
    out
}

fn unreadable_note(out: &mut String, blocks: &[String]) {
    if !blocks.is_empty() {
        let _ = writeln!(
            out,
            "warning: {} block(s) could not be read; spans may be missing: {}",
            blocks.len(),
            blocks.join(", ")
        );
    }
}

pub fn journey_text(journey: &Journey) -> String {
    let mut out = format!(
        "event {} · {} · {} hop(s) in {} trace(s)\n",
        journey.event_id,
        list(&journey.event_types),
        journey.hops.len(),
        journey.traces.len()
    );
    let first_start = journey
        .hops
        .iter()
        .map(|hop| hop.span.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    if let Some(first) = journey
        .hops
        .iter()
        .min_by_key(|hop| hop.span.start_time_unix_nano)
    {
        let _ = writeln!(out, "first seen {}", first.span.start_time);
    }
    let mut table = Table::new(&[
        "#", "AT", "SERVICE", "ACTION", "STREAM", "LAG", "DURATION", "ATTEMPT", "STATUS", "TRACE",
    ])
    .align_right(&["#", "AT", "LAG", "DURATION", "ATTEMPT"]);
    for (hop_idx, hop) in journey.hops.iter().enumerate() {
        let span = &hop.span;
        let mut action = span.action.clone().unwrap_or_else(|| span.kind.clone());
        if span.modified {
            action.push_str(" (modified)");
        }
        if hop.joined_by.as_deref() == Some("link") {
            action.push_str(" (by link)");
        }
        table.row(vec![
            (hop_idx + 1).to_string(),
            format!("+{}", format_nanos(span.start_time_unix_nano - first_start)),
            span.service.clone(),
            action,
            stream_of(span),
            hop.lag_ns.map(format_nanos).unwrap_or_default(),
            format_nanos(span.duration_ns),
            hop.attempt.to_string(),
            status_of(span),
            span.trace_id.clone(),
        ]);
    }
    out.push_str(&table.render());
    unreadable_note(&mut out, &journey.unreadable_blocks);
    out
}

pub fn trace_text(trace: &TraceTree) -> String {
    let mut out = format!(
        "trace {} · {} span(s) · {}\n",
        trace.trace_id,
        trace.n_spans,
        list(&trace.services)
    );
    let first_start = trace
        .roots
        .iter()
        .map(|root| root.span.start_time_unix_nano)
        .min()
        .unwrap_or(0);
    if let Some(first) = trace
        .roots
        .iter()
        .min_by_key(|root| root.span.start_time_unix_nano)
    {
        let _ = writeln!(out, "started {}", first.span.start_time);
    }
    let mut table = Table::new(&[
        "SPAN", "SERVICE", "KIND", "AT", "DURATION", "STATUS", "EVENT",
    ])
    .align_right(&["AT", "DURATION"]);
    // The server caps trees at 128 levels, so the recursion is bounded.
    fn add(table: &mut Table, node: &TraceNode, depth: usize, first_start: i64) {
        let span = &node.span;
        let event = match (&span.event_type, span.stream.is_some()) {
            (Some(event_type), true) => format!("{event_type} @ {}", stream_of(span)),
            (Some(event_type), false) => event_type.clone(),
            (None, true) => stream_of(span),
            (None, false) => String::new(),
        };
        let link = if span.links.is_empty() {
            ""
        } else {
            " ↪ linked"
        };
        table.row(vec![
            format!("{}{}{link}", "  ".repeat(depth), span.name),
            span.service.clone(),
            span.kind.clone(),
            format!("+{}", format_nanos(span.start_time_unix_nano - first_start)),
            format_nanos(span.duration_ns),
            status_of(span),
            event,
        ]);
        for child in &node.children {
            add(table, child, depth + 1, first_start);
        }
    }
    for root in &trace.roots {
        add(&mut table, root, 0, first_start);
    }
    out.push_str(&table.render());
    unreadable_note(&mut out, &trace.unreadable_blocks);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_short_and_readable() {
        assert_eq!(format_nanos(850), "850ns");
        assert_eq!(format_nanos(12_400), "12µs");
        assert_eq!(format_nanos(1_520_000), "1.5ms");
        assert_eq!(format_nanos(230_000_000), "230ms");
        assert_eq!(format_nanos(2_400_000_000), "2.4s");
        assert_eq!(format_nanos(-1_500_000), "-1.5ms");
    }

    #[test]
    fn sparklines_scale_to_the_peak_and_fit_the_width() {
        assert_eq!(sparkline(&[0, 1, 4, 8]), " ▁▄█");
        assert_eq!(sparkline(&vec![5; 100]).chars().count(), 34);
    }

    #[test]
    fn a_hop_joined_by_a_link_says_so() {
        let journey: Journey = serde_json::from_value(serde_json::json!({
            "event_id": "e-1", "event_types": [], "traces": ["t1", "t2"], "unreadable_blocks": [],
            "hops": [{"trace_id": "t2", "span_id": "b", "service": "joiner", "name": "join", "kind": "consumer",
                "action": "consumed", "start_time": "2026-01-01T00:00:00Z", "start_time_unix_nano": 1,
                "duration_ns": 1, "status": "ok", "attempt": 1, "joined_by": "link"}]
        }))
        .unwrap();
        assert!(journey_text(&journey).contains("consumed (by link)"));
    }

    #[test]
    fn a_journey_reads_as_hops_in_time_order() {
        let journey: Journey = serde_json::from_value(serde_json::json!({
            "event_id": "e-1",
            "event_types": ["order.placed"],
            "traces": ["t1"],
            "hops": [
                {"trace_id": "t1", "span_id": "a", "service": "checkout", "name": "publish orders", "kind": "producer",
                 "action": "produced", "start_time": "2026-01-01T00:00:00Z", "start_time_unix_nano": 1_000_000,
                 "duration_ns": 1_200_000, "status": "ok", "stream": "orders", "broker": "kafka", "attempt": 1},
                {"trace_id": "t1", "span_id": "b", "service": "email-sender", "name": "process orders", "kind": "consumer",
                 "action": "consumed", "start_time": "2026-01-01T00:00:00.004Z", "start_time_unix_nano": 5_000_000,
                 "duration_ns": 30_000_000, "status": "error", "status_message": "smtp: 421", "stream": "orders",
                 "broker": "kafka", "modified": true, "lag_ns": 4_000_000, "attempt": 2}
            ],
            "unreadable_blocks": []
        }))
        .unwrap();
        let text = journey_text(&journey);
        assert_eq!(
            text,
            "event e-1 · order.placed · 2 hop(s) in 1 trace(s)\n\
             first seen 2026-01-01T00:00:00Z\n\
             #      AT  SERVICE       ACTION               STREAM          LAG  DURATION  ATTEMPT  STATUS            TRACE\n\
             1    +0ns  checkout      produced             kafka/orders            1.2ms        1  ok                t1\n\
             2  +4.0ms  email-sender  consumed (modified)  kafka/orders  4.0ms      30ms        2  error: smtp: 421  t1\n"
        );
    }
}
