//! The canonical binary encoding, built on `commonware-codec`.
//!
//! Rules every encoded Orrery object follows:
//! - integers are fixed-width big-endian; amounts are `u128`;
//! - structs are their fields in declaration order, nothing in between;
//! - enums are a one-byte tag followed by the variant's fields;
//! - every variable-length field has a maximum, carried in its type ([`Text`], [`BoundedVec`],
//!   [`Blob`]), and the decoder checks the length against it *before* allocating;
//! - decoding must consume the whole input ([`decode`]), so one value has exactly one encoding.
//!
//! All our types decode with `Cfg = ()`: their limits are part of the type, so no caller can
//! forget to pass one.

use bytes::{Buf as _, BufMut};
use commonware_codec::{
    Decode, Encode, EncodeSize, Error as CodecError, Read, ReadExt as _, Write,
};
use std::fmt;

#[doc(hidden)]
pub mod __private {
    pub use bytes;
    pub use commonware_codec;
}

/// Why bytes are not a valid encoding.
#[derive(Debug, thiserror::Error)]
#[error("malformed {what}: {source}")]
pub struct DecodeError {
    /// What was being decoded.
    pub what: &'static str,
    /// The codec's reason.
    #[source]
    pub source: CodecError,
}

/// Encode a value canonically.
pub fn encode<T: Encode>(value: &T) -> Vec<u8> {
    value.encode().to_vec()
}

/// Decode a value, requiring that every byte is consumed.
pub fn decode<T: Decode<Cfg = ()>>(what: &'static str, bytes: &[u8]) -> Result<T, DecodeError> {
    T::decode_cfg(commonware_codec::Copying(bytes), &())
        .map_err(|source| DecodeError { what, source })
}

/// Implement `Write`, `EncodeSize` and `Read<Cfg = ()>` for a struct as its fields in order.
/// Every field type must itself decode with `Cfg = ()`.
#[macro_export]
macro_rules! codec_struct {
    ($ty:ident { $($field:ident : $fty:ty),* $(,)? }) => {
        impl $crate::codec::__private::commonware_codec::Write for $ty {
            fn write(&self, buf: &mut impl $crate::codec::__private::bytes::BufMut) {
                $( $crate::codec::__private::commonware_codec::Write::write(&self.$field, buf); )*
            }
        }
        impl $crate::codec::__private::commonware_codec::EncodeSize for $ty {
            fn encode_size(&self) -> usize {
                0 $( + $crate::codec::__private::commonware_codec::EncodeSize::encode_size(&self.$field) )*
            }
        }
        impl $crate::codec::__private::commonware_codec::Read for $ty {
            type Cfg = ();
            fn read_cfg(
                buf: &mut impl $crate::codec::__private::commonware_codec::Buf,
                _: &(),
            ) -> Result<Self, $crate::codec::__private::commonware_codec::Error> {
                Ok(Self {
                    $( $field: <$fty as $crate::codec::__private::commonware_codec::Read>::read_cfg(buf, &())?, )*
                })
            }
        }
    };
}

fn read_len(buf: &mut impl commonware_codec::Buf, max: usize) -> Result<usize, CodecError> {
    let len = u32::read(buf)? as usize;
    if len > max {
        return Err(CodecError::InvalidLength(len));
    }
    Ok(len)
}

/// Write `bytes` with a `u32` length prefix.
fn write_bytes(bytes: &[u8], buf: &mut impl BufMut) {
    (bytes.len() as u32).write(buf);
    buf.put_slice(bytes);
}

/// Read a `u32`-length-prefixed byte string of at most `max` bytes, checking the length against
/// both the limit and what remains before allocating.
fn read_bytes(buf: &mut impl commonware_codec::Buf, max: usize) -> Result<Vec<u8>, CodecError> {
    let len = read_len(buf, max)?;
    if buf.remaining() < len {
        return Err(CodecError::EndOfBuffer);
    }
    let mut bytes = vec![0u8; len];
    buf.copy_to_slice(&mut bytes);
    Ok(bytes)
}

/// A UTF-8 string of at most `MAX` bytes.
#[derive(
    Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(try_from = "String", into = "String")]
pub struct Text<const MAX: usize>(String);

/// A string longer than its type allows.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("text of {len} bytes is longer than the limit of {max}")]
pub struct TooLong {
    /// Actual length.
    pub len: usize,
    /// The limit.
    pub max: usize,
}

impl<const MAX: usize> Text<MAX> {
    /// Wrap a string, checking its length.
    pub fn new(s: impl Into<String>) -> Result<Self, TooLong> {
        let s = s.into();
        if s.len() > MAX {
            return Err(TooLong {
                len: s.len(),
                max: MAX,
            });
        }
        Ok(Self(s))
    }
    /// The string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<const MAX: usize> TryFrom<String> for Text<MAX> {
    type Error = TooLong;
    fn try_from(s: String) -> Result<Self, TooLong> {
        Self::new(s)
    }
}
impl<const MAX: usize> From<Text<MAX>> for String {
    fn from(t: Text<MAX>) -> String {
        t.0
    }
}
impl<const MAX: usize> fmt::Display for Text<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl<const MAX: usize> fmt::Debug for Text<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl<const MAX: usize> Write for Text<MAX> {
    fn write(&self, buf: &mut impl BufMut) {
        write_bytes(self.0.as_bytes(), buf);
    }
}
impl<const MAX: usize> EncodeSize for Text<MAX> {
    fn encode_size(&self) -> usize {
        4 + self.0.len()
    }
}
impl<const MAX: usize> Read for Text<MAX> {
    type Cfg = ();
    fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, CodecError> {
        String::from_utf8(read_bytes(buf, MAX)?)
            .map(Self)
            .map_err(|_| CodecError::Invalid("Text", "not UTF-8"))
    }
}

/// Bytes of at most `MAX` length.
#[derive(Clone, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize)]
pub struct Blob<const MAX: usize>(Vec<u8>);

impl<const MAX: usize> Blob<MAX> {
    /// Wrap bytes, checking the length.
    pub fn new(b: Vec<u8>) -> Result<Self, TooLong> {
        if b.len() > MAX {
            return Err(TooLong {
                len: b.len(),
                max: MAX,
            });
        }
        Ok(Self(b))
    }
    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        &self.0
    }
}
impl<const MAX: usize> fmt::Debug for Blob<MAX> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Blob({} bytes)", self.0.len())
    }
}
impl<const MAX: usize> Write for Blob<MAX> {
    fn write(&self, buf: &mut impl BufMut) {
        write_bytes(&self.0, buf);
    }
}
impl<const MAX: usize> EncodeSize for Blob<MAX> {
    fn encode_size(&self) -> usize {
        4 + self.0.len()
    }
}
impl<const MAX: usize> Read for Blob<MAX> {
    type Cfg = ();
    fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, CodecError> {
        read_bytes(buf, MAX).map(Self)
    }
}

/// A list of at most `MAX` items.
#[derive(Clone, PartialEq, Eq, Hash, Debug, serde::Serialize, serde::Deserialize)]
pub struct BoundedVec<T, const MAX: usize>(Vec<T>);

impl<T, const MAX: usize> Default for BoundedVec<T, MAX> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<T, const MAX: usize> BoundedVec<T, MAX> {
    /// Wrap a list, checking its length.
    pub fn new(v: Vec<T>) -> Result<Self, TooLong> {
        if v.len() > MAX {
            return Err(TooLong {
                len: v.len(),
                max: MAX,
            });
        }
        Ok(Self(v))
    }
    /// The items.
    pub fn as_slice(&self) -> &[T] {
        &self.0
    }
    /// The items, mutably (the length cannot change, so the bound holds).
    pub fn as_mut_slice(&mut self) -> &mut [T] {
        &mut self.0
    }
    /// The items, owned.
    pub fn into_inner(self) -> Vec<T> {
        self.0
    }
    /// Number of items.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Append an item, unless the list is full.
    pub fn push(&mut self, item: T) -> Result<(), TooLong> {
        if self.0.len() >= MAX {
            return Err(TooLong {
                len: self.0.len() + 1,
                max: MAX,
            });
        }
        self.0.push(item);
        Ok(())
    }
    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<T: Write, const MAX: usize> Write for BoundedVec<T, MAX> {
    fn write(&self, buf: &mut impl BufMut) {
        (self.0.len() as u32).write(buf);
        for item in &self.0 {
            item.write(buf);
        }
    }
}
impl<T: EncodeSize, const MAX: usize> EncodeSize for BoundedVec<T, MAX> {
    fn encode_size(&self) -> usize {
        4 + self.0.iter().map(EncodeSize::encode_size).sum::<usize>()
    }
}
impl<T: Read<Cfg = ()>, const MAX: usize> Read for BoundedVec<T, MAX> {
    type Cfg = ();
    fn read_cfg(buf: &mut impl commonware_codec::Buf, _: &()) -> Result<Self, CodecError> {
        let len = read_len(buf, MAX)?;
        // Every item takes at least one byte, so a length beyond what remains is a lie: refuse
        // it before reserving memory for it.
        if len > buf.remaining() {
            return Err(CodecError::EndOfBuffer);
        }
        let mut items = Vec::with_capacity(len.min(1024));
        for _ in 0..len {
            items.push(T::read(buf)?);
        }
        Ok(Self(items))
    }
}

#[cfg(test)]
mod tests;
