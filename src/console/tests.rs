//! The console's router without a socket (tower's `oneshot`); the real daemon is tested in
//! tests/console.rs and tests/browser.rs.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt;

use super::*;

fn console(addr: &str, auth: AuthConfig) -> Arc<Console> {
    let dir = std::env::temp_dir().join(format!("ferry-console-unit-{}", std::process::id()));
    let _ = std::fs::create_dir_all(dir.join("jobs"));
    let c = Console::new(
        dir.join("jobs"),
        dir.join("var/state"),
        auth,
        addr.parse().unwrap(),
    );
    Arc::new(c.unwrap())
}

fn users() -> AuthConfig {
    AuthConfig {
        users: vec![User {
            name: "reader".into(),
            password_hash: auth::hash_password("pw-reader").unwrap(),
            role: Role::Read,
        }],
        token: Some("tok-123".into()),
    }
}

async fn send(c: &Arc<Console>, mut req: Request<Body>) -> axum::response::Response {
    if !req.headers().contains_key(header::HOST) {
        req.headers_mut()
            .insert(header::HOST, "127.0.0.1:8080".parse().unwrap());
    }
    router(c.clone()).oneshot(req).await.unwrap()
}

#[tokio::test]
async fn an_open_console_serves_pages_and_refuses_a_post_without_its_token() {
    let c = console("127.0.0.1:8080", AuthConfig::default());
    let rebound = Request::get("/jobs")
        .header(header::HOST, "evil.example:8080")
        .body(Body::empty())
        .unwrap();
    assert_eq!(send(&c, rebound).await.status(), StatusCode::FORBIDDEN);
    let r = send(&c, Request::get("/jobs").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert!(
        r.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("HttpOnly; SameSite=Strict")
    );
    for page in ["/files", "/errors", "/review", "/style.css", "/login"] {
        let r = send(&c, Request::get(page).body(Body::empty()).unwrap()).await;
        assert_eq!(r.status(), StatusCode::OK, "{page}");
    }
    let post = Request::post("/files/1/retry")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from("csrf=nope"))
        .unwrap();
    assert_eq!(send(&c, post).await.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn off_loopback_a_visitor_must_log_in_or_send_the_token() {
    assert!(
        Console::new(
            "j".into(),
            "s".into(),
            AuthConfig::default(),
            "0.0.0.0:80".parse().unwrap()
        )
        .is_err()
    );
    let c = console("0.0.0.0:0", users());
    let r = send(&c, Request::get("/jobs").body(Body::empty()).unwrap()).await;
    assert_eq!(r.status(), StatusCode::SEE_OTHER);
    assert_eq!(r.headers()[header::LOCATION], "/login?next=/jobs");
    let r = send(
        &c,
        Request::post("/files/1/retry").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let with = |t: &str| {
        Request::get("/jobs")
            .header(header::AUTHORIZATION, format!("Bearer {t}"))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(send(&c, with("tok-123")).await.status(), StatusCode::OK);
    assert_eq!(
        send(&c, with("tok-124")).await.status(),
        StatusCode::UNAUTHORIZED
    );
}
