//! Local delivery: each email becomes an `.eml` file in a directory.
//!
//! Used by `herald dev` and `herald demo`, and by anyone who wants to see exactly what Herald
//! would send. The files are plain RFC 5322 messages that any mail client opens. File names
//! start with the UTC time of writing, so a directory listing sorts by time, and carry the
//! process id and a counter, so they never collide.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use jiff::Timestamp;
use tracing::debug;

use super::{DeliveryError, Email, Receipt, SendFuture, Sender, message};

/// The name in receipts, errors and logs.
const NAME: &str = "outbox";

/// The outbox directory could not be prepared.
#[derive(Debug, thiserror::Error)]
#[error("cannot create outbox directory {}", path.display())]
pub struct OutboxError {
    /// The directory Herald tried to create.
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

/// Writes every email as an `.eml` file into one directory.
#[derive(Debug)]
pub struct OutboxSender {
    dir: PathBuf,
    /// Distinguishes files written in the same microsecond.
    counter: AtomicU64,
}

impl OutboxSender {
    /// Uses `dir` as the outbox, creating it (and its parents) if needed.
    pub fn new(dir: impl Into<PathBuf>) -> Result<OutboxSender, OutboxError> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(|source| OutboxError {
            path: dir.clone(),
            source,
        })?;
        Ok(OutboxSender {
            dir,
            counter: AtomicU64::new(0),
        })
    }

    /// The directory messages are written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `20241001T140322.123456Z-4242-000001`: time first so names sort by time.
    fn next_stem(&self) -> String {
        let now = Timestamp::now();
        let sequence = self.counter.fetch_add(1, Ordering::Relaxed);
        format!(
            "{}.{:06}Z-{}-{sequence:06}",
            now.strftime("%Y%m%dT%H%M%S"),
            now.subsec_microsecond(),
            std::process::id(),
        )
    }

    /// Writes under a temporary name first and renames, so a reader of the directory never
    /// sees a half-written `.eml`.
    async fn write(&self, bytes: &[u8]) -> io::Result<PathBuf> {
        let stem = self.next_stem();
        let partial = self.dir.join(format!(".{stem}.tmp"));
        let path = self.dir.join(format!("{stem}.eml"));
        tokio::fs::write(&partial, bytes).await?;
        if let Err(err) = tokio::fs::rename(&partial, &path).await {
            // Best effort: the rename error is the one worth reporting.
            let _ = tokio::fs::remove_file(&partial).await;
            return Err(err);
        }
        Ok(path)
    }
}

impl Sender for OutboxSender {
    fn name(&self) -> &'static str {
        NAME
    }

    fn send<'a>(&'a self, email: &'a Email) -> SendFuture<'a> {
        Box::pin(async move {
            let message = message::build(email)?;
            let path = self
                .write(&message.formatted())
                .await
                .map_err(|err| write_failed(&self.dir, err))?;
            debug!(path = %path.display(), message_id = %email.message_id,
                "wrote message to outbox");
            Ok(Receipt {
                sender: NAME,
                detail: path.display().to_string(),
            })
        })
    }
}

/// A full disk may clear up; a directory Herald may not write to needs an operator.
fn write_failed(dir: &Path, err: io::Error) -> DeliveryError {
    let permanent = err.kind() == io::ErrorKind::PermissionDenied;
    let reason = format!("cannot write to {}: {err}", dir.display());
    let source: Option<Box<dyn std::error::Error + Send + Sync>> = Some(Box::new(err));
    if permanent {
        DeliveryError::Permanent {
            sender: NAME,
            reason,
            source,
        }
    } else {
        DeliveryError::Transient {
            sender: NAME,
            reason,
            source,
            retry_after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deliver::message::tests::{parse, sample_email};

    #[tokio::test]
    async fn written_file_is_a_complete_message() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let outbox = OutboxSender::new(dir.path().join("mail"))?;
        let email = sample_email(Some("<p>A new file arrived.</p>"));

        let receipt = outbox.send(&email).await?;
        assert_eq!(receipt.sender, "outbox");
        assert!(receipt.detail.ends_with(".eml"));
        let raw = std::fs::read_to_string(&receipt.detail)?;

        let header = |name| parse::header(&raw, name);
        assert_eq!(header("Subject").as_deref(), Some(email.subject.as_str()));
        assert_eq!(header("To").as_deref(), Some("Legal <legal@example.com>"));
        assert_eq!(header("Cc").as_deref(), Some("audit@example.com"));
        assert_eq!(header("X-Herald-Rule").as_deref(), Some("contracts"));
        assert!(header("Message-ID").is_some_and(|id| id.contains(&email.message_id)));
        assert!(header("Date").is_some());
        assert_eq!(header("Bcc"), None);
        assert!(!raw.contains("secret-watcher"));

        let content_type = header("Content-Type").unwrap_or_default();
        assert!(content_type.starts_with("multipart/alternative"));
        assert!(raw.contains("Content-Type: text/plain; charset=utf-8"));
        assert!(raw.contains("Content-Type: text/html; charset=utf-8"));
        assert!(raw.contains("A new file arrived.\r\n"));
        assert!(raw.contains("<p>A new file arrived.</p>"));
        Ok(())
    }

    #[tokio::test]
    async fn file_names_are_unique_and_sort_in_sending_order()
    -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let outbox = OutboxSender::new(dir.path())?;
        let mut written = Vec::new();
        for _ in 0..5 {
            written.push(outbox.send(&sample_email(None)).await?.detail);
        }

        let mut listed: Vec<String> = std::fs::read_dir(dir.path())?
            .map(|entry| entry.map(|e| e.path().display().to_string()))
            .collect::<Result<_, _>>()?;
        listed.sort();
        assert_eq!(listed, written, "no temporary files left, names in order");
        Ok(())
    }

    #[test]
    fn unusable_directory_is_reported() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "")?;
        let err = OutboxSender::new(file.join("mail")).expect_err("parent is a file");
        assert!(
            err.to_string()
                .starts_with("cannot create outbox directory ")
        );
        Ok(())
    }
}
