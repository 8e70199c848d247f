//! DPoP (RFC 9449) over HTTP, on every backend: a login with a proof binds
//! the session to the proof's key; its tokens then work only with fresh
//! proofs by that key, for the request they name; a thief holding a copied
//! access or refresh token gets nothing, and cannot end the session either.

mod common;

use std::sync::Arc;

use common::backend::Backend;
use common::dpop::{claims_of, dpop, dpop_authorization, host, DpopKey};
use common::{bearer, App, Tokens};
use rocket::figment::Figment;
use rocket::futures::future::join_all;
use rocket::http::{ContentType, Header, Status};
use rocket::local::asynchronous::LocalResponse;
use rocket_sqlite_sessions::testing::TestHarness;
use rocket_sqlite_sessions::INVALID_TOKEN_MESSAGE;
use serde_json::{json, Value};

/// A login of `user` with a proof by `key`.
async fn dpop_login<'a>(app: &'a App, key: &DpopKey, user: &str) -> LocalResponse<'a> {
    let path = format!("/login/{user}");
    let proof = key.proof("POST", &path, app.harness.clock().now(), None);
    app.client
        .post(path)
        .header(host())
        .header(dpop(proof))
        .dispatch()
        .await
}

/// `GET /whoami` with `Authorization: DPoP` and `proof`.
async fn whoami_with<'a>(app: &'a App, access: &str, proof: Option<String>) -> LocalResponse<'a> {
    let mut request = app
        .client
        .get("/whoami")
        .header(host())
        .header(dpop_authorization(access));
    if let Some(proof) = proof {
        request = request.header(dpop(proof));
    }
    request.dispatch().await
}

/// `GET /whoami` with a fresh proof by `key`.
async fn whoami<'a>(app: &'a App, key: &DpopKey, access: &str) -> LocalResponse<'a> {
    let proof = key.proof("GET", "/whoami", app.harness.clock().now(), Some(access));
    whoami_with(app, access, Some(proof)).await
}

/// A JSON refresh of `refresh`, with a proof by `key` when given.
async fn refresh<'a>(app: &'a App, key: Option<&DpopKey>, refresh: &str) -> LocalResponse<'a> {
    let mut request = app
        .client
        .post("/auth/refresh")
        .header(host())
        .header(ContentType::JSON)
        .body(json!({ "refresh_token": refresh }).to_string());
    if let Some(key) = key {
        request = request.header(dpop(key.proof(
            "POST",
            "/auth/refresh",
            app.harness.clock().now(),
            None,
        )));
    }
    request.dispatch().await
}

/// A 401 with the one generic body and a DPoP challenge naming `error`.
async fn assert_dpop_refused(response: LocalResponse<'_>, error: &str) {
    assert_eq!(response.status(), Status::Unauthorized);
    assert_eq!(
        response.headers().get_one("WWW-Authenticate"),
        Some(format!(r#"DPoP error="{error}", algs="ES256 EdDSA""#).as_str())
    );
    let body: Value = response.into_json().await.expect("a JSON body");
    assert_eq!(
        body,
        json!({ "error": "invalid_token", "message": INVALID_TOKEN_MESSAGE })
    );
}

/// A bound pair: the login's tokens, checked to be DPoP-bound to `key`.
async fn bound_tokens(app: &App, key: &DpopKey, user: &str) -> Tokens {
    let response = dpop_login(app, key, user).await;
    assert_eq!(response.status(), Status::Ok);
    let body: Value = response.into_json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    let access = body["access_token"].as_str().unwrap().to_string();
    assert_eq!(claims_of(&access)["cnf"], json!({ "jkt": key.thumbprint() }));
    Tokens {
        access,
        refresh: body["refresh_token"].as_str().unwrap().to_string(),
        expires_in: body["expires_in"].as_i64().unwrap(),
    }
}

/// The tokens of a successful login or refresh, whatever their type.
async fn tokens_of(response: LocalResponse<'_>) -> Tokens {
    assert_eq!(response.status(), Status::Ok);
    let body: Value = response.into_json().await.unwrap();
    Tokens {
        access: body["access_token"].as_str().unwrap().to_string(),
        refresh: body["refresh_token"].as_str().unwrap().to_string(),
        expires_in: body["expires_in"].as_i64().unwrap(),
    }
}

/// The tokens of a successful refresh.
async fn rotated(response: LocalResponse<'_>) -> Tokens {
    tokens_of(response).await
}

macro_rules! dpop_suite {
    ($backend:ident $(#[$skip:meta])*) => {
        mod $backend {
            use super::*;

            async fn start_configured(configure: impl FnOnce(Figment) -> Figment) -> App {
                let backend = Backend::$backend().await;
                App::start_with(Arc::new(TestHarness::new()), |figment| configure(backend.configure(figment))).await
            }

            async fn start() -> App {
                start_configured(|figment| figment).await
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn a_dpop_login_binds_the_session_and_its_tokens_work_with_fresh_proofs_by_its_key() {
                for key in [DpopKey::es256(), DpopKey::eddsa()] {
                    let app = start().await;
                    let tokens = bound_tokens(&app, &key, "alice").await;
                    let response = whoami(&app, &key, &tokens.access).await;
                    assert_eq!(response.status(), Status::Ok);
                    let body: Value = response.into_json().await.unwrap();
                    assert_eq!((body["user_id"].as_str(), body["sender_constrained"].as_bool()), (Some("alice"), Some(true)));
                    // Each request its own proof; refreshes with the key rotate.
                    assert_eq!(whoami(&app, &key, &tokens.access).await.status(), Status::Ok);
                    let next = rotated(refresh(&app, Some(&key), &tokens.refresh).await).await;
                    assert_eq!(claims_of(&next.access)["cnf"]["jkt"], key.thumbprint());
                    assert_eq!(whoami(&app, &key, &next.access).await.status(), Status::Ok);
                    // A bearer session beside it is not sender-constrained.
                    let plain = app.login("bob").await;
                    let body: Value = app.whoami(&plain.access).await.into_json().await.unwrap();
                    assert_eq!(body["sender_constrained"], false);
                    assert!(claims_of(&plain.access).get("cnf").is_none());
                }
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn a_stolen_bound_access_token_is_useless_without_a_fresh_proof_by_its_key() {
                let app = start().await;
                let key = DpopKey::es256();
                let tokens = bound_tokens(&app, &key, "alice").await;
                let now = app.harness.clock().now();
                // As a bearer token: no downgrade.
                let response = app.client.get("/whoami").header(host()).header(bearer(&tokens.access)).dispatch().await;
                assert_dpop_refused(response, "invalid_token").await;
                // With the DPoP scheme and no proof, or a proof by another key.
                assert_dpop_refused(whoami_with(&app, &tokens.access, None).await, "invalid_dpop_proof").await;
                let thief = DpopKey::es256();
                assert_dpop_refused(whoami(&app, &thief, &tokens.access).await, "invalid_dpop_proof").await;
                // A proof seen before (a replay), for another method, another
                // URL, another token, or outside the window.
                let proof = key.proof("GET", "/whoami", now, Some(&tokens.access));
                assert_eq!(whoami_with(&app, &tokens.access, Some(proof.clone())).await.status(), Status::Ok);
                assert_dpop_refused(whoami_with(&app, &tokens.access, Some(proof)).await, "invalid_dpop_proof").await;
                for (method, path, iat, ath) in [
                    ("POST", "/whoami", now, tokens.access.as_str()),
                    ("GET", "/maybe", now, tokens.access.as_str()),
                    ("GET", "/whoami", now, "another.access.token"),
                    ("GET", "/whoami", now - 61, tokens.access.as_str()),
                    // The tests' leeway is 0 (Rocket.toml): no future iat.
                    ("GET", "/whoami", now + 1, tokens.access.as_str()),
                ] {
                    let proof = key.proof(method, path, iat, Some(ath));
                    let response = whoami_with(&app, &tokens.access, Some(proof)).await;
                    assert_dpop_refused(response, "invalid_dpop_proof").await;
                }
                // The edges of the window are inside it.
                for iat in [now - 60, now] {
                    let proof = key.proof("GET", "/whoami", iat, Some(&tokens.access));
                    assert_eq!(whoami_with(&app, &tokens.access, Some(proof)).await.status(), Status::Ok);
                }
                // The query and fragment are not part of htu; scheme and host are.
                let mut claims = key.claims("GET", "/whoami", now);
                claims.access_token = Some(&tokens.access);
                claims.url = "http://APP.test:80/whoami?x=1#y".into();
                let response = app.client.get("/whoami?x=1").header(host()).header(dpop_authorization(&tokens.access))
                    .header(dpop(key.proof_of(&claims))).dispatch().await;
                assert_eq!(response.status(), Status::Ok);
                claims.jti = "another".into();
                claims.url = "https://app.test/whoami".into();
                let response = whoami_with(&app, &tokens.access, Some(key.proof_of(&claims))).await;
                assert_dpop_refused(response, "invalid_dpop_proof").await;
                // An unbound token with the DPoP scheme is refused as well.
                let plain = app.login("bob").await;
                assert_dpop_refused(whoami(&app, &key, &plain.access).await, "invalid_token").await;
                // The owner still gets in.
                assert_eq!(whoami(&app, &key, &tokens.access).await.status(), Status::Ok);
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn a_stolen_bound_refresh_token_is_refused_without_the_key_and_the_session_is_kept() {
                let app = start().await;
                let key = DpopKey::es256();
                let first = bound_tokens(&app, &key, "alice").await;
                let second = rotated(refresh(&app, Some(&key), &first.refresh).await).await;
                let thief = DpopKey::es256();
                // The current token, without a proof or with another key's:
                // refused, nothing rotated.
                for by in [None, Some(&thief)] {
                    let response = refresh(&app, by, &second.refresh).await;
                    assert_eq!(response.status(), Status::Unauthorized);
                }
                // The spent one, which would be reuse: refused, and the
                // session not ended by it.
                for by in [None, Some(&thief)] {
                    assert_eq!(refresh(&app, by, &first.refresh).await.status(), Status::Unauthorized);
                }
                assert_eq!(whoami(&app, &key, &second.access).await.status(), Status::Ok);
                // An RFC 6749 form refresh without the key: invalid_grant.
                let response = app.client.post("/auth/refresh").header(host()).header(ContentType::Form)
                    .body(format!("grant_type=refresh_token&refresh_token={}", second.refresh)).dispatch().await;
                assert_eq!(response.status(), Status::BadRequest);
                let body: Value = response.into_json().await.unwrap();
                assert_eq!(body["error"], "invalid_grant");
                // The owner's refresh rotates as ever.
                let third = rotated(refresh(&app, Some(&key), &second.refresh).await).await;
                assert_eq!(whoami(&app, &key, &third.access).await.status(), Status::Ok);
                // Reuse with the key is still reuse: the session ends.
                assert_eq!(refresh(&app, Some(&key), &first.refresh).await.status(), Status::Unauthorized);
                assert_dpop_refused(whoami(&app, &key, &third.access).await, "invalid_token").await;
                assert_eq!(refresh(&app, Some(&key), &third.refresh).await.status(), Status::Unauthorized);
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn a_bad_proof_at_login_or_refresh_is_400_invalid_dpop_proof() {
                let app = start().await;
                let key = DpopKey::es256();
                let now = app.harness.clock().now();
                let header = |alg: &str, jwk: Value| json!({ "typ": "dpop+jwt", "alg": alg, "jwk": jwk });
                let payload = json!({ "jti": "j1", "htm": "POST", "htu": "http://app.test/login/alice", "iat": now });
                let mut private = key.jwk();
                private["d"] = json!("AAAA");
                let bad = [
                    key.proof("POST", "/login/bob", now, None),
                    key.proof("GET", "/login/alice", now, None),
                    key.proof("POST", "/login/alice", now - 3600, None),
                    key.sign(&header("HS256", key.jwk()), &payload),
                    key.sign(&header("ES256", private), &payload),
                    key.sign(&json!({ "typ": "jwt", "alg": "ES256", "jwk": key.jwk() }), &payload),
                    key.sign(&header("EdDSA", key.jwk()), &payload),
                    "not.a.proof".into(),
                    "x".repeat(1 << 20),
                ];
                for proof in bad {
                    let response = app.client.post("/login/alice").header(host()).header(dpop(proof)).dispatch().await;
                    assert_eq!(response.status(), Status::BadRequest);
                    let body: Value = response.into_json().await.unwrap();
                    assert_eq!(body["error"], "invalid_dpop_proof");
                }
                // Two DPoP headers are one too many.
                let response = app.client.post("/login/alice").header(host())
                    .header(dpop(key.proof("POST", "/login/alice", now, None)))
                    .header(Header::new("DPoP", key.proof("POST", "/login/alice", now, None))).dispatch().await;
                assert_eq!(response.status(), Status::BadRequest);
                // A proof replayed at login.
                let proof = key.proof("POST", "/login/alice", now, None);
                let first = app.client.post("/login/alice").header(host()).header(dpop(proof.clone())).dispatch().await;
                assert_eq!(first.status(), Status::Ok);
                let again = app.client.post("/login/alice").header(host()).header(dpop(proof)).dispatch().await;
                assert_eq!(again.status(), Status::BadRequest);
                // None of these made a session.
                assert_eq!(app.sessions(&app.login("alice").await.access).await.len(), 2);
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn nonces_are_asked_for_given_and_accepted_at_login_and_at_a_resource() {
                let app = start_configured(|figment| figment.merge(("sessions.dpop_nonces", true))).await;
                let key = DpopKey::es256();
                let now = app.harness.clock().now();
                let response = dpop_login(&app, &key, "alice").await;
                assert_eq!(response.status(), Status::BadRequest);
                let nonce = response.headers().get_one("DPoP-Nonce").expect("a nonce").to_string();
                let body: Value = response.into_json().await.unwrap();
                assert_eq!(body["error"], "use_dpop_nonce");
                let mut claims = key.claims("POST", "/login/alice", now);
                claims.nonce = Some(&nonce);
                let response = app.client.post("/login/alice").header(host()).header(dpop(key.proof_of(&claims))).dispatch().await;
                assert_eq!(response.status(), Status::Ok);
                let tokens = tokens_of(response).await;
                // At a resource: 401 use_dpop_nonce with the nonce, then in.
                let response = whoami(&app, &key, &tokens.access).await;
                assert!(response.headers().get_one("DPoP-Nonce").is_some());
                assert_dpop_refused(response, "use_dpop_nonce").await;
                let mut claims = key.claims("GET", "/whoami", now);
                claims.access_token = Some(&tokens.access);
                claims.nonce = Some(&nonce);
                assert_eq!(whoami_with(&app, &tokens.access, Some(key.proof_of(&claims))).await.status(), Status::Ok);
                // A made-up nonce, or one two windows old, is not the server's.
                claims.jti = "made-up".into();
                claims.nonce = Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
                assert_dpop_refused(whoami_with(&app, &tokens.access, Some(key.proof_of(&claims))).await, "use_dpop_nonce").await;
                app.harness.clock().advance(121);
                let mut claims = key.claims("GET", "/whoami", app.harness.clock().now());
                claims.access_token = Some(&tokens.access);
                claims.nonce = Some(&nonce);
                assert_dpop_refused(whoami_with(&app, &tokens.access, Some(key.proof_of(&claims))).await, "use_dpop_nonce").await;
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn with_dpop_required_bearer_tokens_and_proofless_refreshes_are_refused() {
                let app = start_configured(|figment| figment.merge(("sessions.dpop", "required"))).await;
                let plain = app.login("bob").await;
                let response = app.client.get("/whoami").header(host()).header(bearer(&plain.access)).dispatch().await;
                assert_dpop_refused(response, "invalid_token").await;
                let response = refresh(&app, None, &plain.refresh).await;
                assert_eq!(response.status(), Status::BadRequest);
                let key = DpopKey::es256();
                let tokens = bound_tokens(&app, &key, "alice").await;
                assert_eq!(whoami(&app, &key, &tokens.access).await.status(), Status::Ok);
                rotated(refresh(&app, Some(&key), &tokens.refresh).await).await;
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn with_dpop_off_proofs_are_ignored_and_the_dpop_scheme_refused() {
                let app = start_configured(|figment| figment.merge(("sessions.dpop", "off"))).await;
                let key = DpopKey::es256();
                let response = dpop_login(&app, &key, "alice").await;
                let body: Value = response.into_json().await.unwrap();
                assert_eq!(body["token_type"], "Bearer");
                let access = body["access_token"].as_str().unwrap();
                assert!(claims_of(access).get("cnf").is_none());
                let response = whoami(&app, &key, access).await;
                assert_eq!(response.status(), Status::Unauthorized);
                assert_eq!(response.headers().get_one("WWW-Authenticate"), Some(r#"Bearer error="invalid_token""#));
                assert_eq!(app.whoami_status(access).await, Status::Ok);
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn one_proof_sent_many_times_at_once_is_accepted_once_and_a_thief_racing_the_owner_gets_nothing() {
                let app = start().await;
                let key = DpopKey::es256();
                let tokens = bound_tokens(&app, &key, "alice").await;
                for _ in 0..5 {
                    let proof = key.proof("GET", "/whoami", app.harness.clock().now(), Some(&tokens.access));
                    let answers = join_all((0..16).map(|_| whoami_with(&app, &tokens.access, Some(proof.clone())))).await;
                    let admitted = answers.iter().filter(|answer| answer.status() == Status::Ok).count();
                    assert_eq!(admitted, 1, "one proof, one request");
                }
                // The owner's refresh and a thief's (the same refresh token,
                // another key), in flight together, five rounds: the owner
                // rotates each time and the session lives on.
                let thief = DpopKey::es256();
                let mut current = tokens;
                for _ in 0..5 {
                    let (owner, stolen) = rocket::futures::future::join(
                        refresh(&app, Some(&key), &current.refresh),
                        refresh(&app, Some(&thief), &current.refresh),
                    )
                    .await;
                    assert_eq!(stolen.status(), Status::Unauthorized);
                    current = rotated(owner).await;
                    assert_eq!(whoami(&app, &key, &current.access).await.status(), Status::Ok);
                }
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn the_replay_cache_is_bounded_and_full_means_refused_never_accepted_twice() {
                let app = start_configured(|figment| figment.merge(("sessions.dpop_replay_capacity", 3))).await;
                let key = DpopKey::es256();
                let tokens = bound_tokens(&app, &key, "alice").await; // one proof remembered
                assert_eq!(whoami(&app, &key, &tokens.access).await.status(), Status::Ok);
                let kept = key.proof("GET", "/whoami", app.harness.clock().now(), Some(&tokens.access));
                assert_eq!(whoami_with(&app, &tokens.access, Some(kept.clone())).await.status(), Status::Ok);
                // Full: a new proof is refused, an old one still refused.
                assert_dpop_refused(whoami(&app, &key, &tokens.access).await, "invalid_dpop_proof").await;
                assert_dpop_refused(whoami_with(&app, &tokens.access, Some(kept)).await, "invalid_dpop_proof").await;
                // Once the window has passed they are forgotten: room again.
                app.harness.clock().advance(62);
                assert_eq!(whoami(&app, &key, &tokens.access).await.status(), Status::Ok);
            }
        }
    };
}

dpop_suite!(sqlite);
dpop_suite!(postgres #[cfg_attr(
    not(postgres_server),
    ignore = "needs PostgreSQL: --features postgres and ROCKET_SESSIONS_TEST_POSTGRES (see testsuite/build.rs)"
)]);
dpop_suite!(pgbouncer #[cfg_attr(
    not(pgbouncer_server),
    ignore = "needs PgBouncer: --features postgres and ROCKET_SESSIONS_TEST_PGBOUNCER (see testsuite/build.rs)"
)]);

/// Two processes on one database remember proofs each for itself (see the
/// crate's docs): a captured proof is accepted at most once by each, for the
/// one request it names; within one, never twice.
#[rocket::async_test]
async fn a_proof_is_accepted_at_most_once_per_process_for_the_request_it_names() {
    let harness = Arc::new(TestHarness::new());
    let first = App::start_with(harness.clone(), |figment| figment).await;
    let second = App::start_with(harness.clone(), |figment| figment).await;
    let key = DpopKey::es256();
    let tokens = bound_tokens(&first, &key, "alice").await;
    let proof = key.proof("GET", "/whoami", harness.clock().now(), Some(&tokens.access));
    assert_eq!(
        whoami_with(&first, &tokens.access, Some(proof.clone())).await.status(),
        Status::Ok
    );
    assert_eq!(
        whoami_with(&first, &tokens.access, Some(proof.clone())).await.status(),
        Status::Unauthorized
    );
    assert_eq!(
        whoami_with(&second, &tokens.access, Some(proof.clone())).await.status(),
        Status::Ok
    );
    assert_eq!(
        whoami_with(&second, &tokens.access, Some(proof)).await.status(),
        Status::Unauthorized
    );
    // A refresh proof played to the other process is reuse there: the
    // refresh token it came with was rotated, and the session ends.
    let refresh_proof = key.proof("POST", "/auth/refresh", harness.clock().now(), None);
    fn request<'a>(app: &'a App, proof: &str, refresh: &str) -> rocket::local::asynchronous::LocalRequest<'a> {
        app.client
            .post("/auth/refresh")
            .header(host())
            .header(ContentType::JSON)
            .header(dpop(proof.to_string()))
            .body(json!({ "refresh_token": refresh }).to_string())
    }
    let next = rotated(request(&first, &refresh_proof, &tokens.refresh).dispatch().await).await;
    harness.clock().advance(11);
    assert_eq!(
        request(&second, &refresh_proof, &tokens.refresh)
            .dispatch()
            .await
            .status(),
        Status::Unauthorized
    );
    // The reuse reaches the first process through the revocation feed.
    let started = std::time::Instant::now();
    while whoami(&first, &key, &next.access).await.status() == Status::Ok {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(3),
            "the reuse never reached the first process"
        );
        rocket::tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
