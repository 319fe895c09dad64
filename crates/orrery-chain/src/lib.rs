//! orrery-chain (being built).
