//! The central sampling rules: in memory for readers (one `Arc` swap per change), and durable in
//! `<data_dir>/sampling/rules.json`, written atomically before a change is visible or answered.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use muninn_model::sampling::SamplingRule;
use serde::Serialize;
use serde_json::Value;

use super::validate::{RuleBody, parse_rule};

/// Most rules the server keeps.
pub(crate) const MAX_RULES: usize = 10_000;
/// The version of the rules file this build reads and writes.
pub(crate) const FILE_VERSION: u64 = 1;
/// The rules file's directory under the data directory, and its name there.
const DIR_NAME: &str = "sampling";
const FILE_NAME: &str = "rules.json";

/// Why a change of the rules was refused or failed.
#[derive(Debug)]
pub(crate) enum RulesError {
    /// Another rule has the id or the scope, or the set is full (409).
    Conflict(String),
    /// No rule has this id (404).
    NotFound(String),
    /// The rules file could not be written; nothing changed (500).
    Io(String),
}

/// Whether `put` created or replaced the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Change {
    Created,
    Replaced,
}

#[derive(Serialize)]
struct RulesFileRef<'a> {
    version: u64,
    rules: &'a [SamplingRule],
}

/// The rules, sorted by id.
pub(crate) struct RuleSet {
    dir: PathBuf,
    current: RwLock<Arc<Vec<SamplingRule>>>,
    /// Held by a change from reading the current rules until the new ones are visible.
    writer: Mutex<()>,
}

impl RuleSet {
    /// Reads `<data_dir>/sampling/rules.json` (no file: no rules). A file that cannot be read
    /// or holds anything the API would refuse is an error naming the file and the problem.
    pub fn load(data_dir: &Path) -> Result<RuleSet, String> {
        let dir = data_dir.join(DIR_NAME);
        let path = dir.join(FILE_NAME);
        let rules = read_file(&path).map_err(|problem| {
            format!(
                "sampling rules file {}: {problem}; fix the file (or move it away to start \
                 without rules)",
                path.display()
            )
        })?;
        Ok(RuleSet {
            dir,
            current: RwLock::new(Arc::new(rules)),
            writer: Mutex::new(()),
        })
    }

    /// The rules now, sorted by id.
    pub fn snapshot(&self) -> Arc<Vec<SamplingRule>> {
        match self.current.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    pub fn get(&self, id: &str) -> Option<SamplingRule> {
        let rules = self.snapshot();
        position(&rules, id).ok().map(|index| rules[index].clone())
    }

    /// Stores a new rule; its id is generated (`rule-<8 hex>`) when the body has none.
    pub async fn create(self: &Arc<Self>, body: RuleBody) -> Result<SamplingRule, RulesError> {
        self.change(move |rules| {
            let id = match &body.id {
                Some(id) => {
                    if position(rules, id).is_ok() {
                        return Err(RulesError::Conflict(format!(
                            "id: a rule with id {id:?} already exists; PUT \
                             /api/v1/sampling/rules/{id} replaces it"
                        )));
                    }
                    id.clone()
                }
                None => new_id(rules),
            };
            let rule = body.into_rule(id);
            Ok((with_rule(rules, &rule)?, rule))
        })
        .await
    }

    /// Creates or replaces the rule `id`.
    pub async fn put(
        self: &Arc<Self>,
        id: String,
        body: RuleBody,
    ) -> Result<(SamplingRule, Change), RulesError> {
        self.change(move |rules| {
            let change = match position(rules, &id) {
                Ok(_) => Change::Replaced,
                Err(_) => Change::Created,
            };
            let rule = body.into_rule(id);
            Ok((with_rule(rules, &rule)?, (rule, change)))
        })
        .await
    }

    pub async fn delete(self: &Arc<Self>, id: String) -> Result<(), RulesError> {
        self.change(move |rules| {
            let index = position(rules, &id).map_err(|_| not_found(&id))?;
            let mut next = rules.to_vec();
            next.remove(index);
            Ok((next, ()))
        })
        .await
    }

    /// Runs one change on a blocking thread, so that it completes (file written, then the new
    /// rules visible) even when the request that asked for it goes away. Changes are serialized.
    async fn change<T: Send + 'static>(
        self: &Arc<Self>,
        change: impl FnOnce(&[SamplingRule]) -> Result<(Vec<SamplingRule>, T), RulesError>
        + Send
        + 'static,
    ) -> Result<T, RulesError> {
        let this = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let _writer = this.writer.lock().unwrap_or_else(PoisonError::into_inner);
            let rules = this.snapshot();
            let (next, answer) = change(&rules)?;
            this.commit(next)?;
            Ok(answer)
        })
        .await
        .map_err(|error| RulesError::Io(format!("sampling rules: the change failed: {error}")))?
    }

    /// Writes `rules` durably, then makes them the current ones. The caller holds `writer`.
    fn commit(&self, rules: Vec<SamplingRule>) -> Result<(), RulesError> {
        if let Err(error) = write_file(&self.dir, &rules) {
            return Err(RulesError::Io(format!(
                "sampling rules: writing {}: {error}; the change was not made",
                self.dir.join(FILE_NAME).display()
            )));
        }
        let rules = Arc::new(rules);
        match self.current.write() {
            Ok(mut current) => *current = rules,
            Err(poisoned) => *poisoned.into_inner() = rules,
        }
        Ok(())
    }
}

pub(crate) fn not_found(id: &str) -> RulesError {
    RulesError::NotFound(format!(
        "no sampling rule has id {id:?}; GET /api/v1/sampling/rules lists them"
    ))
}

fn position(rules: &[SamplingRule], id: &str) -> Result<usize, usize> {
    rules.binary_search_by(|rule| rule.id.as_str().cmp(id))
}

fn describe_scope(rule: &SamplingRule) -> String {
    let part = |name: &str, value: &Option<String>| match value {
        Some(value) => format!("{name} {value:?}"),
        None => format!("every {name}"),
    };
    format!(
        "{}, {}",
        part("service", &rule.service),
        part("event_type", &rule.event_type)
    )
}

/// `rules` with `rule` added or replacing the rule of the same id, if no other rule has its
/// scope and the set stays within `MAX_RULES`.
fn with_rule(rules: &[SamplingRule], rule: &SamplingRule) -> Result<Vec<SamplingRule>, RulesError> {
    if let Some(other) = rules
        .iter()
        .find(|other| other.id != rule.id && other.scope() == rule.scope())
    {
        return Err(RulesError::Conflict(format!(
            "rule {:?} already has this scope ({}); change that rule (PUT \
             /api/v1/sampling/rules/{}) or delete it first",
            other.id,
            describe_scope(rule),
            other.id
        )));
    }
    let mut next = rules.to_vec();
    match position(rules, &rule.id) {
        Ok(index) => next[index] = rule.clone(),
        Err(index) => {
            if rules.len() >= MAX_RULES {
                return Err(RulesError::Conflict(format!(
                    "there are already {MAX_RULES} sampling rules, the most the server keeps; \
                     delete rules or make them broader"
                )));
            }
            next.insert(index, rule.clone());
        }
    }
    Ok(next)
}

/// `rule-` and 8 random hex digits, not yet used.
fn new_id(rules: &[SamplingRule]) -> String {
    loop {
        let random = uuid::Uuid::new_v4().simple().to_string();
        let id = format!("rule-{}", &random[..8]);
        if position(rules, &id).is_err() {
            return id;
        }
    }
}

/// The rules in the file, sorted by id; no file is no rules.
fn read_file(path: &Path) -> Result<Vec<SamplingRule>, String> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(error) => return Err(format!("cannot be read: {error}")),
    };
    let document: Value =
        serde_json::from_slice(&bytes).map_err(|error| format!("is not JSON: {error}"))?;
    let Value::Object(document) = document else {
        return Err(r#"must be a JSON object {"version": 1, "rules": [...]}"#.to_string());
    };
    if let Some(unknown) = document
        .keys()
        .find(|key| !matches!(key.as_str(), "version" | "rules"))
    {
        return Err(format!(
            "unknown member {unknown:?}; the file has only version and rules"
        ));
    }
    match document.get("version").and_then(Value::as_u64) {
        Some(FILE_VERSION) => {}
        Some(other) => {
            return Err(format!(
                "version {other} is not supported; this build reads version {FILE_VERSION}"
            ));
        }
        None => return Err(format!("version: must be {FILE_VERSION}")),
    }
    let Some(Value::Array(items)) = document.get("rules") else {
        return Err("rules: must be an array of rules".to_string());
    };
    if items.len() > MAX_RULES {
        return Err(format!(
            "rules: {} rules, more than the {MAX_RULES} the server keeps",
            items.len()
        ));
    }
    let mut rules: Vec<SamplingRule> = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let body = parse_rule(item).map_err(|error| format!("rules[{index}].{}", error.message))?;
        let Some(id) = body.id.clone() else {
            return Err(format!("rules[{index}].id: is required in the file"));
        };
        rules.push(body.into_rule(id));
    }
    rules.sort_by(|left, right| left.id.cmp(&right.id));
    for pair in rules.windows(2) {
        if pair[0].id == pair[1].id {
            return Err(format!("two rules have id {:?}", pair[0].id));
        }
    }
    let mut scopes: Vec<(_, &str)> = rules
        .iter()
        .map(|rule| (rule.scope(), rule.id.as_str()))
        .collect();
    scopes.sort();
    for pair in scopes.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(format!(
                "rules {:?} and {:?} have the same scope",
                pair[0].1, pair[1].1
            ));
        }
    }
    Ok(rules)
}

/// Writes the rules file atomically with the store's helpers: a temporary file in the same
/// directory, synced, renamed over the file, then the directory synced (and a new directory's
/// parent).
fn write_file(dir: &Path, rules: &[SamplingRule]) -> std::io::Result<()> {
    let fs = muninn_store::OsFileSystem;
    muninn_store::create_dir_all_durably(&fs, dir)?;
    // Left by a write a crash interrupted (and the fixed name that earlier versions used).
    muninn_store::remove_temporary_files(&fs, dir)?;
    match std::fs::remove_file(dir.join("rules.json.tmp")) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let bytes = serde_json::to_vec_pretty(&RulesFileRef {
        version: FILE_VERSION,
        rules,
    })
    .map_err(std::io::Error::other)?;
    muninn_store::write_file_atomically(&fs, &dir.join(FILE_NAME), [bytes.as_slice(), b"\n"])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(service: Option<&str>, event_type: Option<&str>) -> RuleBody {
        RuleBody {
            id: None,
            service: service.map(str::to_string),
            event_type: event_type.map(str::to_string),
            rate: 0.5,
            live_debug: false,
            description: String::new(),
        }
    }

    #[tokio::test]
    async fn changes_are_durable_and_scopes_unique() {
        let dir = tempfile::tempdir().unwrap();
        let rules = Arc::new(RuleSet::load(dir.path()).unwrap());
        let created = rules.create(body(Some("a"), None)).await.unwrap();
        assert!(created.id.starts_with("rule-") && created.id.len() == 13);
        assert!(matches!(
            rules.create(body(Some("a"), None)).await,
            Err(RulesError::Conflict(message)) if message.contains(&created.id)
        ));
        let (_, change) = rules.put("b".into(), body(None, Some("x"))).await.unwrap();
        assert_eq!(change, Change::Created);
        let (_, change) = rules.put("b".into(), body(None, None)).await.unwrap();
        assert_eq!(change, Change::Replaced);
        let reloaded = RuleSet::load(dir.path()).unwrap();
        assert_eq!(reloaded.snapshot(), rules.snapshot());
        rules.delete("b".into()).await.unwrap();
        assert!(matches!(
            rules.delete("b".into()).await,
            Err(RulesError::NotFound(_))
        ));
        assert_eq!(RuleSet::load(dir.path()).unwrap().len(), 1);
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sampling"))
            .unwrap()
            .map(|entry| entry.unwrap().file_name())
            .collect();
        assert_eq!(names, [FILE_NAME], "no temporary file is left behind");
    }

    #[test]
    fn a_bad_file_is_refused_with_what_is_wrong() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sampling")).unwrap();
        let path = dir.path().join("sampling").join(FILE_NAME);
        for (text, expected) in [
            ("{", "is not JSON"),
            (r#"{"version": 2, "rules": []}"#, "version 2"),
            (r#"{"version": 1}"#, "rules: must be"),
            (r#"{"version": 1, "rules": [{"rate": 1}]}"#, "rules[0].id"),
            (
                r#"{"version": 1, "rules": [{"id": "a", "rate": 2}]}"#,
                "rules[0].rate",
            ),
            (
                r#"{"version": 1, "rules": [{"id": "a", "rate": 1}, {"id": "b", "rate": 0}]}"#,
                "same scope",
            ),
            (
                r#"{"version": 1, "rules": [{"id": "a", "rate": 1}, {"id": "a", "rate": 0, "service": "s"}]}"#,
                "two rules have id",
            ),
        ] {
            std::fs::write(&path, text).unwrap();
            let error = RuleSet::load(dir.path()).err().expect(text);
            assert!(error.contains(&path.display().to_string()), "{error}");
            assert!(error.contains(expected), "{text}: {error}");
        }
    }
}
