//! A devnet dealer: every validator's configuration from one seed.
//!
//! The dealer creates the validators' ed25519 keys and deals a BLS12-381 threshold key
//! (threshold `2f+1` of `n = 3f+1`) to them. Whoever runs the dealer knows every share, so a
//! devnet's randomness and safety rest on the dealer: fine for tests and demos, never for a
//! network with value (that needs a distributed key generation, which commonware provides in
//! `bls12381::dkg`, and resharing when the committee changes — out of scope here).

use crate::api::ChainError;
use crate::block::Variant;
use crate::config::{
    DEFAULT_BLOCK_INTERVAL_MS, DEFAULT_CERTIFICATION_TIMEOUT_MS, DEFAULT_LEADER_TIMEOUT_MS,
    DEFAULT_MAX_BLOCK_BYTES, DEFAULT_MAX_BLOCK_TXS, PeerConfig, ValidatorConfig, to_hex,
};
use crate::mempool::MempoolLimits;
use commonware_cryptography::bls12381::dkg::feldman_desmedt::deal;
use commonware_cryptography::bls12381::primitives::sharing::Mode;
use commonware_cryptography::{Signer as _, ed25519};
use commonware_utils::N3f1;
use commonware_utils::ordered::Set;
use orrery_ledger::{Genesis, GenesisAccount, Params};
use orrery_types::crypto::{AccountId, Keypair};
use orrery_types::tx::ChainId;
use rand_core::SeedableRng as _;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// What to generate.
#[derive(Clone, Debug)]
pub struct DevnetSpec {
    /// Number of validators (at least 1; 4 tolerates one fault).
    pub validators: usize,
    /// Seed for every key and share: the same seed gives the same devnet.
    pub seed: u64,
    /// Chain id.
    pub chain_id: String,
    /// Genesis time, milliseconds since the Unix epoch.
    pub genesis_time_ms: u64,
    /// Validator `i` stores its data in `data_root/validator-i`.
    pub data_root: PathBuf,
    /// Validator `i` listens on `127.0.0.1:(first_port + i)`.
    pub first_port: u16,
    /// Funded accounts besides the validators.
    pub accounts: Vec<GenesisAccount>,
    /// Balance given to each validator's account.
    pub validator_balance: orrery_types::amount::Amount,
}

/// A generated devnet.
#[derive(Clone, Debug)]
pub struct Devnet {
    /// The genesis every validator uses.
    pub genesis: Genesis,
    /// One configuration per validator, in committee order.
    pub configs: Vec<ValidatorConfig>,
    /// The validators' keys (their ledger accounts), in the same order.
    pub keys: Vec<Keypair>,
}

/// The key seed of validator `i` of a devnet made from `seed`.
fn key_seed(seed: u64, i: usize) -> u64 {
    seed.wrapping_mul(1_000_003).wrapping_add(i as u64)
}

/// Generate a devnet. Deterministic in `spec`.
pub fn generate(spec: &DevnetSpec) -> Result<Devnet, ChainError> {
    if spec.validators == 0 {
        return Err(ChainError::Config(
            "a devnet needs at least one validator".into(),
        ));
    }
    let mut privs: Vec<ed25519::PrivateKey> = (0..spec.validators)
        .map(|i| ed25519::PrivateKey::from_seed(key_seed(spec.seed, i)))
        .collect();
    privs.sort_by_key(|k| k.public_key());
    let keys: Vec<Keypair> = privs
        .iter()
        .map(|k| {
            let bytes: [u8; 32] = commonware_codec::Encode::encode(k)
                .as_ref()
                .try_into()
                .map_err(|_| ChainError::Config("unexpected ed25519 key length".into()))?;
            Keypair::from_secret_bytes(&bytes)
                .map_err(|e| ChainError::Config(format!("ed25519 key: {e}")))
        })
        .collect::<Result<_, _>>()?;
    let participants = Set::try_from(privs.iter().map(|k| k.public_key()).collect::<Vec<_>>())
        .map_err(|_| ChainError::Config("two validators got the same key".into()))?;
    let rng = rand_chacha::ChaCha20Rng::seed_from_u64(spec.seed);
    let (output, shares) = deal::<Variant, _, N3f1>(rng, Mode::NonZeroCounter, participants)
        .map_err(|e| ChainError::Config(format!("dealing the threshold key failed: {e:?}")))?;
    let polynomial = to_hex(output.public());

    let validators: Vec<AccountId> = keys.iter().map(Keypair::account).collect();
    let mut accounts: Vec<GenesisAccount> = validators
        .iter()
        .map(|a| GenesisAccount {
            account: *a,
            balance: spec.validator_balance,
        })
        .collect();
    accounts.extend(spec.accounts.iter().cloned());
    let genesis = Genesis {
        chain_id: ChainId::new(spec.chain_id.clone())
            .map_err(|e| ChainError::Config(format!("chain id: {e}")))?,
        genesis_time_ms: spec.genesis_time_ms,
        params: Params::default(),
        accounts,
        validators,
    };
    genesis.validate()?;

    let peers: Vec<PeerConfig> = privs
        .iter()
        .enumerate()
        .map(|(i, k)| PeerConfig {
            public_key: to_hex(&k.public_key()),
            address: SocketAddr::from((Ipv4Addr::LOCALHOST, spec.first_port + i as u16)),
        })
        .collect();
    let configs = privs
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let share = shares
                .get_value(&k.public_key())
                .ok_or_else(|| ChainError::Config("a validator got no share".into()))?;
            Ok(ValidatorConfig {
                data_dir: spec.data_root.join(format!("validator-{i}")),
                listen: peers[i].address,
                p2p_key: to_hex(k),
                bls_share: to_hex(share),
                group_polynomial: polynomial.clone(),
                peers: peers.clone(),
                genesis_path: None,
                genesis: Some(genesis.clone()),
                block_interval_ms: DEFAULT_BLOCK_INTERVAL_MS,
                max_block_txs: DEFAULT_MAX_BLOCK_TXS,
                max_block_bytes: DEFAULT_MAX_BLOCK_BYTES,
                leader_timeout_ms: DEFAULT_LEADER_TIMEOUT_MS,
                certification_timeout_ms: DEFAULT_CERTIFICATION_TIMEOUT_MS,
                mempool: MempoolLimits::default(),
            })
        })
        .collect::<Result<_, ChainError>>()?;
    Ok(Devnet {
        genesis,
        configs,
        keys,
    })
}
