//! Whole-model gradient checks (every parameter tensor, sampled coordinates) and config errors.

use super::mlp::Activation;
use super::*;
use crate::rng::Rng;

fn check_model_grads(cfg: &ModelConfig, batch: &Batch) {
    let params = cfg.init_params(3);
    let (_, grads) = cfg.loss_and_grads(&params, batch, 2).unwrap();
    let eps = 1e-2f32;
    let mut rng = Rng::new(9);
    for (ti, (name, t)) in params.tensors.iter().enumerate() {
        for _ in 0..3 {
            let i = rng.below(t.len() as u64) as usize;
            let mut p = params.clone();
            p.get_mut(ti).data[i] += eps;
            let lp = cfg.loss(&p, batch, 1).unwrap() as f64;
            p.get_mut(ti).data[i] -= 2.0 * eps;
            let lm = cfg.loss(&p, batch, 1).unwrap() as f64;
            let numeric = (lp - lm) / (2.0 * eps as f64);
            let analytic = grads.get(ti).data[i] as f64;
            let err = (numeric - analytic).abs();
            assert!(
                err < 2e-3 + 5e-2 * analytic.abs(),
                "{name}[{i}]: analytic {analytic} vs numeric {numeric}"
            );
        }
    }
}

#[test]
fn mlp_gradients_match_finite_differences() {
    for activation in [Activation::Gelu, Activation::Relu] {
        let cfg = ModelConfig::Mlp(MlpConfig {
            inputs: 3,
            hidden: vec![8, 6],
            classes: 4,
            activation,
        });
        let mut rng = Rng::new(1);
        let x: Vec<f32> = (0..5 * 3).map(|_| rng.normal()).collect();
        let y = vec![0, 3, 1, 2, 1];
        check_model_grads(&cfg, &Batch::Classify { x, y });
    }
}

#[test]
fn transformer_gradients_match_finite_differences() {
    let cfg = ModelConfig::Transformer(TransformerConfig {
        vocab_size: 7,
        d_model: 8,
        n_layers: 2,
        n_heads: 2,
        context: 6,
        ff_mult: 2,
    });
    let ids = vec![1, 2, 3, 4, 5, 6, 0, 2, 2, 5];
    let targets = vec![2, 3, 4, 5, 6, 0, 1, 3, 5, 1];
    check_model_grads(
        &cfg,
        &Batch::Tokens {
            ids,
            targets,
            batch: 2,
            seq: 5,
        },
    );
}

#[test]
fn inconsistent_configs_are_rejected_with_the_fix() {
    let bad_heads = ModelConfig::Transformer(TransformerConfig {
        vocab_size: 96,
        d_model: 30,
        n_layers: 1,
        n_heads: 4,
        context: 8,
        ff_mult: 4,
    });
    let msg = bad_heads.validate().unwrap_err().to_string();
    assert!(
        msg.contains("divisible by n_heads") && msg.contains("try n_heads = 3"),
        "{msg}"
    );
    let zero_hidden = ModelConfig::Mlp(MlpConfig {
        inputs: 2,
        hidden: vec![16, 0],
        classes: 3,
        activation: Activation::Relu,
    });
    let msg = zero_hidden.validate().unwrap_err().to_string();
    assert!(msg.contains("hidden[1]"), "{msg}");
    let one_class = ModelConfig::Mlp(MlpConfig {
        inputs: 2,
        hidden: vec![],
        classes: 1,
        activation: Activation::Relu,
    });
    assert!(one_class.validate().is_err());
}
