//! Name patterns of the lineage, throughput and compare filters, so that one parameter selects
//! a team's domain (`event_type=order.*`, `service=billing-*`): `*` matches any run of
//! characters (none included), `?` exactly one, and `\` makes the next `*`, `?` or `\` a plain
//! character. A name without them matches only itself, as the filters always did.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    Char(char),
    AnyOne,
    AnyRun,
}

/// A validated name pattern; see the module documentation for the syntax.
#[derive(Clone, PartialEq, Eq)]
pub struct NamePattern {
    text: String,
    tokens: Vec<Token>,
}

/// Why a pattern was refused; the message says what is valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{pattern:?} is not a valid pattern: {reason}; use a name, * for any characters, ? for one, \
     and \\*, \\? or \\\\ for those characters themselves"
)]
pub struct PatternError {
    pub pattern: String,
    pub reason: String,
}

impl NamePattern {
    pub fn new(text: &str) -> Result<NamePattern, PatternError> {
        let refuse = |reason: String| PatternError {
            pattern: text.to_string(),
            reason,
        };
        let mut tokens = Vec::with_capacity(text.len());
        let mut chars = text.chars();
        while let Some(char) = chars.next() {
            tokens.push(match char {
                '*' => {
                    // `**` matches what `*` matches; one is enough for the matcher.
                    if tokens.last() == Some(&Token::AnyRun) {
                        continue;
                    }
                    Token::AnyRun
                }
                '?' => Token::AnyOne,
                '\\' => match chars.next() {
                    Some(escaped @ ('*' | '?' | '\\')) => Token::Char(escaped),
                    Some(other) => {
                        return Err(refuse(format!(
                            "\\{other} escapes nothing (a backslash goes before *, ? or \\ only)"
                        )));
                    }
                    None => return Err(refuse("it ends in a lone backslash".to_string())),
                },
                plain => Token::Char(plain),
            });
        }
        Ok(NamePattern {
            text: text.to_string(),
            tokens,
        })
    }

    /// The pattern as it was written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the pattern has a wildcard (else it matches exactly one name).
    pub fn is_glob(&self) -> bool {
        self.tokens
            .iter()
            .any(|token| !matches!(token, Token::Char(_)))
    }

    /// Whether `name` matches the whole pattern. Linear in practice: on a mismatch only the
    /// last `*` is retried one character further, which is enough for `*` and `?` alone.
    pub fn matches(&self, name: &str) -> bool {
        let tokens = &self.tokens;
        let (mut token_idx, mut byte_idx) = (0, 0);
        // After the last `*`: the token following it, and where in `name` its run ends.
        let mut last_star: Option<(usize, usize)> = None;
        loop {
            let next_char = name[byte_idx..].chars().next();
            let advanced = match (tokens.get(token_idx), next_char) {
                (None, None) => return true,
                (Some(Token::AnyRun), _) => {
                    last_star = Some((token_idx + 1, byte_idx));
                    token_idx += 1;
                    continue;
                }
                (Some(Token::AnyOne), Some(char)) => Some(char),
                (Some(Token::Char(expected)), Some(char)) if *expected == char => Some(char),
                _ => None,
            };
            match (advanced, last_star) {
                (Some(char), _) => {
                    token_idx += 1;
                    byte_idx += char.len_utf8();
                }
                (None, Some((after_star, run_end))) => {
                    // Let the `*` take one more character of `name`, and try again from there.
                    let Some(char) = name[run_end..].chars().next() else {
                        return false;
                    };
                    last_star = Some((after_star, run_end + char.len_utf8()));
                    token_idx = after_star;
                    byte_idx = run_end + char.len_utf8();
                }
                (None, None) => return false,
            }
        }
    }
}

impl fmt::Debug for NamePattern {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_tuple("NamePattern")
            .field(&self.text)
            .finish()
    }
}

impl fmt::Display for NamePattern {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches(pattern: &str, name: &str) -> bool {
        NamePattern::new(pattern).unwrap().matches(name)
    }

    #[test]
    fn a_name_without_wildcards_matches_only_itself() {
        for name in [
            "order.created",
            "billing",
            "",
            "naïve",
            "a b",
            "[x]{y}",
            "say \"hi\"",
        ] {
            let pattern = NamePattern::new(name).unwrap();
            assert!(!pattern.is_glob(), "{name}");
            assert!(pattern.matches(name), "{name}");
            assert!(!pattern.matches(&format!("{name}x")), "{name}");
            assert!(!pattern.matches(&format!("x{name}")), "{name}");
        }
        assert!(!matches("order.created", "order.createdd"));
        assert!(!matches("order.created", "Order.created"));
    }

    #[test]
    fn star_matches_any_run_and_question_mark_one_character() {
        let cases = [
            ("order.*", "order.created", true),
            ("order.*", "order.", true),
            ("order.*", "order", false),
            ("order.*", "orders.created", false),
            ("*.created", "order.created", true),
            ("*", "", true),
            ("*", "anything at all", true),
            ("billing-*", "billing-eu", true),
            ("billing-*", "billing", false),
            ("*-eu-*", "billing-eu-1", true),
            ("*-eu-*", "billing-us-1", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "aXbXbXc", true),
            ("a*b*c", "aXbXcX", false),
            ("a**c", "ac", true),
            ("billing-?", "billing-1", true),
            ("billing-?", "billing-12", false),
            ("billing-?", "billing-", false),
            ("n?ve", "nïve", true),
            ("?", "ï", true),
            ("*ïve", "naïve", true),
            (
                "*a*a*a*a*b",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
                false,
            ),
        ];
        for (pattern, name, expected) in cases {
            assert_eq!(matches(pattern, name), expected, "{pattern:?} on {name:?}");
        }
        assert!(NamePattern::new("order.*").unwrap().is_glob());
        assert!(NamePattern::new("?").unwrap().is_glob());
    }

    #[test]
    fn backslash_makes_wildcards_plain_characters() {
        assert!(matches(r"100\*", "100*"));
        assert!(!matches(r"100\*", "1000"));
        assert!(matches(r"what\?", "what?"));
        assert!(!matches(r"what\?", "whats"));
        assert!(matches(r"back\\slash", r"back\slash"));
        let escaped = NamePattern::new(r"a\*").unwrap();
        assert!(!escaped.is_glob());
        assert_eq!(escaped.as_str(), r"a\*");
        assert_eq!(escaped.to_string(), r"a\*");
    }

    #[test]
    fn a_stray_backslash_is_refused_saying_what_is_valid() {
        let error = NamePattern::new(r"back\slash").unwrap_err();
        assert_eq!(error.pattern, r"back\slash");
        let message = error.to_string();
        assert!(message.contains(r"\s escapes nothing"), "{message}");
        assert!(message.contains("* for any characters"), "{message}");
        let error = NamePattern::new("order\\").unwrap_err();
        assert!(error.to_string().contains("lone backslash"), "{error}");
    }
}
