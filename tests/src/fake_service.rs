//! A stand-in for an AWS service that throttles: for the retry tests of the SES, SNS and
//! DynamoDB adapters, which moto_server cannot make throttle.
//!
//! On a bare socket rather than hyper's server: it answers prepared bytes, one request per
//! connection, and keeps each request body exactly as sent, which is all these tests need.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One HTTP answer that closes the connection.
pub fn answer(status: &str, headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\n{headers}content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// A stand-in for SES, SNS or DynamoDB that throttles the first `throttled` requests, answers the next
/// with `success`, and keeps the body of every request it got.
pub struct ThrottlingService {
    pub url: String,
    bodies: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl ThrottlingService {
    pub async fn start(throttled: usize, (throttle, success): (String, String)) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let bodies: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
        let seen = bodies.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut socket, _)) = listener.accept().await else {
                    return;
                };
                let seen = seen.clone();
                let (throttle, success) = (throttle.clone(), success.clone());
                tokio::spawn(async move {
                    // Requests are read whole (headers, then Content-Length bytes); each
                    // answer closes the connection.
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    let body = loop {
                        let n = socket.read(&mut chunk).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).to_lowercase();
                        let length: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            break buf[end + 4..end + 4 + length].to_vec();
                        }
                    };
                    let attempt = {
                        let mut seen = seen.lock().unwrap();
                        seen.push(body);
                        seen.len()
                    };
                    let answer = if attempt <= throttled {
                        throttle
                    } else {
                        success
                    };
                    let _ = socket.write_all(answer.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Self { url, bodies }
    }

    pub fn bodies(&self) -> Vec<Vec<u8>> {
        self.bodies.lock().unwrap().clone()
    }
}
