//! orrery-provider (being built).
