//! Which of the tests that need something cargo does not build can run here.
//!
//! Each such test carries `#[cfg_attr(not(<cfg>), ignore = "<what it needs>")]`,
//! so that `cargo test` reports a test that could not run as ignored, with
//! the reason, instead of `ok`. The cfgs:
//!
//! | cfg | on when |
//! |---|---|
//! | `postgres_server` | `--features postgres` and `ROCKET_SESSIONS_TEST_POSTGRES` is set |
//! | `pgbouncer_server` | as above, and `ROCKET_SESSIONS_TEST_PGBOUNCER` is set |
//! | `postgres_tls_server` | `--features postgres` and `ROCKET_SESSIONS_TEST_POSTGRES_TLS` and `…_CA_DIR` are set |
//! | `browser` | `/usr/bin/chromium` and `/usr/bin/chromedriver` exist, or `REQUIRE_BROWSER` is set |
//! | `nginx` | `/usr/sbin/nginx` exists |
//! | `python_clients` | `python3` imports authlib, jwt, requests and cryptography |
//! | `node_clients` | `node` runs and `npm ci` installed `tests/stock_clients/node` (oauth4webapi) |
//! | `lazyfs` | `/dev/fuse` exists and Debian's `/usr/bin/python3` imports `fusepy` (package python3-fusepy), as root |
//!
//! With `CI` set, each is on whatever is found (the PostgreSQL ones still
//! need `--features postgres`): CI runs every test, and one whose server or
//! tool is missing fails instead of being ignored.

use std::path::Path;
use std::process::Command;

const VARIABLES: [&str; 7] = [
    "CI",
    "REQUIRE_BROWSER",
    "ROCKET_SESSIONS_TEST_POSTGRES",
    "ROCKET_SESSIONS_TEST_PGBOUNCER",
    "ROCKET_SESSIONS_TEST_POSTGRES_TLS",
    "ROCKET_SESSIONS_TEST_POSTGRES_CA_DIR",
    "PATH",
];

fn set(variable: &str) -> bool {
    std::env::var_os(variable).is_some_and(|value| !value.is_empty())
}

/// Whether the programs exist; when one does not, installing it (which
/// changes its directory) builds the tests again.
fn installed(programs: &[&str]) -> bool {
    let missing: Vec<&Path> = programs.iter().map(Path::new).filter(|p| !p.exists()).collect();
    for program in programs.iter().map(Path::new) {
        let watched = if program.exists() {
            program
        } else {
            program.parent().unwrap()
        };
        println!("cargo::rerun-if-changed={}", watched.display());
    }
    missing.is_empty()
}

fn python_clients() -> bool {
    Command::new("python3")
        .args(["-c", "import authlib, jwt, requests, cryptography"])
        .output()
        .is_ok_and(|output| output.status.success())
}

fn node_clients() -> bool {
    // `npm ci` there builds the tests again.
    println!("cargo::rerun-if-changed=../tests/stock_clients/node");
    let installed = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/stock_clients/node/node_modules/oauth4webapi/package.json")
        .exists();
    installed
        && Command::new("node")
            .arg("--version")
            .output()
            .is_ok_and(|output| output.status.success())
}

/// The power-cut filesystem (tests/powercut/lazyfs.py, run by Debian's
/// python3 with its fusepy) can mount here.
fn lazyfs() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| output.stdout.starts_with(b"0\n"));
    root && installed(&["/dev/fuse", "/usr/lib/python3/dist-packages/fusepy.py"])
}

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    for variable in VARIABLES {
        println!("cargo::rerun-if-env-changed={variable}");
    }
    let ci = set("CI");
    let postgres = set("CARGO_FEATURE_POSTGRES");
    let on = [
        (
            "postgres_server",
            postgres && (ci || set("ROCKET_SESSIONS_TEST_POSTGRES")),
        ),
        (
            "pgbouncer_server",
            postgres && (ci || set("ROCKET_SESSIONS_TEST_POSTGRES") && set("ROCKET_SESSIONS_TEST_PGBOUNCER")),
        ),
        (
            "postgres_tls_server",
            postgres && (ci || set("ROCKET_SESSIONS_TEST_POSTGRES_TLS") && set("ROCKET_SESSIONS_TEST_POSTGRES_CA_DIR")),
        ),
        (
            "browser",
            installed(&["/usr/bin/chromium", "/usr/bin/chromedriver"]) || ci || set("REQUIRE_BROWSER"),
        ),
        ("nginx", installed(&["/usr/sbin/nginx"]) || ci),
        ("python_clients", ci || python_clients()),
        ("node_clients", ci || node_clients()),
        ("lazyfs", ci || lazyfs()),
    ];
    for (cfg, enabled) in on {
        println!("cargo::rustc-check-cfg=cfg({cfg})");
        if enabled {
            println!("cargo::rustc-cfg={cfg}");
        }
    }
}
