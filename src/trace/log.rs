//! Writes trace lines to JSON-lines files, off the delivery path.
//!
//! The pipeline hands each line to [`TraceLog::record`], which never waits: a writer thread
//! appends it to the newest file in the folder and flushes, so a reader in another process sees
//! it at once. When the file passes `max_file_bytes` a new one is started, and files beyond
//! `max_files`, or older than `max_age`, are deleted: the folder stays bounded by
//! `max_files × max_file_bytes`. If the writer falls behind (a slow disk under a burst), lines
//! are dropped and counted rather than slowing deliveries; a trace is a diagnosis aid, never
//! a record the product depends on.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use tracing::warn;

use super::TraceLine;
use crate::store::now_millis;

/// Lines waiting for the writer before new ones are dropped.
const BACKLOG: usize = 4096;

/// File names are `trace-<epoch milliseconds>.jsonl`, so names sort by age.
const PREFIX: &str = "trace-";
const SUFFIX: &str = ".jsonl";

/// The checked `[trace]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceSettings {
    /// The folder holding the files.
    pub dir: PathBuf,
    /// A file past this size is closed and a new one started.
    pub max_file_bytes: u64,
    /// Most files kept.
    pub max_files: usize,
    /// Files whose last line is older than this are deleted.
    pub max_age: Duration,
}

impl Default for TraceSettings {
    fn default() -> Self {
        TraceSettings {
            dir: PathBuf::from(".herald/traces"),
            max_file_bytes: 4 * 1024 * 1024,
            max_files: 8,
            max_age: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// The trace folder could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot write traces in {}", dir.display())]
pub struct TraceLogError {
    dir: PathBuf,
    #[source]
    source: io::Error,
}

/// Hands trace lines to the writer thread; cheap to clone. The thread ends when the last
/// clone is dropped, after writing what it was given.
#[derive(Debug, Clone)]
pub struct TraceLog {
    lines: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

/// What the writer thread is asked to do.
#[derive(Debug)]
enum Message {
    /// Append this line.
    Line(Box<TraceLine>),
    /// Answer once everything before has been written.
    Flush(mpsc::Sender<()>),
}

/// How long [`TraceLog::flush`] waits for the writer.
const FLUSH_WAIT: Duration = Duration::from_secs(2);

impl TraceLog {
    /// Creates the folder if needed and starts the writer thread.
    pub fn start(settings: TraceSettings) -> Result<Self, TraceLogError> {
        let fail = |source| TraceLogError {
            dir: settings.dir.clone(),
            source,
        };
        fs::create_dir_all(&settings.dir).map_err(fail)?;
        let (lines, receive) = mpsc::sync_channel(BACKLOG);
        let writer = Writer::open(settings.clone()).map_err(fail)?;
        std::thread::Builder::new()
            .name("herald-trace".into())
            .spawn(move || writer.run(receive))
            .map_err(fail)?;
        let dropped = Arc::new(AtomicU64::new(0));
        Ok(TraceLog { lines, dropped })
    }

    /// Waits (a bounded time) until every line recorded so far is in the file: a short-lived
    /// command calls it before it exits, since the writer thread does not outlive the process.
    pub fn flush(&self) {
        let (done, written) = mpsc::channel();
        if self.lines.send(Message::Flush(done)).is_ok()
            && written.recv_timeout(FLUSH_WAIT).is_err()
        {
            warn!("trace lines may be missing: the writer did not finish in time");
        }
    }

    /// Queues a line for writing; drops it, counted, when the writer is behind.
    pub fn record(&self, line: TraceLine) {
        match self.lines.try_send(Message::Line(Box::new(line))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                // One warning per thousand, so a long burst does not flood the log.
                if dropped % 1000 == 1 {
                    warn!(dropped, "trace writer behind; trace lines dropped");
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                let dropped = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if dropped == 1 {
                    warn!("trace writer stopped; trace lines dropped");
                }
            }
        }
    }
}

/// The writer thread's state: the open file and how much it holds.
struct Writer {
    settings: TraceSettings,
    file: BufWriter<File>,
    written: u64,
}

impl Writer {
    /// Drops what is beyond the bounds since the last run, then continues the newest file if
    /// it has room, else starts one.
    fn open(settings: TraceSettings) -> io::Result<Self> {
        prune(&settings)?;
        let newest = files(&settings.dir)?.pop();
        let (path, written) = match newest {
            Some(path) => {
                let size = fs::metadata(&path)?.len();
                if size < settings.max_file_bytes {
                    (path, size)
                } else {
                    (new_path(&settings.dir), 0)
                }
            }
            None => (new_path(&settings.dir), 0),
        };
        let file = append(&path)?;
        Ok(Writer {
            settings,
            file,
            written,
        })
    }

    fn run(mut self, messages: Receiver<Message>) {
        for message in messages {
            match message {
                Message::Line(line) => {
                    if let Err(err) = self.write(&line) {
                        warn!(error = %err, dir = %self.settings.dir.display(),
                            "trace line not written");
                    }
                }
                // The flusher may have given up waiting; nothing to do then.
                Message::Flush(done) => drop(done.send(())),
            }
        }
    }

    fn write(&mut self, line: &TraceLine) -> io::Result<()> {
        let mut json = serde_json::to_vec(line).map_err(io::Error::other)?;
        json.push(b'\n');
        self.file.write_all(&json)?;
        self.file.flush()?;
        self.written += json.len() as u64;
        if self.written >= self.settings.max_file_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    /// Starts a new file and deletes what is beyond the bounds.
    fn rotate(&mut self) -> io::Result<()> {
        self.file = append(&new_path(&self.settings.dir))?;
        self.written = 0;
        prune(&self.settings)
    }
}

/// Deletes the oldest files beyond `max_files`, and files not written to within `max_age`.
pub(super) fn prune(settings: &TraceSettings) -> io::Result<()> {
    let files = files(&settings.dir)?;
    let excess = files.len().saturating_sub(settings.max_files.max(1));
    let cutoff = SystemTime::now().checked_sub(settings.max_age);
    for (index, path) in files.iter().enumerate() {
        let modified = fs::metadata(path).and_then(|m| m.modified()).ok();
        let stale = matches!((modified, cutoff), (Some(m), Some(c)) if m < c);
        // The newest file is the one being written; it is never deleted.
        if (index < excess || stale) && index + 1 < files.len() {
            fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// The trace files in `dir`, oldest first.
pub(super) fn files(dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(files),
        Err(err) => return Err(err),
    };
    for entry in entries {
        let path = entry?.path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if name.starts_with(PREFIX) && name.ends_with(SUFFIX) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// A fresh file name; zero-padded so names sort in time order.
fn new_path(dir: &Path) -> PathBuf {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let n = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    dir.join(format!("{PREFIX}{:015}-{n:04}{SUFFIX}", now_millis()))
}

fn append(path: &Path) -> io::Result<BufWriter<File>> {
    let file = OpenOptions::new().create(true).append(true).open(path)?;
    Ok(BufWriter::new(file))
}
