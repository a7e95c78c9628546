//! Reading a recorded NDJSON stream tolerantly: a line that is not UTF-8, not JSON, not a known
//! record, or longer than [`MAX_LINE_BYTES`] is skipped and listed (line numbers, capped at
//! [`SKIPPED_LINES_LISTED`]); a truncated last line or a read error ends the reading with what
//! was read so far. Only a file that cannot be opened is an error.
use std::fs::File;
use std::io::{self, BufRead, BufReader, ErrorKind};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::record::Record;

#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("cannot open recording {path}: {source} (pass an NDJSON file written by `tracer run --output FILE`)")]
    Open { path: PathBuf, source: io::Error },
}

/// Longer lines are skipped without being buffered whole.
pub const MAX_LINE_BYTES: usize = 16 << 20;
pub const SKIPPED_LINES_LISTED: usize = 20;

/// A line that could not be read as a record, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedLine {
    pub line: u64,
    pub reason: String,
}

/// Reads one line into `buf` (without the newline), keeping at most [`MAX_LINE_BYTES`].
/// Returns None at end of file, else (line was too long, line ended with a newline).
fn read_line(reader: &mut impl BufRead, buf: &mut Vec<u8>) -> io::Result<Option<(bool, bool)>> {
    buf.clear();
    let (mut any, mut too_long) = (false, false);
    loop {
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if chunk.is_empty() {
            return Ok(any.then_some((too_long, false)));
        }
        any = true;
        let newline = chunk.iter().position(|b| *b == b'\n');
        let piece = &chunk[..newline.unwrap_or(chunk.len())];
        if !too_long && buf.len() + piece.len() <= MAX_LINE_BYTES {
            buf.extend_from_slice(piece);
        } else {
            too_long = true;
            buf.clear();
        }
        let used = newline.map_or(chunk.len(), |n| n + 1);
        reader.consume(used);
        if newline.is_some() {
            return Ok(Some((too_long, true)));
        }
    }
}

fn parse_line(line: &[u8]) -> Result<Record, String> {
    let text =
        std::str::from_utf8(line).map_err(|e| format!("not UTF-8 at byte {}", e.valid_up_to()))?;
    serde_json::from_str(text.trim()).map_err(|e| {
        let mut reason = e.to_string();
        let mut end = reason.len().min(160);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
        reason
    })
}

/// What a pass over the file could not read.
#[derive(Debug, Default)]
pub struct ReadStats {
    pub lines: u64,
    pub skipped: Vec<SkippedLine>,
    pub skipped_count: u64,
    pub read_error: Option<String>,
}

/// Tolerant pass over the recording; `on_record` sees every record that parsed.
pub fn read_records(
    path: &Path,
    mut on_record: impl FnMut(Record),
) -> Result<ReadStats, RecordingError> {
    let mut summary = ReadStats::default();
    let file = File::open(path).map_err(|source| RecordingError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut buf = Vec::new();
    let mut line_no = 0u64;
    loop {
        let (too_long, had_newline) = match read_line(&mut reader, &mut buf) {
            Ok(Some(line)) => line,
            Ok(None) => break,
            Err(e) => {
                summary.read_error = Some(format!("read error after line {line_no}: {e}"));
                break;
            }
        };
        line_no += 1;
        let reason = if too_long {
            Some(format!("longer than {MAX_LINE_BYTES} bytes"))
        } else if buf.iter().all(u8::is_ascii_whitespace) {
            None
        } else {
            match parse_line(&buf) {
                Ok(record) => {
                    on_record(record);
                    None
                }
                Err(e) if !had_newline => Some(format!("truncated last line ({e})")),
                Err(e) => Some(e),
            }
        };
        if let Some(reason) = reason {
            summary.skipped_count += 1;
            if summary.skipped.len() < SKIPPED_LINES_LISTED {
                summary.skipped.push(SkippedLine {
                    line: line_no,
                    reason,
                });
            }
        }
    }
    summary.lines = line_no;
    Ok(summary)
}
