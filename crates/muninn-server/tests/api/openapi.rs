//! `openapi.yaml` against the code: every route registered in `server.rs` is documented (and
//! nothing else is), the served document is the file, and — through `check_answer`, which the
//! client in `support` calls on every answer — every status, content type and JSON body the
//! tests receive is one the document describes.
//!
//! No YAML crate is in the dependency tree: the document is read by the YAML subset reader in
//! `openapi/yaml.rs`.

use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::support::{Answer, Fleet, TestServer};

#[path = "openapi/yaml.rs"]
mod yaml;

pub use yaml::Yaml;
use yaml::parse_yaml;

const DOCUMENT: &str = include_str!("../../openapi.yaml");
const SERVER_SOURCE: &str = include_str!("../../src/server.rs");

/// The parsed document, once per test binary.
pub fn document() -> &'static Yaml {
    static PARSED: OnceLock<Yaml> = OnceLock::new();
    PARSED.get_or_init(|| parse_yaml(DOCUMENT))
}

fn resolve<'a>(document: &'a Yaml, node: &'a Yaml) -> &'a Yaml {
    let Some(reference) = node.get("$ref").and_then(Yaml::text) else {
        return node;
    };
    let path = reference
        .strip_prefix("#/")
        .unwrap_or_else(|| panic!("only local $refs are supported: {reference}"));
    let target = path
        .split('/')
        .try_fold(document, |node, segment| node.get(segment))
        .unwrap_or_else(|| panic!("$ref {reference} points nowhere"));
    resolve(document, target)
}

/// The properties, required names and closedness of an object schema, through `allOf`.
fn object_shape<'a>(
    document: &'a Yaml,
    schema: &'a Yaml,
    shape: &mut (Vec<(&'a str, &'a Yaml)>, Vec<&'a str>),
) {
    let schema = resolve(document, schema);
    for (name, property) in schema
        .get("properties")
        .map(Yaml::entries)
        .unwrap_or_default()
    {
        shape.0.push((name, property));
    }
    for required in schema.get("required").map(Yaml::items).unwrap_or_default() {
        shape.1.extend(required.text());
    }
    for part in schema.get("allOf").map(Yaml::items).unwrap_or_default() {
        object_shape(document, part, shape);
    }
}

fn type_matches(expected: &str, value: &Value) -> bool {
    match expected {
        "string" => value.is_string(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "boolean" => value.is_boolean(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        "null" => value.is_null(),
        other => panic!("unknown schema type {other:?}"),
    }
}

/// Checks `value` against `schema` (types, enums, required and closed objects, items, allOf,
/// oneOf). Patterns and formats are not checked.
pub fn check_schema(document: &Yaml, schema: &Yaml, value: &Value, at: &str) -> Result<(), String> {
    let schema = resolve(document, schema);
    if let Some(options) = schema.get("oneOf") {
        let n_matching = options
            .items()
            .iter()
            .filter(|option| check_schema(document, option, value, at).is_ok())
            .count();
        if n_matching != 1 {
            return Err(format!(
                "{at}: {n_matching} of the oneOf schemas match {value}"
            ));
        }
    }
    if let Some(expected) = schema.get("type") {
        let types: Vec<&str> = match expected {
            Yaml::List(items) => items.iter().filter_map(Yaml::text).collect(),
            other => other.text().into_iter().collect(),
        };
        if !types.iter().any(|expected| type_matches(expected, value)) {
            return Err(format!("{at}: {value} is not of type {types:?}"));
        }
    }
    if let (Some(allowed), Some(text)) = (schema.get("enum"), value.as_str())
        && !allowed.items().iter().any(|item| item.text() == Some(text))
    {
        return Err(format!("{at}: {text:?} is not in the enum"));
    }
    if let (Some(minimum), Some(number)) =
        (schema.get("minimum").and_then(Yaml::text), value.as_i64())
        && number < minimum.parse::<i64>().unwrap_or(i64::MIN)
    {
        return Err(format!("{at}: {number} is below the minimum {minimum}"));
    }
    if let (Some(items), Some(array)) = (schema.get("items"), value.as_array()) {
        for (index, item) in array.iter().enumerate() {
            check_schema(document, items, item, &format!("{at}[{index}]"))?;
        }
    }
    let is_object_schema = schema.get("properties").is_some() || schema.get("allOf").is_some();
    if let (true, Some(object)) = (
        is_object_schema || schema.get("additionalProperties").is_some(),
        value.as_object(),
    ) {
        let mut shape = (Vec::new(), Vec::new());
        object_shape(document, schema, &mut shape);
        let (properties, required) = shape;
        for name in required {
            if !object.contains_key(name) {
                return Err(format!(
                    "{at}: required property {name:?} is missing from {value}"
                ));
            }
        }
        let closed = [
            schema.get("additionalProperties"),
            schema.get("unevaluatedProperties"),
        ]
        .into_iter()
        .flatten()
        .any(|flag| flag.text() == Some("false"));
        let additional = schema
            .get("additionalProperties")
            .filter(|node| matches!(node, Yaml::Map(_)));
        for (name, member) in object {
            let member_at = format!("{at}.{name}");
            match properties.iter().find(|(property, _)| property == name) {
                Some((_, property)) => check_schema(document, property, member, &member_at)?,
                None if closed => return Err(format!("{at}: property {name:?} is not documented")),
                None => {
                    if let Some(additional) = additional {
                        check_schema(document, additional, member, &member_at)?;
                    }
                }
            }
        }
    } else if let Some(parts) = schema.get("allOf") {
        for part in parts.items() {
            check_schema(document, part, value, at)?;
        }
    }
    Ok(())
}

/// Whether `path` (`/api/v1/traces/abc`) matches the template (`/api/v1/traces/{trace_id}`).
fn path_matches(template: &str, path: &str) -> bool {
    let (template, path): (Vec<&str>, Vec<&str>) =
        (template.split('/').collect(), path.split('/').collect());
    template.len() == path.len()
        && template.iter().zip(&path).all(|(expected, actual)| {
            expected == actual || (expected.starts_with('{') && !actual.is_empty())
        })
}

/// Asserts that the document describes this answer: the route and method, the status, the
/// content type, and for JSON the body's schema. Unknown routes must answer the 404 error body.
pub fn check_answer(method: &str, path: &str, answer: &Answer) {
    let document = document();
    let shown = method.to_uppercase();
    let paths = document.get("paths").expect("the document has paths");
    let candidates: Vec<&(String, Yaml)> = paths
        .entries()
        .iter()
        .filter(|(template, _)| path_matches(template, path))
        .collect();
    // A literal segment beats a parameter (`/api/v1/openapi.yaml` over a template).
    let route = candidates
        .iter()
        .find(|(template, _)| template == path)
        .or(candidates.first());
    let Some((template, item)) = route else {
        assert_eq!(
            answer.status, 404,
            "{shown} {path} is not documented but answered {}",
            answer.status
        );
        check_error_body(document, &answer.text, &format!("{shown} {path}"));
        return;
    };
    let Some(operation) = item.get(method) else {
        // Known route, other method: the error body, whatever the route.
        assert_eq!(
            answer.status, 405,
            "{shown} {template} is not documented but answered {}",
            answer.status
        );
        check_error_body(document, &answer.text, &format!("{shown} {path}"));
        return;
    };
    let responses = operation
        .get("responses")
        .expect("operations have responses");
    let status = answer.status.to_string();
    let response = responses
        .get(&status)
        .or_else(|| responses.get("default"))
        .unwrap_or_else(|| {
            panic!(
                "{shown} {template} answered {status}, which is not documented: {}",
                answer.text
            )
        });
    let response = resolve(document, response);
    for (name, header) in response
        .get("headers")
        .map(Yaml::entries)
        .unwrap_or_default()
    {
        let header = resolve(document, header);
        let value = answer.header(name);
        if header.get("required").and_then(Yaml::text) == Some("true") {
            assert!(
                value.is_some(),
                "{shown} {template} {status}: the required header {name} is missing"
            );
        }
        if let (Some(value), Some(schema)) = (value, header.get("schema")) {
            check_header_value(document, schema, value).unwrap_or_else(|error| {
                panic!("{shown} {template} {status}: header {name}: {error}")
            });
        }
    }
    let Some(contents) = response.get("content") else {
        // A response documented without content has no body and no content type.
        assert!(
            answer.text.is_empty() && answer.content_type.is_empty(),
            "{shown} {template} {status} is documented without a body but has one: {:?} {:?}",
            answer.content_type,
            answer.text
        );
        return;
    };
    let media_type = answer
        .content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    let content = contents.get(media_type).unwrap_or_else(|| {
        panic!("{shown} {template} {status}: content type {media_type:?} is not documented")
    });
    if media_type == "application/json" {
        let body: Value = serde_json::from_str(&answer.text).unwrap_or_else(|error| {
            panic!(
                "{shown} {path}: the body is not JSON ({error}): {}",
                answer.text
            )
        });
        let schema = content.get("schema").expect("JSON content has a schema");
        check_schema(document, schema, &body, "body").unwrap_or_else(|error| {
            panic!("{shown} {path} {status} does not match openapi.yaml: {error}")
        });
    }
}

/// A header value against its schema: `enum` and, for an anchored pattern made of literal
/// characters, `[...]` classes and `{n}` counts (all `openapi.yaml` uses for headers), `pattern`.
fn check_header_value(document: &Yaml, schema: &Yaml, value: &str) -> Result<(), String> {
    let schema = resolve(document, schema);
    // Header values are text; a numeric or boolean schema reads them as JSON.
    let typed = match schema.get("type").and_then(Yaml::text) {
        Some("integer" | "number" | "boolean") => {
            serde_json::from_str(value).unwrap_or_else(|_| json!(value))
        }
        _ => json!(value),
    };
    check_schema(document, schema, &typed, "header")?;
    if let Some(pattern) = schema.get("pattern").and_then(Yaml::text)
        && !simple_pattern_matches(pattern, value)
    {
        return Err(format!("{value:?} does not match {pattern}"));
    }
    Ok(())
}

/// `^…$` with literal characters, `[a-z0-9]` classes and `{n}` repetitions only.
fn simple_pattern_matches(pattern: &str, value: &str) -> bool {
    let inner = pattern
        .strip_prefix('^')
        .and_then(|inner| inner.strip_suffix('$'))
        .unwrap_or_else(|| panic!("header pattern {pattern} is not anchored"));
    // Each element: the character ranges it accepts, and how many times.
    let mut elements: Vec<(Vec<(char, char)>, usize)> = Vec::new();
    let mut chars = inner.chars().peekable();
    while let Some(char) = chars.next() {
        let ranges = if char == '[' {
            let class: Vec<char> = chars.by_ref().take_while(|char| *char != ']').collect();
            let mut ranges = Vec::new();
            let mut index = 0;
            while index < class.len() {
                if index + 2 < class.len() && class[index + 1] == '-' {
                    ranges.push((class[index], class[index + 2]));
                    index += 3;
                } else {
                    ranges.push((class[index], class[index]));
                    index += 1;
                }
            }
            ranges
        } else {
            assert!(
                !"\\.*+?()|{}".contains(char),
                "header pattern {pattern} is beyond the supported subset"
            );
            vec![(char, char)]
        };
        let mut count = 1;
        if chars.peek() == Some(&'{') {
            chars.next();
            let digits: String = chars.by_ref().take_while(|char| *char != '}').collect();
            count = digits
                .parse()
                .unwrap_or_else(|_| panic!("header pattern {pattern}: bad count {digits:?}"));
        }
        elements.push((ranges, count));
    }
    let mut value = value.chars();
    for (ranges, count) in &elements {
        for _ in 0..*count {
            let accepted = value.next().is_some_and(|char| {
                ranges
                    .iter()
                    .any(|(low, high)| (*low..=*high).contains(&char))
            });
            if !accepted {
                return false;
            }
        }
    }
    value.next().is_none()
}

fn check_error_body(document: &Yaml, text: &str, request: &str) {
    let body: Value = serde_json::from_str(text)
        .unwrap_or_else(|error| panic!("{request}: the error is not JSON ({error}): {text}"));
    let error_schema = json_to_yaml(&json!({"$ref": "#/components/schemas/Error"}));
    check_schema(document, &error_schema, &body, "body")
        .unwrap_or_else(|error| panic!("{request}: {error}"));
}

pub fn json_to_yaml(value: &Value) -> Yaml {
    match value {
        Value::Object(object) => Yaml::Map(
            object
                .iter()
                .map(|(key, value)| (key.clone(), json_to_yaml(value)))
                .collect(),
        ),
        Value::Array(items) => Yaml::List(items.iter().map(json_to_yaml).collect()),
        Value::String(text) => Yaml::Scalar(text.clone()),
        other => Yaml::Scalar(other.to_string()),
    }
}

/// `(method, path)` of every `.route("path", method(handler))` in `server.rs`.
fn registered_routes() -> Vec<(String, String)> {
    let mut routes = Vec::new();
    // rustfmt may break `.route(` across lines, so whitespace after the parenthesis is skipped.
    for piece in SERVER_SOURCE.split(".route(").skip(1) {
        let Some(piece) = piece.trim_start().strip_prefix('"') else {
            continue;
        };
        let (path, rest) = piece
            .split_once('"')
            .expect("a route path ends with a quote");
        // The handlers run to the parenthesis that closes `.route(`; methods may be chained
        // (`get(a).post(b)`).
        let mut depth = 1;
        let end = rest
            .char_indices()
            .find(|(_, char)| {
                match char {
                    '(' => depth += 1,
                    ')' => depth -= 1,
                    _ => {}
                }
                depth == 0
            })
            .map_or(rest.len(), |(index, _)| index);
        let handlers = &rest[..end];
        let mut n_methods = 0;
        for method in ["get", "post", "put", "delete", "patch"] {
            let call = format!("{method}(");
            let called = handlers.match_indices(&call).any(|(index, _)| {
                handlers[..index].chars().next_back().is_none_or(|before| {
                    before.is_whitespace() || matches!(before, '.' | '(' | ',')
                })
            });
            if called {
                routes.push((method.to_string(), path.to_string()));
                n_methods += 1;
            }
        }
        assert!(n_methods > 0, "cannot read the method of route {path}");
    }
    routes
}

fn documented_routes() -> Vec<(String, String)> {
    let paths = document().get("paths").expect("the document has paths");
    let mut routes = Vec::new();
    for (path, item) in paths.entries() {
        for (method, _) in item.entries() {
            routes.push((method.clone(), path.clone()));
        }
    }
    routes
}

#[test]
fn every_registered_route_is_documented_and_nothing_else() {
    let registered = registered_routes();
    assert!(
        registered.len() >= 15,
        "server.rs was not read correctly: {registered:?}"
    );
    // axum 0.8 writes path parameters as `{name}`, like OpenAPI, so paths compare as they are.
    let documented = documented_routes();
    let missing: Vec<_> = registered
        .iter()
        .filter(|route| !documented.contains(route))
        .collect();
    let stale: Vec<_> = documented
        .iter()
        .filter(|route| !registered.contains(route))
        .collect();
    assert!(
        missing.is_empty(),
        "routes missing from openapi.yaml: {missing:?}"
    );
    assert!(
        stale.is_empty(),
        "openapi.yaml documents routes the server does not have: {stale:?}"
    );
}

#[test]
fn the_document_is_openapi_3_1_and_every_reference_resolves() {
    let document = document();
    assert_eq!(document.get("openapi").and_then(Yaml::text), Some("3.1.0"));
    fn visit(document: &Yaml, node: &Yaml, n_refs: &mut usize) {
        match node {
            Yaml::Map(entries) => {
                if node.get("$ref").is_some() {
                    *n_refs += 1;
                    resolve(document, node);
                }
                for (_, value) in entries {
                    visit(document, value, n_refs);
                }
            }
            Yaml::List(items) => items.iter().for_each(|item| visit(document, item, n_refs)),
            Yaml::Scalar(_) => {}
        }
    }
    let mut n_refs = 0;
    visit(document, document, &mut n_refs);
    assert!(n_refs > 50, "only {n_refs} references found");
    // Every operation has an id and every path parameter in a template is declared.
    for (path, item) in document.get("paths").map(Yaml::entries).unwrap_or_default() {
        for (method, operation) in item.entries() {
            assert!(
                operation.get("operationId").is_some(),
                "{method} {path} has no operationId"
            );
            let declared: Vec<&str> = operation
                .get("parameters")
                .map(Yaml::items)
                .unwrap_or_default()
                .iter()
                .map(|parameter| resolve(document, parameter))
                .filter(|parameter| parameter.get("in").and_then(Yaml::text) == Some("path"))
                .filter_map(|parameter| parameter.get("name").and_then(Yaml::text))
                .collect();
            for segment in path.split('/').filter(|segment| segment.starts_with('{')) {
                let name = segment.trim_start_matches('{').trim_end_matches('}');
                assert!(
                    declared.contains(&name),
                    "{method} {path} does not declare path parameter {name}"
                );
            }
        }
    }
}

#[test]
fn the_span_schema_documents_the_default_limits() {
    let limits = muninn_model::Limits::default();
    let span = document()
        .get("components")
        .and_then(|components| components.get("schemas"))
        .and_then(|schemas| schemas.get("Span"));
    let description = span
        .and_then(|span| span.get("description"))
        .and_then(Yaml::text)
        .expect("Span has a description");
    // Compare with line breaks and indentation folded away.
    let description = description.split_whitespace().collect::<Vec<_>>().join(" ");
    let hours = |nanos: i64| nanos / 3_600_000_000_000;
    for expected in [
        format!("1 to {} bytes", limits.max_name_bytes),
        format!("at most {} entries", limits.max_attributes),
        format!("keys 1 to {} bytes", limits.max_attribute_key_bytes),
        format!("at most {} bytes", limits.max_attribute_value_bytes),
        format!("`links`: at most {}", limits.max_links),
        format!("within the last {} days", hours(limits.max_age_nanos) / 24),
        format!("at most {} hour", hours(limits.max_future_nanos)),
        format!("0 to {} hours", hours(limits.max_duration_nanos)),
    ] {
        assert!(
            description.contains(&expected),
            "the Span description does not say {expected:?}:\n{description}"
        );
    }
}

#[test]
fn the_fleet_is_valid_by_the_request_schemas() {
    let document = document();
    let fleet = Fleet::new();
    let schema =
        |name: &str| json_to_yaml(&json!({"$ref": format!("#/components/schemas/{name}")}));
    for span in &fleet.spans {
        check_schema(document, &schema("Span"), span, "span").unwrap();
    }
    for count in &fleet.counts {
        check_schema(document, &schema("Count"), count, "count").unwrap();
    }
    // The checker itself refuses what it should.
    let error = json!({"error": {"status": 400, "message": "x", "surprise": 1}});
    assert!(check_schema(document, &schema("Error"), &error, "body").is_err());
    assert!(
        check_schema(
            document,
            &schema("Error"),
            &json!({"error": {"status": 400}}),
            "body"
        )
        .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_serves_this_document() {
    let server = TestServer::start().await;
    let answer = server.api.get("/api/v1/openapi.yaml", &[]).await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.content_type, "application/yaml");
    assert_eq!(answer.text, DOCUMENT);
    let health = server.api.get_json("/healthz", &[]).await;
    assert_eq!(
        health,
        json!({
            "status": "ok",
            "store": {
                "wal": "ok", "wal_failures": 0, "last_wal_error": null,
                "flushing": "ok", "flush_failures": 0, "last_flush_error": null,
                "quarantined_blocks": []
            }
        })
    );
    // An unknown route answers the documented error body (checked by the client).
    let answer = server.api.get("/api/v2/nothing", &[]).await;
    assert_eq!(answer.status, 404);
    server.stop().await;
}

#[test]
fn the_header_pattern_reader_reads_its_subset() {
    let etag = "^\"[0-9a-f]{16}\"$";
    assert!(simple_pattern_matches(etag, "\"0123456789abcdef\""));
    assert!(!simple_pattern_matches(etag, "\"0123456789abcde\""));
    assert!(!simple_pattern_matches(etag, "\"0123456789abcdef0\""));
    assert!(!simple_pattern_matches(etag, "\"0123456789ABCDEF\""));
    assert!(!simple_pattern_matches(etag, "0123456789abcdef"));
    assert!(simple_pattern_matches("^a[._-]b$", "a.b"));
    assert!(!simple_pattern_matches("^a[._-]b$", "a,b"));
}
