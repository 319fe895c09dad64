//! One module per subcommand.

pub mod demo;
pub mod devnet;
pub mod inference;
pub mod job;
pub mod market;
pub mod ml;
pub mod node;
pub mod run_local;
pub mod sim;
pub mod supervise;
pub mod wallet;
