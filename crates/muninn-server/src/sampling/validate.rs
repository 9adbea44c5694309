//! Validation of sampling rules, the same for an API body and for a rule in the rules file:
//! JSON object → `RuleBody`, with an error that names the offending field and says what is valid.

use muninn_model::sampling::SamplingRule;
use serde_json::{Map, Value};

/// Longest rule id, in characters.
pub(crate) const MAX_ID_CHARS: usize = 64;
/// Longest `service` or `event_type` of a rule, in characters.
pub(crate) const MAX_SCOPE_CHARS: usize = 256;
/// Longest `description`, in characters.
pub(crate) const MAX_DESCRIPTION_CHARS: usize = 1024;

/// The members a rule may have; anything else is refused.
const FIELDS: [&str; 6] = [
    "id",
    "service",
    "event_type",
    "rate",
    "live_debug",
    "description",
];

/// What is wrong with one field of a rule. `message` starts with the field's name.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    fn new(field: &str, message: impl std::fmt::Display) -> Self {
        FieldError {
            field: field.to_string(),
            message: format!("{field}: {message}"),
        }
    }
}

/// A validated rule whose id may still be missing (`POST` generates one).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RuleBody {
    pub id: Option<String>,
    pub service: Option<String>,
    pub event_type: Option<String>,
    pub rate: f64,
    pub live_debug: bool,
    pub description: String,
}

impl RuleBody {
    pub fn into_rule(self, id: String) -> SamplingRule {
        SamplingRule {
            id,
            service: self.service,
            event_type: self.event_type,
            rate: self.rate,
            live_debug: self.live_debug,
            description: self.description,
        }
    }
}

/// At most 64 characters of `text`, quoted, for error messages.
fn shown(text: &str) -> String {
    let mut chars = text.chars();
    let head: String = chars.by_ref().take(64).collect();
    if chars.next().is_some() {
        format!("{head:?}…")
    } else {
        format!("{head:?}")
    }
}

/// `a string`, `a number`, … for "got …" in messages.
fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A rule id: 1 to 64 characters of `A-Z a-z 0-9 . _ -`.
pub(crate) fn check_id(id: &str) -> Result<(), FieldError> {
    let valid_chars = id
        .chars()
        .all(|char| char.is_ascii_alphanumeric() || matches!(char, '.' | '_' | '-'));
    if id.is_empty() || id.chars().count() > MAX_ID_CHARS || !valid_chars {
        return Err(FieldError::new(
            "id",
            format!(
                "must be 1 to {MAX_ID_CHARS} characters of A-Z, a-z, 0-9, '.', '_' and '-', got {}",
                shown(id)
            ),
        ));
    }
    Ok(())
}

/// An optional string member; `null` counts as absent.
fn optional_string<'a>(
    object: &'a Map<String, Value>,
    field: &str,
) -> Result<Option<&'a str>, FieldError> {
    match object.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(text)) => Ok(Some(text)),
        Some(other) => Err(FieldError::new(
            field,
            format!("must be a string, got {}", kind_of(other)),
        )),
    }
}

/// `service` or `event_type`: absent, or 1 to 256 characters without control characters.
fn scope(
    object: &Map<String, Value>,
    field: &str,
    matches_every: &str,
) -> Result<Option<String>, FieldError> {
    let Some(text) = optional_string(object, field)? else {
        return Ok(None);
    };
    if text.is_empty() {
        return Err(FieldError::new(
            field,
            format!("must not be empty; omit the field to match every {matches_every}"),
        ));
    }
    let n_chars = text.chars().count();
    if n_chars > MAX_SCOPE_CHARS {
        return Err(FieldError::new(
            field,
            format!("must be at most {MAX_SCOPE_CHARS} characters, got {n_chars}"),
        ));
    }
    if text.chars().any(char::is_control) {
        return Err(FieldError::new(
            field,
            format!("must not contain control characters, got {}", shown(text)),
        ));
    }
    Ok(Some(text.to_string()))
}

/// Reads and validates one rule. Unknown members are refused by name.
pub(crate) fn parse_rule(value: &Value) -> Result<RuleBody, FieldError> {
    let Value::Object(object) = value else {
        return Err(FieldError {
            field: String::new(),
            message: format!(
                "a rule must be a JSON object like {{\"service\": \"checkout\", \"rate\": 0.1}}, got {}",
                kind_of(value)
            ),
        });
    };
    if let Some(unknown) = object.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err(FieldError::new(
            unknown,
            format!("unknown field; a rule has only {}", FIELDS.join(", ")),
        ));
    }
    let id = match optional_string(object, "id")? {
        None => None,
        Some(id) => {
            check_id(id)?;
            Some(id.to_string())
        }
    };
    let service = scope(object, "service", "service")?;
    let event_type = scope(object, "event_type", "event type")?;
    let rate_rule = "must be a number from 0 to 1 (0 traces no event, 1 every event)";
    let rate = match object.get("rate") {
        None | Some(Value::Null) => {
            return Err(FieldError::new(
                "rate",
                format!("is required; it {rate_rule}"),
            ));
        }
        Some(Value::Number(number)) => match number.as_f64() {
            Some(rate) if rate.is_finite() && (0.0..=1.0).contains(&rate) => rate,
            _ => {
                return Err(FieldError::new(
                    "rate",
                    format!("{rate_rule}, got {number}"),
                ));
            }
        },
        Some(other) => {
            return Err(FieldError::new(
                "rate",
                format!("{rate_rule}, got {}", kind_of(other)),
            ));
        }
    };
    let live_debug = match object.get("live_debug") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(flag)) => *flag,
        Some(other) => {
            return Err(FieldError::new(
                "live_debug",
                format!("must be true or false, got {}", kind_of(other)),
            ));
        }
    };
    if live_debug && service.is_none() {
        return Err(FieldError::new(
            "live_debug",
            "true needs a `service`: live debugging (every span sent at once) is switched on for one named service only",
        ));
    }
    let description = optional_string(object, "description")?.unwrap_or_default();
    let n_chars = description.chars().count();
    if n_chars > MAX_DESCRIPTION_CHARS {
        return Err(FieldError::new(
            "description",
            format!("must be at most {MAX_DESCRIPTION_CHARS} characters, got {n_chars}"),
        ));
    }
    Ok(RuleBody {
        id,
        service,
        event_type,
        rate,
        live_debug,
        description: description.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn field_of(value: Value) -> String {
        let error = parse_rule(&value).expect_err("the rule should be refused");
        assert!(
            error.message.starts_with(&error.field),
            "message does not name the field: {error:?}"
        );
        error.field
    }

    #[test]
    fn a_full_rule_is_read() {
        let rule = parse_rule(&json!({
            "id": "r-1.a_b", "service": "checkout", "event_type": "order.created",
            "rate": 0.25, "live_debug": true, "description": "why"
        }))
        .unwrap();
        assert_eq!(rule.id.as_deref(), Some("r-1.a_b"));
        assert_eq!(rule.rate, 0.25);
        assert!(rule.live_debug);
        let minimal = parse_rule(&json!({"rate": 1, "service": null})).unwrap();
        assert_eq!(minimal.service, None);
        assert_eq!(minimal.rate, 1.0);
        assert!(!minimal.live_debug);
    }

    #[test]
    fn every_error_names_its_field() {
        assert_eq!(field_of(json!({"rate": 1.5})), "rate");
        assert_eq!(field_of(json!({"rate": -0.1})), "rate");
        assert_eq!(field_of(json!({"rate": "0.5"})), "rate");
        assert_eq!(field_of(json!({})), "rate");
        assert_eq!(field_of(json!({"rate": 1, "id": ""})), "id");
        assert_eq!(field_of(json!({"rate": 1, "id": "a b"})), "id");
        assert_eq!(field_of(json!({"rate": 1, "id": "x".repeat(65)})), "id");
        assert_eq!(field_of(json!({"rate": 1, "service": ""})), "service");
        assert_eq!(field_of(json!({"rate": 1, "service": "a\nb"})), "service");
        assert_eq!(
            field_of(json!({"rate": 1, "event_type": "x".repeat(257)})),
            "event_type"
        );
        assert_eq!(
            field_of(json!({"rate": 1, "live_debug": true})),
            "live_debug"
        );
        assert_eq!(
            field_of(json!({"rate": 1, "live_debug": "yes"})),
            "live_debug"
        );
        assert_eq!(
            field_of(json!({"rate": 1, "description": "x".repeat(1025)})),
            "description"
        );
        assert_eq!(field_of(json!({"rate": 1, "sample": 2})), "sample");
        assert!(parse_rule(&json!([1])).is_err());
        // Limits count characters, not bytes.
        assert!(parse_rule(&json!({"rate": 1, "service": "é".repeat(256)})).is_ok());
    }
}
