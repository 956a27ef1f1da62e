//! One module per subcommand, each with its clap `Args` and a `run`.

pub mod query;
pub mod serve;
pub mod show;
pub mod stats;
