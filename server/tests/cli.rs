//! The `vectron` binary's command line: it refuses bad flags with a clear message and a
//! non-zero exit (and, being an integration test of this package, makes `cargo test`
//! build the binary the cluster tests in `tests/` run).

use std::process::Command;

fn vectron(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vectron")).args(args).output().expect("run vectron")
}

#[test]
fn help_lists_every_subcommand() {
    let out = vectron(&["--help"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for sub in ["placement", "worker", "gateway", "auth", "dev"] {
        assert!(text.contains(sub), "--help mentions {sub}: {text}");
    }
}

#[test]
fn bad_flags_are_refused() {
    let out = vectron(&["placement", "--durability", "sometimes"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("durability must be process or machine"));
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let out = vectron(&["placement", "--listen", "127.0.0.1:0", "--initial-members", "x", "--data-dir", &data]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is not id=host:port"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_auth_service_refuses_to_start_without_a_long_enough_signing_secret() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().display().to_string();
    let base = ["auth", "--listen", "127.0.0.1:0", "--data-dir", &data];
    let out = vectron(&base);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs a JWT signing secret"));
    let secret = dir.path().join("jwt");
    std::fs::write(&secret, "too short").unwrap();
    let out = vectron(&[&base[..], &["--signing-key-file", secret.to_str().unwrap()]].concat());
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32 are required"));
}
