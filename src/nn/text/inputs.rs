//! A batch of tokenized lyrics as the encoder reads it, and the position ids each family derives.

use crate::error::{Error, Result};
use crate::text::hf::{EncoderConfig, Family};
use crate::text::tokenize::EncodedBatch;

/// `[batch, len]` row-major token ids, attention mask (1 = a real token) and token type ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenBatch {
    pub batch: usize,
    pub len: usize,
    pub ids: Vec<u32>,
    pub mask: Vec<u8>,
    pub type_ids: Vec<u32>,
}

fn to_u32(what: &str, v: &[i64]) -> Result<Vec<u32>> {
    v.iter()
        .enumerate()
        .map(|(i, &x)| {
            u32::try_from(x).map_err(|_| Error::Invalid(format!("{what}[{i}] = {x} is not a valid token index")))
        })
        .collect()
}

impl TokenBatch {
    /// Checks that every row has `len` entries.
    pub fn new(batch: usize, len: usize, ids: Vec<u32>, mask: Vec<u8>, type_ids: Vec<u32>) -> Result<TokenBatch> {
        let n = batch * len;
        for (what, l) in [("input_ids", ids.len()), ("attention_mask", mask.len()), ("token_type_ids", type_ids.len())]
        {
            if l != n {
                return Err(Error::shape("TokenBatch", format!("{what} has {l} entries for [{batch}, {len}]")));
            }
        }
        Ok(TokenBatch { batch, len, ids, mask, type_ids })
    }

    /// From the int64 arrays a tokenizer (or a `.pt` file) gives; `type_ids` None means all 0.
    /// A mask entry is "attend" when non-zero, as transformers reads it.
    pub fn from_i64(
        batch: usize,
        len: usize,
        ids: &[i64],
        mask: &[i64],
        type_ids: Option<&[i64]>,
    ) -> Result<TokenBatch> {
        let types = match type_ids {
            Some(t) => to_u32("token_type_ids", t)?,
            None => vec![0; ids.len()],
        };
        let mask = mask.iter().map(|&m| (m != 0) as u8).collect();
        TokenBatch::new(batch, len, to_u32("input_ids", ids)?, mask, types)
    }

    pub fn from_encoded(e: &EncodedBatch) -> Result<TokenBatch> {
        TokenBatch::from_i64(e.batch, e.max_len, &e.input_ids, &e.attention_mask, Some(&e.token_type_ids))
    }

    /// The real tokens of each row (mask 1).
    pub fn lengths(&self) -> Vec<usize> {
        self.mask.chunks(self.len.max(1)).map(|r| r.iter().filter(|&&m| m != 0).count()).take(self.batch).collect()
    }

    /// The same batch cut after the last column any row attends to. The encoder's outputs at the
    /// kept positions do not change but for summation order (padding keys get exactly zero
    /// attention weight, and every other step is per token), so a batch of short lyrics padded to
    /// 512 costs what its longest lyric costs.
    pub fn trimmed(&self) -> TokenBatch {
        let last = (0..self.batch)
            .filter_map(|b| self.mask[b * self.len..(b + 1) * self.len].iter().rposition(|&m| m != 0))
            .max()
            .map_or(1, |p| p + 1);
        if last >= self.len {
            return self.clone();
        }
        let cut = |v: &[u32]| -> Vec<u32> { v.chunks(self.len).flat_map(|r| r[..last].iter().copied()).collect() };
        let mask = self.mask.chunks(self.len).flat_map(|r| r[..last].iter().copied()).collect();
        TokenBatch { batch: self.batch, len: last, ids: cut(&self.ids), mask, type_ids: cut(&self.type_ids) }
    }

    /// Rows `lo..hi` of the batch.
    pub fn rows(&self, lo: usize, hi: usize) -> TokenBatch {
        let r = lo * self.len..hi * self.len;
        TokenBatch {
            batch: hi - lo,
            len: self.len,
            ids: self.ids[r.clone()].to_vec(),
            mask: self.mask[r.clone()].to_vec(),
            type_ids: self.type_ids[r].to_vec(),
        }
    }

    /// Position ids as transformers derives them: 0, 1, 2, … for BERT and DistilBERT; for RoBERTa
    /// `pad + 1, pad + 2, …` counting only non-padding tokens (`input_ids != pad_token_id`), and
    /// `pad` at padding tokens (`create_position_ids_from_input_ids`). Positions past the table
    /// are an error naming the limit.
    pub fn position_ids(&self, config: &EncoderConfig) -> Result<Vec<u32>> {
        let mut pos = Vec::with_capacity(self.ids.len());
        for row in self.ids.chunks(self.len.max(1)).take(self.batch) {
            match config.family {
                Family::Bert | Family::DistilBert => pos.extend(0..row.len() as u32),
                Family::Roberta => {
                    let pad = config.pad_token_id as u32;
                    let mut count = 0u32;
                    for &id in row {
                        if id != pad {
                            count += 1;
                            pos.push(pad + count);
                        } else {
                            pos.push(pad);
                        }
                    }
                }
            }
        }
        if let Some(&p) = pos.iter().max()
            && p as usize >= config.max_positions
        {
            return Err(Error::Invalid(format!(
                "a sequence of {} tokens needs position {p}, but the model has {} positions (at most {} tokens): lower --max-len",
                self.len,
                config.max_positions,
                config.max_len()
            )));
        }
        Ok(pos)
    }

    /// The mask as 0/1 floats, [batch, len] (the attention's key mask).
    pub fn mask_f64(&self) -> Vec<f64> {
        self.mask.iter().map(|&m| m as f64).collect()
    }
}
