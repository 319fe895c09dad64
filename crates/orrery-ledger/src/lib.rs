//! The deterministic state machine that holds Orrery's money.
