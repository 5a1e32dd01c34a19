//! Durable replacement of small state files (silences, the notification log): written to a
//! temporary name, fsynced, renamed over the old file, and the directory fsynced, so a power loss
//! leaves either the old or the new content, never a torn or missing file. Blocking: call it from
//! a blocking thread.

use std::fs::File;
use std::io::Write;
use std::path::Path;

/// Replaces `path` with `bytes`, durably.
pub fn write_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}
