//! One module per subcommand, each with its clap `Args` and a `run`.

pub mod diff;
pub mod export_git;
pub mod generate;
pub mod log;
pub mod query;
pub mod restore;
pub mod serve;
pub mod session;
pub mod show;
pub mod stats;
pub mod users;
pub mod verify;
