//! The headers a replayed message leaves with: the archived ones in their order, minus the
//! ones asked to be dropped, with the trace context replaced by the replay's own span when
//! there is a tracer, and `muninn-replayed-from` appended. Also what NATS can carry of them.

use muninn_sdk::EventSpan;
use muninn_sdk::propagation::Injector;

use crate::message::{Header, Message};

/// Names the archived message a replayed one is a copy of:
/// `<broker>://<stream>/<partition>/<offset>`.
pub const REPLAYED_FROM_HEADER: &str = "muninn-replayed-from";

/// `kafka://orders/3/42`: the value of [`REPLAYED_FROM_HEADER`], and how errors name a
/// message.
pub(crate) fn position(message: &Message) -> String {
    format!(
        "{}://{}/{}/{}",
        message.broker.as_str(),
        message.stream,
        message.partition,
        message.offset
    )
}

/// Whether `name` carries trace context: `traceparent`, `tracestate`, `b3`, `X-B3-*`.
fn is_trace_header(name: &str) -> bool {
    ["traceparent", "tracestate", "b3"]
        .iter()
        .any(|trace| name.eq_ignore_ascii_case(trace))
        || name
            .get(..5)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("x-b3-"))
}

/// The archived headers that leave with the message, in order: all but those named in `drop`
/// (ASCII case ignored) and, when `replace_trace`, the trace context.
pub(crate) fn kept<'a>(
    message: &'a Message,
    drop: &'a [String],
    replace_trace: bool,
) -> impl Iterator<Item = &'a Header> + 'a {
    message.headers.iter().filter(move |header| {
        let dropped = drop
            .iter()
            .any(|dropped| dropped.eq_ignore_ascii_case(&header.name));
        let replaced = replace_trace && is_trace_header(&header.name);
        !dropped && !replaced
    })
}

/// The headers of the replayed message: [`kept`], then the trace context of `span` (when
/// given), then, when `annotate`, [`REPLAYED_FROM_HEADER`].
pub(crate) fn outgoing(
    message: &Message,
    drop: &[String],
    span: Option<&EventSpan>,
    annotate: bool,
) -> Vec<Header> {
    let mut headers: Vec<Header> = kept(message, drop, span.is_some()).cloned().collect();
    if let Some(span) = span {
        span.inject(&mut Appended(&mut headers));
    }
    if annotate {
        headers.push(Header {
            name: REPLAYED_FROM_HEADER.to_owned(),
            value: Some(position(message).into_bytes()),
        });
    }
    headers
}

/// Trace headers written after the kept ones (which hold none: they were filtered out).
struct Appended<'a>(&'a mut Vec<Header>);

impl Injector for Appended<'_> {
    fn set(&mut self, key: &str, value: &str) {
        self.0
            .retain(|header| !header.name.eq_ignore_ascii_case(key));
        self.0.push(Header {
            name: key.to_owned(),
            value: Some(value.as_bytes().to_vec()),
        });
    }
}

/// Why NATS cannot carry `header` byte for byte, if it cannot: NATS headers are text lines
/// (`Name: value\r\n`), the name printable ASCII without `:`, the value UTF-8 without line
/// breaks, and async-nats trims white space around a received value.
pub(crate) fn nats_refusal(header: &Header) -> Option<&'static str> {
    let name = header.name.as_str();
    if name.is_empty() || name.contains(|c: char| !c.is_ascii_graphic() || c == ':') {
        return Some("its name is not printable ASCII without ':'");
    }
    let Some(value) = header.value.as_deref() else {
        return Some("its value is null");
    };
    let Ok(value) = std::str::from_utf8(value) else {
        return Some("its value is not UTF-8");
    };
    if value.contains(['\r', '\n']) {
        return Some("its value has a line break");
    }
    if value.trim() != value {
        return Some("its value starts or ends with white space, which NATS trims");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{SourceBroker, TimestampType};

    fn header(name: &str, value: Option<&[u8]>) -> Header {
        Header {
            name: name.to_owned(),
            value: value.map(<[u8]>::to_vec),
        }
    }

    fn message(headers: Vec<Header>) -> Message {
        Message::from_broker(
            SourceBroker::Kafka,
            "orders".into(),
            None,
            3,
            42,
            0,
            TimestampType::CreateTime,
            None,
            headers,
            None,
        )
    }

    #[test]
    fn dropped_headers_go_and_the_origin_is_appended() {
        let archived = message(vec![
            header("a", Some(b"1")),
            header("Secret", Some(b"x")),
            header("traceparent", Some(b"t")),
            header("a", None),
        ]);
        let sent = outgoing(&archived, &["SECRET".to_owned()], None, true);
        assert_eq!(
            sent,
            vec![
                header("a", Some(b"1")),
                header("traceparent", Some(b"t")),
                header("a", None),
                header(REPLAYED_FROM_HEADER, Some(b"kafka://orders/3/42")),
            ]
        );
    }

    #[test]
    fn trace_headers_are_recognised_in_any_case() {
        for name in [
            "traceparent",
            "TraceState",
            "B3",
            "X-B3-TraceId",
            "x-b3-sampled",
        ] {
            assert!(is_trace_header(name), "{name}");
        }
        for name in ["b3x", "x-b", "muninn-event-id", "é"] {
            assert!(!is_trace_header(name), "{name}");
        }
    }

    #[test]
    fn nats_refuses_what_it_would_change() {
        assert_eq!(nats_refusal(&header("a", Some(b"text ok"))), None);
        assert_eq!(nats_refusal(&header("a", Some(b""))), None);
        for (bad, why) in [
            (header("a", None), "null"),
            (header("a", Some(&[0xff])), "not UTF-8"),
            (header("a", Some(b"x\r\ny")), "line break"),
            (header("a", Some(b" x")), "white space"),
            (header("a:b", Some(b"x")), "name"),
            (header("", Some(b"x")), "name"),
        ] {
            assert!(nats_refusal(&bad).unwrap().contains(why), "{bad:?}");
        }
    }
}
