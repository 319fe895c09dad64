//! One seed, one scenario: everything the swarm does is drawn here, before the run starts, so
//! that a seed names a scenario and the scenario can be printed.

use crate::common::proposer::Corruption;
use orrery_types::tx::Verification;
use std::time::Duration;

/// splitmix64: small, seedable and the same on every machine.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x6a09_e667_f3bc_c909)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        assert!(n > 0);
        self.next() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

/// What a Byzantine validator does (commonware's simplex mocks, our proposer mock, or nothing
/// at all).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Byzantine {
    /// A whole validator whose every proposal is corrupted this way
    /// ([`crate::common::proposer::Proposer`]); it votes honestly.
    Proposer(Corruption),
    /// Never speaks.
    Silent,
    /// Answers every proposal with a nullify vote for its view, and finalizes nothing.
    NullifyOnly,
    /// Signs both a notarize (or finalize) of what it heard and one of a random digest.
    Conflicter,
    /// Answers each proposal with both a nullify and a finalize for its view.
    Nuller,
}

/// A fault, at a virtual time after the start.
#[derive(Clone, Debug)]
pub enum Fault {
    /// Split the validators into two sides (by index) for a while.
    Partition {
        side: Vec<bool>,
        heal_after: Duration,
    },
    /// Kill a validator (and cut its disk's power), restart it later.
    Crash {
        node: usize,
        restart_after: Duration,
    },
    /// A validator's disk dies during its `ops`-th operation from now; the validator is
    /// restarted on what the disk kept.
    DiskDeath { node: usize, ops: u64 },
    /// Slow and lossy links between every pair for a while.
    BadLinks { heal_after: Duration },
}

/// A transaction to send.
#[derive(Clone, Copy, Debug)]
pub enum Load {
    /// A valid transfer from user `from` (next nonce) to user `to`.
    Transfer { from: usize, to: usize, amount: u64 },
    /// A transfer whose signature does not match (must never apply).
    Forged { from: usize },
    /// A transfer with a nonce from the future (waits in no block).
    FutureNonce { from: usize },
}

/// A lease a requester opens.
#[derive(Clone, Debug)]
pub struct LeasePlan {
    /// When the requester opens it (once its earlier leases are open).
    pub at: Duration,
    /// Which requester (`0..LEASE_REQUESTERS`) and provider (`0..LEASE_PROVIDERS`).
    pub requester: usize,
    pub provider: usize,
    pub verification: Verification,
    /// The provider lies: its checkpoints from this step on are made up.
    pub lie: Option<u64>,
}

/// Providers and requesters playing leases (funded beside the transfer users).
pub const LEASE_PROVIDERS: usize = 3;
pub const LEASE_REQUESTERS: usize = 2;

/// The scenario of one seed.
#[derive(Clone, Debug)]
pub struct Plan {
    pub seed: u64,
    pub validators: usize,
    /// Validator index → behaviour, for the Byzantine ones (fewer than a third).
    pub byzantine: Vec<(usize, Byzantine)>,
    /// The normal link between every pair.
    pub latency: Duration,
    pub jitter: Duration,
    /// Percent of messages delivered on a normal link.
    pub delivery: u64,
    pub tearing: super::disk::Tearing,
    pub faults: Vec<(Duration, Fault)>,
    /// Funded users.
    pub users: usize,
    pub load: Vec<(Duration, usize, Load)>,
    /// Leases, by opening time.
    pub leases: Vec<LeasePlan>,
    /// When every fault is healed and the chain must go on.
    pub heal_at: Duration,
}

/// The window in which faults start.
const FAULT_WINDOW_MS: u64 = 12_000;

impl Plan {
    pub fn draw(seed: u64) -> Plan {
        let mut rng = Rng::new(seed);
        let validators = rng.range(4, 7) as usize;
        let max_byzantine = (validators - 1) / 3;
        let n_byzantine = rng.range(0, max_byzantine as u64) as usize;
        let mut byzantine = Vec::new();
        while byzantine.len() < n_byzantine {
            let who = rng.below(validators as u64) as usize;
            if byzantine.iter().any(|(i, _)| *i == who) {
                continue;
            }
            let kind = match rng.below(5) {
                0 => Byzantine::Silent,
                1 => Byzantine::NullifyOnly,
                2 => Byzantine::Conflicter,
                3 => Byzantine::Nuller,
                _ => Byzantine::Proposer(
                    Corruption::ALL[rng.below(Corruption::ALL.len() as u64) as usize],
                ),
            };
            byzantine.push((who, kind));
        }
        byzantine.sort_by_key(|(i, _)| *i);
        let honest: Vec<usize> = (0..validators)
            .filter(|i| !byzantine.iter().any(|(b, _)| b == i))
            .collect();
        let latency = rng.millis(2, 80);
        let jitter = Duration::from_millis(rng.below(latency.as_millis() as u64 / 2 + 1));
        let delivery = [100, 100, 99, 95, 90][rng.below(5) as usize];
        let tearing = if rng.chance(50) {
            super::disk::Tearing::Prefix
        } else {
            super::disk::Tearing::Subset
        };

        let mut faults = Vec::new();
        for _ in 0..rng.range(1, 5) {
            let at = rng.millis(1_000, FAULT_WINDOW_MS);
            let fault = match rng.below(4) {
                0 => {
                    let side = (0..validators).map(|_| rng.chance(50)).collect();
                    Fault::Partition {
                        side,
                        heal_after: rng.millis(500, 6_000),
                    }
                }
                1 => Fault::Crash {
                    node: honest[rng.below(honest.len() as u64) as usize],
                    restart_after: rng.millis(200, 6_000),
                },
                2 => Fault::DiskDeath {
                    node: honest[rng.below(honest.len() as u64) as usize],
                    ops: rng.range(1, 400),
                },
                _ => Fault::BadLinks {
                    heal_after: rng.millis(500, 5_000),
                },
            };
            faults.push((at, fault));
        }
        faults.sort_by_key(|(at, _)| *at);

        let users = rng.range(3, 12) as usize;
        let mut load = Vec::new();
        for _ in 0..rng.range(20, 120) {
            let at = rng.millis(200, FAULT_WINDOW_MS + 6_000);
            let to_node = honest[rng.below(honest.len() as u64) as usize];
            let from = rng.below(users as u64) as usize;
            let tx = match rng.below(20) {
                0 => Load::Forged { from },
                1 => Load::FutureNonce { from },
                _ => Load::Transfer {
                    from,
                    to: rng.below(users as u64) as usize,
                    amount: rng.range(1, 1_000),
                },
            };
            load.push((at, to_node, tx));
        }
        load.sort_by_key(|(at, _, _)| *at);
        let mut leases = Vec::new();
        for _ in 0..rng.range(1, 6) {
            let verification = match rng.below(4) {
                0 => Verification::None,
                1 => Verification::Sampled,
                _ => Verification::Redundant { k: 2 },
            };
            leases.push(LeasePlan {
                at: rng.millis(2_000, FAULT_WINDOW_MS),
                requester: rng.below(LEASE_REQUESTERS as u64) as usize,
                provider: rng.below(LEASE_PROVIDERS as u64) as usize,
                verification,
                lie: rng.chance(40).then(|| rng.range(1, super::leases::STEPS)),
            });
        }
        leases.sort_by_key(|l| l.at);
        Plan {
            seed,
            validators,
            byzantine,
            latency,
            jitter,
            delivery,
            tearing,
            faults,
            users,
            load,
            leases,
            heal_at: Duration::from_millis(FAULT_WINDOW_MS + 7_000),
        }
    }

    /// Whether `a` and `b` are both commonware vote mocks. Those answer every vote they hear
    /// with freshly signed ones, so two of them linked answer each other without end: seed 15
    /// (two conflicters) spent 98.6% of its CPU in their BLS signing and finalized 24 blocks
    /// in 1,322 s. They are never linked to each other; each still hears and hits every
    /// honest validator.
    pub fn vote_mocks(&self, a: usize, b: usize) -> bool {
        let mock = |n| {
            matches!(
                self.byzantine(n),
                Some(Byzantine::Conflicter | Byzantine::Nuller | Byzantine::NullifyOnly)
            )
        };
        mock(a) && mock(b)
    }

    /// What validator `node` does, if it is Byzantine.
    pub fn byzantine(&self, node: usize) -> Option<Byzantine> {
        self.byzantine
            .iter()
            .find(|(i, _)| *i == node)
            .map(|(_, b)| *b)
    }
}
