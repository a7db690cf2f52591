//! `latchkey serve` as it runs, with the CLI beside it in its own process.
#![allow(clippy::disallowed_methods)] // real processes, real time

use latchkey_tests::free_port;
use latchkey_tests::process::{latchkey, serve};
use reqwest::StatusCode;

/// The server keeps the customer tokens it has checked while its store is unchanged
/// (`identity::memo`); a revocation by `latchkey user revoke-tokens`, committed by another
/// process, is seen by the very next request, as is disabling the account.
#[tokio::test]
async fn a_token_the_server_has_checked_is_refused_once_another_process_revokes_it() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let _server = serve(dir.path(), port).await;
    latchkey(
        dir.path(),
        &[
            "user",
            "add",
            "--username",
            "buyer",
            "--email",
            "buyer@example.com",
            "--password",
            "correct horse battery",
            "--role",
            "customer",
        ],
    );
    let http = latchkey_tests::http();
    let sign_in = || async {
        let token: String = http
            .post(format!("{base}/rest/V1/integration/customer/token"))
            .json(&serde_json::json!({"username": "buyer", "password": "correct horse battery"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        token
    };
    let me = |token: String| {
        let http = &http;
        let url = format!("{base}/rest/V1/customers/me");
        async move {
            http.get(url)
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
        }
    };

    let token = sign_in().await;
    for _ in 0..3 {
        assert_eq!(
            me(token.clone()).await,
            StatusCode::OK,
            "checked, then kept"
        );
    }
    latchkey(dir.path(), &["user", "revoke-tokens", "buyer"]);
    assert_eq!(me(token.clone()).await, StatusCode::UNAUTHORIZED, "revoked");

    let token = sign_in().await;
    assert_eq!(me(token.clone()).await, StatusCode::OK);
    assert_eq!(me(token.clone()).await, StatusCode::OK);
    latchkey(dir.path(), &["user", "disable", "buyer"]);
    assert_eq!(me(token).await, StatusCode::UNAUTHORIZED, "disabled");
}
