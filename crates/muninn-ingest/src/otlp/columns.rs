//! The event columns OTLP attributes feed (the mapping table in `mod.rs`): which attribute means
//! what, and which of several wins a column, read from a span's or a link's attribute list.

use super::*;

pub(super) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    text
}

/// A scalar as text (ids sometimes arrive as numbers); `None` for anything else.
pub(super) fn scalar_text(value: &ValueRef<'_>) -> Option<Text> {
    match value {
        ValueRef::Str(text) => Some(Text::from(*text)),
        ValueRef::Int(number) => Some(Text::from(number.to_string())),
        _ => None,
    }
}

/// A whole number from an integer or a decimal string (`messaging.destination.partition.id`).
pub(super) fn whole_number(value: &ValueRef<'_>) -> Option<i64> {
    match value {
        ValueRef::Int(number) => Some(*number),
        ValueRef::Str(text) => text.parse().ok(),
        _ => None,
    }
}

pub(super) fn broker_of(system: &str) -> Broker {
    match system.to_ascii_lowercase().as_str() {
        "kafka" => Broker::Kafka,
        "nats" => Broker::Nats,
        "pulsar" => Broker::Pulsar,
        "aws_sqs" | "sqs" => Broker::Sqs,
        "rabbitmq" => Broker::Rabbitmq,
        "redis" => Broker::Redis,
        "aws_kinesis" | "aws.kinesis" | "kinesis" => Broker::Kinesis,
        _ => Broker::Other,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    Produce,
    Consume,
}

pub(super) fn direction_of(operation: &ValueRef<'_>) -> Option<Direction> {
    let ValueRef::Str(operation) = operation else {
        return None;
    };
    match operation.to_ascii_lowercase().as_str() {
        "publish" | "send" | "create" => Some(Direction::Produce),
        "receive" | "process" | "deliver" => Some(Direction::Consume),
        _ => None,
    }
}

/// The columns fed by attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Column {
    EventId,
    EventType,
    Schema,
    Stream,
    MessageId,
    Partition,
    Offset,
}

pub(super) const N_COLUMNS: usize = 7;

/// An attribute's name as reported in errors, without an allocation per span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum KeyName {
    Fixed(&'static str),
    ConfiguredEventType,
    ConfiguredEventId,
}

/// What an attribute means to Muninn.
pub(super) enum Role {
    Keep,
    /// Feeds a column; a lower precedence number wins.
    Column(Column, u8, KeyName),
    System,
    Operation(u8),
}

pub(super) fn role_of(key: &str, mapping: &OtlpMapping) -> Role {
    if mapping.event_type_attribute.as_deref() == Some(key) {
        return Role::Column(Column::EventType, 0, KeyName::ConfiguredEventType);
    }
    if mapping.event_id_attribute.as_deref() == Some(key) {
        return Role::Column(Column::EventId, 0, KeyName::ConfiguredEventId);
    }
    // Every conventional key below starts with `messaging.` or `cloudevents.`; most attributes
    // do not, and are kept after one comparison.
    if !key.starts_with("messaging.") && !key.starts_with("cloudevents.") {
        return Role::Keep;
    }
    let (column, precedence, name) = match key {
        "cloudevents.event_id" => (Column::EventId, 1, "cloudevents.event_id"),
        "cloudevents.event_type" => (Column::EventType, 1, "cloudevents.event_type"),
        "cloudevents.event_dataschema" => (Column::Schema, 0, "cloudevents.event_dataschema"),
        "messaging.destination.name" => (Column::Stream, 0, "messaging.destination.name"),
        "messaging.destination" => (Column::Stream, 1, "messaging.destination"),
        "messaging.message.id" => (Column::MessageId, 0, "messaging.message.id"),
        "messaging.kafka.destination.partition" => (
            Column::Partition,
            0,
            "messaging.kafka.destination.partition",
        ),
        "messaging.destination.partition.id" => {
            (Column::Partition, 1, "messaging.destination.partition.id")
        }
        "messaging.kafka.message.offset" => (Column::Offset, 0, "messaging.kafka.message.offset"),
        "messaging.kafka.offset" => (Column::Offset, 1, "messaging.kafka.offset"),
        "messaging.system" => return Role::System,
        "messaging.operation.type" => return Role::Operation(0),
        "messaging.operation" => return Role::Operation(1),
        _ => return Role::Keep,
    };
    Role::Column(column, precedence, KeyName::Fixed(name))
}

pub(super) fn is_event_id_key(key: &str, mapping: &OtlpMapping) -> bool {
    matches!(
        role_of(key, mapping),
        Role::Column(Column::EventId | Column::MessageId, _, _)
    )
}

/// The attribute that filled a column: its name, and the link it was on (batch receives).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Origin {
    pub(super) key: KeyName,
    pub(super) link: Option<usize>,
}

/// One column's winning attribute so far.
#[derive(Clone)]
pub(super) struct Slot<'a> {
    pub(super) precedence: u8,
    pub(super) origin: Origin,
    pub(super) key: &'a str,
    pub(super) value: ValueRef<'a>,
}

/// The event columns read from one attribute list (a span's or a link's).
#[derive(Default)]
pub(super) struct Columns<'a> {
    pub(super) slots: [Option<Slot<'a>>; N_COLUMNS],
    pub(super) broker: Option<Broker>,
    pub(super) operation: Option<(u8, Direction)>,
}

impl<'a> Columns<'a> {
    /// Reads the attributes that feed columns out of `attributes`, keeping the others (and
    /// those that lose to a more precedent attribute) in order. `link` tags the origins.
    pub(super) fn read(
        attributes: Vec<AttrRef<'a>>,
        mapping: &OtlpMapping,
        link: Option<usize>,
    ) -> (Columns<'a>, Attributes) {
        let mut columns = Columns::default();
        let mut kept = Vec::with_capacity(attributes.len());
        for (key, value) in attributes {
            match role_of(key, mapping) {
                Role::Keep => kept.push((attribute_key(key), value.into_owned())),
                Role::System => {
                    let broker = match &value {
                        ValueRef::Str(system) => broker_of(system),
                        _ => Broker::Other,
                    };
                    columns.broker = Some(broker);
                    if broker == Broker::Other {
                        kept.push((attribute_key(key), value.into_owned()));
                    }
                }
                Role::Operation(precedence) => {
                    if let Some(direction) = direction_of(&value)
                        && columns
                            .operation
                            .is_none_or(|(existing, _)| precedence < existing)
                    {
                        columns.operation = Some((precedence, direction));
                    }
                    kept.push((attribute_key(key), value.into_owned()));
                }
                Role::Column(column, precedence, name) => {
                    let usable = match column {
                        Column::Partition => whole_number(&value)
                            .is_some_and(|number| i32::try_from(number).is_ok_and(|n| n >= 0)),
                        Column::Offset => whole_number(&value).is_some_and(|number| number >= 0),
                        _ => match &value {
                            ValueRef::Str(text) => !text.is_empty(),
                            ValueRef::Int(_) => true,
                            _ => false,
                        },
                    };
                    let slot = &mut columns.slots[column as usize];
                    if !usable
                        || slot
                            .as_ref()
                            .is_some_and(|slot| slot.precedence <= precedence)
                    {
                        kept.push((attribute_key(key), value.into_owned()));
                        continue;
                    }
                    let winner = Slot {
                        precedence,
                        origin: Origin { key: name, link },
                        key,
                        value,
                    };
                    if let Some(loser) = slot.replace(winner) {
                        kept.push((attribute_key(loser.key), loser.value.into_owned()));
                    }
                }
            }
        }
        (columns, kept)
    }

    pub(super) fn has(&self, column: Column) -> bool {
        self.slots[column as usize].is_some()
    }

    /// `other`'s columns where it has them (a link's over its span's).
    pub(super) fn overlaid_by(&self, other: Columns<'a>) -> Columns<'a> {
        let mut merged = Columns {
            slots: Default::default(),
            broker: other.broker.or(self.broker),
            operation: other.operation.or(self.operation),
        };
        for (index, (mine, theirs)) in self.slots.iter().zip(other.slots).enumerate() {
            merged.slots[index] = theirs.or_else(|| mine.clone());
        }
        merged
    }

    /// The event columns, and where each came from (for error messages).
    pub(super) fn into_event(self) -> (EventColumns, [Option<Origin>; N_COLUMNS]) {
        let mut origins = [None; N_COLUMNS];
        let mut texts: [Option<Text>; N_COLUMNS] = Default::default();
        let mut numbers: [Option<i64>; N_COLUMNS] = [None; N_COLUMNS];
        for (index, slot) in self.slots.iter().enumerate() {
            let Some(slot) = slot else { continue };
            origins[index] = Some(slot.origin);
            if index == Column::Partition as usize || index == Column::Offset as usize {
                numbers[index] = whole_number(&slot.value);
            } else {
                texts[index] = scalar_text(&slot.value);
            }
        }
        let [event_id, event_type, schema, stream, message_id, _, _] = texts;
        let event_id = match event_id {
            Some(event_id) => Some(event_id),
            None => {
                origins[Column::EventId as usize] = origins[Column::MessageId as usize];
                message_id.clone()
            }
        };
        let event = EventColumns {
            event_id,
            event_type,
            schema,
            stream,
            broker: self.broker,
            modified: false,
            partition: numbers[Column::Partition as usize]
                .and_then(|number| i32::try_from(number).ok()),
            offset: numbers[Column::Offset as usize],
            message_id,
        };
        (event, origins)
    }
}
