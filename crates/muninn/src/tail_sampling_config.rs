//! The `[tail_sampling]` table of `muninn serve`'s configuration file, read into the server's
//! `TailSamplingConfig`. The table exists only in the file (no flags or environment: it is a
//! set of policies, not one value); its presence turns tail sampling on unless it says
//! `enabled = false`. Errors name the key as `tail_sampling.<key>` with the file, and say what
//! would be valid.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Result, anyhow};
use muninn_server::TailSamplingConfig;

/// The keys of the table, in the order the example file documents them.
const KEYS: [&str; 12] = [
    "enabled",
    "decision_wait",
    "max_buffered_traces",
    "decision_memory",
    "max_decisions",
    "keep_errors",
    "keep_retries",
    "slow_trace",
    "slow_span",
    "services",
    "event_types",
    "sample_rate",
];

/// The `[tail_sampling]` table as written, with the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct TailSamplingSection {
    table: toml::Table,
    path: PathBuf,
}

// Tables compare by value; a NaN never validates, so equality stays an equivalence in use.
impl Eq for TailSamplingSection {}

impl TailSamplingSection {
    pub fn new(table: toml::Table, path: impl Into<PathBuf>) -> Self {
        TailSamplingSection {
            table,
            path: path.into(),
        }
    }

    fn error(&self, key: &str, value: &toml::Value, hint: &str) -> anyhow::Error {
        anyhow!(
            "key `tail_sampling.{key}` in {}: {value} is not valid; {hint}",
            self.path.display()
        )
    }

    fn duration(&self, key: &str, value: &toml::Value) -> Result<Duration> {
        const HINT: &str = "use a duration above zero as text, like \"500ms\", \"10s\" or \"15m\"";
        let text = value.as_str().ok_or_else(|| self.error(key, value, HINT))?;
        muninn_model::parse_duration(text)
            .ok()
            .filter(|duration| !duration.is_zero())
            .ok_or_else(|| self.error(key, value, HINT))
    }

    fn count(&self, key: &str, value: &toml::Value, example: &str) -> Result<usize> {
        value
            .as_integer()
            .and_then(|number| usize::try_from(number).ok())
            .filter(|number| *number > 0)
            .ok_or_else(|| {
                self.error(
                    key,
                    value,
                    &format!("use a whole number of at least 1, like {example}"),
                )
            })
    }

    fn flag(&self, key: &str, value: &toml::Value) -> Result<bool> {
        value
            .as_bool()
            .ok_or_else(|| self.error(key, value, "use true or false"))
    }

    fn names(&self, key: &str, value: &toml::Value) -> Result<Vec<String>> {
        const HINT: &str = "use a list of names, like [\"payments\", \"billing\"]";
        let items = value
            .as_array()
            .ok_or_else(|| self.error(key, value, HINT))?;
        items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| self.error(key, value, HINT))
            })
            .collect()
    }

    /// The validated configuration, or `None` when the table says `enabled = false`.
    pub fn validate(&self) -> Result<Option<TailSamplingConfig>> {
        let mut config = TailSamplingConfig::default();
        let mut enabled = true;
        for (key, value) in &self.table {
            match key.as_str() {
                "enabled" => enabled = self.flag(key, value)?,
                "decision_wait" => config.decision_wait = self.duration(key, value)?,
                "max_buffered_traces" => {
                    config.max_buffered_traces = self.count(key, value, "100000")?
                }
                "decision_memory" => config.decision_memory = self.duration(key, value)?,
                "max_decisions" => config.max_decisions = self.count(key, value, "1000000")?,
                "keep_errors" => config.keep_errors = self.flag(key, value)?,
                "keep_retries" => config.keep_retries = self.flag(key, value)?,
                "slow_trace" => config.slow_trace = Some(self.duration(key, value)?),
                "slow_span" => config.slow_span = Some(self.duration(key, value)?),
                "services" => config.services = self.names(key, value)?,
                "event_types" => config.event_types = self.names(key, value)?,
                "sample_rate" => {
                    config.sample_rate_ppm = value
                        .as_float()
                        .or_else(|| value.as_integer().map(|number| number as f64))
                        .and_then(muninn_model::sampling::rate_to_ppm)
                        .ok_or_else(|| {
                            self.error(key, value, "use a number from 0 to 1, like 0.1")
                        })?
                }
                unknown => {
                    return Err(anyhow!(
                        "configuration file {}: unknown key `tail_sampling.{unknown}`; the keys of [tail_sampling] are {}",
                        self.path.display(),
                        KEYS.join(", ")
                    ));
                }
            }
        }
        config.validate().map_err(|error| {
            anyhow!(
                "key `tail_sampling.{}` in {}: {}",
                error.key,
                self.path.display(),
                error.message
            )
        })?;
        Ok(enabled.then_some(config))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> TailSamplingSection {
        let table: toml::Table = toml::from_str(text).expect("valid TOML");
        TailSamplingSection::new(table, "muninn.toml")
    }

    #[test]
    fn every_key_is_read_and_the_rest_take_their_defaults() {
        let config = section(
            "decision_wait = \"2s\"\nmax_buffered_traces = 5000\nslow_span = \"250ms\"\n\
             services = [\"payments\"]\nevent_types = [\"order.created\"]\nsample_rate = 0.05\n\
             keep_retries = false\n",
        )
        .validate()
        .unwrap()
        .expect("enabled");
        assert_eq!(config.decision_wait, Duration::from_secs(2));
        assert_eq!(config.max_buffered_traces, 5000);
        assert_eq!(config.slow_span, Some(Duration::from_millis(250)));
        assert_eq!(config.slow_trace, None);
        assert_eq!(config.services, vec!["payments"]);
        assert_eq!(config.event_types, vec!["order.created"]);
        assert_eq!(config.sample_rate_ppm, 50_000);
        assert!(!config.keep_retries && config.keep_errors);
        assert_eq!(
            section("").validate().unwrap(),
            Some(TailSamplingConfig::default())
        );
        assert_eq!(section("enabled = false").validate().unwrap(), None);
    }

    #[test]
    fn the_table_in_the_file_turns_tail_sampling_on_and_it_is_off_without_it() {
        use crate::config::RawConfig;
        let path = std::path::Path::new("muninn.toml");
        let load = |text: &str| RawConfig::from_toml(text, path).and_then(RawConfig::validate);
        assert_eq!(load("retention = \"7d\"\n").unwrap().tail_sampling, None);
        let example = load(include_str!("../muninn.example.toml")).unwrap();
        assert_eq!(example.tail_sampling, None, "off in the example file");
        let on = load("retention = \"7d\"\n[tail_sampling]\nsample_rate = 0.25\n").unwrap();
        assert_eq!(
            on.tail_sampling.map(|config| config.sample_rate_ppm),
            Some(250_000)
        );
        let error = load("[tail_sampling]\nslow_trace = \"fast\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("key `tail_sampling.slow_trace` in muninn.toml:"),
            "{error}"
        );
    }

    #[test]
    fn errors_name_the_key_the_file_and_what_is_valid() {
        let error = |text: &str| section(text).validate().unwrap_err().to_string();
        let message = error("sample_rate = 2");
        assert_eq!(
            message,
            "key `tail_sampling.sample_rate` in muninn.toml: 2 is not valid; use a number from 0 to 1, like 0.1"
        );
        assert!(error("decision_wait = 10").contains("`tail_sampling.decision_wait`"));
        assert!(error("max_buffered_traces = 0").contains("at least 1"));
        assert!(error("services = \"payments\"").contains("a list of names"));
        let unknown = error("decision_window = \"1s\"");
        assert!(
            unknown.contains("tail_sampling.decision_window") && unknown.contains("decision_wait"),
            "{unknown}"
        );
        let memory = error("decision_wait = \"1m\"\ndecision_memory = \"10s\"");
        assert!(
            memory.starts_with("key `tail_sampling.decision_memory` in muninn.toml:"),
            "{memory}"
        );
    }
}
