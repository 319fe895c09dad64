//! Genesis and protocol parameters.
//!
//! Every number the economics depend on is a field of [`Params`], read from the genesis file
//! (TOML). `docs/economics.md` explains each default and why it was chosen. Parameters are fixed
//! for the life of a chain; changing one means a new chain id.

use orrery_types::amount::Amount;
use orrery_types::crypto::AccountId;
use orrery_types::resources::Hardware;
use orrery_types::tx::ChainId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// Protocol parameters. See `docs/economics.md`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Blocks between `Unbond` and the stake returning to the balance. Long enough that a
    /// provider cannot escape a slash for work it committed just before leaving.
    pub unbonding_delay_blocks: u64,
    /// Stake every provider needs before it can be leased, whatever its hardware.
    pub stake_base: Amount,
    /// Additional stake per GPU offered.
    pub stake_per_gpu: Amount,
    /// Additional stake per CPU core offered.
    pub stake_per_cpu_core: Amount,
    /// Blocks a provider has to start an opened lease before it times out.
    pub start_timeout_blocks: u64,
    /// Blocks between a committed result and automatic settlement: the window in which a check
    /// or a dispute can be raised.
    pub challenge_blocks: u64,
    /// Longest a lease may run: `deadline - opened_at` at most this many blocks.
    pub max_lease_blocks: u64,
    /// Protocol fee on every settled payment, in basis points.
    pub fee_bps: u16,
    /// Share of the protocol fee that is burned, in basis points; the rest goes to validators.
    pub fee_burn_bps: u16,
    /// Stake docked from a provider whose lease times out, in basis points of the lease's
    /// maximum cost (capped at the provider's stake). Burned.
    pub timeout_penalty_bps: u16,
    /// Blocks per epoch; emissions are minted at the end of each.
    pub epoch_blocks: u64,
    /// Tokens minted in the first epoch, shared by providers pro rata to settled work.
    pub emission_initial: Amount,
    /// The emission halves every this many epochs.
    pub emission_halving_epochs: u64,
    /// Least probability that a `sampled` result is re-executed, in basis points. The draw
    /// raises it per lease so that cheating never pays (see [`Params::sample_bps`]).
    pub sample_base_bps: u16,
    /// Probability for a provider with fewer than `sample_trusted_after` checked results.
    pub sample_new_provider_bps: u16,
    /// Checked results after which a provider is sampled at the base rate.
    pub sample_trusted_after: u64,
    /// Blocks a drawn verifier has to re-run the job and seal its claim, on top of the blocks
    /// the provider's own run took.
    pub verify_blocks: u64,
    /// Blocks every party has to reveal its sealed claim.
    pub reveal_blocks: u64,
    /// Blocks each party has to make its move in a dispute round (or to give the referee its
    /// input); a party that misses it loses.
    pub dispute_round_blocks: u64,
    /// Share of a dispute loser's stake that is slashed, in basis points.
    pub slash_bps: u16,
    /// Share of a slash paid to the winner(s), in basis points; the rest is burned.
    pub slash_reward_bps: u16,
    /// Most fuel the referee spends executing one disputed step. It runs on every validator
    /// inside block execution: 2·10^8 fuel is about a quarter of a second of wasm.
    pub referee_fuel: u64,
    /// Extra verifiers drawn when the referee cannot execute a disputed step (over its fuel
    /// bound, or a runtime it does not host); the dispute is then settled by majority.
    pub tiebreak_verifiers: u8,
    /// Least share of a provider's inference responses, in basis points, that the network
    /// re-executes (`ModelOffer::sample_bps` may not be lower). 1% catches a provider that
    /// cheats on every response of a 300-response batch with probability 1 − 0.99^300 ≈ 95%,
    /// at a checking cost of about 1% of the volume.
    pub min_inference_sample_bps: u16,
    /// Most responses of one batch the draw checks. Bounds the work a settlement adds to later
    /// blocks (each check is a few transactions and a slot in the batch record) whatever the
    /// provider's sampling rate; 16 checks of a batch are plenty to catch systematic cheating.
    pub max_inference_checks_per_batch: u16,
    /// Blocks a drawn checker has to fetch the batch file, re-execute one request and seal its
    /// answer (20 blocks = 4 s at 200 ms blocks: one generation of a small model, with margin).
    pub inference_seal_blocks: u64,
    /// Blocks after the sealing deadline in which checkers reveal and the provider opens its
    /// commitment; revealing needs no work, so it is short.
    pub inference_reveal_blocks: u64,
    /// Blocks after `RevokeInferenceKey` during which vouchers the key signed may still settle
    /// (a provider settles in batches, so it may hold a few minutes of unsettled vouchers);
    /// then what is left of the deposit returns to the owner.
    pub voucher_grace_blocks: u64,
    /// Bonded providers the seed draws for a challenge at each drawing block (see
    /// [`crate::challenge`]). The chain's challenge work per block is constant, whatever the
    /// number of providers: 4 draws (at most 4 openings, each O(n²) ≈ 1 ms) per 200 ms block.
    /// 0 disables the draw (requested challenges still run).
    pub challenges_per_block: u16,
    /// Draw only at heights that are multiples of this (1 = every block): a devnet or a small
    /// chain sets a rate below one draw round per block.
    pub challenge_every_blocks: u64,
    /// Side `n` of the challenge's square matrix `B`: a multiple of 16, at most
    /// `MAX_CHALLENGE_DIM`. 512 makes `B` 1 MiB in f32 (it stays in a GPU's or a core's
    /// cache) and an opened row 2 KiB.
    pub challenge_dim: u64,
    /// Rows of `C` an answer must open. A provider that skipped a fraction `f` of the rows is
    /// caught with probability `1 − (1 − f)^16`: 99.99% for half the rows.
    pub challenge_open_rows: u16,
    /// Time the product takes at the claimed rate: the rows are sized for it. 2 s makes a
    /// challenge cheap for the provider (about 2 s of its machine per challenge) yet long
    /// against block latency.
    pub challenge_target_ms: u64,
    /// Block latency allowed on top of the computation: seeing the draw's block, then getting
    /// the answer into a block (5 blocks of 200 ms). Subtracted from the elapsed time before
    /// the throughput is measured.
    pub challenge_latency_ms: u64,
    /// Blocks after the draw by which the answer must be in a block, whatever the block time.
    /// Should exceed `challenge_deadline_ms()` at the chain's block interval (17 s = 85 blocks
    /// of 200 ms); the deadline in block time then decides.
    pub challenge_deadline_blocks: u64,
    /// Blocks after the answer by which the opening must be in a block (it needs no
    /// computation: 16 rows recomputed and their proofs).
    pub challenge_open_blocks: u64,
    /// Stake docked (burned) for a missed challenge or an answer below the claim, in basis
    /// points of the provider's stake.
    pub challenge_miss_penalty_bps: u16,
    /// Least throughput, in basis points of the claim, an answer must prove: below it the
    /// provider is docked and marked offline like a miss (its answer still counts as alive).
    pub challenge_min_claim_bps: u16,
    /// How much of an epoch's burned lease and inference fees is taken off that epoch's
    /// emission, in basis points (a demand-responsive emission, as Akash's AEP-76 proposes):
    /// `emission − min(emission, burned fees × emission_taper_bps / 10^4)`, the burned fees
    /// being the burn share of the protocol fee on the epoch's settled work. 0 (the default)
    /// keeps the fixed schedule; 10,000 cuts the subsidy one ORR per ORR burned, so it pays
    /// providers while demand is small and stops diluting holders once fees carry them (see
    /// `docs/economics.md`, "Emission that tapers with burned fees", and `docs/sim/`).
    pub emission_taper_bps: u16,
    /// How much a lease that no verifier re-executed counts towards its provider's share of
    /// the epoch emission, in basis points of its settled value. 10,000 (the default) counts
    /// all settled work alike; 0 shares the emission only over *checked* work (leases whose
    /// drawn verifiers re-executed and agreed, and the verifiers' own re-execution). Below
    /// 10,000 a self-dealer farming the emission must ask for checks and pay a verifier the
    /// job's price each time one is drawn, which closes wash trading at any network size (see
    /// `docs/economics.md`, "Emission, and why wash trading does not pay").
    pub emission_unchecked_weight_bps: u16,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            unbonding_delay_blocks: 3_000,
            stake_base: Amount::orr(100),
            stake_per_gpu: Amount::orr(1_000),
            stake_per_cpu_core: Amount::orr(10),
            start_timeout_blocks: 100,
            challenge_blocks: 20,
            max_lease_blocks: 100_000,
            fee_bps: 500,
            fee_burn_bps: 5_000,
            timeout_penalty_bps: 1_000,
            epoch_blocks: 100,
            emission_initial: Amount::orr(1_000),
            emission_halving_epochs: 8_760,
            sample_base_bps: 1_000,
            sample_new_provider_bps: 5_000,
            sample_trusted_after: 5,
            verify_blocks: 50,
            reveal_blocks: 25,
            dispute_round_blocks: 25,
            slash_bps: 5_000,
            slash_reward_bps: 5_000,
            referee_fuel: 200_000_000,
            tiebreak_verifiers: 2,
            min_inference_sample_bps: 100,
            max_inference_checks_per_batch: 16,
            inference_seal_blocks: 20,
            inference_reveal_blocks: 10,
            voucher_grace_blocks: 100,
            challenges_per_block: 4,
            challenge_every_blocks: 1,
            challenge_dim: 512,
            challenge_open_rows: 16,
            challenge_target_ms: 2_000,
            challenge_latency_ms: 1_000,
            challenge_deadline_blocks: 100,
            challenge_open_blocks: 50,
            challenge_miss_penalty_bps: 100,
            challenge_min_claim_bps: 2_500,
            emission_taper_bps: 0,
            emission_unchecked_weight_bps: 10_000,
        }
    }
}

impl Params {
    /// The stake a provider offering `hardware` must hold to be leased.
    pub fn min_stake(&self, hardware: &Hardware) -> Option<Amount> {
        self.stake_base
            .checked_add(
                self.stake_per_gpu
                    .checked_mul(hardware.gpu_count() as u128)?,
            )?
            .checked_add(
                self.stake_per_cpu_core
                    .checked_mul(hardware.cpu_cores as u128)?,
            )
    }

    /// Tokens minted at the end of epoch `epoch` (0-based).
    pub fn emission(&self, epoch: u64) -> Amount {
        let halvings = epoch / self.emission_halving_epochs.max(1);
        if halvings >= 128 {
            Amount::ZERO
        } else {
            Amount(self.emission_initial.units() >> halvings)
        }
    }

    /// Tokens minted at the end of epoch `epoch` when providers settled `work` in it: the
    /// scheduled [`Params::emission`] less `emission_taper_bps` of the fees that work burned
    /// (`work × fee_bps × fee_burn_bps`). With `emission_taper_bps = 0` this is the schedule.
    pub fn epoch_emission(&self, epoch: u64, work: Amount) -> Amount {
        let scheduled = self.emission(epoch);
        if self.emission_taper_bps == 0 {
            return scheduled;
        }
        let burned_fees = crate::apply::share(
            work.units(),
            u128::from(self.fee_bps) * u128::from(self.fee_burn_bps),
            100_000_000,
        );
        let taper = crate::apply::share(burned_fees, u128::from(self.emission_taper_bps), 10_000);
        Amount(scheduled.units().saturating_sub(taper))
    }

    /// The probability, in basis points, that a `sampled` lease worth at most `reward` from a
    /// provider with `stake` and `checked` past checks is re-executed.
    ///
    /// Cheating (skipping work worth `C ≤ R`) pays `(1 − p)·R − p·S` against `R − C` for honest
    /// work, so it loses exactly when `p > C / (R + S)`. The ledger cannot see `C`, so it takes
    /// the worst case `C = R` and doubles the bound for a margin: `p ≥ 2R / (R + S)`, where `S`
    /// is what a loser is slashed (`slash_bps` of its stake). A provider with little stake
    /// relative to the job, or few checked results, is therefore checked more often.
    pub fn sample_bps(&self, reward: Amount, stake: Amount, checked: u64) -> u16 {
        let slash = stake.bps(self.slash_bps).unwrap_or(Amount::ZERO).units();
        let r = reward.units();
        let bound = if r == 0 {
            0
        } else {
            crate::apply::share(2 * 10_000, r, r.saturating_add(slash))
        };
        let mut p = u128::from(self.sample_base_bps).max(bound);
        if checked < self.sample_trusted_after {
            p = p.max(u128::from(self.sample_new_provider_bps));
        }
        p.min(10_000) as u16
    }

    /// The challenge deadline in block time from the draw: twice the time a machine at exactly
    /// `challenge_min_claim_bps` of its claim needs, plus the latency allowance
    /// (`2 · target · 10000 / min_claim + latency`; 17 s with the defaults). An answer between
    /// the min-claim time and this deadline is alive but below the claim; after it, refused.
    pub fn challenge_deadline_ms(&self) -> u64 {
        let min_claim = u64::from(self.challenge_min_claim_bps.max(1));
        (self.challenge_target_ms.saturating_mul(20_000) / min_claim)
            .saturating_add(self.challenge_latency_ms)
    }

    /// Check the parameters make sense.
    pub fn validate(&self) -> Result<(), GenesisError> {
        let bad = |what: &'static str| Err(GenesisError::Param(what));
        for (bps, name) in [
            (self.fee_bps, "fee_bps must be at most 10000"),
            (self.fee_burn_bps, "fee_burn_bps must be at most 10000"),
            (
                self.timeout_penalty_bps,
                "timeout_penalty_bps must be at most 10000",
            ),
            (
                self.sample_base_bps,
                "sample_base_bps must be at most 10000",
            ),
            (
                self.sample_new_provider_bps,
                "sample_new_provider_bps must be at most 10000",
            ),
            (self.slash_bps, "slash_bps must be at most 10000"),
            (
                self.slash_reward_bps,
                "slash_reward_bps must be at most 10000",
            ),
            (
                self.min_inference_sample_bps,
                "min_inference_sample_bps must be at most 10000",
            ),
            (
                self.emission_taper_bps,
                "emission_taper_bps must be at most 10000",
            ),
            (
                self.emission_unchecked_weight_bps,
                "emission_unchecked_weight_bps must be at most 10000",
            ),
        ] {
            if bps > 10_000 {
                return bad(name);
            }
        }
        if self.epoch_blocks == 0 {
            return bad("epoch_blocks must be at least 1");
        }
        if self.emission_halving_epochs == 0 {
            return bad("emission_halving_epochs must be at least 1");
        }
        if self.start_timeout_blocks == 0 || self.challenge_blocks == 0 {
            return bad("start_timeout_blocks and challenge_blocks must be at least 1");
        }
        if self.max_lease_blocks == 0 {
            return bad("max_lease_blocks must be at least 1");
        }
        if self.verify_blocks == 0 || self.reveal_blocks == 0 || self.dispute_round_blocks == 0 {
            return bad("verify_blocks, reveal_blocks and dispute_round_blocks must be at least 1");
        }
        if self.slash_bps == 0 {
            return bad("slash_bps must be above 0: a cheater that loses nothing is not deterred");
        }
        if usize::from(self.tiebreak_verifiers) + usize::from(orrery_types::tx::MAX_REDUNDANCY)
            > crate::entries::MAX_CLAIMS
        {
            return bad("tiebreak_verifiers is too large for the claims a check can hold");
        }
        if self.max_inference_checks_per_batch == 0
            || usize::from(self.max_inference_checks_per_batch)
                > crate::entries::MAX_INFERENCE_CHECKS
        {
            return bad("max_inference_checks_per_batch must be between 1 and 256");
        }
        self.validate_challenges()?;
        if self.inference_seal_blocks == 0
            || self.inference_reveal_blocks == 0
            || self.voucher_grace_blocks == 0
        {
            return bad(
                "inference_seal_blocks, inference_reveal_blocks and voucher_grace_blocks must be at least 1",
            );
        }
        Ok(())
    }

    fn validate_challenges(&self) -> Result<(), GenesisError> {
        use orrery_types::challenge::{
            MAX_CHALLENGE_DIM, MAX_CHALLENGE_OPEN_BYTES, MAX_CHALLENGE_OPEN_ROWS, max_open_bytes,
        };
        let bad = |what: &'static str| Err(GenesisError::Param(what));
        let n = self.challenge_dim;
        if n < 16 || !n.is_multiple_of(16) || n > MAX_CHALLENGE_DIM as u64 {
            return bad("challenge_dim must be a multiple of 16 between 16 and 1024");
        }
        let rows = usize::from(self.challenge_open_rows);
        if rows == 0 || rows > MAX_CHALLENGE_OPEN_ROWS {
            return bad("challenge_open_rows must be between 1 and 64");
        }
        if max_open_bytes(n as usize, rows) > MAX_CHALLENGE_OPEN_BYTES {
            return bad(
                "challenge_open_rows rows of challenge_dim values do not fit an opening (64 KiB)",
            );
        }
        if self.challenge_every_blocks == 0 {
            return bad("challenge_every_blocks must be at least 1");
        }
        if self.challenge_target_ms == 0 {
            return bad("challenge_target_ms must be at least 1");
        }
        if self.challenge_deadline_blocks == 0 || self.challenge_open_blocks == 0 {
            return bad("challenge_deadline_blocks and challenge_open_blocks must be at least 1");
        }
        if self.challenge_miss_penalty_bps > 10_000 {
            return bad("challenge_miss_penalty_bps must be at most 10000");
        }
        if self.challenge_min_claim_bps == 0 || self.challenge_min_claim_bps > 10_000 {
            return bad("challenge_min_claim_bps must be between 1 and 10000");
        }
        Ok(())
    }
}

/// One funded account at genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    /// The account.
    pub account: AccountId,
    /// Its starting balance.
    pub balance: Amount,
}

/// Everything needed to build height 0.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// The chain's name; transactions signed for another chain are refused.
    pub chain_id: ChainId,
    /// Time of the genesis state, milliseconds since the Unix epoch.
    pub genesis_time_ms: u64,
    /// Protocol parameters.
    #[serde(default)]
    pub params: Params,
    /// Funded accounts.
    #[serde(default)]
    pub accounts: Vec<GenesisAccount>,
    /// Validators, who share the non-burned part of protocol fees.
    #[serde(default)]
    pub validators: Vec<AccountId>,
}

/// Why a genesis file is unusable.
#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    /// Not valid TOML or missing fields.
    #[error("genesis file is not valid: {0}")]
    Parse(#[from] toml::de::Error),
    /// A parameter out of range.
    #[error("genesis parameter out of range: {0}")]
    Param(&'static str),
    /// An account listed twice.
    #[error("account {0} is listed twice in genesis")]
    DuplicateAccount(AccountId),
    /// A validator listed twice.
    #[error("validator {0} is listed twice in genesis")]
    DuplicateValidator(AccountId),
    /// Balances add up to more than an amount can hold.
    #[error("genesis balances overflow")]
    SupplyOverflow,
    /// Empty chain id.
    #[error("chain_id must not be empty")]
    EmptyChainId,
}

impl Genesis {
    /// Parse a genesis file.
    pub fn from_toml(text: &str) -> Result<Genesis, GenesisError> {
        let g: Genesis = toml::from_str(text)?;
        g.validate()?;
        Ok(g)
    }

    /// Write as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self).unwrap_or_else(|e| format!("# cannot encode genesis: {e}"))
    }

    /// Check the genesis is consistent.
    pub fn validate(&self) -> Result<(), GenesisError> {
        self.params.validate()?;
        if self.chain_id.as_str().is_empty() {
            return Err(GenesisError::EmptyChainId);
        }
        let mut seen = BTreeSet::new();
        let mut supply = Amount::ZERO;
        for a in &self.accounts {
            if !seen.insert(a.account) {
                return Err(GenesisError::DuplicateAccount(a.account));
            }
            supply = supply
                .checked_add(a.balance)
                .ok_or(GenesisError::SupplyOverflow)?;
        }
        let mut seen = BTreeSet::new();
        for v in &self.validators {
            if !seen.insert(*v) {
                return Err(GenesisError::DuplicateValidator(*v));
            }
        }
        Ok(())
    }
}
