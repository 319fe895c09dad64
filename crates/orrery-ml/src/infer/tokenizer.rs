//! `tokenizer.json`, read and run by the `tokenizers` library (WordPiece for BERT, byte-level
//! BPE for GPT-2, word-level for the project's own character model).
//!
//! The file's own padding and truncation settings are switched off: callers see every token,
//! and the models reject an input that is too long instead of silently cutting it.

use super::{InferError, Result};

/// Largest `tokenizer.json` accepted (GPT-2's is 1.4 MB; multilingual ones reach ~20 MB).
pub const MAX_TOKENIZER_BYTES: usize = 64 << 20;
/// Largest text encoded in one call: bounds the tokenizer's work and memory per request.
pub const MAX_TEXT_BYTES: usize = 1 << 20;

/// A tokenizer loaded from `tokenizer.json`.
#[derive(Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size())
            .finish()
    }
}

fn tk_err(what: &str, e: impl std::fmt::Display) -> InferError {
    InferError::Tokenizer(format!("{what}: {e}"))
}

impl Tokenizer {
    /// Parse a `tokenizer.json`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Tokenizer> {
        if bytes.len() > MAX_TOKENIZER_BYTES {
            return Err(InferError::Tokenizer(format!(
                "tokenizer.json is {} bytes; at most {MAX_TOKENIZER_BYTES} are accepted",
                bytes.len()
            )));
        }
        let mut inner = tokenizers::Tokenizer::from_bytes(bytes)
            .map_err(|e| tk_err("cannot read tokenizer.json", e))?;
        inner
            .with_truncation(None)
            .map_err(|e| tk_err("cannot switch truncation off", e))?;
        inner.with_padding(None);
        Ok(Tokenizer { inner })
    }

    /// Wrap a tokenizer built in code (the exporter's).
    pub(crate) fn from_inner(inner: tokenizers::Tokenizer) -> Tokenizer {
        Tokenizer { inner }
    }

    /// Serialize back to `tokenizer.json` (pretty-printed).
    pub fn to_json(&self) -> Result<String> {
        self.inner
            .to_string(true)
            .map_err(|e| tk_err("cannot serialize", e))
    }

    /// Token ids of `text`, with the model's special tokens (`[CLS]`, `[SEP]`, ...) when
    /// `add_special_tokens`.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        if text.len() > MAX_TEXT_BYTES {
            return Err(InferError::Tokenizer(format!(
                "the text is {} bytes; at most {MAX_TEXT_BYTES} are encoded at once",
                text.len()
            )));
        }
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| tk_err("cannot encode the text", e))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| tk_err("cannot decode", e))
    }

    /// Vocabulary size, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of token `token`, if the vocabulary has it.
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// A streaming decoder over this tokenizer.
    pub fn incremental(&self) -> IncrementalDecoder<'_> {
        IncrementalDecoder {
            tokenizer: self,
            prefix_offset: 0,
            read_offset: 0,
        }
    }
}

/// Turns a growing list of token ids into text pieces as they become complete.
///
/// Byte-level tokens can end in the middle of a UTF-8 character, and a word-piece decoder
/// changes a token's text by what precedes it, so a token's text cannot be decoded alone.
/// Each call decodes a window starting a few tokens back, and emits only what was added
/// beyond the text already emitted, holding back while the text ends in an incomplete
/// character (decoded as U+FFFD). Concatenating every piece and [`Self::flush`] gives the
/// decoded text.
#[derive(Debug)]
pub struct IncrementalDecoder<'a> {
    tokenizer: &'a Tokenizer,
    /// Start of the window decoded for context.
    prefix_offset: usize,
    /// End of the ids whose text has been emitted.
    read_offset: usize,
}

impl IncrementalDecoder<'_> {
    /// Given every id so far (a prefix of which was passed before), the new text since the
    /// last call; empty while a character is incomplete.
    pub fn push(&mut self, ids: &[u32]) -> Result<String> {
        self.step(ids, false)
    }

    /// The text not yet emitted, complete or not: call once after the last id.
    pub fn flush(&mut self, ids: &[u32]) -> Result<String> {
        self.step(ids, true)
    }

    fn step(&mut self, ids: &[u32], force: bool) -> Result<String> {
        if ids.len() < self.read_offset {
            return Err(InferError::Tokenizer(format!(
                "incremental decoding: {} ids given after {} were already decoded; pass every id so far",
                ids.len(),
                self.read_offset
            )));
        }
        let prefix = self
            .tokenizer
            .decode(&ids[self.prefix_offset..self.read_offset])?;
        let full = self.tokenizer.decode(&ids[self.prefix_offset..])?;
        if full.len() <= prefix.len() || (!force && full.ends_with('\u{FFFD}')) {
            return Ok(String::new());
        }
        let new = match full.get(prefix.len()..) {
            Some(tail) if full.starts_with(&prefix) => tail.to_string(),
            // A decoder that rewrote earlier text (rare): emit the part after the common prefix.
            _ => {
                let common = full
                    .char_indices()
                    .zip(prefix.chars())
                    .take_while(|((_, a), b)| a == b)
                    .last()
                    .map_or(0, |((i, c), _)| i + c.len_utf8());
                full[common..].to_string()
            }
        };
        self.prefix_offset = self.read_offset;
        self.read_offset = ids.len();
        Ok(new)
    }
}
