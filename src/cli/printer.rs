//! All terminal output goes through [`Printer`].
//!
//! stdout carries data only (tables, JSON, `export` lines), so it can be piped;
//! everything meant for a person (progress, confirmations, warnings, errors)
//! goes to stderr. `-q` silences the person-facing lines but never data or
//! errors; `NO_COLOR` or a non-terminal stderr turns colour off.

use std::io::{self, IsTerminal, Write};

use serde::Serialize;

/// Output settings for one invocation.
#[derive(Debug, Clone, Copy)]
pub struct Printer {
    pub quiet: bool,
    pub json: bool,
    color: bool,
}

impl Printer {
    /// Builds a printer; colour only when stderr is a terminal and `no_color` is false.
    pub fn new(quiet: bool, json: bool, no_color: bool) -> Printer {
        Printer {
            quiet,
            json,
            color: !no_color && io::stderr().is_terminal(),
        }
    }

    /// Writes one line of data to stdout. A closed pipe is not an error.
    pub fn data(&self, line: &str) {
        let mut out = io::stdout().lock();
        if writeln!(out, "{line}").is_err() {
            // Broken pipe (`authsome list | head -1`): stop quietly.
        }
        let _ = out.flush();
    }

    /// Writes one line of data to stdout, saying whether it got there: a
    /// command that prints until interrupted stops when the reader is gone.
    pub fn data_line(&self, line: &str) -> io::Result<()> {
        let mut out = io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()
    }

    /// Writes a value as one JSON document to stdout, its object keys
    /// sorted (as the `--json` outputs always had them).
    pub fn json<T: Serialize + ?Sized>(&self, value: &T) {
        match serde_json::to_value(value).and_then(|v| serde_json::to_string_pretty(&v)) {
            Ok(s) => self.data(&s),
            Err(e) => self.error(&format!("cannot encode the result as JSON: {e}"), None),
        }
    }

    /// Writes a value as one compact JSON line (for step-by-step output),
    /// its object keys sorted.
    pub fn json_line<T: Serialize + ?Sized>(&self, value: &T) {
        match serde_json::to_value(value).and_then(|v| serde_json::to_string(&v)) {
            Ok(s) => self.data(&s),
            Err(e) => self.error(&format!("cannot encode the result as JSON: {e}"), None),
        }
    }

    /// A line for the person at the terminal (stderr), unless `-q`.
    pub fn status(&self, line: &str) {
        if !self.quiet {
            eprintln!("{}", sanitize(line));
        }
    }

    /// A success line with a check mark, unless `-q`.
    pub fn success(&self, line: &str) {
        if !self.quiet {
            eprintln!("{} {}", self.paint("32", "✓"), sanitize(line));
        }
    }

    /// `warning: …` on stderr (shown even with `-q`).
    pub fn warn(&self, line: &str) {
        eprintln!("{} {}", self.paint("33", "warning:"), sanitize(line));
    }

    /// `authsome: error: …`, a blank line and `hint: …` on stderr.
    pub fn error(&self, message: &str, hint: Option<&str>) {
        eprintln!(
            "authsome: {} {}",
            self.paint("31", "error:"),
            sanitize(message)
        );
        if let Some(h) = hint {
            eprintln!();
            eprintln!("{} {}", self.paint("36", "hint:"), sanitize(h));
        }
    }

    /// Wraps `text` in an ANSI colour when colour is on.
    pub fn paint(&self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    }
}

/// Replaces control characters (other than newline and tab) so text from
/// files or servers cannot move the cursor or rewrite the terminal.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() && c != '\n' && c != '\t' {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect()
}

/// Formats rows as left-aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let fmt_row = |cells: Vec<String>| {
        let n = cells.len();
        cells
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                if i + 1 == n {
                    c
                } else {
                    format!("{c:<w$}", w = widths[i])
                }
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_string()
    };
    let mut out = vec![fmt_row(header.iter().map(|s| s.to_string()).collect())];
    out.extend(
        rows.iter()
            .map(|r| fmt_row(r.iter().map(|c| sanitize(c)).collect())),
    );
    out
}

/// A Unix timestamp as `YYYY-MM-DD HH:MM UTC`.
pub fn format_time(ts: i64) -> String {
    let days = ts.div_euclid(86_400);
    let secs = ts.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02} UTC",
        secs / 3600,
        secs % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_formatting() {
        assert_eq!(format_time(0), "1970-01-01 00:00 UTC");
        assert_eq!(format_time(1_795_000_000), "2026-11-18 11:06 UTC");
    }

    #[test]
    fn control_characters_are_neutralised() {
        assert_eq!(sanitize("a\x1b[2Jb"), "a\u{fffd}[2Jb");
    }

    #[test]
    fn table_aligns() {
        let t = table(&["A", "BB"], &[vec!["xxx".into(), "y".into()]]);
        assert_eq!(t, vec!["A    BB", "xxx  y"]);
    }
}
