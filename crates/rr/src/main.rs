//! The stock `rr` binary: every built-in plugin.

fn main() -> std::process::ExitCode {
    rr::run(rr::plugins::all())
}
