//! W3C Trace Context Level 2 through the public propagation API, rule by rule: how a
//! `traceparent` is parsed (versions, lengths, hex, separators, zero ids), which flags are read
//! and written back (`sampled`, `random`, none other), and how a `tracestate` is read (combined
//! headers, optional whitespace, key and value grammar, duplicates, the 32-member limit) and
//! written. Each table lists inputs and what extraction must make of them.

use std::time::Duration;

use muninn_sdk::propagation::{
    self, Extracted, Format, SpanContext, SpanId, TraceId, TraceState, extract, extract_ref, inject,
};
use muninn_sdk::{Broker, Tracer};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const PARENT: &str = "00f067aa0ba902b7";

/// What extraction made of the headers, in a form a table can spell.
#[derive(Debug, PartialEq, Eq)]
enum Read {
    /// A W3C context: trace id, parent id, `sampled`, `random`, and the `tracestate` as it
    /// would be written again.
    Context(String, String, bool, bool, String),
    /// No context; the reason the first ignored header was ignored.
    Ignored(Option<&'static str>),
}

fn headers(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect()
}

fn read(items: &[(&str, &str)]) -> Read {
    let carrier = headers(items);
    let extracted = extract(&carrier);
    // The borrowing and the owned reading agree.
    assert_eq!(extract_ref(&carrier).into_owned(), extracted);
    match extracted.context {
        Some(context) => {
            assert_eq!(extracted.format, Some(Format::W3c));
            assert_eq!(extracted.upstream_sampled, Some(context.sampled));
            Read::Context(
                context.trace_id.to_hex(),
                context.span_id.to_hex(),
                context.sampled,
                context.random,
                context.trace_state.header_value().unwrap_or_default(),
            )
        }
        None => Read::Ignored(extracted.invalid),
    }
}

fn traceparent(value: &str) -> Read {
    read(&[("traceparent", value)])
}

fn context(flags: (bool, bool)) -> Read {
    Read::Context(TRACE.into(), PARENT.into(), flags.0, flags.1, String::new())
}

const SAMPLED: (bool, bool) = (true, false);
const NOT_SAMPLED: (bool, bool) = (false, false);

fn ignored(reason: &'static str) -> Read {
    Read::Ignored(Some(reason))
}

/// The `tracestate` kept with a valid `traceparent`, and the reason a member was dropped.
fn tracestate(values: &[&str]) -> (String, Option<&'static str>) {
    let parent = format!("00-{TRACE}-{PARENT}-01");
    let mut items = vec![("traceparent", parent.as_str())];
    items.extend(values.iter().map(|value| ("tracestate", *value)));
    let extracted = extract(&headers(&items));
    let state = extracted.context.map(|context| context.trace_state);
    (
        state
            .and_then(|state| state.header_value())
            .unwrap_or_default(),
        extracted.invalid,
    )
}

#[test]
fn traceparent_version_00_gives_the_ids_and_flags() {
    assert_eq!(
        traceparent(&format!("00-{TRACE}-{PARENT}-01")),
        context(SAMPLED)
    );
    assert_eq!(
        traceparent(&format!("00-{TRACE}-{PARENT}-00")),
        context(NOT_SAMPLED)
    );
    assert_eq!(read(&[("tracestate", "foo=1")]), Read::Ignored(None));
    assert_eq!(read(&[]), Read::Ignored(None));
}

#[test]
fn traceparent_header_name_is_matched_in_any_case() {
    for name in ["traceparent", "TRACEPARENT", "TraceParent", "tRaCePaReNt"] {
        let value = format!("00-{TRACE}-{PARENT}-01");
        assert_eq!(read(&[(name, &value)]), context(SAMPLED), "{name}");
    }
}

#[test]
fn traceparent_surrounding_optional_whitespace_is_ignored() {
    for value in [
        format!(" 00-{TRACE}-{PARENT}-01"),
        format!("\t00-{TRACE}-{PARENT}-01"),
        format!("00-{TRACE}-{PARENT}-01 "),
        format!("\t 00-{TRACE}-{PARENT}-01 \t"),
    ] {
        assert_eq!(traceparent(&value), context(SAMPLED), "{value:?}");
    }
    // Other whitespace is not optional whitespace, and none is allowed inside.
    for value in [
        format!("\n00-{TRACE}-{PARENT}-01"),
        format!("00-{TRACE}-{PARENT}-01\r"),
        format!("00- {TRACE}-{PARENT}-01"),
        format!("00-{TRACE} -{PARENT}-01"),
    ] {
        assert!(
            matches!(traceparent(&value), Read::Ignored(Some(_))),
            "{value:?}"
        );
    }
}

#[test]
fn traceparent_hex_is_lowercase_only() {
    let upper_trace = TRACE.to_uppercase();
    let upper_parent = PARENT.to_uppercase();
    for (value, reason) in [
        (
            format!("00-{upper_trace}-{PARENT}-01"),
            "traceparent: trace-id is not 32 lowercase hex digits",
        ),
        (
            format!("00-{TRACE}-{upper_parent}-01"),
            "traceparent: parent-id is not 16 lowercase hex digits",
        ),
        (
            format!("00-{TRACE}-{PARENT}-0A"),
            "traceparent: trace-flags are not 2 lowercase hex digits",
        ),
        (
            format!("0A-{TRACE}-{PARENT}-01"),
            "traceparent: version is not 2 lowercase hex digits followed by '-'",
        ),
    ] {
        assert_eq!(traceparent(&value), ignored(reason), "{value}");
    }
}

#[test]
fn traceparent_fields_have_fixed_lengths_and_dash_separators() {
    for value in [
        format!("00-{TRACE}0-{PARENT}-01"),
        format!("00-{}-{PARENT}-01", &TRACE[1..]),
        format!("00-{TRACE}-{PARENT}0-01"),
        format!("00-{TRACE}-{}-01", &PARENT[1..]),
        format!("00-{TRACE}-{PARENT}-001"),
        format!("00-{TRACE}-{PARENT}-1"),
        format!("00_{TRACE}-{PARENT}-01"),
        format!("00-{TRACE}_{PARENT}-01"),
        format!("00-{TRACE}-{PARENT}_01"),
        format!("00-{}.-{PARENT}-01", &TRACE[1..]),
        format!("00-{TRACE}-{PARENT}-0é"),
        format!("00-{TRACE}-{PARENT}"),
        "00-".to_string(),
        String::new(),
    ] {
        assert!(
            matches!(traceparent(&value), Read::Ignored(Some(_))),
            "{value:?}"
        );
    }
}

#[test]
fn traceparent_version_is_two_hex_digits_and_ff_is_invalid() {
    assert_eq!(
        traceparent(&format!("ff-{TRACE}-{PARENT}-01")),
        ignored("traceparent: version ff is forbidden")
    );
    for value in [
        format!("0-{TRACE}-{PARENT}-01"),
        format!("000-{TRACE}-{PARENT}-01"),
        format!(".0-{TRACE}-{PARENT}-01"),
        format!("0g-{TRACE}-{PARENT}-01"),
    ] {
        assert_eq!(
            traceparent(&value),
            ignored("traceparent: version is not 2 lowercase hex digits followed by '-'"),
            "{value}"
        );
    }
}

#[test]
fn traceparent_version_00_is_exactly_55_characters() {
    for value in [
        format!("00-{TRACE}-{PARENT}-01-"),
        format!("00-{TRACE}-{PARENT}-01-what-the-future-will-be-like"),
        format!("00-{TRACE}-{PARENT}-01."),
    ] {
        assert_eq!(
            traceparent(&value),
            ignored("traceparent: version 00 must be exactly 55 characters"),
            "{value}"
        );
    }
}

#[test]
fn traceparent_higher_version_is_read_by_the_version_00_rules() {
    // The first 55 characters are read; more must start with '-'.
    assert_eq!(
        traceparent(&format!("cc-{TRACE}-{PARENT}-01")),
        context(SAMPLED)
    );
    assert_eq!(
        traceparent(&format!(
            "cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like"
        )),
        context(SAMPLED)
    );
    assert_eq!(
        traceparent(&format!("01-{TRACE}-{PARENT}-00-")),
        context(NOT_SAMPLED)
    );
    assert_eq!(
        traceparent(&format!(
            "cc-{TRACE}-{PARENT}-01.what-the-future-will-be-like"
        )),
        ignored("traceparent: trace-flags not followed by '-' or the end")
    );
    assert_eq!(
        traceparent(&format!("cc-{TRACE}-{PARENT}-1")),
        ignored("traceparent: shorter than 55 characters")
    );
    // The known fields keep their rules.
    assert!(matches!(
        traceparent(&format!("cc-{}-{PARENT}-01-x", TRACE.to_uppercase())),
        Read::Ignored(Some(_))
    ));
    assert!(matches!(
        traceparent(&format!("cc-{}-{PARENT}-01", "0".repeat(32))),
        Read::Ignored(Some(_))
    ));
    // It is written back as version 00.
    let carrier = headers(&[(
        "traceparent",
        &format!("cc-{TRACE}-{PARENT}-01-what-the-future-will-be-like"),
    )]);
    let mut out: Vec<(String, String)> = Vec::new();
    if let Some(context) = extract(&carrier).context {
        inject(&context, &[Format::W3c], &mut out);
    }
    assert_eq!(
        out,
        headers(&[("traceparent", &format!("00-{TRACE}-{PARENT}-01"))])
    );
}

#[test]
fn traceparent_all_zero_ids_are_invalid() {
    assert_eq!(
        traceparent(&format!("00-{}-{PARENT}-01", "0".repeat(32))),
        ignored("traceparent: trace-id is all zeros")
    );
    assert_eq!(
        traceparent(&format!("00-{TRACE}-{}-01", "0".repeat(16))),
        ignored("traceparent: parent-id is all zeros")
    );
}

#[test]
fn traceparent_in_more_than_one_header_is_invalid() {
    let value = format!("00-{TRACE}-{PARENT}-01");
    for other in [value.clone(), format!("00-{TRACE}-{}-01", "1".repeat(16))] {
        assert_eq!(
            read(&[("traceparent", &value), ("TraceParent", &other)]),
            ignored("traceparent: more than one header")
        );
    }
}

#[test]
fn an_invalid_traceparent_means_no_tracestate_is_read() {
    for parent in [
        format!("00-{}-{PARENT}-01", TRACE.to_uppercase()),
        format!("ff-{TRACE}-{PARENT}-01"),
    ] {
        let carrier = headers(&[("traceparent", &parent), ("tracestate", "foo=1,BAD")]);
        let extracted = extract(&carrier);
        assert_eq!(extracted.context, None);
        // The reason is the `traceparent`'s: the `tracestate` was not parsed.
        assert!(
            extracted
                .invalid
                .is_some_and(|reason| reason.starts_with("traceparent:")),
            "{extracted:?}"
        );
    }
}

#[test]
fn trace_flags_sampled_is_bit_0_and_random_is_bit_1() {
    for (flags, sampled, random) in [
        ("00", false, false),
        ("01", true, false),
        ("02", false, true),
        ("03", true, true),
        // Unknown bits are ignored, not refused.
        ("04", false, false),
        ("09", true, false),
        ("0a", false, true),
        ("ff", true, true),
    ] {
        assert_eq!(
            traceparent(&format!("00-{TRACE}-{PARENT}-{flags}")),
            context((sampled, random)),
            "{flags}"
        );
    }
    // A higher version's flags: the known bits are read the same way.
    assert_eq!(
        traceparent(&format!("cc-{TRACE}-{PARENT}-03-extra")),
        context((true, true))
    );
}

#[test]
fn trace_flags_are_written_back_with_only_the_known_bits() {
    for (incoming, written) in [
        ("00", "00"),
        ("01", "01"),
        ("02", "02"),
        ("03", "03"),
        ("04", "00"),
        ("fd", "01"),
        ("ff", "03"),
    ] {
        let carrier = headers(&[("traceparent", &format!("00-{TRACE}-{PARENT}-{incoming}"))]);
        let mut out: Vec<(String, String)> = Vec::new();
        if let Some(context) = extract(&carrier).context {
            inject(&context, &[Format::W3c], &mut out);
        }
        assert_eq!(
            out,
            headers(&[("traceparent", &format!("00-{TRACE}-{PARENT}-{written}"))]),
            "{incoming}"
        );
    }
}

/// A tracer whose collector is a closed port: nothing is exported, everything is traced.
fn tracer() -> Tracer {
    Tracer::builder("trace-context-tests")
        .collector("http://127.0.0.1:9")
        .configure(|options| {
            options.default_rate = 1.0;
            options.shutdown_timeout = Duration::from_millis(50);
        })
        .build()
        .expect("a tracer")
}

fn flags_written(headers: &[(String, String)]) -> Option<&str> {
    headers
        .iter()
        .find(|(name, _)| name == propagation::TRACEPARENT_HEADER)
        .and_then(|(_, value)| value.get(53..))
}

#[test]
fn trace_flags_random_is_set_on_new_traces_and_carried_through_spans() {
    let tracer = tracer();
    let route = tracer.route("order.created", "orders", Broker::Kafka);

    // A trace this SDK starts has a random trace id: `random` is set.
    let mut produced: Vec<(String, String)> = Vec::new();
    let root = route.produce_with_headers("order-1", None, None, &mut produced);
    assert!(root.context().random);
    assert_eq!(flags_written(&produced), Some("03"));

    // A consumer continues it, random flag included; so does what it produces in turn.
    let consumed = route.consume(&produced);
    assert_eq!(consumed.context().trace_id, root.context().trace_id);
    assert!(consumed.context().random);
    let mut forwarded: Vec<(String, String)> = Vec::new();
    route
        .produce_with_headers("order-2", None, Some(consumed.context()), &mut forwarded)
        .end();
    assert_eq!(flags_written(&forwarded), Some("03"));

    // A trace started elsewhere without the flag keeps it unset downstream.
    let upstream = headers(&[("traceparent", &format!("00-{TRACE}-{PARENT}-01"))]);
    let consumed = route.consume(&upstream);
    assert_eq!(consumed.context().trace_id.to_hex(), TRACE);
    assert!(!consumed.context().random);
    let mut forwarded: Vec<(String, String)> = Vec::new();
    consumed.inject(&mut forwarded);
    assert_eq!(flags_written(&forwarded), Some("01"));

    // B3 has no such flag: a B3 trace continues without it.
    let b3 = headers(&[("b3", &format!("{TRACE}-{PARENT}-1"))]);
    assert!(!route.consume(&b3).context().random);
    // A consumer that starts a new trace (linked, or nothing came) sets it.
    assert!(route.consume_linked(&upstream).context().random);
    assert!(route.consume(&headers(&[])).context().random);
    tracer.shutdown(Duration::from_millis(100));
}

#[test]
fn tracestate_headers_are_combined_in_order() {
    assert_eq!(
        tracestate(&["rojo=00f067aa0ba902b7", "congo=t61rcWkgMzE"]),
        ("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE".into(), None)
    );
    assert_eq!(
        tracestate(&["a=1,b=2", "c=3", "d=4,e=5"]),
        ("a=1,b=2,c=3,d=4,e=5".into(), None)
    );
    // The header name in any case.
    let parent = format!("00-{TRACE}-{PARENT}-01");
    assert_eq!(
        read(&[
            ("traceparent", &parent),
            ("TraceState", "a=1"),
            ("TRACESTATE", "b=2")
        ]),
        Read::Context(TRACE.into(), PARENT.into(), true, false, "a=1,b=2".into())
    );
}

#[test]
fn tracestate_optional_whitespace_and_empty_members_are_skipped() {
    for (values, kept) in [
        (vec!["a=1 , b=2"], "a=1,b=2"),
        (vec!["a=1\t,\tb=2"], "a=1,b=2"),
        (vec![" \t a=1 \t "], "a=1"),
        (vec!["a=1,,b=2"], "a=1,b=2"),
        (vec![",a=1,"], "a=1"),
        (vec!["a=1, ,\t,b=2"], "a=1,b=2"),
        (vec!["", "a=1", " "], "a=1"),
        (vec![""], ""),
        (vec![" , "], ""),
    ] {
        assert_eq!(tracestate(&values), (kept.to_string(), None), "{values:?}");
    }
}

#[test]
fn tracestate_keys_follow_the_level_2_grammar() {
    // `(lcalpha / DIGIT) 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@")`.
    let longest = "k".repeat(256);
    for key in [
        "a",
        "z",
        "0",
        "9key",
        "abcdefghijklmnopqrstuvwxyz0123456789_-*/@",
        "tenant@system",
        "0tenant@system",
        "t@s",
        "a@b@c",
        "a@@b",
        "key@",
        "a@0",
        "a-_*/",
        longest.as_str(),
        &format!("{}@{}", "t".repeat(241), "s".repeat(14)),
        &format!("{}@{}", "t".repeat(100), "s".repeat(100)),
    ] {
        assert_eq!(
            tracestate(&[&format!("x=1,{key}=v")]),
            (format!("x=1,{key}=v"), None),
            "{key}"
        );
    }
    let too_long = "k".repeat(257);
    for key in [
        "",
        "@key",
        "_key",
        "-key",
        "*key",
        "/key",
        "Key",
        "kEy",
        "k.ey",
        "k ey",
        "k\tey",
        "kéy",
        too_long.as_str(),
    ] {
        // The member is dropped; the others are kept.
        assert_eq!(
            tracestate(&[&format!("x=1,{key}=v,y=2")]),
            ("x=1,y=2".into(), Some("tracestate: invalid key")),
            "{key:?}"
        );
    }
}

#[test]
fn tracestate_values_follow_the_grammar() {
    // `0*255(chr) nblk-chr`: printable ASCII but ',' and '=', not ending in a space.
    let printable: String = (0x20u8..=0x7e)
        .filter(|byte| *byte != b',' && *byte != b'=')
        .map(char::from)
        .collect();
    let longest = "v".repeat(256);
    for value in [
        "v",
        printable.trim_start(),
        &format!(" {}", printable.trim()),
        longest.as_str(),
    ] {
        assert_eq!(
            tracestate(&[&format!("k={value}")]),
            (format!("k={value}"), None),
            "{value:?}"
        );
    }
    // Leading spaces belong to the value; trailing ones are optional whitespace.
    assert_eq!(tracestate(&["k=  v  "]), ("k=  v".into(), None));
    let too_long = "v".repeat(257);
    for value in [
        "",
        "a=b",
        "tab\tinside",
        "new\nline",
        "del\u{7f}",
        "é",
        too_long.as_str(),
    ] {
        assert_eq!(
            tracestate(&[&format!("x=1,k={value},y=2")]),
            ("x=1,y=2".into(), Some("tracestate: invalid value")),
            "{value:?}"
        );
    }
    assert_eq!(
        tracestate(&["x=1,novalue,y=2"]),
        (
            "x=1,y=2".into(),
            Some("tracestate: list-member without '='")
        )
    );
}

#[test]
fn tracestate_invalid_members_are_dropped_and_the_valid_ones_kept() {
    assert_eq!(
        tracestate(&["a=1,BAD=2,c=3", "d=,e=5"]),
        ("a=1,c=3,e=5".into(), Some("tracestate: invalid key"))
    );
    // Every member invalid: an empty list, the `traceparent` still used.
    let parent = format!("00-{TRACE}-{PARENT}-01");
    assert_eq!(
        read(&[("traceparent", &parent), ("tracestate", "A=1,b")]),
        context(SAMPLED)
    );
}

#[test]
fn tracestate_duplicate_keys_keep_the_first_entry() {
    const DUPLICATE: Option<&str> = Some("tracestate: duplicate key");
    for (values, kept, reason) in [
        (vec!["foo=1,foo=2"], "foo=1", DUPLICATE),
        (vec!["foo=1,foo=1"], "foo=1", DUPLICATE),
        (vec!["foo=1,bar=2,foo=3"], "foo=1,bar=2", DUPLICATE),
        (vec!["foo=1", "foo=2"], "foo=1", DUPLICATE),
        (
            vec!["foo=1,bar=2", "baz=3,bar=4"],
            "foo=1,bar=2,baz=3",
            DUPLICATE,
        ),
        // A key is not a prefix of another.
        (vec!["foo=1,foobar=2,fo=3"], "foo=1,foobar=2,fo=3", None),
    ] {
        assert_eq!(
            tracestate(&values),
            (kept.to_string(), reason),
            "{values:?}"
        );
    }
    // An invalid first entry does not hide a valid second one.
    assert_eq!(
        tracestate(&["foo=a\tb,foo=2"]),
        ("foo=2".into(), Some("tracestate: invalid value"))
    );
}

fn members(range: std::ops::RangeInclusive<usize>) -> String {
    range
        .map(|index| format!("k{index:02}={index}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn tracestate_keeps_at_most_32_members() {
    assert_eq!(tracestate(&[&members(1..=32)]), (members(1..=32), None));
    // Split across headers as the W3C test suite does.
    assert_eq!(
        tracestate(&[&members(1..=10), &members(11..=20), &members(21..=32)]),
        (members(1..=32), None)
    );
    assert_eq!(
        tracestate(&[&members(1..=33)]),
        (
            members(1..=32),
            Some("tracestate: more than 32 list-members")
        )
    );
    assert_eq!(
        tracestate(&[&members(1..=20), &members(21..=40)]),
        (
            members(1..=32),
            Some("tracestate: more than 32 list-members")
        )
    );
    // Empty, invalid and repeated members do not count.
    let padded = format!(",, ,{},BAD=1,k01=again,", members(1..=32));
    assert_eq!(
        tracestate(&[&padded]),
        (members(1..=32), Some("tracestate: invalid key"))
    );
}

#[test]
fn tracestate_is_written_as_received_then_truncated_to_512_characters() {
    let tracer = tracer();
    let route = tracer.route("order.created", "orders", Broker::Kafka);
    let incoming = headers(&[
        ("traceparent", &format!("00-{TRACE}-{PARENT}-01")),
        ("tracestate", "rojo=00f067aa0ba902b7 , ,congo=t61rcWkgMzE"),
    ]);
    let consumed = route.consume(&incoming);
    let mut out: Vec<(String, String)> = Vec::new();
    route
        .produce_with_headers("order-1", None, Some(consumed.context()), &mut out)
        .end();
    let written = out
        .iter()
        .find(|(name, _)| name == propagation::TRACESTATE_HEADER)
        .map(|(_, value)| value.as_str());
    // Optional whitespace and empty members are not written again; order is kept.
    assert_eq!(written, Some("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"));
    tracer.shutdown(Duration::from_millis(100));

    // Over 512 characters, whole entries go: long ones (over 128) first, from the end.
    let long = |key: &str| format!("{key}={}", "x".repeat(200));
    let value = format!("a=1,{},b=2,{},{},c=3", long("l1"), long("l2"), long("l3"));
    let state = TraceState::parse(&[&value]);
    assert_eq!((state.len(), value.len()), (6, 623));
    assert_eq!(
        state.header_value(),
        Some(format!("a=1,{},b=2,{},c=3", long("l1"), long("l2")))
    );
}

#[test]
fn tracestate_parse_applies_the_same_rules() {
    let state = TraceState::parse(&["a=1, BAD=x ,b=2", "a=3,c=3"]);
    assert_eq!(
        state.entries().collect::<Vec<_>>(),
        [("a", "1"), ("b", "2"), ("c", "3")]
    );
    assert_eq!(state.get("b"), Some("2"));
    assert_eq!(state.get("BAD"), None);
    assert!(TraceState::parse(&["BAD=1"]).is_empty());
    // A context carries it whole through `inject`.
    let context = SpanContext {
        trace_id: TraceId::from_hex(TRACE).unwrap_or(TraceId([1; 16])),
        span_id: SpanId::from_hex(PARENT).unwrap_or(SpanId([1; 8])),
        sampled: true,
        random: false,
        trace_state: state,
    };
    let mut out: Vec<(String, String)> = Vec::new();
    inject(&context, &[Format::W3c], &mut out);
    let extracted: Extracted = extract(&out);
    assert_eq!(extracted.context, Some(context));
}
