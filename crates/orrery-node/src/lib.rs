//! orrery-node (being built).
