//! The `.lines` segment component: a split's raw lines and structured metadata, in line order (a
//! document's lines in doc-id order; a line's ordinal is its row in the `ts` column), in
//! zstd blocks of our own format (a Tantivy [`SegmentPlugin`]), instead of Tantivy's doc store.
//!
//! Why not the doc store: it frames every document (length, field id, type, value length), which
//! costs a quarter more bytes after compression on short log lines, and compresses on its own
//! thread at one level for cuts and merges alike. Here a block holds its lines back to back after
//! their lengths, a cut compresses it on the indexing thread, and a merge (compaction) copies
//! blocks of at least half the block size as they are and re-packs the smaller ones, at the level
//! the store is configured with now.
//!
//! File layout (`<segment>.lines`):
//!
//! ```text
//! block*                      zstd frames
//! index: (first_line u32, offset u64, raw_len u32)*   little endian, one per block
//! footer: blocks u32, index_offset u64, version u32, magic "VGLN"
//! ```
//!
//! A block's raw bytes: a mode byte, the number of lines `n` (uvarint), a byte saying whether any
//! line has metadata and if so `n` metadata lengths (uvarints); then in mode 0 the lines joined by
//! `\n`, in mode 1 (a line of the block holds a newline) `n` line lengths and the lines back to
//! back; then the metadata (the encoding of `split::encode_meta`). Lengths of every line cost about
//! a hundredth of the raw bytes after compression; newlines almost nothing.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::Arc;

use parking_lot::Mutex;
use tantivy::directory::{OwnedBytes, TerminatingWrite, WritePtr};
use tantivy::index::SegmentComponent;
use tantivy::indexer::doc_id_mapping::{DocIdMapping, MappingType};
use tantivy::schema::document::ErasedDocument;
use tantivy::schema::{Field, Schema, Value};
use tantivy::{
    DocId, PluginMergeContext, PluginWriter, PluginWriterContext, Segment, SegmentPlugin,
    SegmentReader, TantivyDocument, TantivyError,
};

use crate::wal::record::{Cursor, put_uvarint};

pub(crate) const EXTENSION: &str = "lines";
const MAGIC: &[u8; 4] = b"VGLN";
const VERSION: u32 = 1;
const FOOTER: usize = 4 + 8 + 4 + 4;
const INDEX_ENTRY: usize = 4 + 8 + 4;
/// Raw bytes per block, at most (a line longer than that has a block of its own): nginx-like lines
/// compress about 10% better in 256 KiB blocks than in 64 KiB ones; reading one line decompresses
/// its block (well under a millisecond). zstd picks its parameters by input size, and up to 256 KiB
/// they are tuned for inputs that small: at level 5, `combined` lines compress 12% smaller and a
/// cut costs less than with blocks a few bytes over it.
pub(crate) const BLOCK_BYTES: usize = 256 << 10;
/// A merge copies blocks of at least this many raw bytes as they are (compressed) and re-packs only
/// smaller ones (a segment's last block, the blocks of small cuts): re-compressing every line at each
/// compaction cost about as much CPU as compressing it at the cut, for nothing on full blocks.
pub(crate) const COPY_BLOCK_BYTES: usize = BLOCK_BYTES / 2;

/// Bytes of `v` as a uvarint.
fn uvarint_len(v: usize) -> usize {
    (usize::BITS - (v | 1).leading_zeros()).div_ceil(7) as usize
}

fn component() -> SegmentComponent {
    SegmentComponent::Custom(EXTENSION.to_string())
}

fn corrupt(msg: impl Into<String>) -> TantivyError {
    TantivyError::InternalError(format!("log lines file: {}", msg.into()))
}

/// The plugin: registered on every split index of the current format, with the zstd level new
/// blocks are written at (cuts and merges).
pub(crate) struct LinesPlugin {
    pub level: i32,
}

impl SegmentPlugin for LinesPlugin {
    fn extensions(&self) -> &[&str] {
        &[EXTENSION]
    }

    fn create_writer(&self, ctx: &PluginWriterContext) -> tantivy::Result<Box<dyn PluginWriter>> {
        let schema = ctx.segment.schema();
        let line = schema.get_field("line")?;
        let meta = schema.get_field("meta")?;
        Ok(Box::new(LinesPluginWriter {
            line,
            meta,
            out: BlockWriter::new(ctx.segment.open_write(component())?, self.level)?,
        }))
    }

    fn merge(&self, ctx: PluginMergeContext) -> tantivy::Result<()> {
        // Splits never delete or sort documents, so a merge stacks its segments in reader order.
        if ctx.doc_id_mapping.mapping_type() != MappingType::Stacked {
            return Err(corrupt("only stacked merges are supported"));
        }
        let mut out = BlockWriter::new(ctx.target_segment.open_write(component())?, self.level)?;
        for r in ctx.readers {
            let lines = LinesReader::open(r)?;
            // The segment's lines: its `ts` column has a row per line (formats 2 and 3).
            let total = r.fast_fields().i64("ts")?.values.num_vals();
            let start = out.count;
            for b in 0..lines.index.len() {
                let (first, _, raw_len) = lines.index[b];
                if raw_len as usize >= COPY_BLOCK_BYTES {
                    let end = lines.index.get(b + 1).map_or(total, |&(f, _, _)| f);
                    let n = end
                        .checked_sub(first)
                        .filter(|&n| n > 0)
                        .ok_or_else(|| corrupt("block index out of order"))?;
                    out.copy(lines.compressed(b)?, n, raw_len)?;
                    continue;
                }
                let block = lines.block(b)?;
                for i in 0..block.len() {
                    out.add(block.line(i), block.meta(i))?;
                }
            }
            // Copied blocks are not parsed: at least the segment's line count must add up.
            if out.count - start != total {
                return Err(corrupt(format!(
                    "a segment's blocks hold {} lines, its ts column {total}",
                    out.count - start
                )));
            }
        }
        out.finish()
    }
}

struct LinesPluginWriter {
    line: Field,
    meta: Field,
    out: BlockWriter,
}

impl PluginWriter for LinesPluginWriter {
    fn add_document(
        &mut self,
        _doc_id: DocId,
        doc: &dyn ErasedDocument,
        _schema: &Schema,
    ) -> tantivy::Result<()> {
        let doc = doc
            .as_any()
            .downcast_ref::<TantivyDocument>()
            .ok_or_else(|| corrupt("documents must be TantivyDocument"))?;
        // A document's lines in order; metadata, when a line of it has some, one value per line.
        let mut metas = doc.get_all(self.meta).filter_map(|v| v.as_bytes());
        for line in doc.get_all(self.line).filter_map(|v| v.as_str()) {
            self.out.add(line.as_bytes(), metas.next().unwrap_or(&[]))?;
        }
        Ok(())
    }

    fn serialize(
        self: Box<Self>,
        _segment: &Segment,
        doc_id_map: Option<&DocIdMapping>,
    ) -> tantivy::Result<()> {
        if doc_id_map.is_some() {
            return Err(corrupt("splits are not sorted by Tantivy"));
        }
        self.out.finish()
    }

    fn mem_usage(&self) -> usize {
        self.out.lines.capacity() + self.out.metas.capacity() + self.out.index.capacity() * 16
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }

    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

/// Packs lines into blocks and writes them, then the index and the footer.
struct BlockWriter {
    w: WritePtr,
    zstd: zstd::bulk::Compressor<'static>,
    offset: u64,
    count: u32,
    first_line: u32,
    /// Whether a line of the current block holds a newline (then lines are framed by lengths).
    newline: bool,
    line_lens: Vec<u32>,
    meta_lens: Vec<u32>,
    lines: Vec<u8>,
    metas: Vec<u8>,
    /// Bytes of the current block's line lengths and metadata lengths as uvarints.
    line_varints: usize,
    meta_varints: usize,
    /// The current block's raw bytes, as `raw_len_with` computed them (checked by `flush`).
    raw_len: usize,
    raw: Vec<u8>,
    index: Vec<(u32, u64, u32)>,
}

impl BlockWriter {
    fn new(w: WritePtr, level: i32) -> tantivy::Result<Self> {
        Ok(BlockWriter {
            w,
            zstd: zstd::bulk::Compressor::new(level)?,
            offset: 0,
            count: 0,
            first_line: 0,
            newline: false,
            line_lens: Vec::new(),
            meta_lens: Vec::new(),
            lines: Vec::with_capacity(BLOCK_BYTES + 4096),
            metas: Vec::new(),
            line_varints: 0,
            meta_varints: 0,
            raw_len: 0,
            raw: Vec::new(),
            index: Vec::new(),
        })
    }

    /// The current block's raw bytes (as [`Self::flush`] lays them out) with one more line of
    /// `line` and `meta` bytes, holding a newline or not.
    fn raw_len_with(&self, line: usize, meta: usize, newline: bool) -> usize {
        let n = self.line_lens.len() + 1;
        let metas = self.metas.len() + meta;
        let meta_lens = if metas > 0 {
            self.meta_varints + uvarint_len(meta)
        } else {
            0
        };
        let framing = if self.newline || newline {
            self.line_varints + uvarint_len(line)
        } else {
            n - 1
        };
        2 + uvarint_len(n) + meta_lens + framing + self.lines.len() + line + metas
    }

    fn add(&mut self, line: &[u8], meta: &[u8]) -> tantivy::Result<()> {
        let newline = memchr::memchr(b'\n', line).is_some();
        let mut raw_len = self.raw_len_with(line.len(), meta.len(), newline);
        if !self.line_lens.is_empty() && raw_len > BLOCK_BYTES {
            self.flush()?;
            raw_len = self.raw_len_with(line.len(), meta.len(), newline);
        }
        self.raw_len = raw_len;
        self.newline |= newline;
        self.line_lens.push(line.len() as u32);
        self.meta_lens.push(meta.len() as u32);
        self.line_varints += uvarint_len(line.len());
        self.meta_varints += uvarint_len(meta.len());
        self.lines.extend_from_slice(line);
        self.metas.extend_from_slice(meta);
        self.count += 1;
        Ok(())
    }

    fn flush(&mut self) -> tantivy::Result<()> {
        let n = self.line_lens.len();
        if n == 0 {
            return Ok(());
        }
        let newline_mode = !self.newline;
        let has_meta = !self.metas.is_empty();
        self.raw.clear();
        self.raw.push(if newline_mode { 0 } else { 1 });
        put_uvarint(&mut self.raw, n as u64);
        self.raw.push(has_meta as u8);
        if has_meta {
            for &len in &self.meta_lens {
                put_uvarint(&mut self.raw, len as u64);
            }
        }
        if newline_mode {
            let mut pos = 0;
            for (i, &len) in self.line_lens.iter().enumerate() {
                if i > 0 {
                    self.raw.push(b'\n');
                }
                self.raw
                    .extend_from_slice(&self.lines[pos..pos + len as usize]);
                pos += len as usize;
            }
        } else {
            for &len in &self.line_lens {
                put_uvarint(&mut self.raw, len as u64);
            }
            self.raw.extend_from_slice(&self.lines);
        }
        self.raw.extend_from_slice(&self.metas);
        debug_assert_eq!(
            self.raw.len(),
            self.raw_len,
            "the block's size as computed by add"
        );
        let z = self.zstd.compress(&self.raw)?;
        self.w.write_all(&z)?;
        self.index
            .push((self.first_line, self.offset, self.raw.len() as u32));
        self.offset += z.len() as u64;
        self.first_line = self.count;
        self.newline = false;
        self.line_lens.clear();
        self.meta_lens.clear();
        self.lines.clear();
        self.metas.clear();
        self.line_varints = 0;
        self.meta_varints = 0;
        Ok(())
    }

    /// Appends a block compressed elsewhere, holding `n` lines of `raw_len` raw bytes, after the
    /// lines added so far (which are flushed as a block of their own first).
    fn copy(&mut self, z: &[u8], n: u32, raw_len: u32) -> tantivy::Result<()> {
        self.flush()?;
        self.w.write_all(z)?;
        self.index.push((self.count, self.offset, raw_len));
        self.offset += z.len() as u64;
        self.count += n;
        self.first_line = self.count;
        Ok(())
    }

    fn finish(mut self) -> tantivy::Result<()> {
        self.flush()?;
        let index_offset = self.offset;
        for &(first, off, raw) in &self.index {
            self.w.write_all(&first.to_le_bytes())?;
            self.w.write_all(&off.to_le_bytes())?;
            self.w.write_all(&raw.to_le_bytes())?;
        }
        self.w.write_all(&(self.index.len() as u32).to_le_bytes())?;
        self.w.write_all(&index_offset.to_le_bytes())?;
        self.w.write_all(&VERSION.to_le_bytes())?;
        self.w.write_all(MAGIC)?;
        self.w.terminate()?;
        Ok(())
    }
}

/// One decompressed block: its lines and metadata by position.
pub(crate) struct Block {
    first_line: u32,
    raw: Vec<u8>,
    /// Each line's span in `raw`.
    lines: Vec<(u32, u32)>,
    /// Each line's metadata's span (empty when no line of the block has metadata).
    metas: Vec<(u32, u32)>,
}

impl Block {
    fn parse(first_line: u32, raw: Vec<u8>) -> tantivy::Result<Block> {
        let bad = |what: &str| corrupt(format!("bad block: {what}"));
        let mode = *raw.first().ok_or_else(|| bad("empty"))?;
        let mut c = Cursor { b: &raw, i: 1 };
        let n = c.uvarint().map_err(|e| corrupt(e.to_string()))? as usize;
        if n == 0 || n > raw.len() {
            return Err(bad("count"));
        }
        let has_meta = *raw.get(c.i).ok_or_else(|| bad("header"))? != 0;
        c.i += 1;
        let mut meta_lens = Vec::new();
        if has_meta {
            for _ in 0..n {
                meta_lens.push(c.uvarint().map_err(|e| corrupt(e.to_string()))? as usize);
            }
        }
        let mut lines = Vec::with_capacity(n);
        if mode == 0 {
            let metas_len = meta_lens.iter().fold(0usize, |a, &b| a.saturating_add(b));
            let end = raw
                .len()
                .checked_sub(metas_len)
                .filter(|&e| e >= c.i)
                .ok_or_else(|| bad("lengths"))?;
            let mut start = c.i;
            for nl in memchr::memchr_iter(b'\n', &raw[c.i..end]) {
                lines.push((start as u32, (c.i + nl) as u32));
                start = c.i + nl + 1;
            }
            lines.push((start as u32, end as u32));
        } else {
            let mut lens = Vec::with_capacity(n);
            for _ in 0..n {
                lens.push(c.uvarint().map_err(|e| corrupt(e.to_string()))? as usize);
            }
            let mut pos = c.i;
            for len in lens {
                let end = pos.saturating_add(len);
                lines.push((pos as u32, end as u32));
                pos = end;
            }
        }
        if lines.len() != n {
            return Err(bad("line count"));
        }
        let mut pos = lines[n - 1].1 as usize;
        let mut metas = Vec::with_capacity(if has_meta { n } else { 0 });
        for len in meta_lens {
            let end = pos.saturating_add(len);
            metas.push((pos as u32, end as u32));
            pos = end;
        }
        if pos != raw.len() {
            return Err(bad("lengths do not add up"));
        }
        Ok(Block {
            first_line,
            raw,
            lines,
            metas,
        })
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn line(&self, i: usize) -> &[u8] {
        let (a, b) = self.lines[i];
        &self.raw[a as usize..b as usize]
    }

    pub fn meta(&self, i: usize) -> &[u8] {
        match self.metas.get(i) {
            Some(&(a, b)) => &self.raw[a as usize..b as usize],
            None => &[],
        }
    }
}
/// Blocks kept decompressed per segment (most recently used first).
const CACHED_BLOCKS: usize = 16;

/// A segment's `.lines` file, open for reading.
pub(crate) struct LinesReader {
    data: OwnedBytes,
    /// (first line, offset, raw length) per block.
    index: Vec<(u32, u64, u32)>,
    index_offset: u64,
    cache: Mutex<VecDeque<(usize, Arc<Block>)>>,
}

impl LinesReader {
    pub fn open(reader: &SegmentReader) -> tantivy::Result<LinesReader> {
        let data = reader.open_read(component())?.read_bytes()?;
        let b = data.as_slice();
        if b.len() < FOOTER || &b[b.len() - 4..] != MAGIC {
            return Err(corrupt("missing footer"));
        }
        let f = &b[b.len() - FOOTER..];
        let blocks = u32::from_le_bytes(f[0..4].try_into().unwrap()) as usize;
        let index_offset = u64::from_le_bytes(f[4..12].try_into().unwrap());
        let version = u32::from_le_bytes(f[12..16].try_into().unwrap());
        if version != VERSION {
            return Err(corrupt(format!("unknown version {version}")));
        }
        let start = index_offset as usize;
        if start.checked_add(blocks * INDEX_ENTRY) != Some(b.len() - FOOTER) {
            return Err(corrupt("index out of bounds"));
        }
        let index = b[start..b.len() - FOOTER]
            .chunks_exact(INDEX_ENTRY)
            .map(|e| {
                (
                    u32::from_le_bytes(e[0..4].try_into().unwrap()),
                    u64::from_le_bytes(e[4..12].try_into().unwrap()),
                    u32::from_le_bytes(e[12..16].try_into().unwrap()),
                )
            })
            .collect();
        Ok(LinesReader {
            data,
            index,
            index_offset,
            cache: Mutex::new(VecDeque::with_capacity(CACHED_BLOCKS)),
        })
    }

    /// Block `b` as stored (a zstd frame).
    fn compressed(&self, b: usize) -> tantivy::Result<&[u8]> {
        let (_, off, _) = self.index[b];
        let end = self
            .index
            .get(b + 1)
            .map_or(self.index_offset, |&(_, o, _)| o);
        if off > end || end > self.index_offset {
            return Err(corrupt("block out of bounds"));
        }
        Ok(&self.data.as_slice()[off as usize..end as usize])
    }

    /// Block `b`, decompressed (not cached: merges read each block once).
    fn block(&self, b: usize) -> tantivy::Result<Block> {
        let (first, _, raw_len) = self.index[b];
        let z = self.compressed(b)?;
        let raw = zstd::bulk::decompress(z, raw_len as usize)?;
        if raw.len() != raw_len as usize {
            return Err(corrupt("block shorter than its index says"));
        }
        Block::parse(first, raw)
    }

    /// Each block's number of lines and raw bytes.
    #[cfg(test)]
    pub(crate) fn blocks(&self) -> Vec<(usize, u32)> {
        (0..self.index.len())
            .map(|b| {
                (
                    self.block(b).expect("a readable block").len(),
                    self.index[b].2,
                )
            })
            .collect()
    }

    /// Each block's raw bytes and a checksum of its compressed bytes.
    #[cfg(test)]
    pub(crate) fn frames(&self) -> Vec<(u32, u32)> {
        (0..self.index.len())
            .map(|b| {
                let z = self.compressed(b).expect("a block in bounds");
                (self.index[b].2, crc32fast::hash(z))
            })
            .collect()
    }

    /// The block holding line `ord`, from the cache or decompressed into it.
    fn block_of(&self, ord: u32) -> tantivy::Result<Arc<Block>> {
        let b = self.index.partition_point(|&(first, _, _)| first <= ord);
        if b == 0 {
            return Err(corrupt(format!("no block holds line {ord}")));
        }
        let b = b - 1;
        {
            let mut cache = self.cache.lock();
            if let Some(pos) = cache.iter().position(|(k, _)| *k == b) {
                let hit = cache.remove(pos).expect("position is in range");
                let block = hit.1.clone();
                cache.push_front(hit);
                return Ok(block);
            }
        }
        let block = Arc::new(self.block(b)?);
        let mut cache = self.cache.lock();
        if cache.len() >= CACHED_BLOCKS {
            cache.pop_back();
        }
        cache.push_front((b, block.clone()));
        Ok(block)
    }

    /// Line `ord` (its row in the `ts` column) and its encoded metadata.
    pub fn get(&self, ord: u32) -> tantivy::Result<(String, Vec<u8>)> {
        let block = self.block_of(ord)?;
        let i = (ord - block.first_line) as usize;
        if i >= block.len() {
            return Err(corrupt(format!("no block holds line {ord}")));
        }
        let line = String::from_utf8_lossy(block.line(i)).into_owned();
        Ok((line, block.meta(i).to_vec()))
    }
}
