//! Reading named tensors out of a safetensors file as f32, whatever prefix the exporter put
//! in front of the names.

use super::{InferError, Result};
use safetensors::tensor::{Dtype, SafeTensors};

/// A parsed safetensors file and the name prefix its model's tensors carry (`""`, `"bert."`,
/// `"transformer."`).
pub struct TensorFile<'a> {
    st: SafeTensors<'a>,
    prefix: &'static str,
}

impl<'a> TensorFile<'a> {
    /// Parse `bytes` (the safetensors crate checks the header's length and offsets).
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| InferError::BadWeights(format!("not a safetensors file: {e}")))?;
        Ok(TensorFile { st, prefix: "" })
    }

    /// Whether a tensor is present under `name`, with or without one of `prefixes`.
    pub fn find_prefix(&self, name: &str, prefixes: &[&'static str]) -> Option<&'static str> {
        prefixes
            .iter()
            .copied()
            .find(|p| self.st.tensor(&format!("{p}{name}")).is_ok())
    }

    /// Use `prefix` in front of every name read from now on.
    pub fn with_prefix(mut self, prefix: &'static str) -> Self {
        self.prefix = prefix;
        self
    }

    /// Whether `name` (with the prefix) is present.
    pub fn has(&self, name: &str) -> bool {
        self.st.tensor(&format!("{}{name}", self.prefix)).is_ok()
    }

    /// Whether `name` is present exactly as given (no prefix).
    pub fn has_unprefixed(&self, name: &str) -> bool {
        self.st.tensor(name).is_ok()
    }

    /// Tensor `name` (with the prefix) as f32, checked to have `shape` and finite values.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        self.get_exact(&format!("{}{name}", self.prefix), shape)
    }

    /// Tensor `full_name` (no prefix added) as f32, checked to have `shape` and finite values.
    pub fn get_exact(&self, full_name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let view = self.st.tensor(full_name).map_err(|_| {
            InferError::BadWeights(format!(
                "tensor `{full_name}` is missing; is this the right kind of model?"
            ))
        })?;
        if view.shape() != shape {
            return Err(InferError::BadWeights(format!(
                "tensor `{full_name}` has shape {:?}; config.json implies {shape:?}",
                view.shape()
            )));
        }
        let data = to_f32(full_name, view.dtype(), view.data())?;
        if data.iter().any(|v| !v.is_finite()) {
            return Err(InferError::BadWeights(format!(
                "tensor `{full_name}` holds NaN or infinity"
            )));
        }
        Ok(data)
    }
}

fn to_f32(name: &str, dtype: Dtype, bytes: &[u8]) -> Result<Vec<f32>> {
    Ok(match dtype {
        Dtype::F32 => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => bytes
            .chunks_exact(2)
            .map(|c| f16_to_f32(u16::from_le_bytes([c[0], c[1]])))
            .collect(),
        Dtype::BF16 => bytes
            .chunks_exact(2)
            .map(|c| f32::from_bits(u32::from(u16::from_le_bytes([c[0], c[1]])) << 16))
            .collect(),
        other => {
            return Err(InferError::BadWeights(format!(
                "tensor `{name}` is {other:?}; supported are F32, F16 and BF16 (convert the checkpoint)"
            )));
        }
    })
}

/// IEEE half → single, exactly (every half value is representable as a single).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h >> 15) << 31;
    let exp = u32::from((h >> 10) & 0x1f);
    let frac = u32::from(h & 0x3ff);
    let bits = match (exp, frac) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: value = frac · 2^-24, normalised for single precision.
            let shift = frac.leading_zeros() - 21;
            let frac = (frac << shift) & 0x3ff;
            sign | ((113 - shift) << 23) | (frac << 13)
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, _) => sign | 0x7fc0_0000 | (frac << 13),
        _ => sign | ((exp + 112) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}
