//! Token auth is refused at the handshake with HTTP 401.

use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::StatusCode;

use crate::support::*;

async fn status_of(request: tokio_tungstenite::tungstenite::handshake::client::Request) -> Option<StatusCode> {
    match tokio_tungstenite::connect_async(request).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Some(resp.status()),
        Err(e) => panic!("unexpected error {e}"),
    }
}

#[tokio::test]
async fn bad_tokens_are_refused_before_the_upgrade() {
    let mut s = settings();
    s.ws.token = Some("s3cret".into());
    let bridge = start(s).await;
    let url = bridge.ws_url();

    assert_eq!(status_of(url.as_str().into_client_request().unwrap()).await, Some(StatusCode::UNAUTHORIZED));
    let wrong = format!("{url}?token=guess");
    assert_eq!(status_of(wrong.as_str().into_client_request().unwrap()).await, Some(StatusCode::UNAUTHORIZED));
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert("Authorization", "Bearer s3cre".parse().unwrap());
    assert_eq!(status_of(req).await, Some(StatusCode::UNAUTHORIZED));
    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert("Authorization", "Basic s3cret".parse().unwrap());
    assert_eq!(status_of(req).await, Some(StatusCode::UNAUTHORIZED));
    // No refused client ever became a consumer.
    assert_eq!(bridge.bridge.bus().consumer_count(), 0);

    let mut req = url.as_str().into_client_request().unwrap();
    req.headers_mut().insert("Authorization", "Bearer s3cret".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("header token accepted");
    use futures::StreamExt;
    let hello = ws.next().await.unwrap().unwrap();
    assert!(hello.to_text().unwrap().contains("\"hello\""));

    let mut c = Client::connect(&format!("{url}?token=s3cret")).await;
    c.ok("ListGroups", json!({})).await;
    bridge.shutdown().await;
}

#[tokio::test]
async fn bad_since_is_a_bad_request() {
    let bridge = start(settings()).await;
    let url = format!("{}?since=-3", bridge.ws_url());
    assert_eq!(status_of(url.as_str().into_client_request().unwrap()).await, Some(StatusCode::BAD_REQUEST));
    bridge.shutdown().await;
}
