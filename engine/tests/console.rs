//! The operations console in a real browser: Debian's headless Chromium driven over WebDriver
//! against the real `citybrain` binary (`scripts/console-browser.sh install` provides both; the
//! tests are skipped loudly when they are missing).

mod browser;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use browser::{Browser, wait_for};
use serde_json::json;

/// A running `citybrain run` with its console on an ephemeral port; killed on drop.
struct Engine {
    child: Child,
    addr: String,
    stderr: Arc<Mutex<String>>,
}

impl Engine {
    fn start(args: &[&str]) -> Engine {
        let mut child = Command::new(env!("CARGO_BIN_EXE_citybrain"))
            .arg("run")
            .args(["--console", "127.0.0.1:0"])
            .args(args)
            .env("CITYBRAIN_PSEUDONYM_KEY", "console-test-key")
            .env("CITYBRAIN_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("citybrain starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let pipe = child.stderr.take().expect("piped");
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let addr = wait_for(
            Duration::from_secs(60),
            "the console's address on stderr",
            || {
                let s = stderr.lock().unwrap();
                s.split("operations console url=http://")
                    .nth(1)
                    .map(|rest| rest.split('/').next().unwrap_or("").to_string())
            },
        );
        Engine {
            child,
            addr,
            stderr,
        }
    }

    fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("citybrain's stderr:\n{}", self.stderr.lock().unwrap());
        }
    }
}

/// Every request is to the console's own address (or an inline `data:` URL).
fn assert_all_local(urls: &[String], addr: &str) {
    assert!(!urls.is_empty(), "the performance log recorded no request");
    let outside: Vec<&String> = urls
        .iter()
        .filter(|u| !(u.starts_with(&format!("http://{addr}/")) || u.starts_with("data:")))
        .collect();
    assert!(outside.is_empty(), "requests leaving {addr}: {outside:?}");
}

#[test]
fn the_page_loads_from_the_binary_with_no_request_leaving_the_machine() {
    let Some(browser) = Browser::start() else {
        return;
    };
    let engine = Engine::start(&["--rate", "200", "--speed", "60"]);
    browser.goto("about:blank"); // the browser's own start page is not ours to judge
    browser.requested_urls();
    browser.goto(&engine.url());
    browser.wait_js(
        Duration::from_secs(20),
        "the login form",
        "return window.cbConsole && !document.getElementById('login').hidden",
    );
    let libraries = browser.js(
        "return [typeof L, L && L.version, typeof h3, typeof h3.cellToBoundary]",
        json!([]),
    );
    assert_eq!(
        libraries,
        json!(["object", "1.9.4", "object", "function"]),
        "Leaflet and h3-js run from the binary"
    );
    let urls = browser.requested_urls();
    for asset in [
        "/assets/app.js",
        "/assets/vendor/leaflet/leaflet.js",
        "/assets/vendor/h3-js/h3-js.umd.js",
        "/assets/console.css",
        "/config.json",
    ] {
        assert!(
            urls.iter().any(|u| u.ends_with(asset)),
            "{asset} was not requested: {urls:?}"
        );
    }
    assert_all_local(&urls, &engine.addr);
    assert_eq!(
        browser.console_errors(),
        Vec::<String>::new(),
        "the page logs no error"
    );
}

#[test]
fn an_explicit_console_address_must_bind_and_off_serves_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to occupy");
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .args(["run", "--duration", "5s", "--console", &addr])
        .env("CITYBRAIN_PSEUDONYM_KEY", "console-test-key")
        .stdout(Stdio::null())
        .output()
        .expect("citybrain runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a taken --console address must stop the run:\n{stderr}"
    );
    assert!(
        stderr.contains(&format!("cannot serve the console on {addr}")),
        "{stderr}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .args([
            "run",
            "--console",
            "nowhere:80",
            "--console-tiles",
            "ftp://x",
        ])
        .output()
        .expect("citybrain runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("--console: `nowhere:80` is neither IP:PORT nor `off`")
            && stderr.contains("--console-tiles: tile_url `ftp://x` must be an http(s) URL"),
        "every bad console flag is reported at once:\n{stderr}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_citybrain"))
        .args([
            "run",
            "--events",
            "2000",
            "--rate",
            "100000",
            "--console",
            "off",
        ])
        .env("CITYBRAIN_PSEUDONYM_KEY", "console-test-key")
        .env("CITYBRAIN_LOG", "info")
        .stdout(Stdio::null())
        .output()
        .expect("citybrain runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("operations console off") && !stderr.contains("operations console url="),
        "{stderr}"
    );
}
