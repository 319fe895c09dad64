//! The run loop: steps of simulated time, each a fixed number of blocks applied to the real
//! ledger, with the real router choosing providers. See the crate docs for the abstraction.

use crate::population::{self, Kind, Population, Status, units_to_usd};
use crate::rng::Rng;
use crate::scenario::Scenario;
use crate::summary::*;
use orrery_ledger::{
    Event, Genesis, GenesisAccount, Params, Signatures, State, execute_block, receipt::BlockError,
};
use orrery_market::{OfferIndex, RegionPreference, Requirements, RouterWeights, offer::Offer};
use orrery_types::amount::Amount;
use orrery_types::block::{Block, BlockTxs, MAX_BLOCK_TXS};
use orrery_types::challenge::ChallengeRows;
use orrery_types::crypto::{AccountId, NAMESPACE_TX, Signature};
use orrery_types::hash::Hash;
use orrery_types::merkle::node_hash;
use orrery_types::resources::{PriceList, ResourceRequest, Usage};
use orrery_types::tx::{
    ChainId, LeaseId, LeaseTerms, ResultClaim, SignedTx, Tx, TxBody, Verification, result_seal,
};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::Instant;

/// Genesis time of every simulated chain (2026-01-01T00:00:00Z).
pub const GENESIS_TIME_MS: u64 = 1_767_225_600_000;
/// Chain id of every simulated chain.
pub const CHAIN: &str = "orrery-sim";
/// Transactions per block the simulation fills up to (the ledger's limit is 65,536).
pub const BLOCK_FILL: usize = MAX_BLOCK_TXS - 536;
/// Requester funding: far more than any run spends, so demand is never limited by money.
const REQUESTER_FUNDS_ORR: u64 = 1_000_000_000_000;
/// Extra blocks of slack in a lease's deadline beyond its planned steps.
const DEADLINE_SLACK_STEPS: u64 = 8;

/// A run's size and choices.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Providers at the start.
    pub providers: u32,
    /// Simulated days.
    pub days: u32,
    /// Seed.
    pub seed: u64,
    /// Demand shape.
    pub demand: DemandShape,
    /// Emission rule.
    pub emission: EmissionMode,
}

/// How far a run has got, for a progress bar.
#[derive(Clone, Debug)]
pub struct Progress {
    /// Steps done.
    pub step: u32,
    /// Steps in the run.
    pub steps: u32,
    /// Blocks applied.
    pub blocks: u64,
    /// Providers registered.
    pub providers: u64,
    /// Registering the starting population (before step 0).
    pub registering: bool,
}

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The genesis could not be built.
    #[error("genesis refused: {0}")]
    Genesis(#[from] orrery_ledger::GenesisError),
    /// The ledger refused a whole block: its invariants broke. A ledger (or simulator) bug.
    #[error("the ledger refused block {height}: {error}")]
    Block {
        /// Height.
        height: u64,
        /// Why.
        error: BlockError,
    },
    /// The daily full audit failed.
    #[error("the ledger audit failed after day {day}: {error}")]
    Audit {
        /// Day.
        day: u32,
        /// Why.
        error: orrery_ledger::InvariantError,
    },
    /// Too many offers for the router.
    #[error("the router index is full")]
    IndexFull,
}

/// Blocks per step for a run: enough for the busiest step's transactions.
pub fn blocks_per_step(sc: &Scenario, cfg: &RunConfig) -> u64 {
    let n = f64::from(cfg.providers) * (1.0 + sc.population.join_per_day * f64::from(cfg.days));
    let leases = n * sc.demand.base_utilization * cfg.demand.peak() * f64::from(sc.step_hours)
        / f64::from(sc.demand.job_hours_mean);
    let wash = n * sc.cheaters.wash_trader_share;
    let challenges = f64::from(challenges_per_step(sc, cfg));
    let txs = leases * 6.5 + wash * 5.0 + n * sc.population.churn_per_day + challenges * 3.0;
    ((txs * 1.25 / BLOCK_FILL as f64).ceil() as u64).max(2)
}

/// Providers the ledger challenges per step: one challenge per provider every
/// `challenges.hours_between` simulated hours, at most `challenges.max_per_step`.
pub fn challenges_per_step(sc: &Scenario, cfg: &RunConfig) -> u16 {
    let want = f64::from(cfg.providers) * f64::from(sc.step_hours) / sc.challenges.hours_between;
    let cap = sc.challenges.max_per_step.min(u32::from(u16::MAX));
    (want.ceil() as u32).clamp(1, cap) as u16
}

/// Side of the challenge matrices in the simulation: the smallest the ledger allows, since the
/// simulator computes the opened rows for real ([`crate::challenge`]).
const SIM_CHALLENGE_DIM: u64 = 16;

/// The ledger parameters of a simulated chain: the defaults, with the emission expressed per
/// step (one epoch per step, the schedule's hourly emission times the step's hours, halving
/// after the same simulated year) and the chosen taper. Windows counted in blocks would be days
/// of simulated time here, so they are as short as the honest party's answer allows: a dispute
/// round is 2 blocks (the honest move and the deadline both fit), so a caught cheater is
/// slashed within the step, as within seconds on chain; challenges are drawn at the first
/// block of a step only (the draw and the answer share the step's block time), `k` at a time,
/// to be answered and opened within the step.
pub fn params(
    sc: &Scenario,
    blocks_per_step: u64,
    challenges: u16,
    emission: EmissionMode,
) -> Params {
    let d = Params::default();
    let hours = u64::from(sc.step_hours);
    let window = blocks_per_step.saturating_sub(1).max(2);
    Params {
        epoch_blocks: blocks_per_step,
        emission_initial: Amount(d.emission_initial.units() * u128::from(hours)),
        emission_halving_epochs: (d.emission_halving_epochs / hours).max(1),
        emission_taper_bps: emission.taper_bps(),
        emission_unchecked_weight_bps: emission.unchecked_weight_bps(),
        dispute_round_blocks: 2,
        challenges_per_block: challenges,
        challenge_every_blocks: blocks_per_step,
        challenge_dim: SIM_CHALLENGE_DIM,
        challenge_deadline_blocks: window,
        challenge_open_blocks: window,
        ..d
    }
}

/// A lease the simulation follows.
#[derive(Clone, Debug)]
struct SimLease {
    provider: u32,
    requester: u32,
    steps: u32,
    sampled: bool,
    wash: bool,
    verifier: Option<u32>,
    challenger: Option<u32>,
}

/// A lease requested but not yet seen opened.
#[derive(Clone, Debug)]
struct Planned {
    requester: u32,
    steps: u32,
    sampled: bool,
    wash: bool,
}

/// Money and energy, per provider kind and per machine kind (base units and USD).
#[derive(Clone, Debug, Default)]
struct Books {
    income: [u128; 5],
    emission: [u128; 5],
    self_dealing: [u128; 5],
    slashed: [u128; 5],
    /// Stake burned for failed challenges.
    docked: [u128; 5],
    challenges_failed: [u64; 5],
    electricity_usd: [f64; 5],
    caught: [u64; 5],
    kind_leases: [u64; 5],
    ever_live: [u64; 5],
    /// Per class, honest providers only.
    class_lease_income: Vec<u128>,
    class_emission: Vec<u128>,
    /// GPU-hours (core-hours) of honest leases that settled: what lease income and emission
    /// are divided by (a lease still running at the end has earned nothing yet).
    class_settled_unit_hours: Vec<f64>,
    class_live_machine_steps: Vec<f64>,
    class_busy_machine_steps: Vec<f64>,
    class_ever_live: Vec<u64>,
    class_electricity_usd: Vec<f64>,
    /// Per class, all serving providers: agreed and reference price × unit-hours.
    class_price_paid: Vec<f64>,
    class_price_ref: Vec<f64>,
    class_price_units: Vec<f64>,
}

/// Per-day accumulators, reset each day.
#[derive(Clone, Debug, Default)]
struct DayAcc {
    live_steps: Vec<f64>,
    busy_steps: Vec<f64>,
    price_paid: Vec<f64>,
    price_ref: Vec<f64>,
    volume: u128,
    wash_volume: u128,
}

/// One run in progress.
pub struct Engine<'a> {
    sc: &'a Scenario,
    cfg: RunConfig,
    state: State,
    index: OfferIndex,
    pop: Population,
    by_account: HashMap<AccountId, u32>,
    nonces: Vec<u64>,
    placeholder: Signature,
    chain_id: ChainId,
    blocks_per_step: u64,
    step: u32,
    steps: u32,
    time_ms: u64,
    rng: Rng,
    /// Work for the coming blocks of this step, in order.
    work: VecDeque<(u32, TxBody)>,
    /// Follow-ups to the last block (draws, starts, disputes), before any new work.
    followups: Vec<(u32, TxBody)>,
    /// Challenge answers and openings: deadline-bound, so before the other follow-ups.
    urgent: Vec<(u32, TxBody)>,
    /// Openings of answered challenges, by provider, ready when the answer lands.
    openings: HashMap<u32, ChallengeRows>,
    /// Providers whose queued `OpenLease` was withdrawn (see [`Engine::withdraw_planned`]).
    withdrawn: HashSet<AccountId>,
    planned: BTreeMap<u32, Planned>,
    leases: BTreeMap<LeaseId, SimLease>,
    commits_due: BTreeMap<u32, Vec<LeaseId>>,
    /// Providers whose router offer must be refreshed from the ledger after the block.
    refresh: BTreeSet<u32>,
    /// Providers slashed, to top up (or leave) at the next step.
    to_top_up: BTreeSet<u32>,
    /// Providers registering this step (live from the next).
    pending_join: Vec<u32>,
    /// Providers to refresh in the router once the step's blocks are applied.
    refresh_after_step: Vec<u32>,
    demand_carry: Vec<f64>,
    live: Vec<u64>,
    counts: Counts,
    books: Books,
    day: DayAcc,
    summary_days: Vec<DayRow>,
    leases_count: LeaseCounts,
    refused: BTreeMap<String, u64>,
    challenges: ChallengeCounts,
    transactions: u64,
    audits: u64,
    unmet: u64,
    timings: RunTimings,
    query_times: Vec<f64>,
}

/// Live and busy machines by (class, region, kind), for the electricity bill.
#[derive(Clone, Debug, Default)]
struct Counts {
    live: BTreeMap<(u8, u8, Kind), u64>,
    busy: BTreeMap<(u8, u8, Kind), u64>,
}

impl<'a> Engine<'a> {
    /// Draw the population and build the genesis.
    pub fn new(sc: &'a Scenario, cfg: RunConfig) -> Result<Engine<'a>, SimError> {
        let setup = Instant::now();
        let steps = cfg.days * (24 / sc.step_hours);
        let bps = blocks_per_step(sc, &cfg);
        let params = params(sc, bps, challenges_per_step(sc, &cfg), cfg.emission);
        let pop = Population::draw(sc, cfg.providers, steps, cfg.seed, sc.sign_transactions);
        let mut accounts = Vec::with_capacity(pop.keys.accounts.len());
        for (i, p) in pop.providers.iter().enumerate() {
            let hw = &sc.hardware[usize::from(p.class)];
            accounts.push(GenesisAccount {
                account: pop.keys.accounts[i],
                balance: population::funding(sc, &params, hw),
            });
        }
        let wash_funds = Amount::orr(REQUESTER_FUNDS_ORR / 1_000);
        for &(_, k) in &pop.wash_accounts {
            accounts.push(GenesisAccount {
                account: pop.keys.accounts[k as usize],
                balance: wash_funds,
            });
        }
        for j in 0..pop.requesters {
            accounts.push(GenesisAccount {
                account: pop.keys.accounts[(pop.first_requester + j) as usize],
                balance: Amount::orr(REQUESTER_FUNDS_ORR),
            });
        }
        let validators = (0..population::VALIDATORS)
            .map(|v| pop.keys.accounts[(pop.first_validator + v) as usize])
            .collect();
        let chain_id = ChainId::new(CHAIN).unwrap_or_else(|_| unreachable!("short chain id"));
        let genesis = Genesis {
            chain_id: chain_id.clone(),
            genesis_time_ms: GENESIS_TIME_MS,
            params,
            accounts,
            validators,
        };
        let state = State::genesis(&genesis)?;
        drop(genesis);
        let by_account = pop
            .keys
            .accounts
            .iter()
            .take(pop.providers.len())
            .enumerate()
            .map(|(i, a)| (*a, i as u32))
            .collect();
        let placeholder =
            orrery_types::crypto::Keypair::from_seed(u64::MAX).sign(NAMESPACE_TX, b"");
        let classes = sc.hardware.len();
        let books = Books {
            class_lease_income: vec![0; classes],
            class_emission: vec![0; classes],
            class_settled_unit_hours: vec![0.0; classes],
            class_live_machine_steps: vec![0.0; classes],
            class_busy_machine_steps: vec![0.0; classes],
            class_ever_live: vec![0; classes],
            class_electricity_usd: vec![0.0; classes],
            class_price_paid: vec![0.0; classes],
            class_price_ref: vec![0.0; classes],
            class_price_units: vec![0.0; classes],
            ..Books::default()
        };
        let timings = RunTimings {
            run: format!("{}/{}", cfg.demand.name(), cfg.emission.name()),
            setup_s: setup.elapsed().as_secs_f64(),
            ..RunTimings::default()
        };
        Ok(Engine {
            nonces: vec![0; pop.keys.accounts.len()],
            rng: Rng::new(cfg.seed, cfg.demand.name()),
            sc,
            steps,
            state,
            index: OfferIndex::new(),
            pop,
            by_account,
            placeholder,
            chain_id,
            blocks_per_step: bps,
            step: 0,
            time_ms: GENESIS_TIME_MS,
            work: VecDeque::new(),
            followups: Vec::new(),
            urgent: Vec::new(),
            openings: HashMap::new(),
            withdrawn: HashSet::new(),
            planned: BTreeMap::new(),
            leases: BTreeMap::new(),
            commits_due: BTreeMap::new(),
            refresh: BTreeSet::new(),
            to_top_up: BTreeSet::new(),
            pending_join: Vec::new(),
            refresh_after_step: Vec::new(),
            demand_carry: vec![0.0; classes],
            live: vec![0; classes],
            counts: Counts::default(),
            books,
            day: DayAcc::default(),
            summary_days: Vec::new(),
            leases_count: LeaseCounts::default(),
            refused: BTreeMap::new(),
            challenges: ChallengeCounts::default(),
            transactions: 0,
            audits: 0,
            unmet: 0,
            timings,
            query_times: Vec::new(),
            cfg,
        })
    }

    /// Blocks per step of this run.
    pub fn blocks_per_step(&self) -> u64 {
        self.blocks_per_step
    }

    /// Run to the end.
    pub fn run(
        mut self,
        progress: &mut dyn FnMut(&Progress),
    ) -> Result<(RunSummary, RunTimings), SimError> {
        let start = Instant::now();
        self.register_initial(progress)?;
        let steps_per_day = 24 / self.sc.step_hours;
        self.reset_day();
        for step in 0..self.steps {
            self.step = step;
            self.time_ms = GENESIS_TIME_MS + u64::from(step + 1) * self.step_ms();
            self.plan_step();
            for b in 0..self.blocks_per_step {
                self.apply_next_block(step as i64, self.blocks_per_step - b)?;
            }
            self.end_step();
            if (step + 1) % steps_per_day == 0 {
                self.end_day((step + 1) / steps_per_day)?;
            }
            progress(&Progress {
                step: step + 1,
                steps: self.steps,
                blocks: self.state.height(),
                providers: self.state.providers().len() as u64,
                registering: false,
            });
        }
        self.state.audit().map_err(|error| SimError::Audit {
            day: self.cfg.days,
            error,
        })?;
        self.audits += 1;
        self.timings.wall_s = start.elapsed().as_secs_f64() + self.timings.setup_s;
        let summary = self.summarize();
        Ok((summary, self.timings))
    }

    fn step_ms(&self) -> u64 {
        u64::from(self.sc.step_hours) * 3_600_000
    }

    // ----- transactions and blocks -----

    fn sign(&mut self, key: u32, body: TxBody) -> SignedTx {
        let k = key as usize;
        let tx = Tx {
            chain_id: self.chain_id.clone(),
            nonce: self.nonces[k],
            body,
        };
        self.nonces[k] += 1;
        match &self.pop.keys.secret {
            Some(secret) => tx.sign(&secret[k]),
            None => SignedTx {
                signer: self.pop.keys.public[k].clone(),
                signature: self.placeholder.clone(),
                tx,
            },
        }
    }

    /// Apply one block: the follow-ups of the last block, then an even share of the step's
    /// remaining work (`blocks_left` blocks remain in the step, this one included).
    fn apply_next_block(&mut self, step: i64, blocks_left: u64) -> Result<(), SimError> {
        let followups = self.take_followups();
        let share = self.work.len().div_ceil(blocks_left.max(1) as usize);
        let room = BLOCK_FILL.saturating_sub(followups.len());
        let take = share.min(room);
        let mut bodies = followups;
        let withdrawn = &mut self.withdrawn;
        bodies.extend(self.work.drain(..take).filter(|(_, body)| match body {
            TxBody::OpenLease { provider, .. } => !withdrawn.remove(provider),
            _ => true,
        }));
        if bodies.len() > BLOCK_FILL {
            // More follow-ups than a block holds: the rest wait for the next block.
            let rest = bodies.split_off(BLOCK_FILL);
            self.followups = rest;
        }
        self.apply_bodies(step, bodies)
    }

    /// Urgent follow-ups (challenges), then the others.
    fn take_followups(&mut self) -> Vec<(u32, TxBody)> {
        let mut bodies = std::mem::take(&mut self.urgent);
        bodies.append(&mut self.followups);
        bodies
    }

    /// The seed of the block at `height` (the simulator's stand-in for consensus randomness).
    fn block_seed(&self, height: u64) -> Hash {
        Hash::of_parts(&[
            b"orrery-sim",
            &self.cfg.seed.to_be_bytes(),
            &height.to_be_bytes(),
        ])
    }

    /// Fill in the root of each challenge answer going into the block at `height`: its rows
    /// are opened by the seed of the next block, which the simulator already knows.
    fn answer_challenges(&mut self, height: u64, bodies: &mut [(u32, TxBody)]) {
        let open_seed = self.block_seed(height + 1);
        let open_rows = u64::from(self.state.params().challenge_open_rows);
        for (i, body) in bodies.iter_mut() {
            let TxBody::AnswerChallenge {
                drawn_at,
                rows,
                root,
            } = body
            else {
                continue;
            };
            let account = self.pop.keys.accounts[*i as usize];
            let Some(c) = self
                .state
                .challenge(&account)
                .filter(|c| c.drawn_at == *drawn_at)
            else {
                continue;
            };
            if let Some(a) =
                crate::challenge::answer(&c.seed, c.dim as usize, *rows, &open_seed, open_rows)
            {
                *root = a.root;
                self.openings.insert(*i, a.rows);
            }
        }
    }

    fn apply_bodies(&mut self, step: i64, mut bodies: Vec<(u32, TxBody)>) -> Result<(), SimError> {
        let g = *self.state.globals();
        let height = g.height + 1;
        self.answer_challenges(height, &mut bodies);
        let txs: Vec<SignedTx> = bodies.into_iter().map(|(k, b)| self.sign(k, b)).collect();
        let n = txs.len();
        let block = Block {
            height,
            time_ms: self.time_ms,
            seed: self.block_seed(height),
            parent: g.last_block,
            txs: BlockTxs::new(txs)
                .unwrap_or_else(|_| unreachable!("blocks are filled to BLOCK_FILL")),
        };
        let signatures = if self.sc.sign_transactions {
            Signatures::Verify
        } else {
            Signatures::PreVerified
        };
        let t0 = Instant::now();
        let (receipts, events) = execute_block(&mut self.state, &block, signatures)
            .map_err(|error| SimError::Block { height, error })?;
        let t1 = Instant::now();
        self.state.commit();
        let t2 = Instant::now();
        self.timings.blocks.push(BlockTiming {
            height,
            step,
            providers: self.state.providers().len() as u64,
            txs: n as u64,
            execute_ms: (t1 - t0).as_secs_f64() * 1e3,
            commit_ms: (t2 - t1).as_secs_f64() * 1e3,
        });
        self.transactions += n as u64;
        for r in &receipts {
            match &r.outcome {
                Ok(evs) => {
                    for e in evs {
                        self.on_event(e);
                    }
                }
                Err(e) => {
                    let reason = format!("{}: {}", r.kind, error_kind(&e.to_string()));
                    *self.refused.entry(reason).or_default() += 1;
                }
            }
        }
        for e in &events {
            self.on_event(e);
        }
        self.refresh_offers()?;
        Ok(())
    }

    // ----- registration -----

    fn register_initial(&mut self, progress: &mut dyn FnMut(&Progress)) -> Result<(), SimError> {
        let initial = self.pop.initial;
        let mut next = 0u32;
        while next < initial {
            let mut bodies = self.take_followups();
            let room = BLOCK_FILL.saturating_sub(bodies.len()) / 2;
            let end = (next + room as u32).min(initial);
            for i in next..end {
                bodies.extend(self.join_bodies(i));
            }
            self.apply_bodies(-1, bodies)?;
            for i in next..end {
                self.became_live(i);
            }
            self.refresh_offers()?;
            self.probe_router();
            progress(&Progress {
                step: 0,
                steps: self.steps,
                blocks: self.state.height(),
                providers: self.state.providers().len() as u64,
                registering: true,
            });
            next = end;
        }
        // Challenges are drawn at heights that are multiples of the step's blocks: pad so that
        // each step starts at one (its draws then share the step's block time with answers).
        while !(self.state.height() + 1).is_multiple_of(self.blocks_per_step) {
            let bodies = self.take_followups();
            self.apply_bodies(-1, bodies)?;
        }
        Ok(())
    }

    fn join_bodies(&self, i: u32) -> [(u32, TxBody); 2] {
        let p = &self.pop.providers[i as usize];
        let offer = population::offer(self.sc, p);
        let stake = self
            .state
            .params()
            .min_stake(&offer.hardware)
            .unwrap_or(Amount::ZERO);
        [
            (i, TxBody::RegisterProvider(offer)),
            (i, TxBody::Bond { amount: stake }),
        ]
    }

    fn became_live(&mut self, i: u32) {
        let p = &mut self.pop.providers[i as usize];
        p.status = Status::Live;
        let key = (p.class, p.region, p.kind);
        let (class, kind) = (p.class, p.kind);
        *self.counts.live.entry(key).or_default() += 1;
        self.books.ever_live[kind.idx()] += 1;
        if kind == Kind::Honest {
            self.books.class_ever_live[usize::from(class)] += 1;
        }
        if kind != Kind::WashTrader {
            self.live[usize::from(class)] += 1;
            self.refresh.insert(i);
        }
    }

    /// Time one query per machine kind against the index as it stands.
    fn probe_router(&mut self) {
        let mut times = Vec::new();
        for c in 0..self.sc.hardware.len() {
            let req = self.requirements(c, 1, 8);
            let t = Instant::now();
            let _ = self
                .index
                .rank(&req, &RouterWeights::default(), self.state.params());
            times.push(t.elapsed().as_secs_f64() * 1e6);
        }
        let offers = self.index.len() as u64;
        self.timings
            .router_growth
            .push(router_timing(-1, offers, times));
    }

    /// Re-read the offers of providers whose ledger record changed and that are idle.
    fn refresh_offers(&mut self) -> Result<(), SimError> {
        for i in std::mem::take(&mut self.refresh) {
            let p = &self.pop.providers[i as usize];
            let account = self.pop.keys.accounts[i as usize];
            let serving = p.status == Status::Live && !p.busy && p.kind != Kind::WashTrader;
            let record = self.state.provider(&account);
            let min = record.and_then(|r| self.state.params().min_stake(&r.offer.hardware));
            match record {
                Some(r) if serving && min.is_some_and(|m| r.stake >= m) => {
                    self.index
                        .upsert(Offer::from_provider(&account, r))
                        .map_err(|_| SimError::IndexFull)?;
                }
                _ => {
                    self.index.remove(&account);
                }
            }
        }
        Ok(())
    }

    // ----- a step -----

    fn plan_step(&mut self) {
        self.query_times.clear();
        self.top_up_or_leave();
        self.joins();
        self.churn();
        self.commits();
        self.wash_trades();
        self.demand();
    }

    fn joins(&mut self) {
        let step = self.step;
        let joiners: Vec<u32> = (self.pop.initial..self.pop.providers.len() as u32)
            .filter(|&i| {
                let p = &self.pop.providers[i as usize];
                p.join_step == step && p.status == Status::Waiting
            })
            .collect();
        for i in joiners {
            let bodies = self.join_bodies(i);
            self.work.extend(bodies);
            // Live from the next step (its registration lands in this one).
            self.pop.providers[i as usize].status = Status::Gone;
            self.pending_join.push(i);
        }
    }
}

fn router_timing(step: i64, offers: u64, mut times: Vec<f64>) -> RouterTiming {
    times.sort_by(f64::total_cmp);
    let q = |f: f64| {
        if times.is_empty() {
            0.0
        } else {
            times[((times.len() - 1) as f64 * f).round() as usize]
        }
    };
    RouterTiming {
        step,
        offers,
        queries: times.len() as u64,
        median_us: q(0.5),
        p99_us: q(0.99),
    }
}

/// The reason of a refusal without its numbers, to group refusals.
fn error_kind(message: &str) -> String {
    message
        .split([':', '('])
        .next()
        .unwrap_or(message)
        .trim()
        .to_string()
}

impl Engine<'_> {
    fn hw_units(&self, class: u8) -> f64 {
        let hw = &self.sc.hardware[usize::from(class)];
        if hw.gpus > 0 {
            f64::from(hw.gpus)
        } else {
            f64::from(hw.cpu_cores)
        }
    }

    fn kind_of(&self, i: u32) -> Kind {
        self.pop.providers[i as usize].kind
    }

    fn set_busy(&mut self, i: u32, busy: bool) {
        let p = &mut self.pop.providers[i as usize];
        if p.busy == busy {
            return;
        }
        p.busy = busy;
        let key = (p.class, p.region, p.kind);
        let n = self.counts.busy.entry(key).or_default();
        if busy {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
        }
    }

    fn leave(&mut self, i: u32) {
        let p = &mut self.pop.providers[i as usize];
        if p.status != Status::Live {
            return;
        }
        p.status = Status::Gone;
        let key = (p.class, p.region, p.kind);
        let (class, kind) = (p.class, p.kind);
        if let Some(n) = self.counts.live.get_mut(&key) {
            *n = n.saturating_sub(1);
        }
        if kind != Kind::WashTrader {
            self.live[usize::from(class)] = self.live[usize::from(class)].saturating_sub(1);
        }
        self.refresh.insert(i);
    }

    /// Slashed providers bond back up to their minimum from their balance, or leave.
    fn top_up_or_leave(&mut self) {
        for i in std::mem::take(&mut self.to_top_up) {
            if self.pop.providers[i as usize].status != Status::Live {
                continue;
            }
            let account = self.pop.keys.accounts[i as usize];
            let Some(record) = self.state.provider(&account) else {
                continue;
            };
            let min = self
                .state
                .params()
                .min_stake(&record.offer.hardware)
                .unwrap_or(Amount::ZERO);
            let Some(need) = min.checked_sub(record.stake).filter(|n| !n.is_zero()) else {
                continue;
            };
            if self.state.account(&account).balance >= need {
                self.work.push_back((i, TxBody::Bond { amount: need }));
                self.refresh_after_step.push(i);
            } else {
                self.leave(i);
            }
        }
    }

    fn churn(&mut self) {
        let steps_per_day = f64::from(24 / self.sc.step_hours);
        let live: u64 = self.counts.live.values().sum();
        let want = (live as f64 * self.sc.population.churn_per_day / steps_per_day
            + self.rng.unit())
        .floor() as u64;
        let n = self.pop.providers.len() as u64;
        let mut left = 0;
        let mut tries = 0;
        while left < want && tries < want * 20 + 20 {
            tries += 1;
            let i = self.rng.below(n) as u32;
            let p = &self.pop.providers[i as usize];
            if p.status != Status::Live || p.busy || p.kind == Kind::WashTrader {
                continue;
            }
            let account = self.pop.keys.accounts[i as usize];
            let Some(record) = self.state.provider(&account) else {
                continue;
            };
            if record.active_leases > 0 || record.stake.is_zero() || self.to_top_up.contains(&i) {
                continue;
            }
            let stake = record.stake;
            self.work.push_back((i, TxBody::Unbond { amount: stake }));
            self.leave(i);
            left += 1;
        }
    }

    fn claim(lease: LeaseId, wrong: bool) -> ResultClaim {
        let id = lease.to_be_bytes();
        let tag: [&[u8]; 3] = if wrong {
            [b"sim/wrong-output", b"sim/wrong-0", b"sim/wrong-1"]
        } else {
            [b"sim/output", b"sim/checkpoint-0", b"sim/checkpoint-1"]
        };
        ResultClaim::succeeded(
            Hash::of_parts(&[tag[0], &id]),
            node_hash(
                &Hash::of_parts(&[tag[1], &id]),
                &Hash::of_parts(&[tag[2], &id]),
            ),
            1,
        )
    }

    /// The children of an honest claim's checkpoint root, for a dispute move.
    fn honest_children(lease: LeaseId) -> (Hash, Hash) {
        let id = lease.to_be_bytes();
        (
            Hash::of_parts(&[b"sim/checkpoint-0", &id]),
            Hash::of_parts(&[b"sim/checkpoint-1", &id]),
        )
    }

    fn commits(&mut self) {
        let due = self.commits_due.remove(&self.step).unwrap_or_default();
        let step_s = u64::from(self.sc.step_hours) * 3_600;
        for lease in due {
            let Some(sl) = self.leases.get(&lease).cloned() else {
                continue;
            };
            let p = sl.provider;
            let claim = Self::claim(lease, self.kind_of(p).commits_wrong_results() && !sl.wash);
            let seal = result_seal(lease, &self.pop.keys.accounts[p as usize], &claim);
            let usage = Usage {
                seconds: u64::from(sl.steps) * step_s,
                units: 0,
            };
            self.work
                .push_back((p, TxBody::CommitResult { lease, seal, usage }));
            if !sl.sampled {
                self.work.push_back((
                    p,
                    TxBody::RevealResult {
                        lease,
                        claim,
                        note: Default::default(),
                    },
                ));
                self.work
                    .push_back((sl.requester, TxBody::SettleLease { lease }));
            }
            self.set_busy(p, false);
            self.refresh_after_step.push(p);
        }
    }

    fn open_body(&self, provider: u32, steps: u32, sampled: bool) -> TxBody {
        let p = &self.pop.providers[provider as usize];
        let hw = &self.sc.hardware[usize::from(p.class)];
        // Agreed at the listed price (wash traders list their self-dealing price).
        let (resources, prices) = terms_of(hw, p.list_units);
        let bps = self.blocks_per_step;
        let height = self.state.height();
        let deadline = (height + (u64::from(steps) + DEADLINE_SLACK_STEPS) * bps + 2 * bps)
            .min(height + self.state.params().max_lease_blocks);
        TxBody::OpenLease {
            provider: self.pop.keys.accounts[provider as usize],
            job: Hash::of_parts(&[
                b"sim/job",
                &self.cfg.seed.to_be_bytes(),
                &provider.to_be_bytes(),
                &self.step.to_be_bytes(),
            ]),
            terms: LeaseTerms {
                resources,
                prices,
                max_seconds: u64::from(steps) * u64::from(self.sc.step_hours) * 3_600,
                max_units: 0,
            },
            deadline,
            verification: if sampled {
                Verification::Sampled
            } else {
                Verification::None
            },
        }
    }

    fn plan_lease(&mut self, provider: u32, requester: u32, steps: u32, sampled: bool, wash: bool) {
        let body = self.open_body(provider, steps, sampled);
        self.work.push_back((requester, body));
        self.planned.insert(
            provider,
            Planned {
                requester,
                steps,
                sampled,
                wash,
            },
        );
        self.set_busy(provider, true);
        self.index
            .remove(&self.pop.keys.accounts[provider as usize]);
    }

    /// Wash traders lease their own machine, one step at a time, whenever it is free. When
    /// unchecked work earns less emission (`emission_unchecked_weight_bps` below 10,000) they
    /// ask for `sampled` checks, the only way their volume still counts.
    fn wash_trades(&mut self) {
        let sampled = self.state.params().emission_unchecked_weight_bps < 10_000;
        for w in 0..self.pop.wash_accounts.len() {
            let (p, k) = self.pop.wash_accounts[w];
            let sp = &self.pop.providers[p as usize];
            if sp.status == Status::Live && !sp.busy && !self.planned.contains_key(&p) {
                self.plan_lease(p, k, 1, sampled, true);
            }
        }
    }

    /// New orders: per machine kind, `level × base_utilization × live machines × step hours /
    /// mean job hours` machines (so that, by Little's law, `level × base_utilization` of the
    /// machines are busy when the market can serve them), in orders routed by the real router.
    fn demand(&mut self) {
        let sc = self.sc;
        let day = (f64::from(self.step) + 0.5) * f64::from(sc.step_hours) / 24.0;
        let level = self.cfg.demand.level(day, f64::from(self.cfg.days));
        let d = &sc.demand;
        let min_steps = d.job_hours_min.div_ceil(sc.step_hours).max(1);
        let mean_steps = (f64::from(d.job_hours_mean) / f64::from(sc.step_hours)).max(1.0);
        for c in 0..sc.hardware.len() {
            let arrivals =
                level * d.base_utilization * self.live[c] as f64 * f64::from(sc.step_hours)
                    / f64::from(d.job_hours_mean)
                    + self.demand_carry[c];
            let mut n = arrivals.floor() as u64;
            self.demand_carry[c] = arrivals - n as f64;
            let mut exhausted = false;
            while n > 0 {
                if exhausted {
                    // The last order found fewer machines than it asked for: none idle under
                    // the price cap. Further orders this step would find none either, and a
                    // query that matches nothing pays for a diagnosis over every offer.
                    self.unmet += n;
                    break;
                }
                let size = (1 + self.rng.below(u64::from(d.max_order_machines))).min(n);
                n -= size;
                let extra = self.rng.geometric(mean_steps - f64::from(min_steps) + 1.0);
                let steps = min_steps - 1 + extra;
                let sampled = self.rng.chance(d.sampled_share);
                let requester = self.pop.first_requester
                    + self.rng.below(u64::from(self.pop.requesters)) as u32;
                let req = self.requirements(c, size as usize, steps);
                let t = Instant::now();
                let ranked = self
                    .index
                    .rank(&req, &RouterWeights::default(), self.state.params())
                    .map(|r| r.ranked)
                    .unwrap_or_default();
                self.query_times.push(t.elapsed().as_secs_f64() * 1e6);
                let mut got = 0;
                for r in ranked.iter().take(size as usize) {
                    let Some(&i) = self.by_account.get(&r.offer.provider) else {
                        continue;
                    };
                    let p = &self.pop.providers[i as usize];
                    debug_assert_eq!(usize::from(p.class), c, "a query found another kind");
                    if usize::from(p.class) != c || p.busy || p.status != Status::Live {
                        continue;
                    }
                    self.plan_lease(i, requester, steps, sampled, false);
                    got += 1;
                }
                self.unmet += size - got;
                exhausted = got < size;
            }
        }
    }

    /// What a requester asks the router for: the whole machine kind, for `steps` steps, at
    /// most `max_price_share` of the cloud reference.
    fn requirements(&self, class: usize, limit: usize, steps: u32) -> Requirements {
        let sc = self.sc;
        let hw = &sc.hardware[class];
        let hours = u64::from(steps) * u64::from(sc.step_hours);
        let cap = population::usd_to_units(
            population::reference_usd(hw) * sc.demand.max_price_share,
            sc.usd_per_orr,
        );
        let (resources, _) = terms_of(hw, cap);
        let mut req = Requirements {
            resources,
            usage: Usage {
                seconds: hours * 3_600,
                units: 0,
            },
            region: RegionPreference::Any,
            limit: limit.max(1),
            ..Requirements::default()
        };
        if hw.gpus > 0 {
            req.gpu_model = Some(hw.gpu_model.clone());
            req.max_gpu_hour = Some(Amount(cap));
        } else {
            req.max_gpu_hour = Some(Amount::ZERO);
            req.max_cost = Some(Amount(cap * u128::from(hw.cpu_cores) * u128::from(hours)));
        }
        req
    }

    // ----- events -----

    fn on_event(&mut self, e: &Event) {
        match e {
            Event::LeaseOpened {
                lease, provider, ..
            } => self.lease_opened(*lease, provider),
            Event::LeaseStarted { lease } => {
                if let Some(sl) = self.leases.get(lease) {
                    let due = self.step + sl.steps;
                    self.commits_due.entry(due).or_default().push(*lease);
                }
            }
            Event::CheckDrawn {
                lease, verifiers, ..
            } => self.check_drawn(*lease, verifiers),
            Event::ResultChecked { .. } => self.leases_count.checked += 1,
            Event::DisputeOpened {
                lease, challenger, ..
            } => {
                self.leases_count.disputed += 1;
                if let (Some(&c), Some(sl)) =
                    (self.by_account.get(challenger), self.leases.get_mut(lease))
                {
                    sl.challenger = Some(c);
                    let (left, right) = Self::honest_children(*lease);
                    self.followups.push((
                        c,
                        TxBody::DisputeMove {
                            lease: *lease,
                            left,
                            right,
                        },
                    ));
                }
            }
            Event::Slashed {
                lease,
                party,
                amount,
                rewarded,
                ..
            } => self.slashed(*lease, party, *amount, *rewarded),
            Event::LeaseFailed { lease, .. } => {
                self.leases_count.failed += 1;
                self.leases.remove(lease);
            }
            Event::LeaseSettled {
                lease,
                provider_paid,
                verifiers_paid,
                fee,
                ..
            } => self.settled(*lease, *provider_paid, *verifiers_paid, *fee),
            Event::LeaseTimedOut { lease, .. } => {
                self.leases_count.timed_out += 1;
                if let Some(sl) = self.leases.remove(lease) {
                    // Docked: its offer must show the stake left, and it bonds back up.
                    self.to_top_up.insert(sl.provider);
                    self.refresh.insert(sl.provider);
                    self.withdraw_planned(sl.provider);
                }
            }
            Event::ChallengeDrawn {
                provider,
                drawn_at,
                rows,
                ..
            } => self.challenge_drawn(provider, *drawn_at, *rows),
            Event::ChallengeAnswered {
                provider, drawn_at, ..
            } => {
                if let Some(&i) = self.by_account.get(provider)
                    && let Some(rows) = self.openings.remove(&i)
                {
                    self.urgent.push((
                        i,
                        TxBody::OpenChallenge {
                            drawn_at: *drawn_at,
                            rows,
                        },
                    ));
                }
            }
            Event::ChallengePassed { provider, .. } => {
                self.challenges.passed += 1;
                if let Some(&i) = self.by_account.get(provider) {
                    self.refresh.insert(i);
                }
            }
            Event::ChallengeMissed {
                provider, docked, ..
            }
            | Event::ChallengeBelowClaim {
                provider, docked, ..
            } => self.challenge_failed(provider, *docked),
            Event::Minted {
                provider, amount, ..
            } => {
                if let Some(&i) = self.by_account.get(provider) {
                    let p = &self.pop.providers[i as usize];
                    let (kind, class) = (p.kind.idx(), usize::from(p.class));
                    self.books.income[kind] += amount.units();
                    self.books.emission[kind] += amount.units();
                    if p.kind == Kind::Honest {
                        self.books.class_emission[class] += amount.units();
                    }
                }
            }
            _ => {}
        }
    }

    /// A provider with the hardware it claims answers in the next block (the root is filled
    /// in when the block is built, [`Engine::answer_challenges`]); a spoofer cannot finish the
    /// product before the deadline and lets it pass.
    fn challenge_drawn(&mut self, provider: &AccountId, drawn_at: u64, rows: u64) {
        self.challenges.drawn += 1;
        let Some(&i) = self.by_account.get(provider) else {
            return;
        };
        if self.kind_of(i).answers_challenges() {
            self.urgent.push((
                i,
                TxBody::AnswerChallenge {
                    drawn_at,
                    rows,
                    root: Hash::ZERO,
                },
            ));
        }
    }

    /// Missed or below the claim: docked and offline. Its offer leaves the router (the index
    /// skips offline offers) and it bonds back up to its minimum at the next step.
    fn challenge_failed(&mut self, provider: &AccountId, docked: Amount) {
        self.challenges.failed += 1;
        let Some(&i) = self.by_account.get(provider) else {
            return;
        };
        let k = self.kind_of(i).idx();
        self.books.docked[k] += docked.units();
        self.books.challenges_failed[k] += 1;
        self.to_top_up.insert(i);
        self.refresh.insert(i);
        self.withdraw_planned(i);
    }

    /// A provider docked or slashed before the lease it was routed this step was sent: its
    /// stake may now be below its minimum, so the requester, which reads the chain before it
    /// sends, withdraws the order instead of sending an `OpenLease` the ledger would refuse.
    fn withdraw_planned(&mut self, i: u32) {
        if self.planned.remove(&i).is_some() {
            self.withdrawn.insert(self.pop.keys.accounts[i as usize]);
            self.set_busy(i, false);
            self.unmet += 1;
        }
    }

    fn lease_opened(&mut self, lease: LeaseId, provider: &AccountId) {
        let Some(&i) = self.by_account.get(provider) else {
            return;
        };
        let Some(plan) = self.planned.remove(&i) else {
            return;
        };
        self.leases_count.opened += 1;
        let p = &self.pop.providers[i as usize];
        let (class, kind) = (p.class, p.kind);
        self.books.kind_leases[kind.idx()] += 1;
        if plan.wash {
            self.leases_count.wash += 1;
        } else {
            let hw = &self.sc.hardware[usize::from(class)];
            let unit_hours =
                self.hw_units(class) * f64::from(plan.steps) * f64::from(self.sc.step_hours);
            let paid = units_to_usd(p.list_units, self.sc.usd_per_orr) * unit_hours;
            let reference = population::reference_usd(hw) * unit_hours;
            let c = usize::from(class);
            self.books.class_price_paid[c] += paid;
            self.books.class_price_ref[c] += reference;
            self.books.class_price_units[c] += unit_hours;
            self.day.price_paid[c] += paid;
            self.day.price_ref[c] += reference;
        }
        self.leases.insert(
            lease,
            SimLease {
                provider: i,
                requester: plan.requester,
                steps: plan.steps,
                sampled: plan.sampled,
                wash: plan.wash,
                verifier: None,
                challenger: None,
            },
        );
        self.followups.push((i, TxBody::StartLease { lease }));
    }

    fn check_drawn(&mut self, lease: LeaseId, verifiers: &[AccountId]) {
        let Some(sl) = self.leases.get(&lease).cloned() else {
            return;
        };
        let p = sl.provider;
        let claim = Self::claim(lease, self.kind_of(p).commits_wrong_results());
        let reveal = |claim| TxBody::RevealResult {
            lease,
            claim,
            note: Default::default(),
        };
        let verifier = verifiers
            .first()
            .and_then(|v| self.by_account.get(v))
            .copied();
        match verifier {
            None => {
                self.followups.push((p, reveal(claim)));
                self.followups
                    .push((sl.requester, TxBody::SettleLease { lease }));
            }
            Some(v) => {
                self.timings.checks_drawn += 1;
                let honest = Self::claim(lease, false);
                let seal = result_seal(lease, &self.pop.keys.accounts[v as usize], &honest);
                self.followups
                    .push((v, TxBody::CommitCheck { lease, seal }));
                self.followups.push((p, reveal(claim)));
                self.followups.push((v, reveal(honest)));
                if let Some(l) = self.leases.get_mut(&lease) {
                    l.verifier = Some(v);
                }
            }
        }
    }

    fn slashed(&mut self, lease: LeaseId, party: &AccountId, amount: Amount, rewarded: Amount) {
        self.leases_count.slashes += 1;
        if let Some(&i) = self.by_account.get(party) {
            let k = self.kind_of(i).idx();
            self.books.slashed[k] += amount.units();
            self.books.caught[k] += 1;
            self.to_top_up.insert(i);
            self.refresh.insert(i);
            self.withdraw_planned(i);
        }
        let winner = self.leases.get(&lease).and_then(|l| l.challenger);
        if let Some(w) = winner {
            let k = self.kind_of(w).idx();
            self.books.income[k] += rewarded.units();
        }
    }

    fn settled(
        &mut self,
        lease: LeaseId,
        provider_paid: Amount,
        verifiers_paid: Amount,
        fee: Amount,
    ) {
        self.leases_count.settled += 1;
        let Some(sl) = self.leases.remove(&lease) else {
            return;
        };
        let p = &self.pop.providers[sl.provider as usize];
        let (k, class, honest) = (p.kind.idx(), usize::from(p.class), p.kind == Kind::Honest);
        self.books.income[k] += provider_paid.units();
        if honest && !sl.wash {
            self.books.class_lease_income[class] += provider_paid.units();
            self.books.class_settled_unit_hours[class] +=
                self.hw_units(class as u8) * f64::from(sl.steps) * f64::from(self.sc.step_hours);
        }
        if let Some(v) = sl.verifier {
            let vk = self.kind_of(v).idx();
            self.books.income[vk] += verifiers_paid.units();
        }
        let volume = provider_paid.units() + verifiers_paid.units() + fee.units();
        self.day.volume += volume;
        if sl.wash {
            self.day.wash_volume += volume;
            self.books.self_dealing[k] += volume;
        }
    }

    // ----- end of step and day -----

    fn end_step(&mut self) {
        for i in std::mem::take(&mut self.pending_join) {
            self.became_live(i);
        }
        let later = std::mem::take(&mut self.refresh_after_step);
        self.refresh.extend(later);
        // Offers that cannot be refreshed stay out of the router; the index is never full at
        // these sizes (its limit is far above any run's providers).
        let _ = self.refresh_offers();
        self.bill_electricity();
        let times = std::mem::take(&mut self.query_times);
        let offers = self.index.len() as u64;
        self.timings
            .router
            .push(router_timing(i64::from(self.step), offers, times));
        // Work that did not fit this step's blocks waits for the next step's.
    }

    fn bill_electricity(&mut self) {
        let sc = self.sc;
        let hours = f64::from(sc.step_hours);
        for (&(class, region, kind), &live) in &self.counts.live {
            let busy = self
                .counts
                .busy
                .get(&(class, region, kind))
                .copied()
                .unwrap_or(0);
            let busy = busy.min(live) as f64;
            let idle = live as f64 - busy;
            let hw = &sc.hardware[usize::from(class)];
            let kwh_price = sc.regions[usize::from(region)].usd_per_kwh;
            let load = match kind {
                // A spoofer's real machine is a small one: the claimed class's idle draw.
                Kind::Lazy | Kind::WashTrader | Kind::SpoofedHardware => hw.idle_watts,
                Kind::WrongOutput => {
                    hw.load_watts
                        - sc.cheaters.wrong_output_saving * (hw.load_watts - hw.idle_watts)
                }
                Kind::Honest => hw.load_watts,
            };
            let usd = (busy * load + idle * hw.idle_watts) / 1000.0 * hours * kwh_price;
            self.books.electricity_usd[kind.idx()] += usd;
            let c = usize::from(class);
            if kind == Kind::Honest {
                self.books.class_electricity_usd[c] += usd;
                self.books.class_live_machine_steps[c] += live as f64;
                self.books.class_busy_machine_steps[c] += busy;
            }
            if kind != Kind::WashTrader {
                self.day.live_steps[c] += live as f64;
                self.day.busy_steps[c] += busy;
            }
        }
    }

    fn reset_day(&mut self) {
        let n = self.sc.hardware.len();
        self.day = DayAcc {
            live_steps: vec![0.0; n],
            busy_steps: vec![0.0; n],
            price_paid: vec![0.0; n],
            price_ref: vec![0.0; n],
            volume: 0,
            wash_volume: 0,
        };
    }

    fn end_day(&mut self, day: u32) -> Result<(), SimError> {
        self.state
            .audit()
            .map_err(|error| SimError::Audit { day, error })?;
        self.audits += 1;
        let g = *self.state.globals();
        let orr = |a: Amount| round6(units_to_usd(a.units(), 1.0));
        let usd = self.sc.usd_per_orr;
        let d = &self.day;
        let row = DayRow {
            day,
            demand_level: round6(
                self.cfg
                    .demand
                    .level(f64::from(day) - 0.5, f64::from(self.cfg.days)),
            ),
            minted: orr(g.minted),
            burned: orr(g.burned),
            net: round6(units_to_usd(g.minted.units(), 1.0) - units_to_usd(g.burned.units(), 1.0)),
            live_providers: self.counts.live.values().sum(),
            volume: round6(units_to_usd(d.volume, 1.0)),
            wash_volume: round6(units_to_usd(d.wash_volume, 1.0)),
            utilization: (0..d.live_steps.len())
                .map(|c| round6(ratio(d.busy_steps[c], d.live_steps[c]).unwrap_or(0.0)))
                .collect(),
            price_share: (0..d.price_paid.len())
                .map(|c| ratio(d.price_paid[c], d.price_ref[c]).map(round6))
                .collect(),
            profit_per_provider: Kind::ALL
                .iter()
                .map(|k| {
                    round6(self.profit_usd(*k, usd) / self.books.ever_live[k.idx()].max(1) as f64)
                })
                .collect(),
        };
        self.summary_days.push(row);
        self.reset_day();
        Ok(())
    }

    fn profit_usd(&self, k: Kind, usd: f64) -> f64 {
        let b = &self.books;
        let i = k.idx();
        units_to_usd(b.income[i], usd)
            - units_to_usd(b.self_dealing[i], usd)
            - units_to_usd(b.slashed[i], usd)
            - units_to_usd(b.docked[i], usd)
            - b.electricity_usd[i]
    }

    fn summarize(&self) -> RunSummary {
        let usd = self.sc.usd_per_orr;
        let g = *self.state.globals();
        let orr = |u: u128| round6(units_to_usd(u, 1.0));
        let b = &self.books;
        let classes = self
            .sc
            .hardware
            .iter()
            .enumerate()
            .map(|(c, hw)| self.class_summary(c, hw))
            .collect();
        let kinds = Kind::ALL
            .iter()
            .map(|&k| {
                let i = k.idx();
                let profit = self.profit_usd(k, usd);
                KindSummary {
                    kind: k,
                    providers: b.ever_live[i],
                    income_usd: round6(units_to_usd(b.income[i], usd)),
                    emission_usd: round6(units_to_usd(b.emission[i], usd)),
                    self_dealing_usd: round6(units_to_usd(b.self_dealing[i], usd)),
                    electricity_usd: round6(b.electricity_usd[i]),
                    slashed_usd: round6(units_to_usd(b.slashed[i], usd)),
                    docked_usd: round6(units_to_usd(b.docked[i], usd)),
                    challenges_failed: b.challenges_failed[i],
                    profit_usd: round6(profit),
                    profit_per_provider_usd: round6(profit / b.ever_live[i].max(1) as f64),
                    caught: b.caught[i],
                    leases: b.kind_leases[i],
                }
            })
            .collect();
        RunSummary {
            demand: self.cfg.demand,
            emission: self.cfg.emission,
            blocks: self.state.height(),
            transactions: self.transactions,
            refused: self.refused.clone(),
            challenges: self.challenges.clone(),
            audits_passed: self.audits,
            final_state_root: hex(self.state.root().as_bytes()),
            leases: self.leases_count.clone(),
            supply: SupplyTotals {
                genesis: orr(g.genesis_supply.units()),
                minted: orr(g.minted.units()),
                burned: orr(g.burned.units()),
                net: round6(
                    units_to_usd(g.minted.units(), 1.0) - units_to_usd(g.burned.units(), 1.0),
                ),
            },
            days: self.summary_days.clone(),
            classes,
            kinds,
            unmet_machines: self.unmet,
        }
    }

    fn class_summary(&self, c: usize, hw: &crate::scenario::HardwareClass) -> ClassSummary {
        let usd = self.sc.usd_per_orr;
        let b = &self.books;
        let busy_units = b.class_settled_unit_hours[c];
        let units = self.hw_units(c as u8);
        // The class's average kWh price over its regions, weighted by the region shares.
        let kwh: f64 = self
            .sc
            .regions
            .iter()
            .map(|r| r.usd_per_kwh * r.share)
            .sum();
        let load = hw.load_watts / units / 1000.0 * kwh;
        let idle = hw.idle_watts / units / 1000.0 * kwh;
        let lease = ratio(units_to_usd(b.class_lease_income[c], usd), busy_units).unwrap_or(0.0);
        let emission = ratio(units_to_usd(b.class_emission[c], usd), busy_units).unwrap_or(0.0);
        let income = lease + emission;
        let break_even = (income > load).then(|| idle / (income - load + idle));
        let machines = b.class_ever_live[c].max(1) as f64;
        let profit = units_to_usd(b.class_lease_income[c] + b.class_emission[c], usd)
            - b.class_electricity_usd[c];
        ClassSummary {
            name: hw.name.clone(),
            gpus: hw.gpus,
            providers: b.class_ever_live[c],
            utilization: round6(
                ratio(b.class_busy_machine_steps[c], b.class_live_machine_steps[c]).unwrap_or(0.0),
            ),
            price_usd: round6(ratio(b.class_price_paid[c], b.class_price_units[c]).unwrap_or(0.0)),
            reference_usd: round6(population::reference_usd(hw)),
            lease_income_per_busy_unit_hour: round6(lease),
            emission_per_busy_unit_hour: round6(emission),
            electricity_load_per_unit_hour: round6(load),
            electricity_idle_per_unit_hour: round6(idle),
            break_even_utilization: break_even.map(round6),
            profit_per_machine: round6(profit / machines),
        }
    }
}

/// A lease's resources and agreed prices for a whole machine at `price` base units per
/// GPU-hour (per core-hour for a CPU machine). GPU leases reserve one core and 1 GiB beside the
/// GPUs: the machine's cores come with its GPUs and are not priced.
pub fn terms_of(hw: &crate::scenario::HardwareClass, price: u128) -> (ResourceRequest, PriceList) {
    if hw.gpus > 0 {
        (
            ResourceRequest {
                gpus: hw.gpus,
                cpu_cores: 1,
                ram_gib: 1,
            },
            PriceList {
                gpu_hour: Amount(price),
                cpu_core_hour: Amount::ZERO,
                ram_gib_hour: Amount::ZERO,
                mega_unit: Amount::ZERO,
            },
        )
    } else {
        (
            ResourceRequest {
                gpus: 0,
                cpu_cores: hw.cpu_cores,
                ram_gib: hw.ram_gib,
            },
            PriceList {
                gpu_hour: Amount::ZERO,
                cpu_core_hour: Amount(price),
                ram_gib_hour: Amount::ZERO,
                mega_unit: Amount::ZERO,
            },
        )
    }
}

fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0).then(|| a / b)
}

/// Six decimals: enough for every figure, and stable text in the summary.
pub fn round6(x: f64) -> f64 {
    if x.is_finite() {
        (x * 1e6).round() / 1e6
    } else {
        0.0
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
