//! The local object store, made durable: `object_store`'s local filesystem writes to a temporary
//! file and renames it into place, but never fsyncs, so after a power loss a block it "wrote" can be
//! missing or empty even though the WAL segments it replaced were already deleted. This wrapper
//! fsyncs each written file and every directory from it up to the store's root before the write
//! returns; everything else is delegated. S3-compatible stores are durable when a put returns and
//! need no wrapper.

use std::fmt;
use std::ops::Range;
use std::path::{Path as FsPath, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

#[derive(Debug)]
pub(crate) struct DurableLocal {
    inner: LocalFileSystem,
    root: PathBuf,
}

impl DurableLocal {
    pub(crate) fn new(root: &FsPath) -> Result<DurableLocal> {
        Ok(DurableLocal {
            inner: LocalFileSystem::new_with_prefix(root)?,
            root: root.to_path_buf(),
        })
    }
}

impl fmt::Display for DurableLocal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DurableLocal({})", self.root.display())
    }
}

/// fsyncs `file`, then each directory from its parent up to `root` (a new block directory's entry
/// in `blocks/` must be durable too).
fn sync_up(root: &FsPath, file: &FsPath) -> std::io::Result<()> {
    std::fs::File::open(file)?.sync_all()?;
    let mut dir = file.parent();
    while let Some(d) = dir {
        std::fs::File::open(d)?.sync_all()?;
        if d == root || !d.starts_with(root) {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}

fn io_error(e: impl std::error::Error + Send + Sync + 'static) -> object_store::Error {
    object_store::Error::Generic {
        store: "DurableLocal",
        source: Box::new(e),
    }
}

#[async_trait]
impl ObjectStore for DurableLocal {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let r = self.inner.put_opts(location, payload, opts).await?;
        let file = self.root.join(location.as_ref());
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || sync_up(&root, &file))
            .await
            .map_err(io_error)?
            .map_err(io_error)?;
        Ok(r)
    }

    /// Vigil writes blocks with single puts; a multipart upload is delegated as is (not fsynced).
    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        self.inner.get_ranges(location, ranges).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list_with_offset(prefix, offset)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
