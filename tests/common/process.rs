//! The demo as a process of its own, and plain HTTP/1.1 to it. Also used by
//! `testsuite/examples/propagation.rs`.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A demo process, killed when dropped.
pub struct DemoProcess {
    pub port: u16,
    pub child: Child,
}

impl DemoProcess {
    /// Starts the demo (built by `cargo test` beside the test binary) with
    /// `database` and `secret`, and waits until it listens.
    pub fn start(database: &str, secret: &str) -> DemoProcess {
        DemoProcess::start_with(database, secret, &[])
    }

    /// [`start`](Self::start) with more environment variables.
    pub fn start_with(database: &str, secret: &str, variables: &[(&str, &str)]) -> DemoProcess {
        DemoProcess::start_logging(database, secret, "off", variables, Stdio::null())
    }

    /// [`start_with`](Self::start_with) at `log_level`, its standard output
    /// going to `stdout`.
    pub fn start_logging(
        database: &str,
        secret: &str,
        log_level: &str,
        variables: &[(&str, &str)],
        stdout: Stdio,
    ) -> DemoProcess {
        let sessions = format!("{{database=\"{database}\",secret=\"{secret}\"}}");
        DemoProcess::start_configured(&sessions, log_level, variables, stdout)
    }

    /// The demo with `sessions` as its `ROCKET_SESSIONS` (a TOML table).
    pub fn start_configured(sessions: &str, log_level: &str, variables: &[(&str, &str)], stdout: Stdio) -> DemoProcess {
        let demo = demo_binary();
        let port = free_port();
        let child = Command::new(demo)
            .envs(variables.iter().copied())
            .env("ROCKET_PORT", port.to_string())
            .env("ROCKET_LOG_LEVEL", log_level)
            .env("ROCKET_SESSIONS", sessions)
            .stdout(stdout)
            .spawn()
            .unwrap();
        wait_until_listening(port);
        DemoProcess { port, child }
    }

    /// One request to this process.
    pub fn http(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
        http(self.port, method, path, headers, body)
    }

    /// Kills the process at once (SIGKILL: no shutdown).
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for DemoProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The demo's executable, built by `cargo test` beside the test binary.
pub fn demo_binary() -> std::path::PathBuf {
    let demo = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/demo");
    assert!(demo.exists(), "{} is built by cargo test", demo.display());
    demo
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until a server listens on `port` (30 s at most).
pub fn wait_until_listening(port: u16) {
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed().as_secs() < 30, "the server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP/1.1 request to `port` over a fresh connection: the status and the
/// body.
pub fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_string();
    (status, body)
}

/// A string field of the JSON object in `body`.
pub fn json_field(body: &str, field: &str) -> String {
    let start = body.find('{').expect("a JSON body");
    let value: serde_json::Value = serde_json::from_str(&body[start..=body.rfind('}').unwrap()]).unwrap();
    value[field].as_str().expect(field).to_string()
}
