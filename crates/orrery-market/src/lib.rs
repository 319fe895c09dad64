//! orrery-market (being built).
