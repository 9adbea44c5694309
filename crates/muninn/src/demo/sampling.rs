//! The demo's central sampling rules, created through the HTTP API before the fleet starts:
//! every event type traced (100%), except the origins the fleet samples less
//! (`Origin::sample_percent`). Every tracer fetches its config, resolved from the rules, and
//! decides by event id, so one event is traced everywhere or nowhere; counts are exact anyway.

use anyhow::{Context, Result};
use muninn_model::sampling::SamplingRule;

use super::fleet::Fleet;
use crate::client::ApiClient;

/// The rules of `fleet`: a default for every event type, and one per less-sampled origin.
pub fn rules(fleet: &Fleet) -> Vec<SamplingRule> {
    let mut rules = vec![SamplingRule {
        id: "demo-default".to_string(),
        service: None,
        event_type: None,
        rate: 1.0,
        live_debug: false,
        description: "muninn demo: trace every event unless a rule for its type says otherwise"
            .to_string(),
    }];
    for origin in fleet.origins.iter().filter(|o| o.sample_percent < 100) {
        if rules
            .iter()
            .any(|rule| rule.event_type.as_deref() == Some(origin.event_type))
        {
            continue;
        }
        rules.push(SamplingRule {
            id: format!("demo-{}", origin.event_type),
            service: None,
            event_type: Some(origin.event_type.to_string()),
            rate: f64::from(origin.sample_percent) / 100.0,
            live_debug: false,
            description: format!(
                "muninn demo: high volume, low value; trace {}% of {}, count them all",
                origin.sample_percent, origin.event_type
            ),
        });
    }
    rules
}

/// The fleet-wide rules in a few words, like `cart.abandoned 25%, every other event type 100%`.
pub fn describe(rules: &[SamplingRule]) -> String {
    let fleet_wide = || rules.iter().filter(|rule| rule.service.is_none());
    let mut parts: Vec<String> = fleet_wide()
        .filter_map(|rule| {
            let event_type = rule.event_type.as_deref()?;
            Some(format!("{event_type} {}%", rule.rate * 100.0))
        })
        .collect();
    let default = fleet_wide().find(|rule| rule.event_type.is_none());
    let other = if parts.is_empty() {
        "every"
    } else {
        "every other"
    };
    parts.push(match default {
        Some(default) => format!("{other} event type {}%", default.rate * 100.0),
        None => format!("{other} event type at the server's default rate"),
    });
    parts.join(", ")
}

/// Creates each rule (`POST /api/v1/sampling/rules`) unless the store already has a rule with
/// its scope (a demo on a kept `--data-dir`): that one stays in force, whatever its rate. A
/// rule the server refuses is reported on stderr and the demo goes on. Returns the rules in
/// force for the scopes of `rules`.
pub async fn apply(client: &ApiClient, rules: Vec<SamplingRule>) -> Result<Vec<SamplingRule>> {
    let answer = client
        .get_json(&["api", "v1", "sampling", "rules"], &[])
        .await
        .context("reading the sampling rules")?;
    let existing: Vec<SamplingRule> = serde_json::from_value(answer["rules"].clone())
        .context("the server's sampling rules are not a list of rules")?;
    let mut in_force = Vec::new();
    for rule in rules {
        if let Some(kept) = existing.iter().find(|other| other.scope() == rule.scope()) {
            if kept.id != rule.id {
                eprintln!(
                    "note: the store's sampling rule {} applies instead of the demo's {}",
                    kept.id, rule.id
                );
            }
            in_force.push(kept.clone());
            continue;
        }
        let body = serde_json::to_vec(&rule).context("encoding a sampling rule")?;
        match client
            .post(&["api", "v1", "sampling", "rules"], body, None)
            .await
        {
            Ok(_) => in_force.push(rule),
            Err(error) => eprintln!(
                "warning: the sampling rule {} was not created ({error:#}); the rules in the store apply",
                rule.id
            ),
        }
    }
    Ok(in_force)
}

#[cfg(test)]
mod tests {
    use super::super::fleet::DEMO_FLEET;
    use super::*;

    #[test]
    fn the_demo_traces_everything_but_abandoned_carts() {
        let rules = rules(&DEMO_FLEET);
        assert_eq!(
            rules
                .iter()
                .map(|rule| (rule.id.as_str(), rule.event_type.as_deref(), rule.rate))
                .collect::<Vec<_>>(),
            [
                ("demo-default", None, 1.0),
                ("demo-cart.abandoned", Some("cart.abandoned"), 0.25)
            ]
        );
        assert_eq!(
            describe(&rules),
            "cart.abandoned 25%, every other event type 100%"
        );
        assert_eq!(
            serde_json::to_value(&rules[1]).unwrap(),
            serde_json::json!({
                "id": "demo-cart.abandoned",
                "event_type": "cart.abandoned",
                "rate": 0.25,
                "live_debug": false,
                "description": "muninn demo: high volume, low value; trace 25% of cart.abandoned, count them all"
            })
        );
        assert_eq!(
            describe(&rules[..1]),
            "every event type 100%",
            "without type rules"
        );
    }
}
