//! The serving lane's books: responses given and not yet paid, each channel's vouchers and
//! paid responses, and the batches settled on chain until their checks are over.
//!
//! # Rules
//!
//! - A response's commitment is **remembered** when it is sent (leaf → commitment and the
//!   canonical request) until a voucher pays for it, for at most [`UNPAID_TTL_MS`] and
//!   [`MAX_UNPAID`] responses (the oldest is forgotten first): a gateway that never pays
//!   cannot grow the agent's memory.
//! - A voucher is **accepted** only if it is signed by its key, names this provider and this
//!   chain, pays for a remembered response of the same key and channel, and continues its
//!   channel exactly: `responses` is the previous voucher's plus one and `total` the previous
//!   total plus the response's `charged`. Anything else is refused with a [`VoucherError`]
//!   saying which rule it broke; the channel is unchanged.
//! - An accepted response moves to its channel's **pending** list, and the channel (latest
//!   voucher, counters, pending responses) is written to `<data_dir>/inference/channels/`
//!   before the gateway is answered: a restart loses no money it was promised.
//! - A channel's pending responses are **cut** into a batch ([`Book::cut`]): the batch file
//!   (requests and leaves), the commitments and the voucher that pays them are written to
//!   `<data_dir>/inference/batches/<file hash>.json` first, then the channel's pending list
//!   is cleared. A crash between the two writes leaves responses in both; loading drops the
//!   channel's copies of responses a batch holds.
//! - A batch is kept until [`BATCH_RETENTION_BLOCKS`] after its settlement was sent, long
//!   enough for its checks to end, so the provider can open any response that is drawn.
//!
//! Every file is written to a temporary name and renamed into place.

use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use orrery_types::inference::{BatchEntry, BatchFile, ResponseCommitment, SignedVoucher};
use orrery_types::merkle::{MerkleProof, MerkleTree};
use orrery_types::tx::ChainId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Most responses remembered while unpaid: each holds its request (at most
/// `MAX_REQUEST_BYTES`), so this bounds the memory a non-paying gateway can take (~1 GiB at
/// the worst, a few MiB in practice).
pub const MAX_UNPAID: usize = 16_384;
/// How long a response waits for its voucher: a gateway pays right after it verified the
/// response, so a minute is generous.
pub const UNPAID_TTL_MS: u64 = 60_000;
/// Most channels with unsettled responses: each has a file and a place in every settlement
/// pass.
pub const MAX_CHANNELS: usize = 4_096;
/// Blocks a settled batch is kept after its settlement was sent: longer than its checks'
/// seal and reveal phases with every tie-break round.
pub const BATCH_RETENTION_BLOCKS: u64 = 5_000;
/// Largest channel or batch file read back (a batch of `MAX_BATCH_RESPONSES` requests of
/// `MAX_REQUEST_BYTES` would be 256 MiB; real ones are far smaller).
pub const MAX_BOOK_FILE_BYTES: u64 = 512 << 20;

/// Why a voucher was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum VoucherError {
    /// The signature is not the voucher key's.
    #[error("the voucher's signature does not verify against its key")]
    BadSignature,
    /// It pays another provider.
    #[error("the voucher pays {0}, not this provider")]
    WrongProvider(AccountId),
    /// It is for another chain (or the agent has not read the chain yet).
    #[error("the voucher is for chain {got}; this provider settles on {want}")]
    WrongChain {
        /// The voucher's.
        got: String,
        /// Ours.
        want: String,
    },
    /// No remembered, unpaid response has this leaf.
    #[error("no unpaid response has leaf {0} (already paid, expired, or never served here)")]
    UnknownResponse(Hash),
    /// The response was for another key or channel.
    #[error("the response was served to key {key} on channel {channel}, not the voucher's")]
    WrongChannel {
        /// The response's key.
        key: AccountId,
        /// The response's channel.
        channel: u64,
    },
    /// `responses` does not continue the channel.
    #[error(
        "the voucher counts {got} responses; the channel's next is {want} (the previous voucher counted {})",
        want - 1
    )]
    Gap {
        /// The voucher's count.
        got: u64,
        /// The expected count.
        want: u64,
    },
    /// `total` is not the previous total plus the response's price.
    #[error(
        "the voucher's total is {got} ORR; the previous total plus this response's price is {want} ORR"
    )]
    WrongTotal {
        /// The voucher's.
        got: Amount,
        /// Expected.
        want: Amount,
    },
    /// Too many channels hold unsettled responses.
    #[error("this provider holds {MAX_CHANNELS} unsettled channels; try again after it settles")]
    TooManyChannels,
    /// The channel could not be saved (nothing was accepted).
    #[error("cannot save the channel: {0}")]
    Io(String),
}

/// A response a voucher paid for: its canonical request and its commitment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaidResponse {
    /// The canonical request bytes, as JSON text.
    pub request: String,
    /// The commitment.
    pub commitment: ResponseCommitment,
    /// The voucher that paid it (`None` while unpaid).
    #[serde(default)]
    pub voucher: Option<SignedVoucher>,
}

/// One (key, channel): its latest voucher and the responses paid since the last settlement.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    /// The paying key.
    pub key: AccountId,
    /// The gateway's channel number.
    pub channel: u64,
    /// The latest accepted voucher (`None` before the first).
    pub latest: Option<SignedVoucher>,
    /// Paid responses not yet in a batch, in order.
    pub pending: Vec<PaidResponse>,
}

impl Channel {
    fn counters(&self) -> (u64, Amount) {
        self.latest.as_ref().map_or((0, Amount::ZERO), |v| {
            (v.voucher.responses, v.voucher.total)
        })
    }
}

/// A batch cut from a channel: what the settlement names and what openings prove.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The published file (requests and leaves).
    pub file: BatchFile,
    /// The commitments, in leaf order.
    pub commitments: Vec<ResponseCommitment>,
    /// The voucher that pays the batch (the channel's latest when it was cut).
    pub voucher: SignedVoucher,
    /// Whether the file was uploaded to the node.
    #[serde(default)]
    pub uploaded: bool,
    /// Height at which the settlement was sent.
    #[serde(default)]
    pub sent_at: Option<u64>,
}

impl Batch {
    /// The file's bytes, as published (`serde_json` of [`BatchFile`]).
    pub fn file_bytes(&self) -> Vec<u8> {
        // Serializing plain data with string keys cannot fail.
        serde_json::to_vec(&self.file).unwrap_or_default()
    }

    /// The blob hash the settlement names.
    pub fn file_hash(&self) -> Hash {
        Hash::of(&self.file_bytes())
    }

    /// The Merkle root over the leaves.
    pub fn root(&self) -> Hash {
        MerkleTree::new(&self.leaves()).root()
    }

    fn leaves(&self) -> Vec<Hash> {
        self.file.entries.iter().map(|e| e.leaf).collect()
    }

    /// The commitment at `index` and its proof under [`Batch::root`].
    pub fn opening(&self, index: u64) -> Option<(ResponseCommitment, MerkleProof)> {
        let c = self.commitments.get(usize::try_from(index).ok()?)?.clone();
        let proof = MerkleTree::new(&self.leaves()).proof(index)?;
        Some((c, proof))
    }
}

struct Unpaid {
    paid: PaidResponse,
    at_ms: u64,
    seq: u64,
}

/// The books (see the module docs).
pub struct Book {
    dir: Option<PathBuf>,
    unpaid: BTreeMap<Hash, Unpaid>,
    /// Unpaid leaves by arrival, for eviction.
    arrivals: BTreeMap<u64, Hash>,
    next_seq: u64,
    channels: BTreeMap<(AccountId, u64), Channel>,
    batches: BTreeMap<Hash, Batch>,
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Option<T> {
    let len = std::fs::metadata(path).ok()?.len();
    if len > MAX_BOOK_FILE_BYTES {
        tracing::warn!(path = %path.display(), len, "book file too large; ignored");
        return None;
    }
    let bytes = std::fs::read(path).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "unreadable book file; ignored");
            None
        }
    }
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    out.sort();
    out
}

impl Book {
    /// Books kept in memory only (tests).
    pub fn in_memory() -> Book {
        Book {
            dir: None,
            unpaid: BTreeMap::new(),
            arrivals: BTreeMap::new(),
            next_seq: 0,
            channels: BTreeMap::new(),
            batches: BTreeMap::new(),
        }
    }

    /// Open (creating) the books under `<data_dir>/inference`, reading back the channels and
    /// batches a previous run saved.
    pub fn open(data_dir: &Path) -> std::io::Result<Book> {
        let dir = data_dir.join("inference");
        std::fs::create_dir_all(dir.join("channels"))?;
        std::fs::create_dir_all(dir.join("batches"))?;
        let mut book = Book {
            dir: Some(dir.clone()),
            ..Book::in_memory()
        };
        for path in json_files(&dir.join("batches")) {
            if let Some(b) = read_json::<Batch>(&path) {
                book.batches.insert(b.file_hash(), b);
            }
        }
        let batched: std::collections::BTreeSet<Hash> = book
            .batches
            .values()
            .flat_map(|b| b.file.entries.iter().map(|e| e.leaf))
            .collect();
        for path in json_files(&dir.join("channels")) {
            if let Some(mut c) = read_json::<Channel>(&path) {
                // A crash between writing a batch and clearing its channel: keep one copy.
                c.pending
                    .retain(|p| !batched.contains(&p.commitment.leaf()));
                book.channels.insert((c.key, c.channel), c);
            }
        }
        Ok(book)
    }

    fn channel_path(&self, key: &AccountId, channel: u64) -> Option<PathBuf> {
        let dir = self.dir.as_ref()?;
        Some(dir.join("channels").join(format!("{key}-{channel}.json")))
    }

    fn batch_path(&self, hash: &Hash) -> Option<PathBuf> {
        Some(
            self.dir
                .as_ref()?
                .join("batches")
                .join(format!("{}.json", hash.to_hex())),
        )
    }

    fn save_channel(&self, c: &Channel) -> std::io::Result<()> {
        let Some(path) = self.channel_path(&c.key, c.channel) else {
            return Ok(());
        };
        write_atomic(
            &path,
            &serde_json::to_vec(c).map_err(std::io::Error::other)?,
        )
    }

    fn save_batch(&self, b: &Batch) -> std::io::Result<()> {
        let Some(path) = self.batch_path(&b.file_hash()) else {
            return Ok(());
        };
        write_atomic(
            &path,
            &serde_json::to_vec(b).map_err(std::io::Error::other)?,
        )
    }

    /// Remember a response just served, until paid or expired (`now_ms` is any monotonic
    /// clock in milliseconds).
    pub fn remember(&mut self, request: String, commitment: ResponseCommitment, now_ms: u64) {
        self.expire(now_ms);
        while self.unpaid.len() >= MAX_UNPAID {
            let Some((_, leaf)) = self.arrivals.pop_first() else {
                break;
            };
            self.unpaid.remove(&leaf);
        }
        let leaf = commitment.leaf();
        let seq = self.next_seq;
        self.next_seq += 1;
        if let Some(old) = self.unpaid.insert(
            leaf,
            Unpaid {
                paid: PaidResponse {
                    request,
                    commitment,
                    voucher: None,
                },
                at_ms: now_ms,
                seq,
            },
        ) {
            self.arrivals.remove(&old.seq);
        }
        self.arrivals.insert(seq, leaf);
    }

    fn expire(&mut self, now_ms: u64) {
        while let Some((&seq, &leaf)) = self.arrivals.first_key_value() {
            let old = self
                .unpaid
                .get(&leaf)
                .is_none_or(|u| now_ms.saturating_sub(u.at_ms) > UNPAID_TTL_MS);
            if !old {
                break;
            }
            self.arrivals.remove(&seq);
            self.unpaid.remove(&leaf);
        }
    }

    /// Responses served and not paid yet.
    pub fn unpaid_len(&self) -> usize {
        self.unpaid.len()
    }

    /// Check `voucher` against the rules (module docs) and, if it passes, move the response
    /// of `leaf` to its channel's pending list and save the channel. Returns the response's
    /// price.
    pub fn accept(
        &mut self,
        voucher: &SignedVoucher,
        leaf: &Hash,
        me: &AccountId,
        chain_id: &ChainId,
    ) -> Result<Amount, VoucherError> {
        check_signed(voucher, me, chain_id)?;
        let v = &voucher.voucher;
        let unpaid = self
            .unpaid
            .get(leaf)
            .ok_or(VoucherError::UnknownResponse(*leaf))?;
        let commitment = &unpaid.paid.commitment;
        let served_channel = request_channel(&unpaid.paid.request);
        if commitment.key != v.key_id() || served_channel != Some(v.channel) {
            return Err(VoucherError::WrongChannel {
                key: commitment.key,
                channel: served_channel.unwrap_or_default(),
            });
        }
        let id = (v.key_id(), v.channel);
        if !self.channels.contains_key(&id) && self.channels.len() >= MAX_CHANNELS {
            return Err(VoucherError::TooManyChannels);
        }
        let (responses, total) = self
            .channels
            .get(&id)
            .map_or((0, Amount::ZERO), |c| c.counters());
        let want = responses.saturating_add(1);
        if v.responses != want {
            return Err(VoucherError::Gap {
                got: v.responses,
                want,
            });
        }
        let want_total = total
            .checked_add(commitment.charged)
            .ok_or(VoucherError::WrongTotal {
                got: v.total,
                want: Amount(u128::MAX),
            })?;
        if v.total != want_total {
            return Err(VoucherError::WrongTotal {
                got: v.total,
                want: want_total,
            });
        }
        let charged = commitment.charged;
        let mut paid = unpaid.paid.clone();
        paid.voucher = Some(voucher.clone());
        let mut channel = self.channels.get(&id).cloned().unwrap_or(Channel {
            key: id.0,
            channel: id.1,
            latest: None,
            pending: Vec::new(),
        });
        channel.latest = Some(voucher.clone());
        channel.pending.push(paid);
        self.save_channel(&channel)
            .map_err(|e| VoucherError::Io(e.to_string()))?;
        self.channels.insert(id, channel);
        if let Some(u) = self.unpaid.remove(leaf) {
            self.arrivals.remove(&u.seq);
        }
        Ok(charged)
    }

    /// Channels with pending responses, with how many wait.
    pub fn pending(&self) -> Vec<((AccountId, u64), usize)> {
        self.channels
            .iter()
            .filter(|(_, c)| !c.pending.is_empty())
            .map(|(id, c)| (*id, c.pending.len()))
            .collect()
    }

    /// A channel, if known.
    pub fn channel(&self, key: &AccountId, channel: u64) -> Option<&Channel> {
        self.channels.get(&(*key, channel))
    }

    /// Cut up to `max` of the channel's pending responses into a batch (saved before the
    /// channel is cleared). The batch is paid by the voucher of its last response, so a
    /// settlement pays exactly the responses its batch holds. Returns the batch file's hash,
    /// or `None` when nothing is pending.
    pub fn cut(
        &mut self,
        key: &AccountId,
        channel: u64,
        max: usize,
    ) -> std::io::Result<Option<Hash>> {
        let Some(c) = self.channels.get(&(*key, channel)) else {
            return Ok(None);
        };
        let Some(first) = c.pending.first() else {
            return Ok(None);
        };
        let model = first.commitment.model;
        // One batch per model: the settlement names one. Responses of another model on the
        // same channel wait for the next cut (a gateway opens one channel per model).
        let take: Vec<PaidResponse> = c
            .pending
            .iter()
            .take(max.max(1))
            .take_while(|p| p.commitment.model == model)
            .cloned()
            .collect();
        let Some(voucher) = take
            .last()
            .and_then(|p| p.voucher.clone())
            .or_else(|| c.latest.clone())
        else {
            return Ok(None);
        };
        let batch = Batch {
            file: BatchFile {
                model,
                entries: take
                    .iter()
                    .map(|p| BatchEntry {
                        request: p.request.clone(),
                        leaf: p.commitment.leaf(),
                    })
                    .collect(),
            },
            commitments: take.iter().map(|p| p.commitment.clone()).collect(),
            voucher,
            uploaded: false,
            sent_at: None,
        };
        self.save_batch(&batch)?;
        let hash = batch.file_hash();
        let mut c = c.clone();
        c.pending.drain(..take.len());
        self.save_channel(&c)?;
        self.channels.insert((*key, channel), c);
        self.batches.insert(hash, batch);
        Ok(Some(hash))
    }

    /// Batches kept, by file hash.
    pub fn batches(&self) -> &BTreeMap<Hash, Batch> {
        &self.batches
    }

    /// Record that the batch's file was uploaded.
    pub fn mark_uploaded(&mut self, hash: &Hash) -> std::io::Result<()> {
        self.update_batch(hash, |b| b.uploaded = true)
    }

    /// Record that the batch's settlement was sent at `height`.
    pub fn mark_sent(&mut self, hash: &Hash, height: u64) -> std::io::Result<()> {
        self.update_batch(hash, |b| b.sent_at = Some(height))
    }

    fn update_batch(&mut self, hash: &Hash, f: impl FnOnce(&mut Batch)) -> std::io::Result<()> {
        let Some(mut b) = self.batches.get(hash).cloned() else {
            return Ok(());
        };
        f(&mut b);
        self.save_batch(&b)?;
        self.batches.insert(*hash, b);
        Ok(())
    }

    /// Forget batches whose settlement was sent more than [`BATCH_RETENTION_BLOCKS`] before
    /// `height`; returns their file hashes.
    pub fn forget_old(&mut self, height: u64) -> Vec<Hash> {
        let old: Vec<Hash> = self
            .batches
            .iter()
            .filter(|(_, b)| {
                b.sent_at
                    .is_some_and(|s| height > s + BATCH_RETENTION_BLOCKS)
            })
            .map(|(h, _)| *h)
            .collect();
        for h in &old {
            self.batches.remove(h);
            if let Some(path) = self.batch_path(h) {
                let _ = std::fs::remove_file(path);
            }
        }
        old
    }
}

/// The rules that need no channel: the key's signature, this provider, this chain.
fn check_signed(
    voucher: &SignedVoucher,
    me: &AccountId,
    chain_id: &ChainId,
) -> Result<(), VoucherError> {
    if !voucher.verify() {
        return Err(VoucherError::BadSignature);
    }
    let v = &voucher.voucher;
    if v.provider != *me {
        return Err(VoucherError::WrongProvider(v.provider));
    }
    if v.chain_id != *chain_id {
        return Err(VoucherError::WrongChain {
            got: v.chain_id.as_str().to_string(),
            want: chain_id.as_str().to_string(),
        });
    }
    Ok(())
}

/// The `channel` of a canonical request's JSON text.
fn request_channel(request: &str) -> Option<u64> {
    serde_json::from_str::<orrery_types::inference::InferenceRequest>(request)
        .ok()
        .map(|r| r.channel)
}
