//! Slow and huge clients: thousands of idle connections, slowloris clients trickling their
//! headers, bodies far over the limit, declared or streamed. Others keep being answered, every
//! oversized body gets its 413 problem without being read whole, and memory stays bounded.

use std::time::{Duration, Instant};

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::process::Server;
use super::{client, figures, size};
use crate::helpers::TestDatabase;

/// Memory the server may reach under all of this; a body read whole would pass it.
const RSS_BOUND_MIB: u64 = 256;

/// Sends a request head and then up to `stream` bytes of body (in chunks if the head says
/// so), stopping when the server answers or closes; the head of its answer.
async fn oversized(address: String, head: String, stream: usize) -> String {
    let framed = head.contains("chunked");
    let mut conn = TcpStream::connect(&address).await.unwrap();
    conn.write_all(head.as_bytes()).await.unwrap();
    let (mut read, mut write) = conn.into_split();
    let writer = tokio::spawn(async move {
        let mut chunk = vec![b'{'; 64 * 1024];
        if framed {
            chunk = [b"10000\r\n".as_slice(), &chunk, b"\r\n"].concat();
        }
        let mut sent = 0;
        while sent < stream {
            if write.write_all(&chunk).await.is_err() {
                break;
            }
            sent += chunk.len();
        }
        sent
    });
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(20), read.read(&mut buffer)).await {
            Ok(Ok(n)) if n > 0 => answer.extend_from_slice(&buffer[..n]),
            _ => break,
        }
    }
    writer.abort();
    String::from_utf8_lossy(&answer).into_owned()
}

/// Opens a connection and sends a request head one byte at a time, a byte every 100 ms;
/// how long the server let it go on before closing it (`None`: it never did within 30 s).
async fn slowloris(address: String) -> Option<Duration> {
    let mut conn = TcpStream::connect(&address).await.ok()?;
    let started = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nHost: tollgate\r\n"
        .iter()
        .chain(b"X-Slow: ".iter().cycle());
    for byte in head {
        if started.elapsed() > Duration::from_secs(30) {
            return None;
        }
        if conn.write_all(&[*byte]).await.is_err() {
            return Some(started.elapsed());
        }
        // The server answering (a 408) or closing shows up as readable.
        let mut buffer = [0_u8; 256];
        if let Ok(read) =
            tokio::time::timeout(Duration::from_millis(100), conn.read(&mut buffer)).await
        {
            match read {
                Ok(_) | Err(_) => return Some(started.elapsed()),
            }
        }
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slow_idle_and_oversized_clients_do_not_starve_others_and_memory_stays_bounded() {
    let db = TestDatabase::create().await;
    let server = Server::start(db.url(), &[]).await;
    let address = server.base().trim_start_matches("http://").to_owned();
    let http = client();
    let started_rss = server.rss_kib();

    // Idle connections, as many as asked for or as the machine allows.
    let wanted = size("FAULTS_IDLE_CONNECTIONS", 1_000);
    let mut idle = Vec::with_capacity(wanted);
    for _ in 0..wanted {
        match TcpStream::connect(&address).await {
            Ok(conn) => idle.push(conn),
            Err(_) => break,
        }
    }
    let idle_opened = idle.len();
    // Slowloris clients, trickling headers.
    let slow: Vec<_> = (0..50)
        .map(|_| tokio::spawn(slowloris(address.clone())))
        .collect();
    // Oversized bodies: declared too long, and streamed without a length.
    let limit_mib = 64;
    let declared = |method: &str, path: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nHost: tollgate\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            server.admin_key,
            1_u64 << 30
        )
    };
    let chunked = "POST /v1/webhooks/stripe HTTP/1.1\r\nHost: tollgate\r\n\
                   Content-Type: application/json\r\nStripe-Signature: t=1,v1=00\r\n\
                   Transfer-Encoding: chunked\r\n\r\n"
        .to_owned();
    let huge = vec![
        tokio::spawn(oversized(
            address.clone(),
            declared("POST", "/v1/webhooks/stripe"),
            limit_mib << 20,
        )),
        tokio::spawn(oversized(
            address.clone(),
            declared("POST", "/v1/access"),
            limit_mib << 20,
        )),
        tokio::spawn(oversized(
            address.clone(),
            declared("PUT", "/v1/plans/huge"),
            limit_mib << 20,
        )),
        tokio::spawn(oversized(address.clone(), chunked, limit_mib << 20)),
    ];
    // Meanwhile, others are served.
    let mut slowest = Duration::ZERO;
    let mut served = 0;
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let asked = Instant::now();
        let health = http
            .get(format!("{}/healthz", server.base()))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        let access = http
            .post(format!("{}/v1/access", server.base()))
            .bearer_auth(&server.admin_key)
            .json(&json!({ "reader_id": "patient", "article_id": format!("a{served}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(access.status(), 200);
        slowest = slowest.max(asked.elapsed());
        served += 1;
    }
    let mut answers = Vec::new();
    for task in huge {
        answers.push(task.await.unwrap());
    }
    let closed: Vec<Option<Duration>> = futures_util::future::join_all(slow)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let peak = server.peak_rss_kib();
    drop(idle);
    let health = http
        .get(format!("{}/healthz", server.base()))
        .send()
        .await
        .unwrap();
    let longest_slowloris = closed.iter().flatten().max().copied().unwrap_or_default();
    figures(
        "clients",
        if db.is_postgres() {
            "postgres"
        } else {
            "sqlite"
        },
        json!({
            "idle_connections": idle_opened,
            "slowloris_clients": closed.len(),
            "slowloris_longest_seconds": (longest_slowloris.as_secs_f64() * 10.0).round() / 10.0,
            "oversized_bodies": answers.len(),
            "others_served": served * 2,
            "others_slowest_ms": slowest.as_millis(),
            "rss_at_start_mib": started_rss / 1024,
            "peak_rss_mib": peak / 1024,
        }),
    );
    assert_eq!(health.status(), 200);
    assert!(
        idle_opened >= wanted.min(1_000),
        "only {idle_opened} connections opened"
    );
    for answer in &answers {
        assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
        assert!(
            answer
                .to_lowercase()
                .contains("content-type: application/problem+json"),
            "{answer}"
        );
    }
    assert!(
        closed.iter().all(Option::is_some),
        "a slowloris client was let go on for 30 s: {closed:?}"
    );
    assert!(peak / 1024 < RSS_BOUND_MIB, "peak RSS {} MiB", peak / 1024);
}
