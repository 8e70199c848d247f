//! Which file is which: a path's device and inode ([`FileIdentity`], which the
//! checks of [`super::file`] compare), a database's `-wal` and `-shm` paths,
//! and which file a `-wal` was written for. SQLite replays whatever valid WAL
//! lies beside a database file at its first open, also one written for
//! another file: a database restored from a copy (or replaced, or created
//! anew after a deletion) beside the `-wal` a killed process left would be
//! corrupted by it. So the crate writes a tag of the file itself (a hash of
//! its inode and creation time, which a copy does not keep) into its header
//! (`PRAGMA application_id`), and at launch, before SQLite opens it, compares
//! the header of the file on disk with the file: when they differ, the
//! companions beside it are not its own and are moved aside.
//!
//! Not detected: a `-wal` copied from elsewhere beside the very file it was
//! not written for (a tag matches the file, not the WAL). A file moved with
//! `mv` on one filesystem keeps its inode, and so its `-wal`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use crate::store::{ErrorKind, StoreError};

/// The tags a database file's header should carry (`PRAGMA
/// application_id`): a hash of the file's inode and creation time, and of
/// its inode alone (a file first tagged where creation times were not
/// known).
#[derive(Debug, Clone, Copy)]
pub(super) struct FileTags {
    full: u32,
    inode_only: u32,
}

impl FileTags {
    pub(super) fn of(database: &Path) -> Option<FileTags> {
        let metadata = std::fs::metadata(database).ok()?;
        #[cfg(unix)]
        let inode = {
            use std::os::unix::fs::MetadataExt;
            metadata.ino()
        };
        #[cfg(not(unix))]
        let inode = 0u64;
        let born = metadata
            .created()
            .ok()
            .and_then(|at| at.duration_since(std::time::UNIX_EPOCH).ok());
        let tag = |born: Option<Duration>| {
            use sha2::Digest;
            let mut hash = sha2::Sha256::new();
            hash.update(b"rocket_sqlite_sessions file tag");
            hash.update(inode.to_be_bytes());
            if let Some(born) = born {
                hash.update(born.as_secs().to_be_bytes());
                hash.update(born.subsec_nanos().to_be_bytes());
            }
            let digest = hash.finalize();
            // 0 is an untagged file's.
            u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]).max(1)
        };
        Some(FileTags {
            full: tag(born),
            inode_only: tag(None),
        })
    }

    /// The tag to write.
    pub(super) fn current(self) -> u32 {
        self.full
    }

    fn matches(self, tag: u32) -> bool {
        tag == self.full || tag == self.inode_only
    }
}

/// The `application_id` in the header of the database file itself (not
/// what the WAL may hold), read through `file`, a descriptor of it kept open
/// (never one opened and closed here: that would drop SQLite's locks, see
/// `Shared`): `None` for an empty file or one that is not a SQLite database.
pub(super) fn header_tag(file: &std::fs::File) -> Option<u32> {
    let mut header = [0u8; 100];
    #[cfg(unix)]
    std::os::unix::fs::FileExt::read_exact_at(file, &mut header, 0).ok()?;
    #[cfg(not(unix))]
    {
        use std::io::{Read, Seek};
        let mut file = file;
        file.seek(std::io::SeekFrom::Start(0)).ok()?;
        file.read_exact(&mut header).ok()?;
    }
    if &header[..16] != b"SQLite format 3\0" {
        return None;
    }
    Some(u32::from_be_bytes([header[68], header[69], header[70], header[71]]))
}

/// Launch's check that a `-wal` and `-shm` left beside `database` belong to
/// it: a file restored from a copy, replaced, or created anew since the
/// crate last opened it (its header's tag is not this file's, see
/// [`FileTags`]) is never combined with a WAL written for another file. Such
/// companions are moved aside (renamed `…-wal.set-aside-<unix time>`), with a
/// warning. A file untagged (written before tags, or by another program) is
/// trusted.
///
/// Runs while holding the lock on the directory ([`LaunchLock`]), so a
/// process starting beside another that is still tagging a new file waits.
pub(super) fn set_aside_foreign_companions(database: &Path, file: &std::fs::File) -> Result<(), StoreError> {
    let Some(tags) = FileTags::of(database) else {
        return Ok(());
    };
    let empty = std::fs::metadata(database).is_ok_and(|metadata| metadata.len() == 0);
    let foreign = match header_tag(file) {
        None => empty,
        Some(0) => false,
        Some(tag) => !tags.matches(tag),
    };
    if !foreign {
        return Ok(());
    }
    let at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    for suffix in ["-wal", "-shm"] {
        let path = companion(database, suffix);
        if std::fs::symlink_metadata(&path).is_err() {
            continue;
        }
        let mut aside = path.clone().into_os_string();
        aside.push(format!(".set-aside-{at}"));
        std::fs::rename(&path, &aside).map_err(|error| {
            StoreError::new(
                ErrorKind::Other,
                format!(
                    "`{}` was not written for the database file beside it (the file was restored, replaced \
                     or created since), and moving it aside failed ({error}); delete it while no process \
                     uses the database",
                    path.display()
                ),
            )
        })?;
        log::warn!(
            "rocket_sqlite_sessions: `{}` is not the file `{}` was last opened with (restored from a copy, \
             replaced or created anew): `{}` was written for another file and was moved aside to `{}` \
             instead of being replayed into it",
            database.display(),
            database.display(),
            path.display(),
            std::path::Path::new(&aside).display()
        );
    }
    Ok(())
}

/// An exclusive `flock` of the database's directory, held while a process
/// checks and tags the file at launch: two processes starting at once take
/// turns. (Not a lock of the database file itself: closing any descriptor
/// of it would drop SQLite's locks on it.)
pub(super) struct LaunchLock {
    /// Closed (and so unlocked) when dropped.
    #[cfg(unix)]
    _directory: Option<std::fs::File>,
}

impl LaunchLock {
    pub(super) fn take(database: &Path) -> LaunchLock {
        #[cfg(unix)]
        {
            let directory = match database.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent,
                _ => Path::new("."),
            };
            let file = std::fs::File::open(directory).ok();
            if let Some(file) = &file {
                let _ = rustix::fs::flock(file, rustix::fs::FlockOperation::LockExclusive);
            }
            LaunchLock { _directory: file }
        }
        #[cfg(not(unix))]
        {
            let _ = database;
            LaunchLock {}
        }
    }
}

/// Writes the file's tag into its header (see [`FileTags`]) when it is not
/// there yet: in the WAL, then copied into the file by a truncating
/// checkpoint, and read back from the file.
pub(super) fn tag_file(writer: &Connection, path: &Path, file: &std::fs::File) -> Result<(), StoreError> {
    let Some(tags) = FileTags::of(path) else {
        return Ok(());
    };
    let tag = tags.current();
    let before = header_tag(file);
    if before == Some(tag) {
        return Ok(());
    }
    // SQLite keeps it as a signed 32-bit integer.
    writer.pragma_update(None, "application_id", i32::from_be_bytes(tag.to_be_bytes()))?;
    writer.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    if header_tag(file) == Some(tag) {
        return Ok(());
    }
    if matches!(before, None | Some(0)) {
        // An untagged file stays trusted: the tag is written at a later
        // launch (a process of an older version reading beside this one
        // keeps the checkpoint from reaching the file).
        log::warn!(
            "rocket_sqlite_sessions: the identity tag of `{}` could not be copied into its header yet \
             (another process is reading an old snapshot); it will be at a later launch",
            path.display()
        );
        return Ok(());
    }
    // A restored file must carry its own tag before anything is answered:
    // the next launch would move its WAL aside.
    Err(StoreError::new(
        ErrorKind::Other,
        format!(
            "cannot write the identity tag into the header of `{}` (another process is reading an old \
             snapshot of it?); start this process again",
            path.display()
        ),
    ))
}

/// The device and inode a path names (its existence elsewhere than on Unix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct FileIdentity {
    #[cfg(unix)]
    device: u64,
    #[cfg(unix)]
    inode: u64,
}

/// A path the store checks before every write batch, with its C string
/// made once: `stat` and `access` then copy nothing (a batch asks six times).
#[derive(Debug, Clone)]
pub(super) struct WatchedPath {
    path: PathBuf,
    #[cfg(unix)]
    c_path: std::ffi::CString,
}

impl WatchedPath {
    pub(super) fn new(path: PathBuf) -> WatchedPath {
        WatchedPath {
            // A path with a NUL byte names no file: its checks fail.
            #[cfg(unix)]
            c_path: std::ffi::CString::new(std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str()))
                .unwrap_or_default(),
            path,
        }
    }

    #[cfg(unix)]
    pub(super) fn c_path(&self) -> &std::ffi::CStr {
        &self.c_path
    }
}

impl std::ops::Deref for WatchedPath {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl FileIdentity {
    /// (One `stat`, without the `statx` probing of `std::fs::metadata`.)
    pub(super) fn of(path: &WatchedPath) -> Option<FileIdentity> {
        #[cfg(unix)]
        {
            let stat = rustix::fs::stat(path.c_path()).ok()?;
            Some(FileIdentity {
                device: stat.st_dev,
                inode: stat.st_ino,
            })
        }
        #[cfg(not(unix))]
        {
            std::fs::metadata(&path.path).ok()?;
            Some(FileIdentity {})
        }
    }
}

/// `database`'s `-wal` or `-shm` file.
pub(super) fn companion(database: &Path, suffix: &str) -> std::path::PathBuf {
    let mut path = database.as_os_str().to_owned();
    path.push(suffix);
    path.into()
}
