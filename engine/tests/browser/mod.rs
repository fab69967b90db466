//! A headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`), and
//! a small blocking HTTP/1.1 JSON client for chromedriver and the incident API. No crates beyond
//! serde_json: the protocol is a few JSON requests.

#![allow(dead_code)]

pub mod scenarios;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// Polls `probe` every 20 ms until it returns `Some` or `timeout` passes (then panics with
/// `what`). A plain test thread polling a condition with a deadline: no async worker to block.
#[allow(clippy::disallowed_methods)]
pub fn wait_for<T>(timeout: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One HTTP response: status and body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// A blocking HTTP/1.1 request (one connection each, `Connection: close`).
pub fn http(
    method: &str,
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&Value>,
) -> Response {
    let mut stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    stream
        // Generous: on a loaded host Chromium's start (a new session) has taken over 60 s.
        .set_read_timeout(Some(Duration::from_secs(180)))
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        request.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(&body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut reader = BufReader::new(stream);
    let mut status_line = String::new();
    reader.read_line(&mut status_line).unwrap();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line from {addr}{path}: {status_line:?}"));
    let mut chunked = false;
    let mut length = None;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("transfer-encoding:") && lower.contains("chunked") {
            chunked = true;
        }
        if let Some(v) = lower.strip_prefix("content-length:") {
            length = v.trim().parse::<usize>().ok();
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).unwrap();
            let size = usize::from_str_radix(size.trim().split(';').next().unwrap_or("0"), 16)
                .unwrap_or(0);
            if size == 0 {
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).unwrap();
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(n) = length {
        body.resize(n, 0);
        reader.read_exact(&mut body).unwrap();
    } else {
        reader.read_to_end(&mut body).unwrap();
    }
    Response { status, body }
}

/// The incident API as a unit sees it (bearer token).
#[derive(Debug, Clone)]
pub struct ApiClient {
    pub addr: String,
    pub token: String,
}

impl ApiClient {
    pub fn get(&self, path: &str) -> Response {
        let auth = format!("Bearer {}", self.token);
        http("GET", &self.addr, path, &[("Authorization", &auth)], None)
    }

    pub fn get_json(&self, path: &str) -> Value {
        let r = self.get(path);
        assert_eq!(
            r.status,
            200,
            "GET {path}: {}",
            String::from_utf8_lossy(&r.body)
        );
        r.json()
    }

    pub fn post(&self, path: &str, body: &Value) -> Response {
        let auth = format!("Bearer {}", self.token);
        http(
            "POST",
            &self.addr,
            path,
            &[("Authorization", &auth)],
            Some(body),
        )
    }
}

/// Where Debian's packages put the browser and its driver (or the CITYBRAIN_CHROMIUM /
/// CITYBRAIN_CHROMEDRIVER overrides).
fn tools() -> Option<(PathBuf, PathBuf)> {
    let find = |env: &str, name: &str| -> Option<PathBuf> {
        if let Some(p) = std::env::var_os(env) {
            return Some(PathBuf::from(p));
        }
        std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        })
    };
    Some((
        find("CITYBRAIN_CHROMIUM", "chromium")?,
        find("CITYBRAIN_CHROMEDRIVER", "chromedriver")?,
    ))
}

/// Kills and waits for a child process when dropped while it still holds one.
struct Reap(Option<Child>);

impl Drop for Reap {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A headless Chromium session: a chromedriver of its own (ephemeral port), a fresh profile,
/// the performance log on (every network request the page makes).
pub struct Browser {
    driver: Child,
    addr: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts the browser, or returns `None` after saying loudly why the browser tests are
    /// skipped (chromium or chromedriver missing: `scripts/console-browser.sh install`).
    pub fn start() -> Option<Browser> {
        let Some((chromium, chromedriver)) = tools() else {
            eprintln!(
                "\n*** SKIPPED: browser tests need Debian's chromium and chromium-driver \
                 (scripts/console-browser.sh install; scripts/test.sh runs it) ***\n"
            );
            assert!(
                std::env::var_os("CITYBRAIN_REQUIRE_BROWSER").is_none(),
                "CITYBRAIN_REQUIRE_BROWSER is set but chromium/chromedriver are missing"
            );
            return None;
        };
        let driver = Command::new(&chromedriver)
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", chromedriver.display()));
        // Until the session exists, a panic below must not leave the driver running.
        let mut driver = Reap(Some(driver));
        let child = driver.0.as_mut().expect("just set");
        let mut out = BufReader::new(child.stdout.take().expect("piped"));
        let mut port = None;
        let mut seen = String::new();
        for _ in 0..20 {
            let mut line = String::new();
            if out.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            seen.push_str(&line);
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                port = rest.trim().trim_end_matches('.').parse::<u16>().ok();
                break;
            }
        }
        let port = port.unwrap_or_else(|| panic!("chromedriver did not say its port:\n{seen}"));
        // Keep reading its stdout so it never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut out, &mut std::io::sink()));
        let addr = format!("127.0.0.1:{port}");
        let profile = tempfile::tempdir().expect("profile dir");
        let args = vec![
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--disable-default-apps".into(),
            "--disable-dev-shm-usage".into(),
            "--window-size=1600,1000".into(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": chromium.to_string_lossy(), "args": args},
            "goog:loggingPrefs": {"performance": "ALL", "browser": "ALL"},
        }}});
        let r = wait_for(
            Duration::from_secs(30),
            "chromedriver to accept a session",
            || {
                TcpStream::connect(&addr).ok()?;
                Some(http("POST", &addr, "/session", &[], Some(&caps)))
            },
        );
        let v = r.json();
        let session = v["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Some(Browser {
            driver: driver.0.take().expect("not reaped"),
            addr,
            session,
            _profile: profile,
        })
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        let r = http(method, &self.addr, &path, &[], body);
        let v = r.json();
        assert_eq!(r.status, 200, "WebDriver {method} {path}: {v}");
        v["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(&json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` are `args`) in the page, returns its value.
    pub fn js(&self, script: &str, args: Value) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": args })),
        )
    }

    /// Waits until `script` returns something other than null/false/undefined; returns it.
    pub fn wait_js(&self, timeout: Duration, what: &str, script: &str) -> Value {
        wait_for(timeout, what, || {
            let v = self.js(script, json!([]));
            (!(v.is_null() || v == Value::Bool(false))).then_some(v)
        })
    }

    /// The first element matching a CSS selector (its WebDriver reference), if any.
    pub fn find(&self, css: &str) -> Option<String> {
        let path = format!("/session/{}/elements", self.session);
        let r = http(
            "POST",
            &self.addr,
            &path,
            &[],
            Some(&json!({"using": "css selector", "value": css})),
        );
        let v = r.json();
        v["value"]
            .as_array()?
            .first()
            .and_then(|e| e.as_object()?.values().next()?.as_str().map(String::from))
    }

    pub fn click(&self, css: &str) {
        let el = self.find(css).unwrap_or_else(|| panic!("no element {css}"));
        self.call("POST", &format!("/element/{el}/click"), Some(&json!({})));
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).unwrap_or_else(|| panic!("no element {css}"));
        self.call(
            "POST",
            &format!("/element/{el}/value"),
            Some(&json!({ "text": text })),
        );
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        let b64 = self.call("GET", "/screenshot", None);
        base64_decode(b64.as_str().expect("screenshot is base64"))
    }

    /// Every URL the browser requested since the last call (Chrome's performance log:
    /// `Network.requestWillBeSent`).
    pub fn requested_urls(&self) -> Vec<String> {
        let entries = self.call("POST", "/se/log", Some(&json!({"type": "performance"})));
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|e| serde_json::from_str::<Value>(e["message"].as_str()?).ok())
            .filter(|m| m["message"]["method"] == "Network.requestWillBeSent")
            .filter_map(|m| {
                m["message"]["params"]["request"]["url"]
                    .as_str()
                    .map(String::from)
            })
            .collect()
    }

    /// The page's console messages at level SEVERE since the last call.
    pub fn console_errors(&self) -> Vec<String> {
        let entries = self.call("POST", "/se/log", Some(&json!({"type": "browser"})));
        entries
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["level"] == "SEVERE")
            .filter_map(|e| e["message"].as_str().map(String::from))
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let path = format!("/session/{}", self.session);
        let _ = std::panic::catch_unwind(|| http("DELETE", &self.addr, &path, &[], None));
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = s
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let n = chunk.iter().fold(0u32, |acc, &c| (acc << 6) | value(c)) << (6 * (4 - chunk.len()));
        let b = n.to_be_bytes();
        out.extend_from_slice(&b[1..chunk.len()]);
    }
    out
}
