//! Model weights as safetensors, the ecosystem's format.
//!
//! A file holds every parameter as an `F32` tensor under its canonical name, and one metadata
//! entry, `orrery_model`, with the model configuration as JSON, so a file says what it is. The
//! safetensors crate orders tensors by name and there is a single metadata key, so the bytes
//! for given weights are always the same.

use crate::error::{MlError, Result};
use crate::model::ModelConfig;
use crate::tensor::{ParamSet, Tensor};
use safetensors::tensor::{Dtype, SafeTensors, TensorView};
use std::collections::HashMap;

/// Metadata key holding the model configuration (JSON).
pub const CONFIG_KEY: &str = "orrery_model";

/// Serialize `params` (and the config they belong to) as safetensors bytes.
pub fn to_safetensors(config: &ModelConfig, params: &ParamSet) -> Result<Vec<u8>> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = params
        .tensors
        .iter()
        .map(|(n, t)| {
            let b = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
            (n.clone(), b, t.shape.clone())
        })
        .collect();
    let mut views = Vec::with_capacity(bytes.len());
    for (name, b, shape) in &bytes {
        let view = TensorView::new(Dtype::F32, shape.clone(), b)
            .map_err(|e| MlError::BadWeightsFile(format!("tensor `{name}`: {e}")))?;
        views.push((name.clone(), view));
    }
    let config_json = serde_json::to_string(config)
        .map_err(|e| MlError::BadConfig(format!("cannot serialize config: {e}")))?;
    let meta = HashMap::from([(CONFIG_KEY.to_string(), config_json)]);
    safetensors::serialize(views, Some(meta)).map_err(|e| MlError::BadWeightsFile(e.to_string()))
}

/// Parse safetensors bytes: the tensors (as f32) and the model config, if the file has one.
pub fn from_safetensors(bytes: &[u8]) -> Result<(ParamSet, Option<ModelConfig>)> {
    let st = SafeTensors::deserialize(bytes).map_err(|e| MlError::BadWeightsFile(e.to_string()))?;
    let (_, meta) =
        SafeTensors::read_metadata(bytes).map_err(|e| MlError::BadWeightsFile(e.to_string()))?;
    let config = match meta.metadata().as_ref().and_then(|m| m.get(CONFIG_KEY)) {
        Some(json) => Some(serde_json::from_str(json).map_err(|e| {
            MlError::BadWeightsFile(format!(
                "metadata `{CONFIG_KEY}` is not a model config: {e}"
            ))
        })?),
        None => None,
    };
    let mut tensors = Vec::new();
    for (name, view) in st.tensors() {
        if view.dtype() != Dtype::F32 {
            return Err(MlError::WeightsMismatch(format!(
                "tensor `{name}` is {:?}; orrery-ml uses F32 only",
                view.dtype()
            )));
        }
        let data = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        tensors.push((
            name,
            Tensor {
                shape: view.shape().to_vec(),
                data,
            },
        ));
    }
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((ParamSet { tensors }, config))
}

/// Load weights for `config`: every tensor the config needs, with its shape, and nothing
/// else; the file's own config, if any, must equal `config`.
pub fn load_for(config: &ModelConfig, bytes: &[u8]) -> Result<ParamSet> {
    let (params, file_config) = from_safetensors(bytes)?;
    if let Some(fc) = file_config
        && &fc != config
    {
        let show = |c: &ModelConfig| serde_json::to_string(c).unwrap_or_else(|_| format!("{c:?}"));
        return Err(MlError::WeightsMismatch(format!(
            "the file was saved for model {}, the job spec asks for {}",
            show(&fc),
            show(config)
        )));
    }
    let params = params.conform_to(&config.template())?;
    if let Some(name) = params.first_non_finite() {
        return Err(MlError::WeightsMismatch(format!(
            "tensor `{name}` holds NaN or infinity"
        )));
    }
    Ok(params)
}
