//! Standard error shared by log lines and the live status lines drawn at
//! its bottom when it is a terminal.
//!
//! The status lines stay below the last log line: every log line first
//! erases them, is written, and then redraws them. Each status line is cut
//! to the terminal's width, so that it takes exactly one row and the erase
//! clears as many rows as were drawn.

use std::io::{IsTerminal, Write};
use std::sync::{Mutex, MutexGuard};
use tracing_subscriber::fmt::MakeWriter;

/// The width assumed when the terminal reports none.
const DEFAULT_COLUMNS: usize = 80;

/// Moves to the start of the row and clears it.
const CLEAR_ROW: &str = "\r\x1b[2K";

/// Moves one row up and clears it.
const CLEAR_ROW_ABOVE: &str = "\x1b[1A\x1b[2K";

struct Area {
    /// The status lines to keep at the bottom, empty when there are none.
    lines: Vec<String>,
    /// Rows of status lines on the screen now; the cursor is at the end of
    /// the last one.
    drawn: usize,
}

static AREA: Mutex<Area> = Mutex::new(Area {
    lines: Vec::new(),
    drawn: 0,
});

fn area() -> MutexGuard<'static, Area> {
    AREA.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Returns whether standard error is a terminal, where status lines are drawn.
pub fn is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Replaces the status lines at the bottom of the terminal with `lines`.
pub fn show(lines: Vec<String>) {
    let mut area = area();
    let text = redraw(area.drawn, &lines, columns());
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
    area.drawn = lines.len();
    area.lines = lines;
}

/// Erases the status lines and draws none until the next `show`.
pub fn clear() {
    show(Vec::new());
}

/// Returns the bytes that erase `drawn` status rows and draw `lines` in
/// their place, each cut to `columns - 1` characters, so that no line wraps
/// and the cursor stays on the last row.
fn redraw(drawn: usize, lines: &[String], columns: usize) -> String {
    let mut text = erase(drawn);
    let width = columns.saturating_sub(1).max(1);
    for (index, line) in lines.iter().enumerate() {
        if index > 0 {
            text.push('\n');
        }
        text.extend(line.chars().filter(|c| !c.is_control()).take(width));
    }
    text
}

fn erase(drawn: usize) -> String {
    if drawn == 0 {
        return String::new();
    }
    let mut text = CLEAR_ROW.to_string();
    for _ in 1..drawn {
        text.push_str(CLEAR_ROW_ABOVE);
    }
    text
}

/// Returns the terminal's width in columns.
fn columns() -> usize {
    let mut size = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one `winsize` through the valid pointer.
    let result = unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) };
    if result == 0 && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        DEFAULT_COLUMNS
    }
}

/// The log's writer: standard error, with the status lines erased before
/// each log line and drawn again after it.
pub struct Stderr;

impl<'a> MakeWriter<'a> for Stderr {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter {
            area: area(),
            erased: false,
        }
    }
}

/// Writes one log line. It keeps the status area locked, so no redraw
/// comes in the middle of the line.
pub struct LogWriter {
    area: MutexGuard<'static, Area>,
    erased: bool,
}

impl Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let mut stderr = std::io::stderr().lock();
        if !self.erased {
            stderr.write_all(erase(self.area.drawn).as_bytes())?;
            self.area.drawn = 0;
            self.erased = true;
        }
        stderr.write_all(data)?;
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if !self.erased || self.area.lines.is_empty() {
            return;
        }
        let text = redraw(0, &self.area.lines, columns());
        let mut stderr = std::io::stderr().lock();
        let _ = stderr.write_all(text.as_bytes());
        let _ = stderr.flush();
        self.area.drawn = self.area.lines.len();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redraw_first_draw() {
        let lines = vec!["one".to_string(), "two".to_string()];
        assert_eq!(redraw(0, &lines, 80), "one\ntwo");
    }

    #[test]
    fn redraw_erases_every_drawn_row() {
        let lines = vec!["new".to_string()];
        assert_eq!(
            redraw(3, &lines, 80),
            "\r\x1b[2K\x1b[1A\x1b[2K\x1b[1A\x1b[2Knew"
        );
        assert_eq!(redraw(1, &[], 80), "\r\x1b[2K");
        assert_eq!(redraw(0, &[], 80), "");
    }

    #[test]
    fn redraw_cuts_to_width() {
        let lines = vec!["abcdefghij".to_string(), "a\tb\x1b[c".to_string()];
        assert_eq!(redraw(0, &lines, 5), "abcd\nab[c");
    }
}
