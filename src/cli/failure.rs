//! How a command fails: an exit code every command shares (0 success, 1 the
//! operation failed, 2 bad usage or configuration) and a message for a person.

use artifortress_operator::engine::EngineError;

const EXIT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;

pub struct Failure {
    pub code: u8,
    pub message: String,
}

/// Bad usage or configuration: what was wrong and what to do (exit code 2).
pub fn usage(e: impl ToString) -> Failure {
    Failure { code: EXIT_USAGE, message: e.to_string() }
}

/// The operation itself failed (exit code 1).
pub fn failed(e: impl ToString) -> Failure {
    Failure { code: EXIT_FAILED, message: e.to_string() }
}

/// The engine says which of the two its errors are.
pub fn engine_failure(e: EngineError) -> Failure {
    if e.is_usage() { usage(e) } else { failed(e) }
}

/// In an engine Job's pod, the error also goes to the container's termination
/// message (the kubelet keeps at most 4 KiB of it), where the operator reads
/// why the step failed. The message is the redacted one: a failed tool's whole
/// output stays in the log.
pub fn write_termination_message(message: &str) {
    let Some(path) = std::env::var_os(artifortress_operator::controller::jobs::TERMINATION_LOG_ENV) else { return };
    let mut cut = message.len().min(4000);
    while !message.is_char_boundary(cut) {
        cut -= 1;
    }
    if let Err(e) = std::fs::write(&path, &message[..cut]) {
        eprintln!("could not write the termination message to {}: {e}", path.to_string_lossy());
    }
}
