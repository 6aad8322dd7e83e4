//! The `vectron` client commands, driven as a person or a script would — the built
//! binary against a real `vectron dev` with auth on: a saved profile, collections,
//! imports of every format (checked point by point through an export), searches
//! checked against brute force, keys, users and the cluster, typed exit codes, and an
//! import interrupted by Ctrl-C that `--resume` finishes without sending again what was
//! acknowledged.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use vectron_tests::cluster::{DevProcess, eventually, vectron_bin};

const DIM: usize = 8;

/// A deterministic vector for point `i` (splitmix64 of each coordinate's index: no two
/// points alike, so nearest neighbours have no ties).
fn vector(i: u64) -> Vec<f32> {
    let mix = |x: u64| {
        let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    (0..DIM as u64).map(|d| (mix(i * DIM as u64 + d) % 100_000) as f32 / 10_000.0 - 5.0).collect()
}

/// The `vectron` binary with a home of its own (profiles, import state).
struct Cli {
    home: PathBuf,
}

impl Cli {
    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(vectron_bin());
        c.args(args).env("HOME", &self.home).env_remove("XDG_CONFIG_HOME").env_remove("XDG_STATE_HOME");
        for var in ["VECTRON_URL", "VECTRON_API_KEY", "VECTRON_PROFILE", "VECTRON_PASSWORD", "VECTRON_CA_FILE"] {
            c.env_remove(var);
        }
        c
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut child =
            self.command(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, "")
    }

    /// Runs a command that must succeed; its stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "vectron {args:?}: {:?}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command with `-o json`; its answer.
    fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        let text = self.ok(&all);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("vectron {args:?}: not JSON ({e}): {text}"))
    }

    /// Runs a command that must fail with `code`; its stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.run(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "vectron {args:?}: {stderr}");
        stderr
    }
}

/// Waits for `child` to exit (killing it and failing after `limit`); its status and
/// stderr.
fn exited_within(mut child: std::process::Child, limit: Duration) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("vectron did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    use std::io::Read;
    child.stderr.take().map(|mut e| e.read_to_string(&mut stderr));
    (status, stderr)
}

fn write_jsonl(path: &Path, ids: std::ops::Range<u64>) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    for i in ids {
        let line = json!({"id": i, "vector": vector(i), "payload": {"tag": format!("t{}", i % 3), "n": i}});
        writeln!(f, "{line}").unwrap();
    }
}

/// A `.jsonl` export's records by (numeric) id.
fn read_export(path: &Path) -> BTreeMap<u64, Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap())
        .map(|v| (v["id"].as_u64().unwrap(), v))
        .collect()
}

fn l2(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// The ids of the `k` nearest of `ids` to `q` (brute force).
fn nearest(ids: impl Iterator<Item = u64>, q: &[f32], k: usize) -> Vec<u64> {
    let mut all: Vec<(f32, u64)> = ids.map(|i| (l2(q, &vector(i)), i)).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    all.into_iter().take(k).map(|(_, i)| i).collect()
}

fn hit_ids(answer: &Value) -> Vec<u64> {
    answer["hits"].as_array().unwrap().iter().map(|h| h["id"].as_u64().unwrap()).collect()
}

fn vector_arg(v: &[f32]) -> String {
    format!("--vector={}", v.iter().map(f32::to_string).collect::<Vec<_>>().join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_manages_imports_searches_and_exports_a_dev_cluster() {
    let dir = tempfile::tempdir().unwrap();
    let dev = DevProcess::start(dir.path());
    let key_file = dev.data.join("admin.key");
    let key = eventually(Duration::from_secs(60), "the admin key", || async {
        std::fs::read_to_string(&key_file).ok().filter(|k| k.ends_with('\n'))
    })
    .await;
    let url = format!("http://{}", dev.grpc);
    let cli = Cli { home: dir.path().join("home") };
    let (files, home) = (dir.path().join("files"), cli.home.clone());
    std::fs::create_dir_all(&files).unwrap();

    // Without credentials the gateway refuses: exit 4, the server's code on stderr.
    eventually(Duration::from_secs(60), "the gateway", || async {
        let out = cli.run(&["collections", "list", "--url", &url]);
        (out.status.code() == Some(4)).then_some(())
    })
    .await;
    let refused = cli.fails(&["collections", "list", "--url", &url], 4);
    assert!(refused.contains("UNAUTHENTICATED"), "{refused}");

    // A profile keeps the gateway and the key, owner-only.
    let login = cli.run_with_stdin(&["login", "--url", &url, "--api-key-stdin", "-o", "json"], &key);
    assert!(login.status.success(), "{}", String::from_utf8_lossy(&login.stderr));
    let saved: Value = serde_json::from_slice(&login.stdout).unwrap();
    assert_eq!(saved["profile"], "default");
    let config = home.join(".config/vectron/config.toml");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&config).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&config).unwrap().contains(&url));
    cli.fails(&["login", "--url", &url, "--api-key", "vx_0000_0000", "--profile", "bad"], 4);

    cli.ok(&[
        "collections",
        "create",
        "docs",
        "--dimension",
        "8",
        "--distance",
        "euclid",
        "--shards",
        "2",
        "--index",
        "tag:keyword",
    ]);
    let conflict = cli.fails(&["collections", "create", "docs", "--dimension", "8"], 6);
    assert!(conflict.contains("ALREADY_EXISTS"), "{conflict}");
    let table = cli.ok(&["collections", "list"]);
    assert!(table.lines().next().unwrap().starts_with("NAME") && table.contains("docs"), "{table}");
    let listed = cli.json(&["collections", "list"]);
    let docs = &listed["collections"].as_array().unwrap()[0];
    assert_eq!(
        (docs["name"].as_str(), docs["dimension"].as_u64(), docs["shards"].as_u64()),
        (Some("docs"), Some(8), Some(2))
    );
    assert_eq!(docs["indexes"], json!([{"field": "tag", "kind": "keyword"}]));

    // JSON Lines in, checked point by point through an export.
    const N: u64 = 3000;
    let jsonl = files.join("points.jsonl");
    write_jsonl(&jsonl, 0..N);
    let summary = cli.json(&["import", "docs", jsonl.to_str().unwrap(), "--batch-size", "100"]);
    assert_eq!((summary["imported"].as_u64(), summary["complete"].as_bool()), (Some(N), Some(true)), "{summary}");
    assert_eq!(cli.json(&["points", "count", "docs"])["count"], N);
    let exported = files.join("out.jsonl");
    cli.ok(&["export", "docs", exported.to_str().unwrap()]);
    let back = read_export(&exported);
    assert_eq!(back.len() as u64, N);
    for (i, v) in &back {
        let want = json!({"id": i, "vector": vector(*i), "payload": {"tag": format!("t{}", i % 3), "n": i}});
        assert_eq!(v, &want, "point {i} came back as it went in");
    }

    // Parquet: the export read back by import into another collection, point by point.
    let parquet = files.join("out.parquet");
    cli.ok(&["export", "docs", parquet.to_str().unwrap()]);
    assert!(std::fs::read(&parquet).unwrap().starts_with(b"PAR1"));
    cli.ok(&["collections", "create", "copy", "--dimension", "8", "--distance", "euclid"]);
    let summary = cli.json(&["import", "copy", parquet.to_str().unwrap(), "--batch-size", "500"]);
    assert_eq!(summary["imported"].as_u64(), Some(N), "{summary}");
    let copied = files.join("copy.jsonl");
    cli.ok(&["export", "copy", copied.to_str().unwrap()]);
    assert_eq!(read_export(&copied), back, "through Parquet and back, every point as it was");
    let ids_only = files.join("ids.parquet");
    cli.ok(&["export", "copy", ids_only.to_str().unwrap(), "--no-vectors"]);
    assert!(cli.fails(&["import", "docs", ids_only.to_str().unwrap()], 2).contains("no \"vector\" column"));
    cli.ok(&["collections", "delete", "copy", "--yes"]);

    // Searches answer what brute force says (ef above the shard sizes: exact).
    for q in [5u64, 777, 123_456] {
        let query = vector(q);
        let answer = cli.json(&["search", "docs", &vector_arg(&query), "--top-k", "7", "--ef", "2048"]);
        assert_eq!(hit_ids(&answer), nearest(0..N, &query, 7), "query {q}");
        let filter = r#"{"must": [{"key": "tag", "match": {"value": "t1"}}]}"#;
        let answer = cli.json(&["search", "docs", &vector_arg(&query), "-k", "5", "--ef", "2048", "--filter", filter]);
        assert_eq!(hit_ids(&answer), nearest((0..N).filter(|i| i % 3 == 1), &query, 5), "filtered query {q}");
        assert!(answer["hits"].as_array().unwrap().iter().all(|h| h["payload"]["tag"] == "t1"));
    }
    let vector_file = files.join("q.txt");
    std::fs::write(&vector_file, format!("{:?}", vector(9))).unwrap();
    let answer =
        cli.json(&["search", "docs", "--vector-file", vector_file.to_str().unwrap(), "-k", "1", "--ef", "2048"]);
    assert_eq!(hit_ids(&answer), vec![9]);

    // Bad input: typed exit codes and the server's code.
    assert!(cli.fails(&["search", "docs", "--vector=1,2"], 2).contains("DIMENSION_MISMATCH"));
    assert!(cli.fails(&["points", "count", "docs", "--tls-ca-file", "x"], 2).contains("--ca-file"), "a server flag");
    assert!(cli.fails(&["collections", "get", "nope"], 3).contains("COLLECTION_NOT_FOUND"));
    assert!(cli.fails(&["points", "count", "docs", "--filter", "{nope"], 2).contains("--filter"));
    assert!(cli.fails(&["import", "docs", "/no/such/file.jsonl"], 2).contains("/no/such/file.jsonl"));
    let parquet = files.join("p.parquet");
    std::fs::write(&parquet, b"PAR1").unwrap();
    assert!(cli.fails(&["import", "docs", parquet.to_str().unwrap()], 2).contains("p.parquet"), "not Parquet");
    cli.fails(&["collections", "delete", "docs"], 2); // no terminal to confirm on, no --yes

    // Points by id: get, delete, count.
    let got = cli.json(&["points", "get", "docs", "4", "5", "--with-vector"]);
    assert_eq!(got["points"].as_array().unwrap().len(), 2);
    assert_eq!(got["points"][0]["vector"], json!(vector(4)));
    assert!(cli.fails(&["points", "get", "docs", "4", "999999"], 3).contains("999999"));
    assert_eq!(cli.json(&["points", "delete", "docs", "4", "5"])["deleted"], 2);
    let filter = r#"{"must": [{"key": "tag", "match": {"value": "t2"}}]}"#;
    assert_eq!(cli.json(&["points", "delete", "docs", "--filter", filter])["deleted"], N / 3 - 1, "5 was gone already");
    assert_eq!(cli.json(&["points", "count", "docs"])["count"], N - N / 3 - 1);
    let page = cli.json(&["points", "scroll", "docs", "--limit", "10"]);
    assert_eq!(page["points"].as_array().unwrap().len(), 10);

    // .fvecs: ids from --start-id.
    cli.ok(&["collections", "create", "vecs", "--dimension", "8", "--distance", "euclid"]);
    let fvecs = files.join("v.fvecs");
    let mut bytes = Vec::new();
    for i in 0..500u64 {
        bytes.extend_from_slice(&(DIM as i32).to_le_bytes());
        vector(i).iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
    }
    std::fs::write(&fvecs, bytes).unwrap();
    let summary = cli.json(&["import", "vecs", fvecs.to_str().unwrap(), "--start-id", "1000", "--parallel", "2"]);
    assert_eq!(summary["imported"], 500, "{summary}");
    let got = cli.json(&["points", "get", "vecs", "1499", "--with-vector"]);
    assert_eq!(got["points"][0]["vector"], json!(vector(499)));
    // .csv: typed payload columns.
    let csv = files.join("p.csv");
    std::fs::write(&csv, "id,vector,kind,size\n1,\"[1,2,3,4,5,6,7,8]\",a,3\n2,1;2;3;4;5;6;7;9,b,4.5\n").unwrap();
    cli.ok(&["import", "vecs", csv.to_str().unwrap()]);
    let got = cli.json(&["points", "get", "vecs", "2"]);
    assert_eq!(got["points"][0]["payload"], json!({"kind": "b", "size": 4.5}));

    // Keys: a read key may read, not write (exit 4); revoked, it may do nothing.
    let created = cli.json(&["keys", "create", "--scope", "read", "--collections", "docs"]);
    let secret = created["secret_key"].as_str().unwrap().to_owned();
    let key_id = created["key_id"].as_str().unwrap().to_owned();
    assert_eq!(cli.json(&["points", "count", "docs", "--api-key", &secret])["count"], N - N / 3 - 1);
    assert!(cli.fails(&["points", "delete", "docs", "1", "--api-key", &secret], 4).contains("PERMISSION_DENIED"));
    let keys = cli.json(&["keys", "list", "--all"]);
    assert!(keys["keys"].as_array().unwrap().iter().any(|k| k["key_id"] == key_id.as_str()), "{keys}");
    assert_eq!(cli.json(&["keys", "revoke", &key_id])["revoked"], true);
    eventually(Duration::from_secs(30), "the revoked key to stop working", || async {
        (cli.run(&["points", "count", "docs", "--api-key", &secret]).status.code() == Some(4)).then_some(())
    })
    .await;

    // Users: an admin creates one, who logs in with a profile of their own.
    let ann = cli.run_with_stdin(&["users", "create", "ann", "--password-stdin", "-o", "json"], "ann-secret-42\n");
    assert!(ann.status.success(), "{}", String::from_utf8_lossy(&ann.stderr));
    let login =
        cli.run_with_stdin(&["login", "--profile", "ann", "--user", "ann", "--password-stdin"], "ann-secret-42\n");
    assert!(login.status.success(), "{}", String::from_utf8_lossy(&login.stderr));
    assert_eq!(cli.json(&["users", "get", "ann"])["role"], "user", "ann's profile is now the current one");
    // Expired: several commands at once, one refreshes the token and the others use it
    // (a refresh token used twice would end the session: every later command denied).
    let expire = || {
        let text = std::fs::read_to_string(&config).unwrap();
        let expired: String = text
            .lines()
            .map(|l| if l.starts_with("access_expires_at = ") { "access_expires_at = 0" } else { l })
            .collect::<Vec<_>>()
            .join("\n");
        assert_ne!(expired, text, "ann's profile has an access token");
        std::fs::write(&config, expired).unwrap();
    };
    for _ in 0..3 {
        expire();
        let at_once: Vec<_> = (0..6)
            .map(|_| {
                let mut c = cli.command(&["collections", "list", "-o", "json"]);
                c.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
            })
            .collect();
        for child in at_once {
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
    }
    // The refresh token saved is the live one: refreshing once more works.
    expire();
    assert_eq!(cli.json(&["users", "get", "ann"])["role"], "user", "the session lives on");
    let bad = cli.run_with_stdin(&["login", "--profile", "x", "--user", "ann", "--password-stdin"], "wrong\n");
    assert_eq!(bad.status.code(), Some(4), "{}", String::from_utf8_lossy(&bad.stderr));
    cli.ok(&["logout", "--profile", "ann"]);
    assert!(!std::fs::read_to_string(&config).unwrap().contains("refresh_token"), "the tokens are forgotten");
    let users = cli.json(&["users", "list", "--profile", "default"]);
    assert!(users["users"].as_array().unwrap().iter().any(|u| u["username"] == "ann"), "{users}");
    cli.ok(&["users", "delete", "ann", "--yes", "--profile", "default"]);

    // The cluster: one worker, healthy.
    let status = cli.json(&["cluster", "status", "--profile", "default"]);
    assert_eq!((status["workers"].as_u64(), status["healthy"].as_bool()), (Some(1), Some(true)), "{status}");
    let workers = cli.json(&["cluster", "workers", "--profile", "default"]);
    assert_eq!(workers["workers"][0]["state"], "up");
    assert!(workers["workers"][0]["replicas"].as_u64().unwrap() >= 3, "docs' two shards and vecs' one");
    assert!(cli.json(&["cluster", "alerts", "--all", "--profile", "default"])["alerts"].is_array());
    cli.fails(&["cluster", "resolve", "424242", "--profile", "default"], 3);

    // An import stopped by Ctrl-C is finished by --resume, which skips what was
    // acknowledged; the state file goes once it is done.
    const BIG: u64 = 60_000;
    cli.ok(&["collections", "create", "big", "--dimension", "8", "--profile", "default"]);
    let big = files.join("big.jsonl");
    write_jsonl(&big, 0..BIG);
    let state_dir = home.join(".local/state/vectron/imports");
    let args =
        ["import", "big", big.to_str().unwrap(), "--batch-size", "20", "--parallel", "1", "--profile", "default"];
    let child = cli.command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let state = loop {
        let file = std::fs::read_dir(&state_dir)
            .ok()
            .and_then(|d| d.flatten().map(|e| e.path()).find(|p| p.extension().is_some_and(|e| e == "json")));
        if let Some(s) = file.and_then(|p| std::fs::read_to_string(&p).ok().map(|t| (p, t))) {
            break s;
        }
        assert!(Instant::now() < deadline, "no import state was recorded");
        std::thread::sleep(Duration::from_millis(20));
    };
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let (status, stderr) = exited_within(child, Duration::from_secs(30));
    assert_eq!(status.code(), Some(130), "interrupted: {stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    let recorded: Value = serde_json::from_str(&std::fs::read_to_string(&state.0).unwrap()).unwrap();
    let acknowledged: u64 = recorded["acknowledged"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[1].as_u64().unwrap() - r[0].as_u64().unwrap())
        .sum();
    assert!(acknowledged > 0 && acknowledged < BIG / 20, "{recorded}");
    let kept = std::fs::read(&state.0).unwrap();
    let mut resume = args.to_vec();
    resume.push("--resume");
    let summary = cli.json(&resume);
    assert_eq!(summary["batches_skipped"].as_u64(), Some(acknowledged), "{summary}");
    assert_eq!(summary["imported"].as_u64(), Some(BIG - 20 * acknowledged), "{summary}");
    assert_eq!(summary["complete"], true);
    assert_eq!(cli.json(&["points", "count", "big", "--profile", "default"])["count"], BIG);
    assert!(!state.0.exists(), "a finished import leaves no state behind");
    // A changed file is another import: --resume refuses the old state.
    std::fs::write(&state.0, kept).unwrap();
    write_jsonl(&big, 0..BIG - 1);
    assert!(cli.fails(&resume, 6).contains("changed"));
    drop(dev);
}
