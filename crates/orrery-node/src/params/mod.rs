//! Request parameters: how each kind is parsed, what it may be, and the JSON Schema the OpenAPI
//! document declares for it — one definition per kind, so the document and the parser cannot
//! drift apart.
//!
//! Every parser here accepts exactly what its schema allows (the tests hold the two side by
//! side) and refuses anything else with a 400 whose message names the parameter and its
//! bounds:
//! - a **whole number** ([`parse_u64`]) is ASCII digits only (no sign, no spaces) that fit in
//!   a `u64`;
//! - a **page size** ([`page_limit`]) is a whole number from 1 to [`MAX_PAGE_LIMIT`]; absent,
//!   it is [`DEFAULT_PAGE_LIMIT`]. `limit=0` and `limit=501` are refused, not clamped: a
//!   client that asks for more than a page gets told the bound instead of a silent cut;
//! - a **hash** ([`parse_hash`]) is 64 hex characters of either case, optionally after `0x`;
//! - an **account id** ([`parse_account`]) is `orr` and 40 hex characters of either case.

use crate::api::MAX_SUBMIT_BODY_BYTES;
use crate::config::{DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};
use crate::error::ApiError;
use crate::index::MAX_SERIES_POINTS;
use orrery_types::crypto::AccountId;
use orrery_types::hash::Hash;
use std::borrow::Cow;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::{PartialSchema, ToSchema};

/// What [`parse_hash`] accepts.
pub const HASH_PARAM_PATTERN: &str = "^(0x)?[0-9a-fA-F]{64}$";

/// What [`parse_account`] accepts.
pub const ACCOUNT_PARAM_PATTERN: &str = "^orr[0-9a-fA-F]{40}$";

/// What [`parse_position`] accepts: `height:index`, as a transaction list's `next_cursor` is
/// written. (The parser also takes longer numbers that fit; no chain reaches them.)
pub const POSITION_PATTERN: &str = "^[0-9]{1,19}:[0-9]{1,9}$";

/// The padding a search query or a hex transaction may have: ASCII whitespace, exactly what
/// `str::trim_ascii` removes.
const ASCII_SPACE: &str = r"[\t\n\x0C\r ]";

/// Most characters of a search query, padding included (an account id is 43 characters, a
/// hash 64, with a `0x` 66): longer queries are refused before any lookup.
pub const MAX_SEARCH_LEN: usize = 128;

/// Default number of heights `GET /series` samples.
pub const DEFAULT_SERIES_POINTS: usize = 200;

/// What a lease list's `state` filter may be: a name of `orrery_ledger::entries::LeaseState`
/// (its `name()`), or `active` for every state that still holds escrow.
pub const LEASE_STATE_FILTERS: [&str; 10] = [
    "awaiting_start",
    "running",
    "sealed",
    "checking",
    "disputed",
    "committed",
    "settled",
    "failed",
    "timed_out",
    "active",
];

/// A `text/plain` transaction body: hex ([`tx_hex_pattern`]), refused with 400
/// `malformed_tx` otherwise.
pub fn tx_from_hex(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("malformed_tx", "hex body is not text"))?
        .trim_ascii();
    let text = text.strip_prefix("0x").unwrap_or(text);
    hex::decode(text)
        .map_err(|e| ApiError::bad_request("malformed_tx", format!("body is not valid hex: {e}")))
}

/// What `GET /providers?sort=` may be.
pub const PROVIDER_SORTS: [&str; 6] = ["id", "price", "stake", "reputation", "score", "uptime"];

/// What a provider list's cursor may be: an account id (paging in plain id order) or an
/// offset (sorted or searched; at most 19 digits, so it always fits).
pub const PROVIDER_CURSOR_PATTERN: &str = "^(orr[0-9a-fA-F]{40}|[0-9]{1,19})$";

/// A hash in a request.
pub fn parse_hash(s: &str) -> Result<Hash, ApiError> {
    s.parse()
        .map_err(|e| ApiError::bad_request("bad_hash", format!("{e}")))
}

/// An account id in a request.
pub fn parse_account(s: &str) -> Result<AccountId, ApiError> {
    s.parse()
        .map_err(|e| ApiError::bad_request("bad_account", format!("{e}")))
}

/// A whole number: ASCII digits only, fitting in a `u64`.
pub fn parse_u64(what: &str, s: &str) -> Result<u64, ApiError> {
    digits(s).ok_or_else(|| {
        ApiError::bad_request(
            "bad_number",
            format!(
                "{what} must be a whole number from 0 to {}, got {s:?}",
                u64::MAX
            ),
        )
    })
}

fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A whole number from `min` to `max` (`default` when absent), refused with 400 `bad_query`
/// naming the bounds otherwise.
pub fn bounded(
    what: &str,
    raw: Option<&str>,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ApiError> {
    debug_assert!(min <= default && default <= max);
    let Some(raw) = raw else {
        return Ok(default);
    };
    digits(raw)
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request(
                "bad_query",
                format!("{what} must be a whole number from {min} to {max}, got {raw:?}"),
            )
        })
}

/// `?limit=`: the page size.
pub fn page_limit(raw: Option<&str>) -> Result<usize, ApiError> {
    bounded(
        "limit",
        raw,
        DEFAULT_PAGE_LIMIT.into(),
        1,
        MAX_PAGE_LIMIT.into(),
    )
    .map(|n| n as usize)
}

/// `?points=`: heights `GET /series` samples.
pub fn series_points(raw: Option<&str>) -> Result<usize, ApiError> {
    bounded(
        "points",
        raw,
        DEFAULT_SERIES_POINTS as u64,
        1,
        MAX_SERIES_POINTS as u64,
    )
    .map(|n| n as usize)
}

/// A transaction list's cursor, `height:index`.
pub fn parse_position(cursor: &str) -> Result<(u64, u32), ApiError> {
    let bad = || {
        ApiError::bad_request(
            "bad_cursor",
            format!(
                "cursor {cursor:?} is not height:index (two whole numbers, as a page's \
                 next_cursor has them)"
            ),
        )
    };
    let (h, i) = cursor.split_once(':').ok_or_else(bad)?;
    let height = digits(h).ok_or_else(bad)?;
    let index = digits(i)
        .and_then(|i| u32::try_from(i).ok())
        .ok_or_else(bad)?;
    Ok((height, index))
}

/// A lease list's `state` filter.
pub fn lease_state_filter(raw: Option<&str>) -> Result<Option<String>, ApiError> {
    match raw {
        None => Ok(None),
        Some(s) if LEASE_STATE_FILTERS.contains(&s) => Ok(Some(s.to_string())),
        Some(s) => Err(ApiError::bad_request(
            "bad_query",
            format!(
                "state must be one of {}, got {s:?}",
                LEASE_STATE_FILTERS.join(", ")
            ),
        )),
    }
}

/// `?order=`: `asc` or `desc`; `None` when absent.
pub fn order(raw: Option<&str>) -> Result<Option<bool>, ApiError> {
    match raw {
        None => Ok(None),
        Some("asc") => Ok(Some(false)),
        Some("desc") => Ok(Some(true)),
        Some(o) => Err(ApiError::bad_request(
            "bad_query",
            format!("order must be asc or desc, got {o:?}"),
        )),
    }
}

/// A search query without its padding: ASCII whitespace around it, and `#` signs (an explorer
/// route pasted whole) before it.
pub fn trim_search(raw: &str) -> &str {
    raw.trim_ascii().trim_start_matches('#').trim_ascii()
}

/// The pattern of a search query: padding ([`trim_search`]), then a block height or lease id
/// (at most 19 digits, so it always fits), a hash, or an account id.
pub fn search_pattern() -> String {
    let w = ASCII_SPACE;
    format!(
        "^{w}*#*{w}*([0-9]{{1,19}}|(0[xX])?[0-9a-fA-F]{{64}}|[oO][rR][rR][0-9a-fA-F]{{40}}){w}*$"
    )
}

fn string_schema(pattern: &str, description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
}

/// An integer schema from `min` to `max`. No `format`: OpenAPI's `int64` is signed, and a
/// whole number here goes up to `u64::MAX`.
fn whole_number(min: u64, max: u64, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .minimum(Some(min))
        .maximum(Some(max))
        .description(Some(description))
        .into()
}

/// Declares a parameter schema type: its name in the document and its schema.
macro_rules! param_schema {
    ($(#[$doc:meta])* $ty:ident, $name:literal, $schema:expr) => {
        $(#[$doc])*
        pub struct $ty;
        impl PartialSchema for $ty {
            fn schema() -> RefOr<Schema> {
                $schema
            }
        }
        impl ToSchema for $ty {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed($name)
            }
        }
    };
}

param_schema!(
    /// A hash in a path or query ([`parse_hash`]).
    HashParam,
    "HashParam",
    string_schema(
        HASH_PARAM_PATTERN,
        "A SHA-256 hash: 64 hex characters (either case), optionally after 0x."
    )
    .into()
);

param_schema!(
    /// An account id in a path or query ([`parse_account`]).
    AccountParam,
    "AccountParam",
    string_schema(
        ACCOUNT_PARAM_PATTERN,
        "An account id: orr followed by 40 hex characters (either case)."
    )
    .into()
);

param_schema!(
    /// A block height, a lease id, or a numeric cursor ([`parse_u64`]).
    WholeNumber,
    "WholeNumber",
    whole_number(0, u64::MAX, "A whole number (ASCII digits, fits in 64 bits).")
);

param_schema!(
    /// `?limit=` ([`page_limit`]).
    PageLimit,
    "PageLimit",
    whole_number(
        1,
        MAX_PAGE_LIMIT.into(),
        "Items per page: 1 to 500 (default 50). Out of range is refused with 400 bad_query."
    )
);

param_schema!(
    /// `?points=` ([`series_points`]).
    SeriesPoints,
    "SeriesPoints",
    whole_number(
        1,
        MAX_SERIES_POINTS as u64,
        "Heights to sample: 1 to 500 (default 200). Out of range is refused with 400 bad_query."
    )
);

param_schema!(
    /// A transaction list's cursor ([`parse_position`]).
    PositionCursor,
    "PositionCursor",
    string_schema(
        POSITION_PATTERN,
        "The previous page's next_cursor: height:index of its last transaction."
    )
    .into()
);

param_schema!(
    /// A search query ([`search_pattern`]).
    SearchQuery,
    "SearchQuery",
    string_schema(
        &search_pattern(),
        "A block height or lease id, a 64-hex-character transaction or block hash (optionally \
         0x), or an account id (orr + 40 hex); surrounding ASCII whitespace and leading # are \
         ignored."
    )
    .max_length(Some(MAX_SEARCH_LEN))
    .into()
);

param_schema!(
    /// A lease list's `state` filter ([`lease_state_filter`]).
    LeaseStateFilter,
    "LeaseStateFilter",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(LEASE_STATE_FILTERS))
        .description(Some(
            "A lease state name, or active for every state that still holds escrow."
        ))
        .into()
);

param_schema!(
    /// `GET /providers?sort=` ([`PROVIDER_SORTS`]).
    ProviderSort,
    "ProviderSort",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(PROVIDER_SORTS))
        .into()
);

param_schema!(
    /// A provider list's cursor ([`PROVIDER_CURSOR_PATTERN`]).
    ProviderCursor,
    "ProviderCursor",
    string_schema(
        PROVIDER_CURSOR_PATTERN,
        "The previous page's next_cursor: in plain id order the last provider's id; sorted or \
         searched, an offset."
    )
    .into()
);

param_schema!(
    /// `GET /cluster-leases?phase=`: a cluster lease's phase.
    ClusterPhaseFilter,
    "ClusterPhaseFilter",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["running", "finished"]))
        .into()
);

param_schema!(
    /// `?order=` ([`order`]).
    Order,
    "Order",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(["asc", "desc"]))
        .into()
);

param_schema!(
    /// A body of raw bytes (`application/octet-stream`).
    BinaryBody,
    "Binary",
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
        .into()
);

/// What a hex transaction body may be: hex pairs padded with ASCII whitespace, optionally after
/// `0x`.
pub fn tx_hex_pattern() -> String {
    let w = ASCII_SPACE;
    format!("^{w}*(0x)?([0-9a-fA-F]{{2}})*{w}*$")
}

param_schema!(
    /// `POST /txs` as `text/plain`: the transaction in hex.
    TxHexBody,
    "TxHex",
    string_schema(
        &tx_hex_pattern(),
        "The canonical encoding in hex; a 0x prefix and surrounding ASCII whitespace are allowed."
    )
    .max_length(Some(MAX_SUBMIT_BODY_BYTES))
    .into()
);

#[cfg(test)]
mod tests;
