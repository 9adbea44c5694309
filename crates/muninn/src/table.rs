//! A small aligned-table printer for the terminal: upper-case headers, columns separated by
//! two spaces, numbers right-aligned, no borders, no trailing spaces.

/// A table built row by row and rendered as text.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<String>,
    right_aligned: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// A table with these column headers; every column is left-aligned until told otherwise.
    pub fn new(headers: &[&str]) -> Self {
        Table {
            headers: headers.iter().map(|header| header.to_string()).collect(),
            right_aligned: vec![false; headers.len()],
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

    /// Adds a row; missing cells are blank and extra cells are dropped.
    pub fn row(&mut self, cells: Vec<String>) {
        let mut cells = cells;
        cells.resize(self.headers.len(), String::new());
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as lines of text, each ending with a newline.
    pub fn render(&self) -> String {
        let n_columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|header| display_width(header)).collect();
        for row in &self.rows {
            for (column_idx, cell) in row.iter().enumerate() {
                widths[column_idx] = widths[column_idx].max(display_width(cell));
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (column_idx, cell) in row.iter().enumerate() {
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
        out
    }
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
        table.row(vec!["checkout".into(), "1200".into(), "kafka/orders".into()]);
        table.row(vec!["ledger".into(), "7".into(), "".into()]);
        assert_eq!(
            table.render(),
            "SERVICE   COUNT  STREAM\n\
             checkout   1200  kafka/orders\n\
             ledger        7\n"
        );
    }

    #[test]
    fn width_counts_characters_not_bytes() {
        let mut table = Table::new(&["A", "B"]);
        table.row(vec!["→▁█".into(), "x".into()]);
        assert_eq!(table.render(), "A    B\n→▁█  x\n");
    }
}
