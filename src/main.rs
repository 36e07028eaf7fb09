//! The `authsome` binary: everything lives in the library (`authsome::cli`).

fn main() -> std::process::ExitCode {
    authsome::cli::main()
}
