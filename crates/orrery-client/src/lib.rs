//! orrery-client (being built).
