//! Tensors as plain row-major `f32` buffers with a shape, and named, ordered sets of them.

use crate::error::{MlError, Result};

/// A dense row-major f32 tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub data: Vec<f32>,
}

impl Tensor {
    /// A tensor of zeros.
    pub fn zeros(shape: &[usize]) -> Self {
        Tensor {
            shape: shape.to_vec(),
            data: vec![0.0; shape.iter().product()],
        }
    }

    /// A tensor filled with `value`.
    pub fn full(shape: &[usize], value: f32) -> Self {
        Tensor {
            shape: shape.to_vec(),
            data: vec![value; shape.iter().product()],
        }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// True when the tensor holds no element.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
}

/// An ordered list of named tensors: a model's parameters, their gradients, or an optimizer
/// slot. The order is fixed by the model definition and is part of the canonical state encoding.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamSet {
    /// `(name, tensor)` pairs in definition order.
    pub tensors: Vec<(String, Tensor)>,
}

impl ParamSet {
    /// Zeros shaped like `self`.
    pub fn zeros_like(&self) -> Self {
        ParamSet {
            tensors: self
                .tensors
                .iter()
                .map(|(n, t)| (n.clone(), Tensor::zeros(&t.shape)))
                .collect(),
        }
    }

    /// Tensor at position `i`.
    pub fn get(&self, i: usize) -> &Tensor {
        &self.tensors[i].1
    }

    /// Mutable tensor at position `i`.
    pub fn get_mut(&mut self, i: usize) -> &mut Tensor {
        &mut self.tensors[i].1
    }

    /// Total number of scalars.
    pub fn numel(&self) -> usize {
        self.tensors.iter().map(|(_, t)| t.len()).sum()
    }

    /// The first tensor holding a NaN or infinity, by name.
    pub fn first_non_finite(&self) -> Option<&str> {
        self.tensors
            .iter()
            .find(|(_, t)| t.data.iter().any(|v| !v.is_finite()))
            .map(|(n, _)| n.as_str())
    }

    /// Check that `self` has exactly the names and shapes of `expected`, in any order, and
    /// return it reordered to `expected`'s order.
    pub fn conform_to(mut self, expected: &ParamSet) -> Result<ParamSet> {
        let mut out = Vec::with_capacity(expected.tensors.len());
        for (name, want) in &expected.tensors {
            let pos = self
                .tensors
                .iter()
                .position(|(n, _)| n == name)
                .ok_or_else(|| MlError::WeightsMismatch(format!("missing tensor `{name}`")))?;
            let (n, t) = self.tensors.swap_remove(pos);
            if t.shape != want.shape {
                return Err(MlError::WeightsMismatch(format!(
                    "tensor `{n}` has shape {:?}, the config needs {:?}",
                    t.shape, want.shape
                )));
            }
            out.push((n, t));
        }
        if let Some((extra, _)) = self.tensors.first() {
            return Err(MlError::WeightsMismatch(format!(
                "unexpected tensor `{extra}` (not part of this model config)"
            )));
        }
        Ok(ParamSet { tensors: out })
    }
}
