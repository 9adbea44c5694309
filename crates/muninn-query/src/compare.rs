//! Compare two windows: Heimdall's triage questions ("what changed?") answered from the
//! roll-ups, so every number is an exact count whatever the sampling: throughput per event
//! type, per (service, event type, action) and per stream, the mix of event types on each
//! stream, and what appeared or disappeared (event types, producers, consumers, streams,
//! schemas).
//!
//! **How unusual a change is** (`score`): the window's count `w` against the baseline's `b`,
//! windows of `Tw` and `Tb` seconds. If the rate did not change, `w` given `n = w + b` is
//! binomial with `p = Tw / (Tw + Tb)` (the conditional test for two Poisson rates); the score
//! is its z value `(w − n·p) / √(n·p·(1−p))`: positive for an increase, negative for a
//! decrease. It grows with the evidence, not with the ratio, so tiny counts never look
//! unusual (1 → 3 events scores 1.0; 600 → 1,200 scores 14). A change is `unusual` from
//! |score| ≥ [`UNUSUAL`]; lists are sorted by |score|, most unusual first. Something appeared
//! (or disappeared) unusually when, had it kept its rate, the other window would have held at
//! least [`UNUSUAL_ABSENCE`] of it (a Poisson chance of seeing none below 1 in 10,000).

use std::collections::{BTreeMap, BTreeSet};

use muninn_model::{Action, NANOS_PER_SECOND, format_rfc3339_nanos};
use muninn_store::Store;
use serde::Serialize;

use crate::edges::{EdgeKey, EdgeTotals, Filter, TimeRange, edge_totals};

/// |score| from which a change is unusual: a chance below 1 in 1.7 million under a steady
/// rate, so a fleet of thousands of steady edges shows none.
pub const UNUSUAL: f64 = 5.0;

/// Expected count in the other window above which an absence is unusual (e^-9.2 < 1e-4).
pub const UNUSUAL_ABSENCE: f64 = 9.2;

/// One window of the comparison.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Window {
    pub from: String,
    pub to: String,
    pub seconds: f64,
}

/// A throughput change of one event type, one stream, or one (service, event type, action).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    pub baseline_count: u64,
    pub count: u64,
    /// Events per second in the baseline and in the window.
    pub baseline_rate: f64,
    pub rate: f64,
    /// `rate − baseline_rate`, events per second.
    pub change_per_second: f64,
    /// `rate / baseline_rate − 1`; `null` when the baseline had none.
    pub relative_change: Option<f64>,
    pub score: f64,
    pub unusual: bool,
    /// For an increase of an event type or a stream: the producer that sent most of the extra.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

/// The producer behind an increase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Origin {
    pub service: String,
    /// Its own change, events per second.
    pub change_per_second: f64,
    /// Its part of the whole increase (0 to 1).
    pub share: f64,
}

/// An event type's share of a stream's produced events, before and after.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MixChange {
    pub stream: String,
    pub event_type: String,
    pub baseline_share: f64,
    pub share: f64,
    pub change: f64,
    pub score: f64,
    pub unusual: bool,
}

/// Something present in one window and absent from the other.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Presence {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema: Option<String>,
    /// For a schema: the services that produced it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub producers: Vec<String>,
    /// Its events in the window where it is present.
    pub count: u64,
    pub unusual: bool,
}

/// What appeared (or disappeared), by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Presences {
    pub event_types: Vec<Presence>,
    /// (service, event type) pairs produced.
    pub producers: Vec<Presence>,
    /// (service, event type) pairs consumed.
    pub consumers: Vec<Presence>,
    pub streams: Vec<Presence>,
    /// (event type, schema) pairs produced, with their producers.
    pub schemas: Vec<Presence>,
}

/// Whether a drop holds for every event type or for some.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecreaseScope {
    /// Event types whose produced rate fell unusually.
    pub down: Vec<String>,
    /// Event types of the baseline that did not.
    pub steady: Vec<String>,
    /// Every event type of the baseline fell.
    pub all: bool,
}

/// The answer of `GET /api/v1/compare`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    pub baseline: Window,
    pub window: Window,
    pub unusual_score: f64,
    /// Produced events per event type.
    pub event_types: Vec<Change>,
    /// Per (service, event type, action).
    pub edges: Vec<Change>,
    /// Produced events per stream.
    pub streams: Vec<Change>,
    pub mix: Vec<MixChange>,
    pub appeared: Presences,
    pub disappeared: Presences,
    /// Present when some event type fell unusually.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decrease: Option<DecreaseScope>,
}

fn seconds(range: TimeRange) -> f64 {
    (range.to_unix_nanos - range.from_unix_nanos) as f64 / NANOS_PER_SECOND as f64
}

fn window(range: TimeRange) -> Window {
    Window {
        from: format_rfc3339_nanos(range.from_unix_nanos),
        to: format_rfc3339_nanos(range.to_unix_nanos),
        seconds: seconds(range),
    }
}

/// The z value of `count` in the window against `baseline` (see the module documentation).
pub fn score(baseline: u64, count: u64, baseline_seconds: f64, seconds: f64) -> f64 {
    let n = (baseline + count) as f64;
    if n == 0.0 || baseline_seconds <= 0.0 || seconds <= 0.0 {
        return 0.0;
    }
    let p = seconds / (seconds + baseline_seconds);
    let spread = (n * p * (1.0 - p)).sqrt();
    if spread == 0.0 {
        return 0.0;
    }
    (count as f64 - n * p) / spread
}

/// Counts of both windows for one key.
#[derive(Debug, Clone, Copy, Default)]
struct Pair {
    baseline: u64,
    window: u64,
}

struct Totals {
    baseline: BTreeMap<EdgeKey, EdgeTotals>,
    window: BTreeMap<EdgeKey, EdgeTotals>,
    baseline_seconds: f64,
    seconds: f64,
}

impl Totals {
    /// Sums both windows' counts by `key_of` (edges it maps to `None` left out).
    fn by<K: Ord>(&self, key_of: impl Fn(&EdgeKey) -> Option<K>) -> BTreeMap<K, Pair> {
        let mut pairs: BTreeMap<K, Pair> = BTreeMap::new();
        for (edge, totals) in &self.baseline {
            if let Some(key) = key_of(edge) {
                pairs.entry(key).or_default().baseline += totals.count;
            }
        }
        for (edge, totals) in &self.window {
            if let Some(key) = key_of(edge) {
                pairs.entry(key).or_default().window += totals.count;
            }
        }
        pairs
    }

    fn change(&self, pair: Pair) -> Change {
        let baseline_rate = pair.baseline as f64 / self.baseline_seconds;
        let rate = pair.window as f64 / self.seconds;
        let score = score(
            pair.baseline,
            pair.window,
            self.baseline_seconds,
            self.seconds,
        );
        Change {
            service: None,
            action: None,
            stream: None,
            event_type: None,
            baseline_count: pair.baseline,
            count: pair.window,
            baseline_rate,
            rate,
            change_per_second: rate - baseline_rate,
            relative_change: (pair.baseline > 0).then(|| rate / baseline_rate - 1.0),
            score,
            unusual: score.abs() >= UNUSUAL,
            origin: None,
        }
    }

    /// The producer with the largest increase among the produced edges `selected` picks.
    fn origin(&self, selected: impl Fn(&EdgeKey) -> bool) -> Option<Origin> {
        let by_service = self.by(|edge| {
            (edge.action == Action::Produced && selected(edge)).then(|| edge.service.clone())
        });
        let changes: Vec<(String, f64)> = by_service
            .into_iter()
            .map(|(service, pair)| {
                let change = pair.window as f64 / self.seconds
                    - pair.baseline as f64 / self.baseline_seconds;
                (service, change)
            })
            .collect();
        let increase: f64 = changes.iter().map(|(_, change)| change.max(0.0)).sum();
        let (service, change) = changes
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .filter(|(_, change)| *change > 0.0)?;
        Some(Origin {
            service,
            change_per_second: change,
            share: change / increase,
        })
    }
}

fn by_unusualness<T>(items: &mut [T], score: impl Fn(&T) -> f64) {
    items.sort_by(|a, b| score(b).abs().total_cmp(&score(a).abs()));
}

/// Compares `window` with `baseline` over the edges `filter` selects.
pub fn compare(
    store: &Store,
    baseline: TimeRange,
    window_range: TimeRange,
    filter: &Filter,
) -> Comparison {
    let selected = |totals: BTreeMap<EdgeKey, EdgeTotals>| -> BTreeMap<EdgeKey, EdgeTotals> {
        totals
            .into_iter()
            .filter(|(edge, _)| filter.matches(edge))
            .collect()
    };
    let totals = Totals {
        baseline: selected(edge_totals(store, baseline)),
        window: selected(edge_totals(store, window_range)),
        baseline_seconds: seconds(baseline),
        seconds: seconds(window_range),
    };

    let mut event_types: Vec<Change> = totals
        .by(|edge| (edge.action == Action::Produced).then(|| edge.event_type.clone()))
        .into_iter()
        .map(|(event_type, pair)| {
            let mut change = totals.change(pair);
            if change.change_per_second > 0.0 {
                change.origin = totals.origin(|edge| edge.event_type == event_type);
            }
            change.event_type = Some(event_type);
            change
        })
        .collect();
    by_unusualness(&mut event_types, |change| change.score);

    let mut edges: Vec<Change> = totals
        .by(|edge| Some((edge.service.clone(), edge.event_type.clone(), edge.action)))
        .into_iter()
        .map(|((service, event_type, action), pair)| Change {
            service: Some(service),
            event_type: Some(event_type),
            action: Some(action.as_str()),
            ..totals.change(pair)
        })
        .collect();
    by_unusualness(&mut edges, |change| change.score);

    let mut streams: Vec<Change> = totals
        .by(|edge| (edge.action == Action::Produced).then(|| edge.stream.clone()))
        .into_iter()
        .map(|(stream, pair)| {
            let mut change = totals.change(pair);
            if change.change_per_second > 0.0 {
                change.origin = totals.origin(|edge| edge.stream == stream);
            }
            change.stream = Some(stream);
            change
        })
        .collect();
    by_unusualness(&mut streams, |change| change.score);

    let mix = mix(&totals);
    let (appeared, disappeared) = presences(&totals);
    let decrease = {
        let down: Vec<String> = event_types
            .iter()
            .filter(|change| change.unusual && change.score < 0.0)
            .filter_map(|change| change.event_type.clone())
            .collect();
        let steady: Vec<String> = event_types
            .iter()
            .filter(|change| change.baseline_count > 0 && !(change.unusual && change.score < 0.0))
            .filter_map(|change| change.event_type.clone())
            .collect();
        (!down.is_empty()).then_some(DecreaseScope {
            all: steady.is_empty(),
            down,
            steady,
        })
    };
    Comparison {
        baseline: window(baseline),
        window: window(window_range),
        unusual_score: UNUSUAL,
        event_types,
        edges,
        streams,
        mix,
        appeared,
        disappeared,
        decrease,
    }
}

/// Each event type's share of its stream's produced events, before and after; the score is
/// the z value of the window's count given the stream's window total and the baseline share.
fn mix(totals: &Totals) -> Vec<MixChange> {
    let per_type = totals.by(|edge| {
        (edge.action == Action::Produced).then(|| (edge.stream.clone(), edge.event_type.clone()))
    });
    let mut stream_totals: BTreeMap<&str, Pair> = BTreeMap::new();
    for ((stream, _), pair) in &per_type {
        let total = stream_totals.entry(stream.as_str()).or_default();
        total.baseline += pair.baseline;
        total.window += pair.window;
    }
    let mut mix: Vec<MixChange> = per_type
        .iter()
        .filter_map(|((stream, event_type), pair)| {
            let total = stream_totals.get(stream.as_str())?;
            if total.baseline == 0 || total.window == 0 {
                return None;
            }
            let baseline_share = pair.baseline as f64 / total.baseline as f64;
            let share = pair.window as f64 / total.window as f64;
            let expected = total.window as f64 * baseline_share;
            let spread = (total.window as f64 * baseline_share * (1.0 - baseline_share)).sqrt();
            let score = if spread > 0.0 {
                (pair.window as f64 - expected) / spread
            } else if pair.window as f64 == expected {
                0.0
            } else {
                // A type that was all or none of the stream: as unusual as its count says.
                (pair.window as f64 - expected).signum() * (pair.window.max(1) as f64).sqrt()
            };
            Some(MixChange {
                stream: stream.clone(),
                event_type: event_type.clone(),
                baseline_share,
                share,
                change: share - baseline_share,
                score,
                unusual: score.abs() >= UNUSUAL,
            })
        })
        .collect();
    by_unusualness(&mut mix, |change| change.score);
    mix
}

/// Whether an absence is unusual: had `count` events over `own_seconds` kept their rate, the
/// other window would have held at least [`UNUSUAL_ABSENCE`].
fn unusual_absence(count: u64, own_seconds: f64, other_seconds: f64) -> bool {
    count as f64 * other_seconds / own_seconds >= UNUSUAL_ABSENCE
}

/// The keys present in one window only: (appeared, disappeared), most events first.
fn split<K>(
    totals: &Totals,
    pairs: BTreeMap<K, Pair>,
    make: impl Fn(&K) -> Presence,
) -> (Vec<Presence>, Vec<Presence>) {
    let (mut appeared, mut disappeared) = (Vec::new(), Vec::new());
    for (key, pair) in &pairs {
        if pair.baseline == 0 && pair.window > 0 {
            appeared.push(Presence {
                count: pair.window,
                unusual: unusual_absence(pair.window, totals.seconds, totals.baseline_seconds),
                ..make(key)
            });
        } else if pair.window == 0 && pair.baseline > 0 {
            disappeared.push(Presence {
                count: pair.baseline,
                unusual: unusual_absence(pair.baseline, totals.baseline_seconds, totals.seconds),
                ..make(key)
            });
        }
    }
    for list in [&mut appeared, &mut disappeared] {
        list.sort_by_key(|presence| std::cmp::Reverse(presence.count));
    }
    (appeared, disappeared)
}

/// What is in the window and not in the baseline, and the other way round.
fn presences(totals: &Totals) -> (Presences, Presences) {
    let blank = Presence {
        service: None,
        event_type: None,
        stream: None,
        schema: None,
        producers: Vec::new(),
        count: 0,
        unusual: false,
    };
    let (event_types_in, event_types_out) = split(
        totals,
        totals.by(|edge| Some(edge.event_type.clone())),
        |event_type: &String| Presence {
            event_type: Some(event_type.clone()),
            ..blank.clone()
        },
    );
    let pair_of = |action: Action| {
        move |edge: &EdgeKey| {
            (edge.action == action).then(|| (edge.service.clone(), edge.event_type.clone()))
        }
    };
    let service_and_type = |key: &(String, String)| Presence {
        service: Some(key.0.clone()),
        event_type: Some(key.1.clone()),
        ..blank.clone()
    };
    let (producers_in, producers_out) = split(
        totals,
        totals.by(pair_of(Action::Produced)),
        service_and_type,
    );
    let (consumers_in, consumers_out) = split(
        totals,
        totals.by(pair_of(Action::Consumed)),
        service_and_type,
    );
    let (streams_in, streams_out) = split(
        totals,
        totals.by(|edge| Some(edge.stream.clone())),
        |stream: &String| Presence {
            stream: Some(stream.clone()),
            ..blank.clone()
        },
    );
    let (schemas_in, schemas_out) = schema_presences(totals, &blank);
    (
        Presences {
            event_types: event_types_in,
            producers: producers_in,
            consumers: consumers_in,
            streams: streams_in,
            schemas: schemas_in,
        },
        Presences {
            event_types: event_types_out,
            producers: producers_out,
            consumers: consumers_out,
            streams: streams_out,
            schemas: schemas_out,
        },
    )
}

/// (event type, schema) pairs produced in one window only, with their producers. A schema is
/// known from spans (sampled), so its count is that of the edges carrying it.
fn schema_presences(totals: &Totals, blank: &Presence) -> (Vec<Presence>, Vec<Presence>) {
    type Seen = BTreeMap<(String, String), (u64, BTreeSet<String>)>;
    let seen = |edges: &BTreeMap<EdgeKey, EdgeTotals>| -> Seen {
        let mut seen: Seen = BTreeMap::new();
        for (edge, edge_totals) in edges {
            if edge.action != Action::Produced {
                continue;
            }
            for schema in &edge_totals.schemas {
                let entry = seen
                    .entry((edge.event_type.clone(), schema.clone()))
                    .or_default();
                entry.0 += edge_totals.count;
                entry.1.insert(edge.service.clone());
            }
        }
        seen
    };
    let produced = |edges: &BTreeMap<EdgeKey, EdgeTotals>| -> BTreeSet<String> {
        edges
            .iter()
            .filter(|(edge, totals)| edge.action == Action::Produced && totals.count > 0)
            .map(|(edge, _)| edge.event_type.clone())
            .collect()
    };
    let (before, after) = (seen(&totals.baseline), seen(&totals.window));
    let (produced_before, produced_after) = (produced(&totals.baseline), produced(&totals.window));
    // A schema is new (or gone) only where the other window can tell: it had spans naming a
    // schema of that type, or no production of the type at all. Counts carry no schema, so a
    // window known from counts alone says nothing about schemas.
    let only =
        |these: &Seen, others: &Seen, others_produced: &BTreeSet<String>, own: f64, other: f64| {
            let mut found: Vec<Presence> = these
                .iter()
                .filter(|((event_type, _), _)| {
                    others
                        .keys()
                        .any(|(other_type, _)| other_type == event_type)
                        || !others_produced.contains(event_type)
                })
                .filter(|(key, _)| !others.contains_key(*key))
                .map(|((event_type, schema), (count, producers))| Presence {
                    event_type: Some(event_type.clone()),
                    schema: Some(schema.clone()),
                    producers: producers.iter().cloned().collect(),
                    count: *count,
                    // A new schema of a type that exists in both windows is a change whatever
                    // its count; of a new type, as unusual as the type's own appearance.
                    unusual: others
                        .keys()
                        .any(|(other_type, _)| other_type == event_type)
                        || *count as f64 * other / own >= UNUSUAL_ABSENCE,
                    ..blank.clone()
                })
                .collect();
            found.sort_by_key(|presence| std::cmp::Reverse(presence.count));
            found
        };
    (
        only(
            &after,
            &before,
            &produced_before,
            totals.seconds,
            totals.baseline_seconds,
        ),
        only(
            &before,
            &after,
            &produced_after,
            totals.baseline_seconds,
            totals.seconds,
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_score_grows_with_evidence_not_with_the_ratio() {
        assert_eq!(score(0, 0, 900.0, 900.0), 0.0);
        assert!(score(1, 3, 900.0, 900.0) < 1.5);
        assert!(score(600, 1_200, 900.0, 900.0) > 14.0);
        assert!(score(1_200, 600, 900.0, 900.0) < -14.0);
        // Windows of different lengths compare rates: 100 in 15 minutes is 400 in an hour.
        assert!(score(400, 100, 3_600.0, 900.0).abs() < 1e-9);
    }
}
