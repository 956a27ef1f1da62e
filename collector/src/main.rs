use std::process::ExitCode;

fn main() -> ExitCode {
    filetrail_collector::cli::main()
}
