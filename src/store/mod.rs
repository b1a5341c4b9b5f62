//! Herald's local state file: one redb database holding the local dedupe keys
//! ([`crate::dedupe::LocalStore`]) and the dead-letter store ([`crate::deadletter`]).
//!
//! redb locks its file for one process, and a second `open` of the same file in the same
//! process fails too, so every part of Herald that wants the file goes through [`open`], which
//! hands out one shared handle per path for as long as anyone holds it.
//!
//! <https://docs.rs/redb/5/redb/struct.Database.html>

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use redb::Database;

/// Where the local state file lives when the config does not say.
pub const DEFAULT_PATH: &str = ".herald/state.redb";

/// The state file could not be opened or used.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The folder for the file could not be created.
    #[error("cannot create the folder for state file {}", path.display())]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// redb refused to open the file (another process holds it, or it is not a redb file).
    #[error("cannot open state file {}", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: redb::DatabaseError,
    },
    /// A read or write inside the file failed.
    #[error("state file operation failed")]
    Database(#[from] redb::Error),
    /// A stored record could not be read back or written as JSON.
    #[error("state file holds an unreadable record")]
    Record(#[from] serde_json::Error),
    /// A blocking task doing the work was lost (the runtime is shutting down).
    #[error("state file task did not finish")]
    Task(#[from] tokio::task::JoinError),
}

/// Handles already open in this process, by path as given after making it absolute.
fn open_files() -> &'static Mutex<HashMap<PathBuf, Weak<Database>>> {
    static OPEN: OnceLock<Mutex<HashMap<PathBuf, Weak<Database>>>> = OnceLock::new();
    OPEN.get_or_init(Mutex::default)
}

/// Opens the state file at `path`, creating it and its folder if needed, or returns the handle
/// this process already has for it.
pub fn open(path: &Path) -> Result<Arc<Database>, StoreError> {
    let folder = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(folder) = folder {
        std::fs::create_dir_all(folder).map_err(|source| StoreError::Folder {
            path: path.to_owned(),
            source,
        })?;
    }
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());

    // The map only holds weak handles; a poisoned lock left it consistent.
    let mut files = open_files().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(database) = files.get(&absolute).and_then(Weak::upgrade) {
        return Ok(database);
    }
    let database = Database::create(path).map_err(|source| StoreError::Open {
        path: path.to_owned(),
        source,
    })?;
    let database = Arc::new(database);
    files.insert(absolute, Arc::downgrade(&database));
    Ok(database)
}

/// Milliseconds since the Unix epoch, the clock stored in the file (it must survive restarts,
/// which `Instant` does not). A clock before 1970 counts as the epoch itself.
pub fn now_millis() -> u64 {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_handle_per_file_per_process() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|source| StoreError::Folder {
            path: PathBuf::new(),
            source,
        })?;
        let path = dir.path().join("nested/state.redb");
        let first = open(&path)?;
        let second = open(&path)?;
        assert!(Arc::ptr_eq(&first, &second));
        drop((first, second));
        // Once every handle is gone the file can be opened again, as after a restart.
        open(&path)?;
        Ok(())
    }
}
