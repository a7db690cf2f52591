//! The baseline of the cold-start benchmark: the bare `lambda_http` hello world of its
//! documentation, built with the same profile as the functions.

use lambda_http::{Body, Error, Request, Response, service_fn};

async fn hello(_: Request) -> Result<Response<Body>, Error> {
    Ok(Response::new(Body::Text("hello".into())))
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(hello)).await
}
