//! The `[auth]` table of `muninn serve`'s configuration file: the bearer tokens the server
//! accepts (each a name, the SHA-256 that `muninn token new` prints, and its scopes), which
//! monitoring routes stay open, and the token this node sends to other nodes
//! (docs/security.md). File only. Errors name the key as `auth.<key>` with the file, and say
//! what would be valid.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Result, anyhow};
use muninn_server::auth::{ApiToken, AuthConfig, Scope, TokenHash};
use muninn_server::{RateLimit, TenantId};

/// The keys of `[auth]`, in the order the example file documents them.
const KEYS: [&str; 3] = ["tokens", "open", "peer_token"];
/// The keys of each `[[auth.tokens]]` entry.
const TOKEN_KEYS: [&str; 6] = [
    "name",
    "hash",
    "scopes",
    "ingest_rate",
    "ingest_burst",
    "tenant",
];
/// The routes `open` may name.
const OPEN_ROUTES: [&str; 2] = ["healthz", "metrics"];

/// The `[auth]` table as written, with the file it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct AuthSection {
    table: toml::Table,
    path: PathBuf,
}

// Tables compare by value; a NaN never validates, so equality stays an equivalence in use.
impl Eq for AuthSection {}

impl AuthSection {
    pub fn new(table: toml::Table, path: impl Into<PathBuf>) -> Self {
        AuthSection {
            table,
            path: path.into(),
        }
    }

    fn error(&self, key: &str, value: &toml::Value, hint: &str) -> anyhow::Error {
        anyhow!(
            "key `auth.{key}` in {}: {value} is not valid; {hint}",
            self.path.display()
        )
    }

    /// The accepted tokens and the peer token.
    pub fn validate(&self) -> Result<(AuthConfig, Option<String>)> {
        let mut config = AuthConfig::new(Vec::new());
        let mut peer_token = None;
        for (key, value) in &self.table {
            match key.as_str() {
                "tokens" => {
                    let hint = "use [[auth.tokens]] entries, each with name, hash and scopes";
                    let entries = value
                        .as_array()
                        .ok_or_else(|| self.error(key, value, hint))?;
                    for (index, entry) in entries.iter().enumerate() {
                        config.tokens.push(self.token(index, entry)?);
                    }
                    let mut names = BTreeSet::new();
                    for token in &config.tokens {
                        if !names.insert(token.name.as_str()) {
                            return Err(anyhow!(
                                "configuration file {}: two [[auth.tokens]] are named `{}`; give \
                                 each token its own name (errors and logs name tokens by it)",
                                self.path.display(),
                                token.name
                            ));
                        }
                    }
                }
                "open" => {
                    let hint = "use a list of the routes answered without a token, of \
                                \"healthz\" and \"metrics\" (both by default; [] for none)";
                    let routes = value
                        .as_array()
                        .ok_or_else(|| self.error(key, value, hint))?
                        .iter()
                        .map(|route| {
                            route
                                .as_str()
                                .filter(|route| OPEN_ROUTES.contains(route))
                                .ok_or_else(|| self.error(key, value, hint))
                        })
                        .collect::<Result<Vec<_>>>()?;
                    config.open_healthz = routes.contains(&"healthz");
                    config.open_metrics = routes.contains(&"metrics");
                }
                "peer_token" => {
                    let hint = "use a token that `muninn token new` printed, whose hash the \
                                other nodes accept";
                    let token = value
                        .as_str()
                        .filter(|token| !token.trim().is_empty() && !token.starts_with("sha256:"))
                        .ok_or_else(|| self.error(key, value, hint))?;
                    peer_token = Some(token.trim().to_string());
                }
                unknown => {
                    return Err(anyhow!(
                        "configuration file {}: unknown key `auth.{unknown}`; the keys of [auth] \
                         are {}",
                        self.path.display(),
                        KEYS.join(", ")
                    ));
                }
            }
        }
        Ok((config, peer_token))
    }

    /// Entry `index` of `[[auth.tokens]]`.
    fn token(&self, index: usize, entry: &toml::Value) -> Result<ApiToken> {
        let key = |name: &str| format!("tokens[{index}].{name}");
        let table = entry.as_table().ok_or_else(|| {
            self.error(
                &format!("tokens[{index}]"),
                entry,
                "use a table with name, hash and scopes",
            )
        })?;
        let (mut name, mut hash, mut scopes) = (None, None, None);
        let (mut rate, mut burst) = (None, None);
        let mut tenant = None;
        for (field, value) in table {
            match field.as_str() {
                "name" => {
                    let text = value
                        .as_str()
                        .filter(|text| !text.trim().is_empty())
                        .ok_or_else(|| {
                            self.error(
                                &key("name"),
                                value,
                                "use a non-empty string, like \"checkout\"",
                            )
                        })?;
                    name = Some(text.trim().to_string());
                }
                "hash" => {
                    let text = value.as_str().unwrap_or_default();
                    let parsed = TokenHash::parse(text)
                        .map_err(|hint| self.error(&key("hash"), value, &hint))?;
                    hash = Some(parsed);
                }
                "scopes" => {
                    let hint = "use a non-empty list of \"ingest\", \"read\" and \"admin\"";
                    let list = value
                        .as_array()
                        .filter(|list| !list.is_empty())
                        .ok_or_else(|| self.error(&key("scopes"), value, hint))?
                        .iter()
                        .map(|scope| {
                            scope
                                .as_str()
                                .and_then(Scope::parse)
                                .ok_or_else(|| self.error(&key("scopes"), value, hint))
                        })
                        .collect::<Result<BTreeSet<_>>>()?;
                    scopes = Some(list.into_iter().collect());
                }
                "ingest_rate" | "ingest_burst" => {
                    let hint = if field == "ingest_rate" {
                        "use bytes of request body per second, or with KiB/MiB/GiB, like \"10MiB\""
                    } else {
                        "use bytes, or with KiB/MiB/GiB, like \"32MiB\", at least the ingest_rate"
                    };
                    let bytes = match value {
                        toml::Value::Integer(number) => u64::try_from(*number).ok(),
                        toml::Value::String(text) => super::settings::parse_size(text),
                        _ => None,
                    }
                    .filter(|bytes| *bytes > 0)
                    .ok_or_else(|| self.error(&key(field), value, hint))?;
                    if field == "ingest_rate" {
                        rate = Some(bytes);
                    } else {
                        burst = Some((bytes, value));
                    }
                }
                "tenant" => {
                    let text = value.as_str().unwrap_or_default();
                    let parsed = TenantId::parse(text)
                        .map_err(|hint| self.error(&key("tenant"), value, &hint))?;
                    tenant = Some(parsed);
                }
                unknown => {
                    return Err(anyhow!(
                        "configuration file {}: unknown key `auth.tokens[{index}].{unknown}`; each \
                         token has {}",
                        self.path.display(),
                        TOKEN_KEYS.join(", ")
                    ));
                }
            }
        }
        let missing = |field: &str, hint: &str| {
            anyhow!(
                "configuration file {}: `auth.tokens[{index}].{field}` is missing; {hint}",
                self.path.display()
            )
        };
        let ingest_rate = match (rate, burst) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(missing(
                    "ingest_rate",
                    "ingest_burst needs a rate, like ingest_rate = \"10MiB\"",
                ));
            }
            (Some(rate), burst) => {
                // A second of the rate unless said: a steady sender never waits.
                let burst_bytes = match burst {
                    None => rate,
                    Some((bytes, _)) if bytes >= rate => bytes,
                    Some((_, value)) => {
                        return Err(self.error(
                            &key("ingest_burst"),
                            value,
                            "use at least the ingest_rate, so that a second's worth fits",
                        ));
                    }
                };
                Some(RateLimit {
                    bytes_per_second: rate,
                    burst_bytes,
                })
            }
        };
        Ok(ApiToken {
            ingest_rate,
            tenant,
            name: name.ok_or_else(|| missing("name", "name who holds the token"))?,
            hash: hash.ok_or_else(|| {
                missing(
                    "hash",
                    "give the hash `muninn token new` printed with the token",
                )
            })?,
            scopes: scopes.ok_or_else(|| {
                missing(
                    "scopes",
                    "give what it may do: [\"ingest\"], [\"read\"], [\"admin\"]",
                )
            })?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(text: &str) -> AuthSection {
        AuthSection::new(text.parse::<toml::Table>().unwrap(), "/etc/muninn.toml")
    }

    #[test]
    fn the_table_becomes_the_accepted_tokens_or_names_what_is_wrong() {
        let hash = TokenHash::of("mnn_secret").to_string();
        let (config, peer) = section(&format!(
            "open = [\"healthz\"]\npeer_token = \"mnn_peer\"\n\
             [[tokens]]\nname = \"checkout\"\nhash = \"{hash}\"\nscopes = [\"read\", \"ingest\"]\n"
        ))
        .validate()
        .unwrap();
        assert_eq!(peer.as_deref(), Some("mnn_peer"));
        assert!(config.open_healthz && !config.open_metrics);
        let token = config.find("mnn_secret").unwrap();
        assert_eq!(token.name, "checkout");
        assert_eq!(token.scopes, [Scope::Ingest, Scope::Read]);
        assert_eq!(token.tenant, None);
        assert!(config.find("mnn_other").is_none());
        let (with_tenant, _) = section(&format!(
            "[[tokens]]\nname = \"a\"\nhash = \"{hash}\"\nscopes = [\"read\"]\ntenant = \"team-a\"\n"
        ))
        .validate()
        .unwrap();
        assert_eq!(
            with_tenant.tokens[0].tenant.as_ref().map(TenantId::as_str),
            Some("team-a")
        );
        let entry = |fields: &str| format!("[[tokens]]\n{fields}\n");
        for (text, expected) in [
            (
                entry(&format!(
                    "name = \"a\"\nhash = \"{hash}\"\nscopes = [\"write\"]"
                )),
                "`auth.tokens[0].scopes`",
            ),
            (
                entry("name = \"a\"\nhash = \"mnn_secret\"\nscopes = [\"read\"]"),
                "64 hex digits",
            ),
            (
                entry(&format!("name = \"a\"\nhash = \"{hash}\"")),
                "`auth.tokens[0].scopes` is missing",
            ),
            (
                entry(&format!("hash = \"{hash}\"\nscopes = [\"read\"]")),
                "`auth.tokens[0].name` is missing",
            ),
            (
                format!(
                    "{}{}",
                    entry(&format!(
                        "name = \"a\"\nhash = \"{hash}\"\nscopes = [\"read\"]"
                    )),
                    entry(&format!(
                        "name = \"a\"\nhash = \"{hash}\"\nscopes = [\"admin\"]"
                    ))
                ),
                "two [[auth.tokens]] are named `a`",
            ),
            (
                entry(&format!(
                    "name = \"a\"\nhash = \"{hash}\"\nscopes = [\"read\"]\ntenant = \"../b\""
                )),
                "`auth.tokens[0].tenant`",
            ),
            ("open = [\"openapi\"]\n".to_string(), "`auth.open`"),
            ("peer_token = \"\"\n".to_string(), "`auth.peer_token`"),
            ("token = []\n".to_string(), "unknown key `auth.token`"),
        ] {
            let error = section(&text).validate().unwrap_err().to_string();
            assert!(error.contains(expected), "{text:?}: {error}");
            assert!(error.contains("/etc/muninn.toml"), "{error}");
        }
    }

    #[test]
    fn an_ingest_rate_is_bytes_per_second_with_a_burst_of_at_least_a_second() {
        let hash = TokenHash::of("mnn_secret").to_string();
        let token = |extra: &str| {
            section(&format!(
                "[[tokens]]\nname = \"fleet\"\nhash = \"{hash}\"\nscopes = [\"ingest\"]\n{extra}\n"
            ))
            .validate()
            .map(|(config, _)| config.tokens[0].ingest_rate)
        };
        assert_eq!(token("").unwrap(), None);
        assert_eq!(
            token("ingest_rate = \"2MiB\"").unwrap(),
            Some(RateLimit {
                bytes_per_second: 2 << 20,
                burst_bytes: 2 << 20,
            })
        );
        assert_eq!(
            token("ingest_rate = 1000\ningest_burst = \"8KiB\"").unwrap(),
            Some(RateLimit {
                bytes_per_second: 1000,
                burst_bytes: 8 << 10,
            })
        );
        for (extra, expected) in [
            ("ingest_rate = \"fast\"", "`auth.tokens[0].ingest_rate`"),
            ("ingest_rate = 0", "`auth.tokens[0].ingest_rate`"),
            (
                "ingest_rate = \"1MiB\"\ningest_burst = \"1KiB\"",
                "at least the ingest_rate",
            ),
            (
                "ingest_burst = \"1MiB\"",
                "`auth.tokens[0].ingest_rate` is missing",
            ),
        ] {
            let error = token(extra).unwrap_err().to_string();
            assert!(error.contains(expected), "{extra:?}: {error}");
        }
    }

    /// The example file's `[auth]` table, uncommented, names every key and is valid.
    #[test]
    fn the_example_file_documents_every_key() {
        let example = include_str!("../../muninn.example.toml");
        let table: String = example
            .lines()
            .skip_while(|line| *line != "# [auth]")
            .skip(1)
            .take_while(|line| line.starts_with("# "))
            .map(|line| {
                let line = line.trim_start_matches('#').trim_start();
                // The example's own comments after the values.
                let line = line.split("  #").next().unwrap_or(line).trim_end();
                format!("{line}\n")
            })
            .collect();
        for key in KEYS.iter().chain(&TOKEN_KEYS) {
            assert!(
                table.contains(&format!("{key} = ")) || table.contains(&format!("[[auth.{key}]]")),
                "{key} is not in the example:\n{table}"
            );
        }
        let (auth, peer) = section(&table.replace("[[auth.tokens]]", "[[tokens]]"))
            .validate()
            .unwrap();
        assert_eq!(auth.tokens.len(), 1);
        assert_eq!(peer.as_deref(), Some("mnn_…"));
    }
}
