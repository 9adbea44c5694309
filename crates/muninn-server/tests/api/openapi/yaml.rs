//! The YAML subset `openapi.yaml` is written in, read without a YAML crate (none is in the
//! dependency tree): block mappings and sequences, flow sequences of scalars, quoted and plain
//! scalars, `|` block scalars. Anything else is refused loudly, which keeps the file simple.

/// A YAML node of the supported subset; scalars stay text.
#[derive(Debug, Clone, PartialEq)]
pub enum Yaml {
    Scalar(String),
    Map(Vec<(String, Yaml)>),
    List(Vec<Yaml>),
}

impl Yaml {
    pub fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries
                .iter()
                .find(|(name, _)| name == key)
                .map(|(_, value)| value),
            _ => None,
        }
    }

    pub fn text(&self) -> Option<&str> {
        match self {
            Yaml::Scalar(text) => Some(text),
            _ => None,
        }
    }

    pub fn entries(&self) -> &[(String, Yaml)] {
        match self {
            Yaml::Map(entries) => entries,
            _ => &[],
        }
    }

    pub fn items(&self) -> &[Yaml] {
        match self {
            Yaml::List(items) => items,
            _ => &[],
        }
    }
}

struct Line {
    number: usize,
    indent: usize,
    text: String,
}

struct Reader {
    lines: Vec<Line>,
    position: usize,
    /// The raw lines, for block scalars (which keep blank lines and deeper indentation).
    raw: Vec<String>,
}

/// Parses the supported YAML subset; panics with the line number on anything else.
pub fn parse_yaml(source: &str) -> Yaml {
    let raw: Vec<String> = source.lines().map(str::to_string).collect();
    let mut lines = Vec::new();
    for (index, line) in raw.iter().enumerate() {
        assert!(
            !line.contains('\t'),
            "line {}: tabs are not YAML indentation",
            index + 1
        );
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        lines.push(Line {
            number: index + 1,
            indent: line.len() - trimmed.len(),
            text: trimmed.trim_end().to_string(),
        });
    }
    let mut reader = Reader {
        lines,
        position: 0,
        raw,
    };
    let document = reader.block(0);
    if let Some(line) = reader.lines.get(reader.position) {
        panic!("line {}: unexpected indentation", line.number);
    }
    document
}

impl Reader {
    fn block(&mut self, indent: usize) -> Yaml {
        let line = &self.lines[self.position];
        assert_eq!(
            line.indent, indent,
            "line {}: unexpected indentation",
            line.number
        );
        if line.text == "-" || line.text.starts_with("- ") {
            self.list(indent)
        } else {
            self.map(indent)
        }
    }

    fn map(&mut self, indent: usize) -> Yaml {
        let mut entries: Vec<(String, Yaml)> = Vec::new();
        while let Some(line) = self.lines.get(self.position) {
            if line.indent < indent || (line.indent == indent && line.text.starts_with("- ")) {
                break;
            }
            assert_eq!(
                line.indent, indent,
                "line {}: unexpected indentation",
                line.number
            );
            let number = line.number;
            let (key, rest) = split_key(&line.text)
                .unwrap_or_else(|| panic!("line {number}: expected `key: value`"));
            assert!(
                entries.iter().all(|(existing, _)| existing != &key),
                "line {number}: duplicate key {key:?}"
            );
            self.position += 1;
            let value = self.value(indent, number, rest);
            entries.push((key, value));
        }
        Yaml::Map(entries)
    }

    fn list(&mut self, indent: usize) -> Yaml {
        let mut items = Vec::new();
        while let Some(line) = self.lines.get(self.position) {
            if line.indent != indent || !line.text.starts_with("- ") {
                assert!(
                    line.indent <= indent,
                    "line {}: unexpected indentation",
                    line.number
                );
                break;
            }
            let number = line.number;
            let rest = line.text[2..].trim_start().to_string();
            if split_key(&rest).is_some() && !rest.starts_with(['\'', '"', '[']) {
                // `- key: value` starts a mapping whose other keys are indented to match `key`.
                let line = &mut self.lines[self.position];
                line.indent = indent + 2;
                line.text = rest;
                items.push(self.map(indent + 2));
            } else {
                self.position += 1;
                items.push(self.value(indent, number, rest));
            }
        }
        Yaml::List(items)
    }

    /// The value after `key:` (or `- `) on line `number`, whose entry sits at `indent`.
    fn value(&mut self, indent: usize, number: usize, text: String) -> Yaml {
        let deeper_follows = self
            .lines
            .get(self.position)
            .is_some_and(|next| next.indent > indent);
        if text.is_empty() {
            assert!(
                deeper_follows,
                "line {number}: empty values are not supported"
            );
            let nested_indent = self.lines[self.position].indent;
            return self.block(nested_indent);
        }
        if text == "|" || text == "|-" {
            return Yaml::Scalar(self.block_scalar(indent, number, text == "|"));
        }
        assert!(
            !deeper_follows,
            "line {number}: a scalar continued on the next lines is not supported; use `|`"
        );
        if let Some(inner) = text.strip_prefix('[') {
            let inner = inner
                .strip_suffix(']')
                .unwrap_or_else(|| panic!("line {number}: unclosed `[`"));
            return Yaml::List(
                inner
                    .split(',')
                    .map(|item| Yaml::Scalar(scalar(number, item.trim())))
                    .collect(),
            );
        }
        Yaml::Scalar(scalar(number, &text))
    }

    /// The lines of a `|` scalar after line `number`: everything more indented than `indent`.
    fn block_scalar(&mut self, indent: usize, number: usize, keep_last_newline: bool) -> String {
        let mut end = number; // index into `raw` of the first line after the scalar
        let mut content_indent = None;
        while let Some(line) = self.raw.get(end) {
            let trimmed = line.trim_start();
            let line_indent = line.len() - trimmed.len();
            if !trimmed.is_empty() {
                if line_indent <= indent {
                    break;
                }
                content_indent.get_or_insert(line_indent);
            }
            end += 1;
        }
        let content_indent =
            content_indent.unwrap_or_else(|| panic!("line {number}: empty block scalar"));
        let mut text: Vec<&str> = self.raw[number..end]
            .iter()
            .map(|line| line.get(content_indent..).unwrap_or(""))
            .collect();
        while text.last().is_some_and(|line| line.is_empty()) {
            text.pop();
        }
        while self
            .lines
            .get(self.position)
            .is_some_and(|line| line.number <= end)
        {
            self.position += 1;
        }
        let mut joined = text.join("\n");
        if keep_last_newline {
            joined.push('\n');
        }
        joined
    }
}

/// `key: rest` or `key:`; the key may be quoted.
fn split_key(text: &str) -> Option<(String, String)> {
    let (key, rest) = if let Some(quote @ ('\'' | '"')) = text.chars().next() {
        let close = text[1..].find(quote)? + 1;
        (text[1..close].to_string(), &text[close + 1..])
    } else {
        let colon = text
            .find(": ")
            .or_else(|| text.ends_with(':').then(|| text.len() - 1))?;
        (text[..colon].to_string(), &text[colon..])
    };
    let rest = rest.strip_prefix(':')?;
    if !rest.is_empty() && !rest.starts_with(' ') {
        return None;
    }
    Some((key, rest.trim().to_string()))
}

fn scalar(number: usize, text: &str) -> String {
    if let Some(inner) = text.strip_prefix('\'') {
        let inner = inner
            .strip_suffix('\'')
            .unwrap_or_else(|| panic!("line {number}: unclosed quote"));
        return inner.replace("''", "'");
    }
    if let Some(inner) = text.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .unwrap_or_else(|| panic!("line {number}: unclosed quote"));
        assert!(
            !inner.contains('\\'),
            "line {number}: escapes in double quotes are not supported"
        );
        return inner.to_string();
    }
    assert!(
        !text.starts_with([
            '`', '@', '*', '&', '!', '|', '>', '%', '{', '[', '#', '?', ':'
        ]),
        "line {number}: a plain scalar may not start with {:?}; quote it",
        &text[..1]
    );
    assert!(
        !text.contains(": ") && !text.contains(" #"),
        "line {number}: quote a scalar containing `: ` or ` #`"
    );
    text.to_string()
}

#[test]
fn the_yaml_reader_reads_its_subset() {
    let source = "a: 1\nb:\n  - x\n  - k: 'quoted: yes'\n    l: [p, 'q']\nc: |\n  line one\n\n  line two\nd: end\n";
    let parsed = parse_yaml(source);
    let scalar = |text: &str| Yaml::Scalar(text.to_string());
    assert_eq!(
        parsed,
        Yaml::Map(vec![
            ("a".into(), scalar("1")),
            (
                "b".into(),
                Yaml::List(vec![
                    scalar("x"),
                    Yaml::Map(vec![
                        ("k".into(), scalar("quoted: yes")),
                        ("l".into(), Yaml::List(vec![scalar("p"), scalar("q")]))
                    ]),
                ])
            ),
            ("c".into(), scalar("line one\n\nline two\n")),
            ("d".into(), scalar("end")),
        ])
    );
}
