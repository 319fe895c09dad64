//! Deterministic ML: tensor operators with a fixed reduction order, models and training as workloads.
