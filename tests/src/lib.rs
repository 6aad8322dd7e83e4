//! Cross-process tests: real processes on loopback (SIGKILL, restart from disk, etcd).
//! The tests live in `tests/tests/`; this library holds their shared helpers.
//!
//! Layout:
//! - [`must_run`]: runs a helper binary of this crate, panicking with its output on failure.

use std::process::Command;

/// Runs `cmd` to completion and panics with its output if it fails.
pub fn must_run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("spawning {cmd:?}: {e}"))
        ;
    if !out.status.success() {
        panic!(
            "{cmd:?} failed with {}\nstdout:\n{}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8_lossy(&out.stdout).into_owned()
}
