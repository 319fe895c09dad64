//! Token amounts.
//!
//! An [`Amount`] counts base units in a `u128`. One ORR is [`UNITS_PER_ORR`] base units
//! (9 decimals). All arithmetic is checked: an overflow or underflow is an error the caller
//! must handle, never a wrap.

use bytes::BufMut;
use commonware_codec::{Error as CodecError, FixedSize, Read, ReadExt as _, Write};
use std::fmt;
use std::str::FromStr;

/// Decimal places of the token.
pub const DECIMALS: u32 = 9;
/// Base units in one whole token.
pub const UNITS_PER_ORR: u128 = 10u128.pow(DECIMALS);
/// The token's ticker.
pub const TICKER: &str = "ORR";

/// A non-negative amount of base units.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(pub u128);

impl Amount {
    /// Zero.
    pub const ZERO: Amount = Amount(0);

    /// `n` whole tokens.
    pub const fn orr(n: u64) -> Amount {
        Amount(n as u128 * UNITS_PER_ORR)
    }

    /// Base units.
    pub const fn units(self) -> u128 {
        self.0
    }

    /// `self + rhs`, or `None` on overflow.
    pub fn checked_add(self, rhs: Amount) -> Option<Amount> {
        self.0.checked_add(rhs.0).map(Amount)
    }

    /// `self - rhs`, or `None` if `rhs > self`.
    pub fn checked_sub(self, rhs: Amount) -> Option<Amount> {
        self.0.checked_sub(rhs.0).map(Amount)
    }

    /// `self * n`, or `None` on overflow.
    pub fn checked_mul(self, n: u128) -> Option<Amount> {
        self.0.checked_mul(n).map(Amount)
    }

    /// `self * num / den` rounded down, or `None` on overflow or `den == 0`.
    pub fn mul_div(self, num: u128, den: u128) -> Option<Amount> {
        if den == 0 {
            return None;
        }
        self.0.checked_mul(num).map(|p| Amount(p / den))
    }

    /// `self * bps / 10_000` rounded down (basis points).
    pub fn bps(self, bps: u16) -> Option<Amount> {
        self.mul_div(bps as u128, 10_000)
    }

    /// Whether this is zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for Amount {
    /// `1.5 ORR`, `0.000000001 ORR`, `12 ORR`: whole part, then the fraction without trailing
    /// zeros.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let whole = self.0 / UNITS_PER_ORR;
        let frac = self.0 % UNITS_PER_ORR;
        if frac == 0 {
            write!(f, "{whole} {TICKER}")
        } else {
            let digits = format!("{frac:0width$}", width = DECIMALS as usize);
            write!(f, "{whole}.{} {TICKER}", digits.trim_end_matches('0'))
        }
    }
}

impl fmt::Debug for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Why a string is not an amount.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseAmountError {
    /// Empty, or characters that are not digits.
    #[error(
        "an amount is a decimal number such as \"12\" or \"0.5\" (optionally followed by ORR): {0:?}"
    )]
    Syntax(String),
    /// More decimals than the token has.
    #[error("at most {DECIMALS} decimal places: {0:?}")]
    TooPrecise(String),
    /// Larger than `u128` base units.
    #[error("amount too large: {0:?}")]
    Overflow(String),
}

impl FromStr for Amount {
    type Err = ParseAmountError;
    /// Parses `"12"`, `"0.5"`, `"1_000.25 ORR"`. Whole tokens, not base units.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let original = s;
        let s = s.trim();
        let s = s.strip_suffix(TICKER).unwrap_or(s).trim().replace('_', "");
        let (whole, frac) = match s.split_once('.') {
            Some((w, f)) => (w, f),
            None => (s.as_str(), ""),
        };
        let digits = |x: &str| x.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !digits(whole) || !digits(frac) {
            return Err(ParseAmountError::Syntax(original.into()));
        }
        if frac.len() > DECIMALS as usize {
            return Err(ParseAmountError::TooPrecise(original.into()));
        }
        let overflow = || ParseAmountError::Overflow(original.into());
        let whole: u128 = whole.parse().map_err(|_| overflow())?;
        let frac_units: u128 = if frac.is_empty() {
            0
        } else {
            let padded = format!("{frac:0<width$}", width = DECIMALS as usize);
            padded.parse().map_err(|_| overflow())?
        };
        whole
            .checked_mul(UNITS_PER_ORR)
            .and_then(|w| w.checked_add(frac_units))
            .map(Amount)
            .ok_or_else(overflow)
    }
}

impl serde::Serialize for Amount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> serde::Deserialize<'de> for Amount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl Write for Amount {
    fn write(&self, buf: &mut impl BufMut) {
        self.0.write(buf);
    }
}
impl FixedSize for Amount {
    const SIZE: usize = 16;
}
impl Read for Amount {
    type Cfg = ();
    fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, CodecError> {
        Ok(Amount(u128::read(buf)?))
    }
}

/// The sum of `amounts`, or `None` on overflow.
pub fn checked_sum(amounts: impl IntoIterator<Item = Amount>) -> Option<Amount> {
    amounts
        .into_iter()
        .try_fold(Amount::ZERO, |acc, a| acc.checked_add(a))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_roundtrip() {
        for (s, units) in [
            ("0 ORR", 0u128),
            ("1 ORR", UNITS_PER_ORR),
            ("1.5 ORR", UNITS_PER_ORR * 3 / 2),
            ("0.000000001 ORR", 1),
            ("123456.789 ORR", 123_456_789_000_000),
        ] {
            assert_eq!(Amount(units).to_string(), s);
            assert_eq!(s.parse::<Amount>().unwrap(), Amount(units));
        }
        assert_eq!("1_000".parse::<Amount>().unwrap(), Amount::orr(1000));
    }

    #[test]
    fn bad_amounts_are_refused_with_a_reason() {
        assert!(matches!(
            "".parse::<Amount>(),
            Err(ParseAmountError::Syntax(_))
        ));
        assert!(matches!(
            "-1".parse::<Amount>(),
            Err(ParseAmountError::Syntax(_))
        ));
        assert!(matches!(
            "1.2.3".parse::<Amount>(),
            Err(ParseAmountError::Syntax(_))
        ));
        assert!(matches!(
            "0.0000000001".parse::<Amount>(),
            Err(ParseAmountError::TooPrecise(_))
        ));
        assert!(matches!(
            "999999999999999999999999999999999999999".parse::<Amount>(),
            Err(ParseAmountError::Overflow(_))
        ));
    }

    #[test]
    fn arithmetic_is_checked() {
        assert_eq!(Amount(u128::MAX).checked_add(Amount(1)), None);
        assert_eq!(Amount(1).checked_sub(Amount(2)), None);
        assert_eq!(Amount(u128::MAX).checked_mul(2), None);
        assert_eq!(Amount(1000).bps(250), Some(Amount(25)));
        assert_eq!(Amount(7).mul_div(1, 0), None);
        assert_eq!(checked_sum([Amount(u128::MAX), Amount(1)]), None);
        assert_eq!(checked_sum([Amount(2), Amount(3)]), Some(Amount(5)));
    }
}
