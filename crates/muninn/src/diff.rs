//! A small line diff for `muninn lineage --check`: longest common subsequence over lines,
//! printed as unified-diff hunks with a little context. Lineage files are small and sorted,
//! so a quadratic algorithm is plenty; past a size limit the changed middle is shown whole.

use std::fmt::Write;

/// One line of a diff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiffLine<'a> {
    Same(&'a str),
    Removed(&'a str),
    Added(&'a str),
}

/// Above this many LCS cells (old lines × new lines, after trimming the common ends) the
/// middle is reported as removed-then-added instead of being aligned.
const MAX_LCS_CELLS: usize = 4_000_000;

/// The lines of `old` and `new` aligned: unchanged, removed from `old`, added in `new`.
pub fn diff_lines<'a>(old: &'a str, new: &'a str) -> Vec<DiffLine<'a>> {
    let old_lines: Vec<&str> = old.lines().collect();
    let new_lines: Vec<&str> = new.lines().collect();
    let prefix = old_lines
        .iter()
        .zip(&new_lines)
        .take_while(|(left, right)| left == right)
        .count();
    let suffix = old_lines[prefix..]
        .iter()
        .rev()
        .zip(new_lines[prefix..].iter().rev())
        .take_while(|(left, right)| left == right)
        .count();
    let old_middle = &old_lines[prefix..old_lines.len() - suffix];
    let new_middle = &new_lines[prefix..new_lines.len() - suffix];

    let mut out: Vec<DiffLine<'a>> = old_lines[..prefix]
        .iter()
        .map(|line| DiffLine::Same(line))
        .collect();
    if (old_middle.len() + 1).saturating_mul(new_middle.len() + 1) > MAX_LCS_CELLS {
        out.extend(old_middle.iter().map(|line| DiffLine::Removed(line)));
        out.extend(new_middle.iter().map(|line| DiffLine::Added(line)));
    } else {
        out.extend(lcs_diff(old_middle, new_middle));
    }
    out.extend(
        old_lines[old_lines.len() - suffix..]
            .iter()
            .map(|line| DiffLine::Same(line)),
    );
    out
}

fn lcs_diff<'a>(old: &[&'a str], new: &[&'a str]) -> Vec<DiffLine<'a>> {
    // lengths[i][j]: LCS length of old[i..] and new[j..].
    let width = new.len() + 1;
    let mut lengths = vec![0u32; (old.len() + 1) * width];
    for old_idx in (0..old.len()).rev() {
        for new_idx in (0..new.len()).rev() {
            lengths[old_idx * width + new_idx] = if old[old_idx] == new[new_idx] {
                lengths[(old_idx + 1) * width + new_idx + 1] + 1
            } else {
                lengths[(old_idx + 1) * width + new_idx].max(lengths[old_idx * width + new_idx + 1])
            };
        }
    }
    let (mut old_idx, mut new_idx) = (0, 0);
    let mut out = Vec::with_capacity(old.len() + new.len());
    while old_idx < old.len() && new_idx < new.len() {
        if old[old_idx] == new[new_idx] {
            out.push(DiffLine::Same(old[old_idx]));
            old_idx += 1;
            new_idx += 1;
        } else if lengths[(old_idx + 1) * width + new_idx] >= lengths[old_idx * width + new_idx + 1]
        {
            out.push(DiffLine::Removed(old[old_idx]));
            old_idx += 1;
        } else {
            out.push(DiffLine::Added(new[new_idx]));
            new_idx += 1;
        }
    }
    out.extend(old[old_idx..].iter().map(|line| DiffLine::Removed(line)));
    out.extend(new[new_idx..].iter().map(|line| DiffLine::Added(line)));
    out
}

/// How many lines were added and removed.
pub fn count_changes(lines: &[DiffLine<'_>]) -> (usize, usize) {
    let added = lines
        .iter()
        .filter(|line| matches!(line, DiffLine::Added(_)))
        .count();
    let removed = lines
        .iter()
        .filter(|line| matches!(line, DiffLine::Removed(_)))
        .count();
    (added, removed)
}

/// Unified-diff text (`---`, `+++`, `@@ -a,b +c,d @@` hunks) with `context` unchanged lines
/// around each change. Empty when nothing changed.
pub fn unified(old_name: &str, new_name: &str, lines: &[DiffLine<'_>], context: usize) -> String {
    let changed: Vec<usize> = lines
        .iter()
        .enumerate()
        .filter(|(_, line)| !matches!(line, DiffLine::Same(_)))
        .map(|(idx, _)| idx)
        .collect();
    if changed.is_empty() {
        return String::new();
    }
    // Group changes whose contexts touch into hunks of [start, end) line indices.
    let mut hunks: Vec<(usize, usize)> = Vec::new();
    for &idx in &changed {
        let start = idx.saturating_sub(context);
        let end = (idx + context + 1).min(lines.len());
        match hunks.last_mut() {
            Some((_, last_end)) if start <= *last_end => *last_end = end,
            _ => hunks.push((start, end)),
        }
    }
    // Line numbers (1-based) in old and new at each index.
    let mut old_number = Vec::with_capacity(lines.len());
    let mut new_number = Vec::with_capacity(lines.len());
    let (mut old_line, mut new_line) = (1usize, 1usize);
    for line in lines {
        old_number.push(old_line);
        new_number.push(new_line);
        match line {
            DiffLine::Same(_) => {
                old_line += 1;
                new_line += 1;
            }
            DiffLine::Removed(_) => old_line += 1,
            DiffLine::Added(_) => new_line += 1,
        }
    }
    let mut out = format!("--- {old_name}\n+++ {new_name}\n");
    for (start, end) in hunks {
        let hunk = &lines[start..end];
        let old_count = hunk
            .iter()
            .filter(|line| !matches!(line, DiffLine::Added(_)))
            .count();
        let new_count = hunk
            .iter()
            .filter(|line| !matches!(line, DiffLine::Removed(_)))
            .count();
        let old_start = if old_count == 0 {
            old_number[start] - 1
        } else {
            old_number[start]
        };
        let new_start = if new_count == 0 {
            new_number[start] - 1
        } else {
            new_number[start]
        };
        let _ = writeln!(
            out,
            "@@ -{old_start},{old_count} +{new_start},{new_count} @@"
        );
        for line in hunk {
            let _ = match line {
                DiffLine::Same(text) => writeln!(out, " {text}"),
                DiffLine::Removed(text) => writeln!(out, "-{text}"),
                DiffLine::Added(text) => writeln!(out, "+{text}"),
            };
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identical_texts_have_no_hunks() {
        let lines = diff_lines("a\nb\n", "a\nb\n");
        assert_eq!(count_changes(&lines), (0, 0));
        assert_eq!(unified("old", "new", &lines, 2), "");
    }

    #[test]
    fn a_changed_line_is_a_hunk_with_context() {
        let old = "flowchart LR\n    a\n    b\n    c\n    d\n    e\n    f\n";
        let new = "flowchart LR\n    a\n    b\n    C\n    d\n    e\n    f\n    g\n";
        let lines = diff_lines(old, new);
        assert_eq!(count_changes(&lines), (2, 1));
        assert_eq!(
            unified("lineage.mmd", "server", &lines, 1),
            "--- lineage.mmd\n+++ server\n\
             @@ -3,3 +3,3 @@\n     b\n-    c\n+    C\n     d\n\
             @@ -7,1 +7,2 @@\n     f\n+    g\n"
        );
    }

    #[test]
    fn lcs_aligns_insertions_in_the_middle() {
        let lines = diff_lines("a\nb\nc\nd\n", "a\nx\nb\nd\ny\n");
        assert_eq!(
            lines,
            vec![
                DiffLine::Same("a"),
                DiffLine::Added("x"),
                DiffLine::Same("b"),
                DiffLine::Removed("c"),
                DiffLine::Same("d"),
                DiffLine::Added("y"),
            ]
        );
    }

    #[test]
    fn a_file_emptied_out_counts_every_line_removed() {
        let lines = diff_lines("a\nb\n", "");
        assert_eq!(count_changes(&lines), (0, 2));
        assert_eq!(
            unified("old", "new", &lines, 3),
            "--- old\n+++ new\n@@ -1,2 +0,0 @@\n-a\n-b\n"
        );
    }
}
