//! The engine's HTTP server (`citybrain_engine::http::serve`) with `/metrics` on it, against
//! hostile and careless clients: slow ones, oversized requests, many at once. Every server
//! binds port 0.
//!
//! Issue 11: the old endpoint read a request line of any size (200 MB grew the engine by
//! 200 MB) and served one connection at a time (a slow client blocked every scrape).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::{get, post};
use citybrain_engine::http::{HttpLimits, serve};
use citybrain_engine::metrics::Metrics;

/// Generous bound for what a healthy server does in milliseconds.
const DEADLINE: Duration = Duration::from_secs(20);

/// Test limits: a short idle timeout so that the tests see it act.
fn limits() -> HttpLimits {
    HttpLimits {
        idle_timeout_ms: 500,
        ..HttpLimits::default()
    }
}

/// `/metrics`, plus `POST /upload` answering the length of the body it read, `/slow` answering
/// after 2 s, and `/stream` sending three chunks 300 ms apart (as server-sent events do).
fn router() -> Router {
    Metrics::recorder()
        .router()
        .route(
            "/upload",
            post(|body: axum::body::Bytes| async move { body.len().to_string() }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(2)).await;
                "late"
            }),
        )
        .route(
            "/stream",
            get(|| async {
                let chunks = futures::stream::unfold(0, |n| async move {
                    if n == 3 {
                        return None;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Some((Ok::<_, std::io::Error>(format!("chunk{n};")), n + 1))
                });
                axum::body::Body::from_stream(chunks)
            }),
        )
}

/// Starts a server on its own runtime thread; returns its address.
fn start(limits: HttpLimits) -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind port 0");
            tx.send(listener.local_addr().expect("addr"))
                .expect("send addr");
            serve(listener, router(), &limits, std::future::pending()).await;
        });
    });
    rx.recv_timeout(DEADLINE).expect("server started")
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout");
    s.set_write_timeout(Some(DEADLINE)).expect("timeout");
    s
}

/// The whole response to `request` (the server closes after `Connection: close`).
fn exchange(addr: SocketAddr, request: &str) -> String {
    let mut s = connect(addr);
    s.write_all(request.as_bytes()).expect("request");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn scrape(addr: SocketAddr) -> String {
    exchange(
        addr,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
}

/// Resident memory of this process (tests and server), bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("resident pages");
    pages * 4096
}

/// Writes `total` bytes of `fill` after `head`, in chunks, until done or the server stops
/// reading (closes); returns how much was written.
fn flood(s: &mut TcpStream, head: &str, fill: u8, total: usize) -> usize {
    s.write_all(head.as_bytes()).expect("head");
    let chunk = vec![fill; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        match s.write(&chunk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => break, // reset or broken pipe: the server hung up, as it should
        }
    }
    sent
}

/// What the server answered before hanging up, if anything.
fn answer(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_slow_client_does_not_block_a_scrape_and_is_dropped_when_idle() {
    let addr = start(limits());
    // Half a request head, then silence.
    let mut slow = connect(addr);
    slow.write_all(b"GET /metr").expect("partial request");
    let started = Instant::now();
    let body = scrape(addr);
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    assert!(started.elapsed() < DEADLINE);
    // The slow client is disconnected once the idle timeout passes (a read returns then).
    let mut rest = Vec::new();
    let waited = Instant::now();
    let _ = slow.read_to_end(&mut rest);
    assert!(
        waited.elapsed() < DEADLINE,
        "the slow client was never dropped"
    );
    // An idle keep-alive connection too.
    let mut idle = connect(addr);
    idle.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut first = [0u8; 12];
    idle.read_exact(&mut first).expect("response");
    assert_eq!(&first, b"HTTP/1.1 200");
    let waited = Instant::now();
    let _ = idle.read_to_end(&mut Vec::new());
    assert!(
        waited.elapsed() < DEADLINE,
        "the idle connection was never closed"
    );
}

#[test]
fn many_concurrent_scrapes_all_succeed() {
    let addr = start(limits());
    let clients: Vec<_> = (0..48)
        .map(|_| {
            std::thread::spawn(move || {
                (0..4)
                    .map(|_| scrape(addr))
                    .filter(|r| r.starts_with("HTTP/1.1 200"))
                    .count()
            })
        })
        .collect();
    let ok: usize = clients.into_iter().map(|c| c.join().expect("client")).sum();
    assert_eq!(ok, 48 * 4);
    let other = exchange(
        addr,
        "GET /other HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(other.starts_with("HTTP/1.1 404"), "{other}");
}

#[test]
fn oversized_request_lines_headers_and_bodies_are_refused_without_growing() {
    let limits = limits();
    let addr = start(limits.clone());
    let before = rss();
    // A 64 MB request line, a 64 MB header, a 64 MB chunked body: each refused early.
    let mut line = connect(addr);
    let sent = flood(&mut line, "GET /", b'a', 64 << 20);
    let reply = answer(&mut line);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 431"),
        "{reply}"
    );
    assert!(sent < 64 << 20, "the server read a 64 MB request line");

    let mut header = connect(addr);
    flood(
        &mut header,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ",
        b'b',
        64 << 20,
    );
    let reply = answer(&mut header);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 431"),
        "{reply}"
    );

    let mut body = connect(addr);
    flood(
        &mut body,
        "POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n4000000\r\n",
        b'c',
        64 << 20,
    );
    let reply = answer(&mut body);
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 413"),
        "{reply}"
    );
    // A declared length over the limit is refused before any of it is read.
    let declared = exchange(
        addr,
        &format!(
            "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            limits.max_body_bytes + 1
        ),
    );
    assert!(declared.starts_with("HTTP/1.1 413"), "{declared}");
    let small = exchange(
        addr,
        "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
    );
    assert!(small.ends_with("\r\n\r\n5"), "{small}");

    let grown = rss().saturating_sub(before);
    assert!(
        grown < 32 << 20,
        "192 MB of hostile requests grew the process by {} MB",
        grown >> 20
    );
    // Still serving.
    assert!(scrape(addr).starts_with("HTTP/1.1 200"));
}

/// A handler that takes too long is answered 408; a response streamed after its head (as the
/// incident API's server-sent events are) is not cut by the request timeout.
#[test]
fn slow_handlers_time_out_but_streams_go_on() {
    let addr = start(HttpLimits {
        request_timeout_ms: 500,
        ..limits()
    });
    let slow = exchange(
        addr,
        "GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(slow.starts_with("HTTP/1.1 408"), "{slow}");
    let stream = exchange(
        addr,
        "GET /stream HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(stream.starts_with("HTTP/1.1 200"), "{stream}");
    for n in 0..3 {
        assert!(stream.contains(&format!("chunk{n};")), "{stream}");
    }
}
