//! A small aligned-table printer for the terminal: upper-case headers, columns separated by
//! two spaces, numbers right-aligned, long comma-separated lists wrapped onto more lines, no
//! borders, no trailing spaces.

/// A table built row by row and rendered as text.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<String>,
    right_aligned: Vec<bool>,
    /// Per column: wrap `a, b, c` lists longer than this many characters.
    wrap_width: Vec<Option<usize>>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers; every column is left-aligned until told otherwise.
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|header| header.to_string()).collect(),
            right_aligned: vec![false; headers.len()],
            wrap_width: vec![None; headers.len()],
            rows: Vec::new(),
        }
    }

    /// Right-aligns the named columns (counts, durations).
    pub fn align_right(mut self, headers: &[&str]) -> Self {
        for (column_idx, header) in self.headers.iter().enumerate() {
            if headers.contains(&header.as_str()) {
                self.right_aligned[column_idx] = true;
            }
        }
        self
    }

    /// Wraps the comma-separated lists of the named columns after `width` characters, between
    /// items (an item longer than `width` stays whole).
    pub fn wrap_lists(mut self, headers: &[&str], width: usize) -> Self {
        for (column_idx, header) in self.headers.iter().enumerate() {
            if headers.contains(&header.as_str()) {
                self.wrap_width[column_idx] = Some(width);
            }
        }
        self
    }

    /// Adds a row; missing cells are blank and extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    /// The table as lines of text, each ending with a newline.
    pub fn render(&self) -> String {
        let n_columns = self.headers.len();
        let header_lines: Vec<Vec<String>> = self
            .headers
            .iter()
            .map(|header| vec![header.clone()])
            .collect();
        let rows: Vec<Vec<Vec<String>>> = std::iter::once(header_lines)
            .chain(self.rows.iter().map(|row| {
                row.iter()
                    .enumerate()
                    .map(|(column_idx, cell)| match self.wrap_width[column_idx] {
                        Some(width) => wrap_list(cell, width),
                        None => vec![cell.clone()],
                    })
                    .collect()
            }))
            .collect();
        let mut widths = vec![0; n_columns];
        for row in &rows {
            for (column_idx, lines) in row.iter().enumerate() {
                for line in lines {
                    widths[column_idx] = widths[column_idx].max(display_width(line));
                }
            }
        }
        let mut out = String::new();
        for row in &rows {
            let height = row.iter().map(Vec::len).max().unwrap_or(1);
            for line_idx in 0..height {
                let mut line = String::new();
                for (column_idx, lines) in row.iter().enumerate() {
                    let cell = lines.get(line_idx).map(String::as_str).unwrap_or("");
                    let padding = " ".repeat(widths[column_idx] - display_width(cell));
                    if self.right_aligned[column_idx] {
                        line.push_str(&padding);
                        line.push_str(cell);
                    } else {
                        line.push_str(cell);
                        line.push_str(&padding);
                    }
                    if column_idx + 1 < n_columns {
                        line.push_str("  ");
                    }
                }
                out.push_str(line.trim_end());
                out.push('\n');
            }
        }
        out
    }
}

/// Splits `a, b, c` into lines of at most `width` characters, breaking after a comma.
fn wrap_list(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    let items: Vec<&str> = text.split(", ").collect();
    for (item_idx, item) in items.iter().enumerate() {
        let piece = if item_idx + 1 < items.len() {
            format!("{item},")
        } else {
            item.to_string()
        };
        if !current.is_empty() && display_width(&current) + 1 + display_width(&piece) > width {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(&piece);
    }
    lines.push(current);
    lines
}

/// Characters, not bytes: good enough for the names, numbers and block characters we print.
fn display_width(text: &str) -> usize {
    text.chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_aligned_and_numbers_right_aligned() {
        let mut table = Table::new(&["SERVICE", "COUNT", "STREAM"]).align_right(&["COUNT"]);
        table.row(vec![
            "checkout".into(),
            "1200".into(),
            "kafka/orders".into(),
        ]);
        table.row(vec!["ledger".into(), "7".into(), "".into()]);
        assert_eq!(
            table.render(),
            "SERVICE   COUNT  STREAM\n\
             checkout   1200  kafka/orders\n\
             ledger        7\n"
        );
    }

    #[test]
    fn long_lists_wrap_between_items() {
        let mut table = Table::new(&["STREAM", "CONSUMERS", "N"])
            .wrap_lists(&["CONSUMERS"], 20)
            .align_right(&["N"]);
        table.row(vec![
            "orders".into(),
            "analytics, fraud-detection, order-router".into(),
            "3".into(),
        ]);
        table.row(vec![
            "payments".into(),
            "a-very-long-service-name-indeed".into(),
            "1".into(),
        ]);
        assert_eq!(
            table.render(),
            "STREAM    CONSUMERS                        N\n\
             orders    analytics,                       3\n\
             \x20         fraud-detection,\n\
             \x20         order-router\n\
             payments  a-very-long-service-name-indeed  1\n"
        );
    }

    #[test]
    fn width_counts_characters_not_bytes() {
        let mut table = Table::new(&["A", "B"]);
        table.row(vec!["→▁█".into(), "x".into()]);
        assert_eq!(table.render(), "A    B\n→▁█  x\n");
    }
}
