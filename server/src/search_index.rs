//! The message search index (Tantivy), beside the database: one document per message with
//! text, holding the terms it is found by ([`app::search::index_text`]: words, and the
//! characters and bigrams of Chinese, plus `@sender`), its conversation, and when it was
//! sent (a column, so that the newest matches are kept without sorting every match).
//!
//! A search intersects the query's terms with the user's conversations and keeps the newest
//! `n` by the send time: its cost follows the posting lists, not the number of records.
//!
//! The index is written behind the messages ([`crate::store`] decides what and keeps each
//! conversation's cursor in the database, written after the index's commit). Writing a
//! message's document first deletes what the index had for it, so that writing it again
//! after a crash between the two commits changes nothing. On disk it lives in
//! `<data dir>/search`; an index found missing or unreadable is made anew and the store
//! indexes everything again.

use std::{
    path::Path,
    sync::{
        atomic::{AtomicBool, Ordering},
        Mutex,
    },
};

use tantivy::{
    collector::TopDocs,
    directory::MmapDirectory,
    query::{BooleanQuery, Occur, Query, TermQuery, TermSetQuery},
    schema::{
        Field, IndexRecordOption, Schema, TextFieldIndexing, TextOptions, Value, FAST, STORED,
        STRING,
    },
    tokenizer::{TextAnalyzer, WhitespaceTokenizer},
    Index, IndexReader, IndexWriter, Order, ReloadPolicy, TantivyDocument, Term,
};

use crate::locks::lock;

/// Memory the writer buffers documents in before it writes a segment (Tantivy's floor is
/// 15 MB per indexing thread; one thread).
const WRITER_BUFFER_BYTES: usize = 32 * 1024 * 1024;
/// The tokenizer of the terms field: the terms are already made, blank-separated.
const BLANK: &str = "blank";

#[derive(Debug, thiserror::Error)]
#[error("search index: {0}")]
pub struct SearchIndexError(#[from] tantivy::TantivyError);

impl From<tantivy::directory::error::OpenDirectoryError> for SearchIndexError {
    fn from(e: tantivy::directory::error::OpenDirectoryError) -> Self {
        SearchIndexError(e.into())
    }
}

impl From<tantivy::directory::error::OpenReadError> for SearchIndexError {
    fn from(e: tantivy::directory::error::OpenReadError) -> Self {
        SearchIndexError(e.into())
    }
}

impl From<std::io::Error> for SearchIndexError {
    fn from(e: std::io::Error) -> Self {
        SearchIndexError(e.into())
    }
}

/// A message's document: where it is, when it was sent, and what finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchDoc {
    pub conversation: String,
    pub seq: u64,
    pub sent_at: i64,
    /// Blank-separated terms.
    pub terms: String,
}

/// A message that may contain the query (the index says so; its text as it is now decides).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub conversation: String,
    pub seq: u64,
    pub at: i64,
}

#[derive(Debug, Clone, Copy)]
struct Fields {
    /// `<conversation>/<seq>`: what a rewrite or a deletion finds the old document by.
    id: Field,
    conv: Field,
    seq: Field,
    at: Field,
    terms: Field,
}

pub struct SearchIndex {
    index: Index,
    reader: IndexReader,
    /// Made on first use, on the thread that indexes (its worker threads inherit that
    /// thread's low priority), and let go of by [`Self::close`].
    writer: Mutex<Option<IndexWriter>>,
    fields: Fields,
    /// The index was made anew when opened (see [`Self::take_fresh`]).
    fresh: AtomicBool,
}

impl std::fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SearchIndex").finish_non_exhaustive()
    }
}

fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let terms = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(BLANK)
            // Which documents hold a term; no counts or positions (nothing is scored).
            .set_index_option(IndexRecordOption::Basic),
    );
    let fields = Fields {
        id: b.add_text_field("id", STRING),
        conv: b.add_text_field("conv", STRING | STORED),
        seq: b.add_u64_field("seq", STORED),
        at: b.add_i64_field("at", FAST | STORED),
        terms: b.add_text_field("terms", terms),
    };
    (b.build(), fields)
}

/// Removes what `dir` holds, keeping the directory (and its permissions).
fn empty(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(path)?;
        } else {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}

fn doc_id(conversation: &str, seq: u64) -> String {
    format!("{conversation}/{seq}")
}

impl SearchIndex {
    /// Opens the index in `dir` (made if missing, made anew if unreadable or of another
    /// schema), or in memory without a directory.
    pub fn open(dir: Option<&Path>) -> Result<SearchIndex, SearchIndexError> {
        let (schema, fields) = schema();
        let (index, fresh) = match dir {
            None => (Index::create_in_ram(schema), true),
            Some(dir) => {
                std::fs::create_dir_all(dir)?;
                let existing = Index::exists(&MmapDirectory::open(dir)?)?;
                match Index::open_in_dir(dir)
                    .ok()
                    .filter(|i| i.schema() == schema)
                {
                    Some(index) if existing => (index, false),
                    _ => {
                        if existing {
                            tracing::warn!(
                                dir = %dir.display(),
                                "the search index is unreadable or of another version; it is made anew"
                            );
                        }
                        empty(dir)?;
                        (Index::create_in_dir(dir, schema)?, true)
                    }
                }
            }
        };
        index.tokenizers().register(
            BLANK,
            TextAnalyzer::builder(WhitespaceTokenizer::default()).build(),
        );
        let reader = index
            .reader_builder()
            .reload_policy(ReloadPolicy::Manual)
            .try_into()?;
        Ok(SearchIndex {
            index,
            reader,
            writer: Mutex::new(None),
            fields,
            fresh: AtomicBool::new(fresh),
        })
    }

    /// Whether the index was made anew when opened (every conversation must be indexed
    /// again); `true` once.
    pub fn take_fresh(&self) -> bool {
        self.fresh.swap(false, Ordering::AcqRel)
    }

    /// Replaces what the index has for each message with its document (`None`: removes it)
    /// and commits; searches see the change when this returns.
    pub fn write<'a>(
        &self,
        docs: impl IntoIterator<Item = ((&'a str, u64), Option<&'a SearchDoc>)>,
    ) -> Result<(), SearchIndexError> {
        let mut guard = lock(&self.writer);
        let writer = match guard.as_mut() {
            Some(w) => w,
            None => guard.insert(self.index.writer_with_num_threads(1, WRITER_BUFFER_BYTES)?),
        };
        let f = self.fields;
        for ((conversation, seq), doc) in docs {
            let id = doc_id(conversation, seq);
            writer.delete_term(Term::from_field_text(f.id, &id));
            if let Some(d) = doc {
                let mut td = TantivyDocument::new();
                td.add_text(f.id, &id);
                td.add_text(f.conv, &d.conversation);
                td.add_u64(f.seq, d.seq);
                td.add_i64(f.at, d.sent_at);
                td.add_text(f.terms, &d.terms);
                writer.add_document(td)?;
            }
        }
        if let Err(e) = writer.commit() {
            // What was added since the last commit is dropped with the writer; the store
            // indexes it again.
            *guard = None;
            return Err(e.into());
        }
        drop(guard);
        self.reader.reload()?;
        Ok(())
    }

    /// The newest `enough` indexed messages of `conversations` that hold every one of
    /// `terms`, newest first. The second value says whether more may exist.
    pub fn candidates(
        &self,
        conversations: &[String],
        terms: &[String],
        enough: usize,
    ) -> Result<(Vec<Candidate>, bool), SearchIndexError> {
        if conversations.is_empty() || terms.is_empty() || enough == 0 {
            return Ok((Vec::new(), false));
        }
        let f = self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = terms
            .iter()
            .map(|t| {
                let q = TermQuery::new(Term::from_field_text(f.terms, t), IndexRecordOption::Basic);
                (Occur::Must, Box::new(q) as Box<dyn Query>)
            })
            .collect();
        let scope = conversations
            .iter()
            .map(|c| Term::from_field_text(f.conv, c));
        clauses.push((Occur::Must, Box::new(TermSetQuery::new(scope))));
        let searcher = self.reader.searcher();
        let top = searcher.search(
            &BooleanQuery::new(clauses),
            &TopDocs::with_limit(enough).order_by_fast_field::<i64>("at", Order::Desc),
        )?;
        let more = top.len() == enough;
        let mut out = Vec::with_capacity(top.len());
        for (at, address) in top {
            let doc: TantivyDocument = searcher.doc(address)?;
            let conversation = doc.get_first(f.conv).and_then(|v| v.as_str());
            let seq = doc.get_first(f.seq).and_then(|v| v.as_u64());
            if let (Some(conversation), Some(seq), Some(at)) = (conversation, seq, at) {
                out.push(Candidate {
                    conversation: conversation.to_owned(),
                    seq,
                    at,
                });
            }
        }
        out.sort_by(|a, b| (b.at, &b.conversation, b.seq).cmp(&(a.at, &a.conversation, a.seq)));
        Ok((out, more))
    }

    /// Lets go of the writer (its lock on the directory) once its merges are done.
    pub fn close(&self) {
        if let Some(w) = lock(&self.writer).take() {
            if let Err(e) = w.wait_merging_threads() {
                tracing::warn!(error = %e, "the search index's merges did not finish");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(conversation: &str, seq: u64, sent_at: i64, terms: &str) -> SearchDoc {
        SearchDoc {
            conversation: conversation.into(),
            seq,
            sent_at,
            terms: terms.into(),
        }
    }

    fn found(index: &SearchIndex, convs: &[&str], terms: &[&str], n: usize) -> Vec<(String, u64)> {
        let convs: Vec<String> = convs.iter().map(|c| (*c).to_owned()).collect();
        let terms: Vec<String> = terms.iter().map(|t| (*t).to_owned()).collect();
        index
            .candidates(&convs, &terms, n)
            .unwrap()
            .0
            .into_iter()
            .map(|c| (c.conversation, c.seq))
            .collect()
    }

    #[test]
    fn every_term_in_one_of_the_conversations_newest_first_and_rewrites_replace() {
        let index = SearchIndex::open(None).unwrap();
        assert!(index.take_fresh() && !index.take_fresh());
        let docs = [
            doc("a", 1, 10, "数 据 数据 @ann"),
            doc("a", 2, 30, "数 据 库 数据 据库 @bob"),
            doc("b", 1, 20, "数 据 数据 @bob"),
            doc("c", 1, 40, "数 据 数据 @bob"),
        ];
        index
            .write(
                docs.iter()
                    .map(|d| ((d.conversation.as_str(), d.seq), Some(d))),
            )
            .unwrap();
        let pairs = |v: &[(&str, u64)]| -> Vec<(String, u64)> {
            v.iter().map(|(c, s)| ((*c).to_owned(), *s)).collect()
        };
        assert_eq!(
            found(&index, &["a", "b"], &["数据"], 10),
            pairs(&[("a", 2), ("b", 1), ("a", 1)])
        );
        assert_eq!(
            found(&index, &["a", "b"], &["数据", "@bob"], 10),
            pairs(&[("a", 2), ("b", 1)])
        );
        assert_eq!(
            found(&index, &["a", "b", "c"], &["数据"], 2),
            pairs(&[("c", 1), ("a", 2)])
        );
        assert!(found(&index, &["a"], &["nothing"], 10).is_empty());
        // Written again (an edit), then removed (a deletion): no copies are left behind.
        let edited = doc("a", 2, 30, "其 他 其他 @bob");
        index.write([(("a", 2), Some(&edited))]).unwrap();
        index.write([(("a", 2), Some(&edited))]).unwrap();
        assert_eq!(found(&index, &["a"], &["数据"], 10), pairs(&[("a", 1)]));
        assert_eq!(found(&index, &["a"], &["其他"], 10), pairs(&[("a", 2)]));
        index.write([(("a", 1), None)]).unwrap();
        assert!(found(&index, &["a"], &["数据"], 10).is_empty());
    }

    #[test]
    fn an_index_on_disk_is_kept_and_an_unreadable_one_is_made_anew() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("search");
        {
            let index = SearchIndex::open(Some(&path)).unwrap();
            assert!(index.take_fresh());
            let d = doc("a", 1, 1, "hello");
            index.write([(("a", 1), Some(&d))]).unwrap();
            index.close();
        }
        let index = SearchIndex::open(Some(&path)).unwrap();
        assert!(!index.take_fresh());
        assert_eq!(found(&index, &["a"], &["hello"], 1).len(), 1);
        index.close();
        drop(index);
        std::fs::write(path.join("meta.json"), b"not json").unwrap();
        let index = SearchIndex::open(Some(&path)).unwrap();
        assert!(index.take_fresh());
        assert!(found(&index, &["a"], &["hello"], 1).is_empty());
    }
}
