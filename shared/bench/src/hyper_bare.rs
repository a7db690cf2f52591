//! The ceiling of the load benchmark (`scripts/bench`): a bare hyper server answering every
//! request with one fixed JSON body, on the same runtime and HTTP/1 stack as `latchkey serve`
//! and built with the same profile in the same run. Whatever latchkey does per request shows
//! as the distance to this server's requests per second.
//!
//!   hyper-bare [ADDR]      # default 127.0.0.1:0; prints `listening on http://ADDR`

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

const BODY: &[u8] = br#"{"status":"ok"}"#;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".to_owned())
        .parse()?;
    let listener = TcpListener::bind(addr).await?;
    println!("listening on http://{}", listener.local_addr()?);
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let service = service_fn(|_req| async {
                let mut res = http::Response::new(Full::new(Bytes::from_static(BODY)));
                res.headers_mut().insert(
                    http::header::CONTENT_TYPE,
                    http::HeaderValue::from_static("application/json"),
                );
                Ok::<_, Infallible>(res)
            });
            // A client closing its connection mid-request is not the server's failure.
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}
