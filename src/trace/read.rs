//! Reads the trace folder back: every line, merged into one [`EventTrace`] per upload.
//!
//! Readers run beside the writer (another process, or the dashboard in the same one), so a
//! line still being written, or a file deleted mid-read, is skipped rather than an error.

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead as _, BufReader};
use std::path::Path;

use jiff::Timestamp;
use serde::Serialize;

use super::log::files;
use super::{Status, TraceLine};
use crate::event::ObjectCreated;

/// Everything known about one upload: each time it was handled, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EventTrace {
    /// The trace id.
    pub id: String,
    /// The upload, as last handled.
    pub event: ObjectCreated,
    /// Where it stands now (see [`EventTrace::status`]).
    pub status: Status,
    /// When it was first handled.
    pub first_at: Timestamp,
    /// When it was last handled.
    pub last_at: Timestamp,
    /// Each handling, oldest first.
    pub lines: Vec<TraceLine>,
}

impl EventTrace {
    fn new(line: TraceLine) -> Self {
        EventTrace {
            id: line.id.clone(),
            event: line.event.clone(),
            status: line.status,
            first_at: line.at,
            last_at: line.at,
            lines: vec![line],
        }
    }

    /// Adds a later handling. The upload's status is the latest one's, except that a
    /// duplicate after a send is still "sent": the redelivery found the email already out.
    fn push(&mut self, line: TraceLine) {
        let was_sent = self.status == Status::Sent;
        self.status = match line.status {
            Status::Duplicate if was_sent => Status::Sent,
            status => status,
        };
        self.event = line.event.clone();
        self.last_at = self.last_at.max(line.at);
        self.first_at = self.first_at.min(line.at);
        self.lines.push(line);
    }
}

/// Which traces to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct Filter {
    /// Only uploads last handled at or after this time.
    pub since: Option<Timestamp>,
    /// Only uploads whose status is this.
    pub status: Option<Status>,
}

impl Filter {
    fn keeps(&self, trace: &EventTrace) -> bool {
        self.since.is_none_or(|since| trace.last_at >= since)
            && self.status.is_none_or(|status| trace.status == status)
    }
}

/// Every upload in the folder that `filter` keeps, most recently handled first.
pub fn list(dir: &Path, filter: Filter) -> io::Result<Vec<EventTrace>> {
    let mut traces: Vec<EventTrace> = load(dir)?
        .into_values()
        .filter(|t| filter.keeps(t))
        .collect();
    traces.sort_by(|a, b| b.last_at.cmp(&a.last_at).then(a.id.cmp(&b.id)));
    Ok(traces)
}

/// What [`find`] found for an id or a prefix of one.
#[derive(Debug)]
pub enum Found {
    /// Exactly one upload.
    One(Box<EventTrace>),
    /// No upload has an id starting with it.
    None,
    /// Several do: their ids, sorted.
    Ambiguous(Vec<String>),
}

/// The upload with this trace id, or the one whose id starts with it when exactly one does.
/// Ids are lowercase hex; the given id is matched ignoring case.
pub fn find(dir: &Path, id: &str) -> io::Result<Found> {
    let id = id.to_ascii_lowercase();
    let mut traces = load(dir)?;
    if let Some(trace) = traces.remove(&id) {
        return Ok(Found::One(Box::new(trace)));
    }
    let mut prefixed: Vec<EventTrace> = traces
        .into_values()
        .filter(|t| !id.is_empty() && t.id.starts_with(&id))
        .collect();
    match prefixed.len() {
        0 => Ok(Found::None),
        1 => Ok(prefixed
            .pop()
            .map_or(Found::None, |t| Found::One(Box::new(t)))),
        _ => {
            let mut ids: Vec<String> = prefixed.into_iter().map(|t| t.id).collect();
            ids.sort();
            Ok(Found::Ambiguous(ids))
        }
    }
}

/// Reads every file, oldest first, merging lines by id.
fn load(dir: &Path) -> io::Result<HashMap<String, EventTrace>> {
    let mut traces: HashMap<String, EventTrace> = HashMap::new();
    for path in files(dir)? {
        let file = match fs::File::open(&path) {
            Ok(file) => file,
            // Pruned between the listing and the open.
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(err),
        };
        for line in BufReader::new(file).lines() {
            let Ok(line) = serde_json::from_str::<TraceLine>(&line?) else {
                continue; // a line still being written
            };
            match traces.get_mut(&line.id) {
                Some(trace) => trace.push(line),
                None => {
                    traces.insert(line.id.clone(), EventTrace::new(line));
                }
            }
        }
    }
    Ok(traces)
}
