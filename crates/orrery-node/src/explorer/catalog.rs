//! The reference cloud prices the overview sets the network's median prices beside: the one
//! catalog lives in `orrery_market::reference` (the simulator reads it too).

pub use orrery_market::reference::*;
