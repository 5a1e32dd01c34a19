//! A split: the entries of one time window, written once as a Tantivy index plus `meta.json`.
//!
//! A document holds up to [`DOC_LINES`] consecutive lines of one stream (from format 3; one line in
//! formats 1 and 2). Fields: `stream` (the stream's fingerprint, indexed and fast), `ts` (ns, fast, a
//! value per line), `len` (line bytes, fast, a value per line), `line` (each line tokenized on
//! non-alphanumeric characters, lowercased, numbers of one or two digits left out, doc ids only, no
//! field norms; from format 4 id-like tokens as 4-digit chunks, see [`ID_CHUNK`]), `meta`
//! (structured metadata, a value per line when a line of the document has some), `flags` (indexed:
//! 1 when a line has a token too long to be indexed). A line's address is its segment and its row
//! ordinal in the `ts` column, which is also its ordinal in the `.lines`
//! segment component (see [`super::lines`]) that keeps the raw lines and their metadata, not
//! Tantivy's doc store; splits written before it (`format` 1) store them in the doc store and are
//! still read. Lines are added sorted by (stream, time), so a block compresses lines of one stream
//! together.
//!
//! Selectors are resolved against the stream table in `meta.json` (no index access); line filters become
//! term queries on `line` (see [`needle_queries`]); time bounds are checked on the `ts` column.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tantivy::collector::{Collector, SegmentCollector};
use tantivy::columnar::Column;
use tantivy::query::{AllQuery, BooleanQuery, Occur, Query, RegexQuery, TermQuery, TermSetQuery};
use tantivy::schema::{
    BytesOptions, FAST, Field, IndexRecordOption, NumericOptions, Schema, TextFieldIndexing,
    TextOptions, Value,
};
use tantivy::store::{Compressor, ZstdCompressor};
use tantivy::tokenizer::{TextAnalyzer, Token, TokenStream, Tokenizer};
use tantivy::{
    DocAddress, DocId, Index, IndexReader, IndexSettings, ReloadPolicy, Score, SegmentOrdinal,
    SegmentReader, TantivyDocument, Term,
};
use vigil_model::{Labels, Matcher};

use super::LogsError;
use super::lines::{LinesPlugin, LinesReader};
use crate::wal::record::{Cursor, put_str, put_uvarint};

const TOKENIZER: &str = "vigil_line";
/// Tokens of this many bytes or more are not indexed (they would bloat the term dictionary and are
/// rarely searched whole); a line holding one is flagged so that substring searches still find it.
pub(crate) const LONG_TOKEN: usize = 256;

/// Numbers of at most this many digits are not indexed: they are in nearly every line (times,
/// versions, octets), cost a posting per line and narrow no search; needles skip them too.
pub(crate) const SHORT_NUMBER: usize = 2;

fn analyzer() -> TextAnalyzer {
    TextAnalyzer::from(LineTokenizer {
        chunk_ids: true,
        ..LineTokenizer::default()
    })
}

/// Id-like tokens: at least this many hexadecimal digits and nothing else (request and trace ids,
/// UUID parts, hashes, long numbers). Nearly every one is unique, and a term dictionary entry per
/// line was the cut's largest cost and a third of a split's bytes on lines that carry one (a request
/// id: the dictionary's FST build 15% of the cut, 0.10 bytes on disk per raw byte). So the index
/// holds them as [`ID_CHUNK`]-digit pieces instead (split format 4).
pub(crate) const ID_MIN: usize = 8;
/// An id token is indexed as the marker term [`ID_MARK`] followed by its whole `ID_CHUNK`-digit
/// pieces from its start, each prefixed with `ID_MARK` (`5deece66da3c4f17a` gives `_`, `_5dee`,
/// `_ce66`, `_da3c`, `_4f17`; the last digits of a length that is not a multiple are not indexed).
/// At most 16^4 chunk terms, each in many documents: a needle holding an id is found by the
/// conjunction of its chunks (see [`needle_queries`]) and every candidate line is checked anyway.
pub(crate) const ID_CHUNK: usize = 4;
/// Starts the terms of id tokens: never part of a line token, which are alphanumeric.
pub(crate) const ID_MARK: char = '_';

fn is_id(tok: &str) -> bool {
    tok.len() >= ID_MIN && is_hex(tok)
}

fn is_hex(tok: &str) -> bool {
    tok.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The line tokenizer: tokens are runs of alphanumeric characters (as `char::is_alphanumeric`,
/// with a fast path for ASCII), lowercased; tokens of [`LONG_TOKEN`] bytes or more and numbers of
/// at most [`SHORT_NUMBER`] digits are skipped. Tokens are the same as Tantivy's `SimpleTokenizer`
/// with `RemoveLongFilter` and `LowerCaser` gives, less the short numbers; the index's analyzer
/// then replaces each id-like token with the id marker and its chunks (see [`ID_CHUNK`]); needles
/// keep them whole.
#[derive(Clone, Default)]
struct LineTokenizer {
    token: Token,
    /// Index id-like tokens as the id marker and their chunks (the index's analyzer, see
    /// [`ID_CHUNK`]) rather than whole (needles).
    chunk_ids: bool,
}

struct LineTokens<'a> {
    text: &'a str,
    pos: usize,
    token: &'a mut Token,
    chunk_ids: bool,
    /// The id token being emitted chunk by chunk: the next chunk's start and the end of the last one.
    chunk: usize,
    chunk_end: usize,
}

impl Tokenizer for LineTokenizer {
    type TokenStream<'a> = LineTokens<'a>;
    fn token_stream<'a>(&'a mut self, text: &'a str) -> LineTokens<'a> {
        self.token.reset();
        LineTokens {
            text,
            pos: 0,
            token: &mut self.token,
            chunk_ids: self.chunk_ids,
            chunk: 0,
            chunk_end: 0,
        }
    }
}

impl LineTokens<'_> {
    /// Whether the character at byte `i` is alphanumeric, and its length in bytes.
    fn class(&self, i: usize) -> (bool, usize, bool) {
        let b = self.text.as_bytes()[i];
        if b < 0x80 {
            return (b.is_ascii_alphanumeric(), 1, true);
        }
        let c = self.text[i..].chars().next().unwrap_or(' ');
        (c.is_alphanumeric(), c.len_utf8(), false)
    }
}

impl TokenStream for LineTokens<'_> {
    fn advance(&mut self) -> bool {
        let bytes = self.text.as_bytes();
        let len = bytes.len();
        loop {
            // The chunks of an id token, one per call.
            if self.chunk < self.chunk_end {
                let s = self.chunk;
                self.chunk += ID_CHUNK;
                self.token.text.clear();
                self.token.text.push(ID_MARK);
                self.token.text.push_str(&self.text[s..s + ID_CHUNK]);
                self.token.text.make_ascii_lowercase();
                self.token.offset_from = s;
                self.token.offset_to = s + ID_CHUNK;
                self.token.position = self.token.position.wrapping_add(1);
                return true;
            }
            // Separators: ASCII ones a byte at a time, the rest through `class`.
            while self.pos < len {
                let b = bytes[self.pos];
                if b < 0x80 {
                    if b.is_ascii_alphanumeric() {
                        break;
                    }
                    self.pos += 1;
                    continue;
                }
                let (alnum, n, _) = self.class(self.pos);
                if alnum {
                    break;
                }
                self.pos += n;
            }
            if self.pos >= len {
                return false;
            }
            let start = self.pos;
            while self.pos < len && bytes[self.pos].is_ascii_alphanumeric() {
                self.pos += 1;
            }
            let mut ascii = true;
            while self.pos < len {
                let (alnum, n, a) = self.class(self.pos);
                if !alnum {
                    break;
                }
                ascii &= a;
                self.pos += n;
            }
            let tok = &self.text[start..self.pos];
            if tok.len() >= LONG_TOKEN
                || (tok.len() <= SHORT_NUMBER && tok.bytes().all(|b| b.is_ascii_digit()))
            {
                continue;
            }
            self.token.text.clear();
            if self.chunk_ids && ascii && is_id(tok) {
                // The marker term now, the chunks on the next calls.
                self.chunk = start;
                self.chunk_end = start + tok.len() / ID_CHUNK * ID_CHUNK;
                self.token.text.push(ID_MARK);
            } else if ascii {
                self.token.text.push_str(tok);
                self.token.text.make_ascii_lowercase();
            } else {
                for c in tok.chars() {
                    self.token.text.extend(c.to_lowercase());
                }
            }
            self.token.offset_from = start;
            self.token.offset_to = self.pos;
            self.token.position = self.token.position.wrapping_add(1);
            return true;
        }
    }

    fn token(&self) -> &Token {
        self.token
    }

    fn token_mut(&mut self) -> &mut Token {
        self.token
    }
}

#[cfg(test)]
pub(crate) fn analyzer_for_tests() -> TextAnalyzer {
    analyzer()
}

/// True when `line` has a token that [`analyzer`] drops for its length.
fn has_long_token(line: &str) -> bool {
    // Most lines are shorter than a long token: no second pass over their characters.
    if line.len() < LONG_TOKEN {
        return false;
    }
    line.split(|c: char| !c.is_alphanumeric())
        .any(|t| t.len() >= LONG_TOKEN)
}

#[derive(Clone, Copy)]
struct Fields {
    stream: Field,
    ts: Field,
    len: Field,
    line: Field,
    meta: Field,
    flags: Field,
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    // No field norms: nothing is scored.
    let stream = b.add_u64_field("stream", NumericOptions::default().set_indexed().set_fast());
    let ts = b.add_i64_field("ts", FAST);
    let len = b.add_u64_field("len", FAST);
    // Not stored by Tantivy: the `.lines` component keeps the line and the metadata.
    let line = b.add_text_field(
        "line",
        TextOptions::default().set_indexing_options(
            TextFieldIndexing::default()
                .set_tokenizer(TOKENIZER)
                .set_index_option(IndexRecordOption::Basic)
                .set_fieldnorms(false),
        ),
    );
    let meta = b.add_bytes_field("meta", BytesOptions::default());
    let flags = b.add_u64_field("flags", NumericOptions::default().set_indexed());
    (
        b.build(),
        Fields {
            stream,
            ts,
            len,
            line,
            meta,
            flags,
        },
    )
}

/// One stream of a split, as `meta.json` lists it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SplitStream {
    pub fp: u64,
    pub labels: BTreeMap<String, String>,
    pub entries: u64,
    pub bytes: u64,
    pub min_ts: i64,
    pub max_ts: i64,
}

/// `meta.json`: what the split holds, read without opening the index.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct SplitMeta {
    pub id: String,
    /// Start of the split's window (ns).
    pub window: i64,
    pub min_ts: i64,
    pub max_ts: i64,
    pub entries: u64,
    /// Bytes of the raw lines.
    pub bytes: u64,
    /// Bytes of the index on disk.
    pub disk_bytes: u64,
    /// The last WAL segment whose records this split holds (see the store's `wal_covered`).
    pub wal_seg: u64,
    pub streams: Vec<SplitStream>,
    /// Splits this one was compacted from: their entries are here, so at start-up any of them still
    /// on disk (a compaction that stopped before deleting them) is deleted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub replaces: Vec<String>,
    /// See [`FORMAT`].
    #[serde(default = "legacy_format")]
    pub format: u32,
}

/// The split format new splits are written in: 1, lines in Tantivy's doc store, one per document
/// (splits written before 2026-12-06); 2, lines in `.lines` files, one per document; 3, documents
/// of up to [`DOC_LINES`] lines; 4, id-like tokens indexed as chunks (see [`ID_CHUNK`]; written
/// from 2026-12-07). Formats 2 to 4 are read alike (a single-valued column is a multi-valued one
/// with one value per document; needle queries look for ids both whole and as chunks) and merge
/// together.
pub(crate) const FORMAT: u32 = 4;

/// Formats from which lines are in `.lines` files.
const LINES_FORMAT: u32 = 2;

/// Lines per Tantivy document, at most: consecutive lines of one stream share a document, so a
/// token in several of them costs one posting (nginx-like lines: postings 0.083 -> 0.026 bytes per
/// raw byte, indexing twice as fast); `ts` and `len` are multi-valued fast fields, a value per line,
/// whose row ordinals are the lines' ordinals in the `.lines` file. A document matching a needle
/// may match through several of its lines together: callers check each line anyway.
pub(crate) const DOC_LINES: usize = 16;
/// A document stops taking lines once it holds this many bytes of them (long lines).
const DOC_BYTES: usize = 8 << 10;

fn legacy_format() -> u32 {
    1
}

impl SplitStream {
    fn new(fp: u64, labels: BTreeMap<String, String>) -> Self {
        SplitStream {
            fp,
            labels,
            entries: 0,
            bytes: 0,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
        }
    }

    fn add(&mut self, entries: u64, bytes: u64, min_ts: i64, max_ts: i64) {
        self.entries += entries;
        self.bytes += bytes;
        self.min_ts = self.min_ts.min(min_ts);
        self.max_ts = self.max_ts.max(max_ts);
    }
}

impl SplitMeta {
    /// The meta of a split holding `streams`: its totals and time range are theirs.
    fn new(
        id: String,
        window: i64,
        wal_seg: u64,
        streams: BTreeMap<u64, SplitStream>,
        replaces: Vec<String>,
        format: u32,
    ) -> Self {
        let streams: Vec<SplitStream> = streams.into_values().collect();
        SplitMeta {
            id,
            window,
            min_ts: streams.iter().map(|s| s.min_ts).min().unwrap_or(i64::MAX),
            max_ts: streams.iter().map(|s| s.max_ts).max().unwrap_or(i64::MIN),
            entries: streams.iter().map(|s| s.entries).sum(),
            bytes: streams.iter().map(|s| s.bytes).sum(),
            disk_bytes: 0,
            wal_seg,
            streams,
            replaces,
            format,
        }
    }
}

/// An entry to be written: stream fingerprint and labels, time, line, structured metadata.
pub(crate) struct NewEntry<'a> {
    pub fp: u64,
    pub labels: &'a Labels,
    pub ts: i64,
    pub line: &'a str,
    pub metadata: &'a [(String, String)],
}

/// Where a split's line is: segment ordinal and the line's row in the segment's `ts` column (its
/// ordinal in the `.lines` file; the doc id in formats 1 and 2) in one number (segment in the high
/// half).
pub(crate) type SegDoc = u64;

/// A line of a matching document, found by a key scan.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Key {
    pub ts: i64,
    pub segdoc: SegDoc,
    pub fp: u64,
    pub len: u32,
}

/// A written split, open for reading.
pub(crate) struct Split {
    pub meta: SplitMeta,
    pub dir: PathBuf,
    reader: IndexReader,
    fields: Fields,
    labels: HashMap<u64, Labels>,
    /// Each segment's `.lines` file, by segment ordinal (format 2; empty for format 1).
    lines: Vec<LinesReader>,
}

fn tantivy_err(dir: &Path) -> impl Fn(tantivy::TantivyError) -> LogsError + '_ {
    move |e| LogsError::Split {
        path: dir.to_path_buf(),
        message: e.to_string(),
    }
}

fn io_err(dir: &Path) -> impl Fn(std::io::Error) -> LogsError + '_ {
    move |e| LogsError::Split {
        path: dir.to_path_buf(),
        message: e.to_string(),
    }
}

fn encode_meta(m: &[(String, String)]) -> Vec<u8> {
    let mut b = Vec::new();
    put_uvarint(&mut b, m.len() as u64);
    for (k, v) in m {
        put_str(&mut b, k);
        put_str(&mut b, v);
    }
    b
}

fn decode_meta(b: &[u8]) -> Vec<(String, String)> {
    let mut c = Cursor { b, i: 0 };
    let Ok(n) = c.uvarint() else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity((n as usize).min(64));
    for _ in 0..n {
        match (c.string(), c.string()) {
            (Ok(k), Ok(v)) => out.push((k, v)),
            _ => break,
        }
    }
    out
}

fn dir_size(p: &Path) -> u64 {
    fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Finishes a split built in `tmp`: writes its `meta`, fsyncs every file and the directory, renames it
/// to `dir` and fsyncs `parent`, then opens it.
fn publish(
    parent: &Path,
    tmp: &Path,
    dir: &Path,
    mut meta: SplitMeta,
    zstd_level: i32,
) -> Result<Split, LogsError> {
    meta.disk_bytes = dir_size(tmp);
    let meta_path = tmp.join("vigil-split.json");
    let text = serde_json::to_vec_pretty(&meta).map_err(|e| LogsError::Split {
        path: meta_path.clone(),
        message: e.to_string(),
    })?;
    fs::write(&meta_path, text).map_err(io_err(&meta_path))?;
    for e in fs::read_dir(tmp).map_err(io_err(tmp))?.flatten() {
        if let Ok(fh) = fs::File::open(e.path()) {
            fh.sync_all().map_err(io_err(tmp))?;
        }
    }
    fs::File::open(tmp)
        .and_then(|d| d.sync_all())
        .map_err(io_err(tmp))?;
    fs::rename(tmp, dir).map_err(io_err(dir))?;
    fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(io_err(parent))?;
    Split::open(dir, zstd_level)
}

impl Split {
    /// Writes `entries` (any order) as a split in `parent/<id>`: built in `<id>.tmp`, fsynced, renamed.
    pub fn write(
        parent: &Path,
        window: i64,
        wal_seg: u64,
        zstd_level: i32,
        mut entries: Vec<NewEntry<'_>>,
    ) -> Result<Split, LogsError> {
        let id = ulid::Ulid::new().to_string();
        let tmp = parent.join(format!("{id}.tmp"));
        let dir = parent.join(&id);
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let (schema, f) = schema();
        // Nothing is stored in Tantivy's doc store (it holds an empty record per document).
        let settings = IndexSettings {
            docstore_compression: Compressor::Zstd(ZstdCompressor {
                compression_level: Some(1),
            }),
            docstore_blocksize: 256 << 10,
            docstore_compress_dedicated_thread: false,
            ..IndexSettings::default()
        };
        let tokenizers = tantivy::tokenizer::TokenizerManager::default();
        tokenizers.register(TOKENIZER, analyzer());
        // Indexing is the cut's bottleneck (a profile: the postings writer); writer threads each
        // build a segment of their own, on the cores the push path leaves idle.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4);
        let index = Index::builder()
            .schema(schema)
            .settings(settings)
            .tokenizers(tokenizers)
            .register_plugin(Arc::new(LinesPlugin { level: zstd_level }))
            .create_in_dir(&tmp)
            .map_err(tantivy_err(&tmp))?;
        let mut w = index
            .writer_with_num_threads::<TantivyDocument>(threads, threads * (96 << 20))
            .map_err(tantivy_err(&tmp))?;
        w.set_merge_policy(Box::new(tantivy::indexer::NoMergePolicy));
        entries.sort_by_key(|a| (a.fp, a.ts));
        let mut streams: BTreeMap<u64, SplitStream> = BTreeMap::new();
        let mut i = 0;
        while i < entries.len() {
            let fp = entries[i].fp;
            let (mut j, mut bytes) = (i, 0usize);
            while j < entries.len() && entries[j].fp == fp && j - i < DOC_LINES && bytes < DOC_BYTES
            {
                bytes += entries[j].line.len();
                j += 1;
            }
            let group = &entries[i..j];
            let mut d = TantivyDocument::new();
            d.add_u64(f.stream, fp);
            // Metadata travels to the `.lines` writer beside each line, or not at all.
            let with_meta = group.iter().any(|e| !e.metadata.is_empty());
            let mut long = false;
            for e in group {
                d.add_i64(f.ts, e.ts);
                d.add_u64(f.len, e.line.len() as u64);
                d.add_text(f.line, e.line);
                if with_meta {
                    d.add_bytes(f.meta, &encode_meta(e.metadata));
                }
                long |= has_long_token(e.line);
            }
            if long {
                d.add_u64(f.flags, 1);
            }
            // One document at a time: batches of them would let the whole cut pile up in the
            // writer's queue (a second copy of the head's lines in memory).
            w.add_document(d).map_err(tantivy_err(&tmp))?;
            streams
                .entry(fp)
                .or_insert_with(|| SplitStream::new(fp, group[0].labels.to_map()))
                .add(
                    group.len() as u64,
                    bytes as u64,
                    group[0].ts,
                    entries[j - 1].ts,
                );
            i = j;
        }
        w.commit().map_err(tantivy_err(&tmp))?;
        w.wait_merging_threads().map_err(tantivy_err(&tmp))?;
        let meta = SplitMeta::new(id, window, wal_seg, streams, Vec::new(), FORMAT);
        drop(entries);
        drop(index);
        publish(parent, &tmp, &dir, meta, zstd_level)
    }

    /// Compacts `inputs` (splits of one window, written with the same settings) into one new split in
    /// `parent`, without tokenizing again: their segments are merged into one. The inputs stay on
    /// disk; the caller deletes them once the new split is published (the new split's `replaces`
    /// names them, so [`super::LogStore::open`] finishes the job after a crash).
    ///
    /// `.lines` blocks of at least half the block size are copied as they are, smaller ones
    /// re-packed at `zstd_level` (formats 2 and 3; format 1 splits stack their doc store blocks as
    /// they are).
    pub fn merge(
        parent: &Path,
        inputs: &[Arc<Split>],
        zstd_level: i32,
    ) -> Result<Split, LogsError> {
        let id = ulid::Ulid::new().to_string();
        let tmp = parent.join(format!("{id}.tmp"));
        let dir = parent.join(&id);
        fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
        let indices: Vec<Index> = inputs
            .iter()
            .map(|s| s.reader.searcher().index().clone())
            .collect();
        let out = tantivy::directory::MmapDirectory::open(&tmp).map_err(|e| LogsError::Split {
            path: tmp.clone(),
            message: e.to_string(),
        })?;
        if let Err(e) = tantivy::indexer::merge_indices(&indices, out) {
            let _ = fs::remove_dir_all(&tmp);
            return Err(tantivy_err(&tmp)(e));
        }
        let mut streams: BTreeMap<u64, SplitStream> = BTreeMap::new();
        for s in inputs.iter().flat_map(|i| &i.meta.streams) {
            streams
                .entry(s.fp)
                .or_insert_with(|| SplitStream::new(s.fp, s.labels.clone()))
                .add(s.entries, s.bytes, s.min_ts, s.max_ts);
        }
        let window = inputs.iter().map(|s| s.meta.window).min().unwrap_or(0);
        let wal_seg = inputs.iter().map(|s| s.meta.wal_seg).max().unwrap_or(0);
        let replaces = inputs.iter().map(|s| s.meta.id.clone()).collect();
        let format = inputs.iter().map(|s| s.meta.format).max().unwrap_or(FORMAT);
        let meta = SplitMeta::new(id, window, wal_seg, streams, replaces, format);
        publish(parent, &tmp, &dir, meta, zstd_level).inspect_err(|_| {
            let _ = fs::remove_dir_all(&tmp);
        })
    }

    /// The Tantivy settings and schema the split was written with: splits merge only with splits
    /// of equal ones (an upgrade or a changed `docstore_zstd_level` can leave both kinds on disk).
    pub fn merge_key(&self) -> (IndexSettings, Schema) {
        let searcher = self.reader.searcher();
        let index = searcher.index();
        (index.settings().clone(), index.schema())
    }

    /// Opens a split written by [`Split::write`].
    ///
    /// `zstd_level` is what a merge of this split writes its lines at.
    pub fn open(dir: &Path, zstd_level: i32) -> Result<Split, LogsError> {
        let meta_path = dir.join("vigil-split.json");
        let text = fs::read(&meta_path).map_err(io_err(&meta_path))?;
        let meta: SplitMeta = serde_json::from_slice(&text).map_err(|e| LogsError::Split {
            path: meta_path.clone(),
            message: e.to_string(),
        })?;
        if meta.format > FORMAT {
            // Read with this binary's queries, a newer format could answer incompletely without a
            // word (format 4's ids would be missed by a format 3 reader): refuse it instead.
            return Err(LogsError::Split {
                path: meta_path,
                message: format!(
                    "split format {} is newer than this binary reads (up to {FORMAT}); \
                     run the version that wrote it",
                    meta.format
                ),
            });
        }
        let mut index = Index::open_in_dir(dir).map_err(tantivy_err(dir))?;
        index.tokenizers().register(TOKENIZER, analyzer());
        if meta.format >= LINES_FORMAT {
            index.register_plugin(Arc::new(LinesPlugin { level: zstd_level }));
        }
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .doc_store_cache_num_blocks(16)
            .try_into()
            .map_err(tantivy_err(dir))?;
        let (_, fields) = schema();
        let lines = if meta.format >= LINES_FORMAT {
            reader
                .searcher()
                .segment_readers()
                .iter()
                .map(LinesReader::open)
                .collect::<Result<Vec<_>, _>>()
                .map_err(tantivy_err(dir))?
        } else {
            Vec::new()
        };
        let labels = meta
            .streams
            .iter()
            .map(|s| (s.fp, Labels::from_pairs(s.labels.clone())))
            .collect();
        Ok(Split {
            meta,
            dir: dir.to_path_buf(),
            reader,
            fields,
            labels,
            lines,
        })
    }

    pub fn labels(&self, fp: u64) -> Option<&Labels> {
        self.labels.get(&fp)
    }

    /// Streams matching every matcher with entries in `[start, end)`.
    pub fn matching_streams(&self, matchers: &[Matcher], start: i64, end: i64) -> Vec<u64> {
        self.meta
            .streams
            .iter()
            .filter(|s| s.max_ts >= start && s.min_ts < end)
            .filter(|s| {
                matchers
                    .iter()
                    .all(|m| m.matches(s.labels.get(&m.name).map(String::as_str).unwrap_or("")))
            })
            .map(|s| s.fp)
            .collect()
    }

    fn query(&self, fps: &[u64], needles: &Needles<'_>) -> Box<dyn Query> {
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::new();
        if fps.len() < self.meta.streams.len() {
            clauses.push((
                Occur::Must,
                Box::new(TermSetQuery::new(
                    fps.iter()
                        .map(|fp| Term::from_field_u64(self.fields.stream, *fp)),
                )),
            ));
        }
        clauses.extend(
            needles
                .queries(&self.fields)
                .into_iter()
                .map(|q| (Occur::Must, q)),
        );
        if clauses.is_empty() {
            return Box::new(AllQuery);
        }
        Box::new(BooleanQuery::new(clauses))
    }

    /// Keys of the matching documents in `[start, end)` and within `bound`, at most `k` of them, the
    /// first ones in the scan's direction.
    pub fn keys(
        &self,
        fps: &[u64],
        needles: &Needles<'_>,
        start: i64,
        end: i64,
        bound: Option<Bound>,
        k: Option<(usize, bool)>,
    ) -> Result<Vec<Key>, LogsError> {
        let searcher = self.reader.searcher();
        let q = self.query(fps, needles);
        let c = KeyCollector {
            start,
            end,
            bound,
            k,
        };
        searcher.search(&*q, &c).map_err(tantivy_err(&self.dir))
    }

    /// Reads a document's line and structured metadata.
    pub fn fetch(&self, segdoc: SegDoc) -> Result<(String, Vec<(String, String)>), LogsError> {
        if self.meta.format >= LINES_FORMAT {
            let seg = (segdoc >> 32) as usize;
            let lines = self.lines.get(seg).ok_or_else(|| LogsError::Split {
                path: self.dir.clone(),
                message: format!("no segment {seg}"),
            })?;
            let (line, meta) = lines.get(segdoc as u32).map_err(tantivy_err(&self.dir))?;
            return Ok((line, decode_meta(&meta)));
        }
        let searcher = self.reader.searcher();
        let addr = DocAddress::new((segdoc >> 32) as u32, segdoc as u32);
        let doc: TantivyDocument = searcher.doc(addr).map_err(tantivy_err(&self.dir))?;
        let line = doc
            .get_first(self.fields.line)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default();
        let meta = doc
            .get_first(self.fields.meta)
            .and_then(|v| v.as_bytes().map(decode_meta))
            .unwrap_or_default();
        Ok((line, meta))
    }

    /// Each `.lines` block's number of lines and raw bytes, over the split's segments.
    #[cfg(test)]
    pub(crate) fn line_blocks(&self) -> Vec<(usize, u32)> {
        self.segment_line_blocks().into_iter().flatten().collect()
    }

    /// Each `.lines` block's raw bytes and a checksum of its compressed bytes, over the segments.
    #[cfg(test)]
    pub(crate) fn line_frames(&self) -> Vec<(u32, u32)> {
        self.lines.iter().flat_map(|l| l.frames()).collect()
    }

    /// [`Self::line_blocks`] segment by segment.
    #[cfg(test)]
    pub(crate) fn segment_line_blocks(&self) -> Vec<Vec<(usize, u32)>> {
        self.lines.iter().map(|l| l.blocks()).collect()
    }

    /// Removes the split's files.
    pub fn delete(&self) -> Result<(), LogsError> {
        fs::remove_dir_all(&self.dir).map_err(io_err(&self.dir))
    }
}

/// A bound on keys for a resumed scan: forward scans want keys `>= lo`, backward ones keys `<= hi`,
/// compared as (ts, segdoc).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Bound {
    AtLeast(i64, SegDoc),
    AtMost(i64, SegDoc),
}

impl Bound {
    fn admits(&self, ts: i64, segdoc: SegDoc) -> bool {
        match *self {
            Bound::AtLeast(t, d) => (ts, segdoc) >= (t, d),
            Bound::AtMost(t, d) => (ts, segdoc) <= (t, d),
        }
    }
}

struct KeyCollector {
    start: i64,
    end: i64,
    bound: Option<Bound>,
    /// Keep only the first `k` in the direction (backward when true); all when `None`.
    k: Option<(usize, bool)>,
}

struct KeySegment {
    seg: u64,
    ts: Column<i64>,
    fp: Column<u64>,
    len: Column<u64>,
    start: i64,
    end: i64,
    bound: Option<Bound>,
    k: Option<(usize, bool)>,
    out: Vec<Key>,
}

fn trim(keys: &mut Vec<Key>, k: usize, backward: bool) {
    if keys.len() <= k {
        return;
    }
    if backward {
        keys.select_nth_unstable_by(k - 1, |a, b| (b.ts, b.segdoc).cmp(&(a.ts, a.segdoc)));
    } else {
        keys.select_nth_unstable_by(k - 1, |a, b| (a.ts, a.segdoc).cmp(&(b.ts, b.segdoc)));
    }
    keys.truncate(k);
}

impl SegmentCollector for KeySegment {
    type Fruit = Vec<Key>;

    fn collect(&mut self, doc: DocId, _score: Score) {
        let fp = self.fp.first(doc).unwrap_or(0);
        let rows = self.ts.index.value_row_ids(doc);
        // `len` has a value per line too: its rows are the same.
        debug_assert_eq!(rows, self.len.index.value_row_ids(doc));
        for row in rows {
            let ts = self.ts.values.get_val(row);
            if ts < self.start || ts >= self.end {
                continue;
            }
            let segdoc = (self.seg << 32) | row as u64;
            if let Some(b) = &self.bound
                && !b.admits(ts, segdoc)
            {
                continue;
            }
            self.out.push(Key {
                ts,
                segdoc,
                fp,
                len: self.len.values.get_val(row) as u32,
            });
        }
        // Keep memory bounded: trim to k whenever the buffer doubles past it.
        if let Some((k, back)) = self.k
            && self.out.len() >= 2 * k.max(512)
        {
            trim(&mut self.out, k, back);
        }
    }

    fn harvest(self) -> Vec<Key> {
        self.out
    }
}

impl Collector for KeyCollector {
    type Fruit = Vec<Key>;
    type Child = KeySegment;

    fn for_segment(
        &self,
        seg: SegmentOrdinal,
        reader: &SegmentReader,
    ) -> tantivy::Result<KeySegment> {
        let ff = reader.fast_fields();
        Ok(KeySegment {
            seg: seg as u64,
            ts: ff.i64("ts")?,
            fp: ff.u64("stream")?,
            len: ff.u64("len")?,
            start: self.start,
            end: self.end,
            bound: self.bound,
            k: self.k,
            out: Vec::new(),
        })
    }

    fn requires_scoring(&self) -> bool {
        false
    }

    fn merge_fruits(&self, fruits: Vec<Vec<Key>>) -> tantivy::Result<Vec<Key>> {
        let mut all: Vec<Key> = fruits.into_iter().flatten().collect();
        if let Some((k, back)) = self.k {
            trim(&mut all, k, back);
        }
        Ok(all)
    }
}

/// A scan's line filters and their index queries, built on first use and shared by every split the
/// scan reads (every split's fields come from [`schema`], so they are the same; a regex's automaton
/// takes about a millisecond to build, and a scan may read dozens of splits in several rounds).
pub struct Needles<'a> {
    needles: &'a [String],
    built: std::sync::OnceLock<Vec<Box<dyn Query>>>,
}

impl<'a> Needles<'a> {
    pub fn new(needles: &'a [String]) -> Self {
        Needles {
            needles,
            built: std::sync::OnceLock::new(),
        }
    }

    fn queries(&self, f: &Fields) -> Vec<Box<dyn Query>> {
        self.built
            .get_or_init(|| {
                self.needles
                    .iter()
                    .flat_map(|n| needle_queries(n, f.line, f.flags))
                    .collect()
            })
            .iter()
            .map(|q| q.box_clone())
            .collect()
    }
}

/// Index queries every line containing `needle` (case-sensitively) matches; the caller still checks
/// the line itself, since the index is case-insensitive and ignores punctuation.
///
/// Each token of the needle that is bounded by non-alphanumeric characters inside the needle on both
/// sides must be a whole token of the line; a token touching the needle's start may be the end of a
/// longer token (suffix), one touching its end the start of one (prefix), and a needle of one token
/// may sit anywhere inside a token. Only the cheapest of these kinds is queried (see below). Lines
/// with tokens too long to index are always candidates.
///
/// A token of hexadecimal digits may also be (part of) an id token of the line, which the index
/// holds as chunks (see [`ID_CHUNK`]): a whole one or a prefix by its chunks from its start, a part
/// at an unknown offset by its chunks at each of the four alignments (or, when it is too short to
/// hold a chunk at every alignment, by the id marker: any line with an id). Splits written before
/// format 4 hold ids whole, which the other alternatives find; they stay for every split, since a
/// merged split of format 4 may hold segments of formats 2 and 3.
pub(crate) fn needle_queries(needle: &str, line: Field, flags: Field) -> Vec<Box<dyn Query>> {
    // Needles are tokenized as lines are, ids kept whole.
    let mut tokenizer = LineTokenizer::default();
    let mut stream = tokenizer.token_stream(needle);
    let term = |t: &str| -> Box<dyn Query> {
        Box::new(TermQuery::new(
            Term::from_field_text(line, t),
            IndexRecordOption::Basic,
        ))
    };
    let regex = |p: &str| -> Option<Box<dyn Query>> {
        RegexQuery::from_pattern(p, line)
            .ok()
            .map(|r| Box::new(r) as Box<dyn Query>)
    };
    let marker = || term(&ID_MARK.to_string());
    // The id chunks of `t` when `t` starts `align` digits past a chunk boundary of an id token:
    // all of them (None when `t` holds no whole chunk at that alignment).
    let chunks = |t: &str, align: usize| -> Option<Box<dyn Query>> {
        let first = (ID_CHUNK - align % ID_CHUNK) % ID_CHUNK;
        let parts: Vec<(Occur, Box<dyn Query>)> = (first..)
            .step_by(ID_CHUNK)
            .take_while(|i| i + ID_CHUNK <= t.len())
            .map(|i| {
                (
                    Occur::Must,
                    term(&format!("{ID_MARK}{}", &t[i..i + ID_CHUNK])),
                )
            })
            .collect();
        (!parts.is_empty()).then(|| Box::new(BooleanQuery::new(parts)) as Box<dyn Query>)
    };
    // The needle's tokens by how they sit in it: whole (bounded inside the needle on both sides),
    // the start of a token (open to the right), or its end or any part of it (open to the left).
    let mut whole = Vec::new();
    let mut starts = Vec::new();
    let mut rest = Vec::new();
    while stream.advance() {
        // Tokens too long to index are not among them (the tokenizer skips them).
        let t = stream.token();
        let open_left = t.offset_from == 0;
        let open_right = t.offset_to == needle.len();
        match (open_left, open_right) {
            (false, false) => whole.push(t.text.clone()),
            (false, true) => starts.push(t.text.clone()),
            (true, _) => rest.push((t.text.clone(), open_right)),
        }
    }
    // Every candidate is checked against the needle afterwards, so the index only has to narrow:
    // whole tokens are exact term lookups and enough on their own; prefixes walk only the terms
    // that share them; a pattern open to the left walks the whole term dictionary of every split,
    // so it is used only when nothing cheaper is there. Only the chosen kind's queries are built
    // (a regex's automaton takes about a millisecond).
    //
    // Each token gives the alternatives a line containing the needle matches one of.
    let alternatives: Vec<Vec<Box<dyn Query>>> = if !whole.is_empty() {
        whole
            .iter()
            .map(|t| {
                let mut alts = vec![term(t)];
                if is_id(t) {
                    alts.extend(chunks(t, 0));
                }
                alts
            })
            .collect()
    } else if !starts.is_empty() {
        starts
            .iter()
            .filter_map(|t| {
                let esc = regex_syntax_escape(t);
                // A pattern that does not compile (none should) leaves the token unconstrained.
                let mut alts = vec![regex(&format!("{esc}.*"))?];
                if is_hex(t) {
                    alts.push(
                        chunks(t, 0)
                            .or_else(|| regex(&format!("{ID_MARK}{esc}.*")))
                            .unwrap_or_else(marker),
                    );
                }
                Some(alts)
            })
            .collect()
    } else {
        rest.iter()
            .filter_map(|(t, open_right)| {
                let esc = regex_syntax_escape(t);
                let p = if *open_right {
                    format!(".*{esc}.*")
                } else {
                    format!(".*{esc}")
                };
                let mut alts = vec![regex(&p)?];
                if is_hex(t) {
                    let aligned: Option<Vec<Box<dyn Query>>> =
                        (0..ID_CHUNK).map(|a| chunks(t, a)).collect();
                    match aligned {
                        Some(a) => alts.extend(a),
                        None => alts.push(marker()),
                    }
                }
                Some(alts)
            })
            .collect()
    };
    alternatives
        .into_iter()
        .map(|alts| {
            let mut any: Vec<(Occur, Box<dyn Query>)> =
                alts.into_iter().map(|q| (Occur::Should, q)).collect();
            any.push((
                Occur::Should,
                Box::new(TermQuery::new(
                    Term::from_field_u64(flags, 1),
                    IndexRecordOption::Basic,
                )),
            ));
            Box::new(BooleanQuery::new(any)) as Box<dyn Query>
        })
        .collect()
}

/// Escapes regex metacharacters (tokens are alphanumeric, so this is belt and braces).
fn regex_syntax_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if !c.is_alphanumeric() {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
