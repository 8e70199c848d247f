//! Behind a real nginx (Debian's `nginx`), configured with the README's own
//! `location` block: a client cannot pick the address the crate records and
//! throttles, whatever forwarding headers it sends. nginx passes on every
//! header it does not overwrite, so the client's `Forwarded` and `X-Real-IP`
//! reach the app untouched unless the config clears them.
//!
//! The clients connect from 127.0.0.2 and 127.0.0.3 (loopback addresses that
//! are not the trusted proxy); nginx connects to the app from 127.0.0.1, the
//! one trusted proxy. CI installs nginx; elsewhere the tests skip without it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::process::{free_port, json_field};
use rocket::http::Status;
use rocket::tokio::io::{AsyncReadExt, AsyncWriteExt};
use rocket::tokio::net::TcpSocket;
use rocket::{post, routes, State};
use rocket_sqlite_sessions::testing::TestHarness;
use rocket_sqlite_sessions::{ClientInfo, Error, Sessions};

const NGINX: &str = "/usr/sbin/nginx";

/// A wrong password for `username`, every time.
#[post("/guess/<username>")]
async fn guess(sessions: &State<Sessions>, client: ClientInfo, username: &str) -> Result<Status, Error> {
    sessions.credential_check(username, &client).await?.failed().await?;
    Ok(Status::Unauthorized)
}

/// The guide's nginx `location` block (docs/proxies.md), proxying to `app_port`.
fn readme_location(app_port: u16) -> String {
    let readme = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/proxies.md")).unwrap();
    let start = readme.find("```nginx\n").expect("docs/proxies.md has an nginx block") + "```nginx\n".len();
    let block = &readme[start..];
    let block = &block[..block.find("```").unwrap()];
    assert!(
        block.contains("127.0.0.1:8000"),
        "the guide's block proxies to the demo's port"
    );
    block.replace("127.0.0.1:8000", &format!("127.0.0.1:{app_port}"))
}

/// nginx on a loopback port, with the README's block; stopped when dropped.
struct Nginx {
    port: u16,
    child: Child,
    directory: PathBuf,
}

impl Nginx {
    /// nginx serving the README's block in front of `app_port` (the tests
    /// that call this are ignored without nginx: testsuite/build.rs).
    fn start(directory: &Path, app_port: u16) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "the nginx tests need {NGINX}: install Debian's nginx"
        );
        let directory = directory.join("nginx");
        std::fs::create_dir_all(&directory).unwrap();
        let port = free_port();
        let d = directory.display();
        let config = format!(
            "daemon off;\nmaster_process off;\nworker_processes 1;\npid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\nevents {{ worker_connections 64; }}\n\
             http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  \
             fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n  \
             server {{\n    listen 127.0.0.1:{port};\n{}\n  }}\n}}\n",
            readme_location(app_port)
        );
        std::fs::write(directory.join("nginx.conf"), config).unwrap();
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(&directory)
            .arg("-c")
            .arg(directory.join("nginx.conf"))
            .stdout(Stdio::null())
            .spawn()
            .expect("nginx starts");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let log = std::fs::read_to_string(directory.join("error.log")).unwrap_or_default();
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "nginx did not start: {log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Nginx { port, child, directory }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

/// One HTTP/1.1 request to nginx from the loopback address `from`: the
/// status and the body.
async fn request_from(from: &str, port: u16, method: &str, path: &str, headers: &[(&str, String)]) -> (u16, String) {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{from}:0").parse().unwrap()).unwrap();
    let mut stream = socket.connect(([127, 0, 0, 1], port).into()).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("Content-Length: 0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    let status = answer[9..12].parse().unwrap();
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body).to_string();
    (status, body)
}

/// The test app behind nginx: 127.0.0.1 trusted, as the README says, and the
/// network throttle at 3 failures.
struct Deployment {
    nginx: Nginx,
    shutdown: rocket::Shutdown,
    _harness: TestHarness,
}

impl Deployment {
    async fn start() -> Deployment {
        let harness = TestHarness::new();
        let app_port = free_port();
        let figment = harness
            .figment()
            .merge(("port", app_port))
            .merge(("log_level", "off"))
            .merge(("sessions.trusted_proxies", ["127.0.0.1", "::1"]))
            .merge(("sessions.ip_max_failures", 3));
        let nginx = Nginx::start(harness.directory(), app_port);
        let rocket = common::with_routes(rocket::custom(figment).attach(harness.fairing())).mount("/", routes![guess]);
        let ignited = rocket.ignite().await.expect("the app ignites");
        let shutdown = ignited.shutdown();
        rocket::tokio::spawn(ignited.launch());
        common::process::wait_until_listening(app_port);
        Deployment {
            nginx,
            shutdown,
            _harness: harness,
        }
    }

    async fn send(&self, from: &str, method: &str, path: &str, headers: &[(&str, String)]) -> (u16, String) {
        request_from(from, self.nginx.port, method, path, headers).await
    }
}

impl Drop for Deployment {
    fn drop(&mut self) {
        self.shutdown.clone().notify();
    }
}

/// Every header a client could forge, claiming `ip`.
fn forged(ip: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Forwarded", format!("for={ip};proto=https")),
        ("X-Real-IP", ip.to_string()),
        ("X-Forwarded-For", ip.to_string()),
        ("X-Forwarded-Proto", "https".to_string()),
    ]
}

#[rocket::async_test]
#[cfg_attr(not(nginx), ignore = "needs Debian's nginx (see testsuite/build.rs)")]
async fn behind_the_readmes_nginx_the_device_list_shows_the_real_client() {
    let deployment = Deployment::start().await;
    let (status, body) = deployment
        .send("127.0.0.2", "POST", "/login/alice", &forged("203.0.113.5"))
        .await;
    assert_eq!(status, 200, "{body}");
    let access = json_field(&body, "access_token");
    let (status, body) = deployment
        .send(
            "127.0.0.2",
            "GET",
            "/auth/sessions",
            &[("Authorization", format!("Bearer {access}"))],
        )
        .await;
    assert_eq!(status, 200);
    let listed: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        listed[0]["ip"], "127.0.0.2",
        "the address nginx saw, not a forged one: {listed}"
    );
}

#[rocket::async_test]
#[cfg_attr(not(nginx), ignore = "needs Debian's nginx (see testsuite/build.rs)")]
async fn behind_the_readmes_nginx_forged_headers_neither_escape_nor_aim_the_throttle() {
    let deployment = Deployment::start().await;
    // A fresh forged address per guess, from 127.0.0.2: one network all the same.
    let mut statuses = Vec::new();
    for n in 0..6 {
        let (status, _) = deployment
            .send(
                "127.0.0.2",
                "POST",
                &format!("/guess/user-{n}"),
                &forged(&format!("203.0.113.{n}")),
            )
            .await;
        statuses.push(status);
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429]);
    // Failing "as" the victim's address never locks the victim out.
    for n in 0..6 {
        deployment
            .send("127.0.0.2", "POST", &format!("/guess/other-{n}"), &forged("127.0.0.3"))
            .await;
    }
    let (status, _) = deployment.send("127.0.0.3", "POST", "/guess/victim", &[]).await;
    assert_eq!(status, 401, "the victim's own network is not throttled");
}
