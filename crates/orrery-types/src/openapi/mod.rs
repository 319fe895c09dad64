//! JSON Schemas of the vocabulary's JSON forms, for the node's OpenAPI document (feature
//! `openapi`).
//!
//! The node's API serializes these types with their `serde` forms; the schemas here describe
//! exactly those forms, so a client generated from the document, or a conformance test run
//! against a node, sees what the node really sends. Structs and enums derive their schemas
//! beside their definitions (`cfg_attr(feature = "openapi", derive(utoipa::ToSchema))`); the
//! types with a hand-written string form ([`Hash`], [`AccountId`], [`Amount`]) are described
//! here by a pattern that their `Display`/`Serialize` output always matches.

use crate::amount::{Amount, DECIMALS};
use crate::crypto::AccountId;
use crate::hash::Hash;
use std::borrow::Cow;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

/// A [`Hash`] as the API writes it: 64 lower-case hex characters.
pub const HASH_PATTERN: &str = "^[0-9a-f]{64}$";

/// An [`AccountId`] as the API writes it: `orr` and 40 lower-case hex characters.
pub const ACCOUNT_ID_PATTERN: &str = "^orr[0-9a-f]{40}$";

/// An [`Amount`] as the API writes it: whole ORR, then the fraction without trailing zeros
/// (at most [`DECIMALS`] digits), then ` ORR` — `"12 ORR"`, `"0.5 ORR"`.
pub const AMOUNT_PATTERN: &str = r"^(0|[1-9][0-9]*)(\.[0-9]{0,8}[1-9])? ORR$";

// The pattern's fraction allows exactly `DECIMALS` digits.
const _: () = assert!(DECIMALS == 9);

fn string(pattern: &str, description: &str, example: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .pattern(Some(pattern))
        .description(Some(description))
        .examples([serde_json::Value::String(example.to_string())])
        .into()
}

impl PartialSchema for Hash {
    fn schema() -> RefOr<Schema> {
        string(
            HASH_PATTERN,
            "A SHA-256 hash (a transaction, block, job bundle or output id): 64 lower-case hex \
             characters.",
            "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        )
    }
}

impl ToSchema for Hash {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Hash")
    }
}

impl PartialSchema for AccountId {
    fn schema() -> RefOr<Schema> {
        string(
            ACCOUNT_ID_PATTERN,
            "An account id: orr followed by 40 lower-case hex characters.",
            "orr00112233445566778899aabbccddeeff00112233",
        )
    }
}

impl ToSchema for AccountId {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("AccountId")
    }
}

impl PartialSchema for Amount {
    fn schema() -> RefOr<Schema> {
        string(
            AMOUNT_PATTERN,
            "An amount of ORR: a decimal number with at most 9 decimals, no trailing zeros, \
             followed by \" ORR\".",
            "12.5 ORR",
        )
    }
}

impl ToSchema for Amount {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("Amount")
    }
}

#[cfg(test)]
mod tests;
