//! One acceptance suite, run on every backend: SQLite, and PostgreSQL when a
//! server is configured, directly and through PgBouncer in transaction mode
//! (CI starts both; elsewhere those tests are ignored, with what they need:
//! see testsuite/build.rs). It ends with the tests of two instances on one database: two
//! processes on one SQLite file, two app servers on one PostgreSQL database.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::backend::Backend;
use common::{assert_invalid_token, tokens_of, App, Tokens};
use rocket::futures::future::join_all;
use rocket::http::{ContentType, Status};
use rocket_sqlite_sessions::testing::TestHarness;
use rocket_sqlite_sessions::ClaimsDecision;
use serde_json::{json, Value};

/// What the acceptance tests allow a revocation to take to reach another
/// instance.
const PROPAGATION: Duration = Duration::from_secs(1);

/// An app on `backend`, on `harness`'s clock (and file, for SQLite).
async fn instance(backend: &Backend, harness: &Arc<TestHarness>) -> App {
    App::start_with(harness.clone(), |figment| backend.configure(figment)).await
}

/// How long `app` took to refuse `access`, polled every 10 ms; `None` when it
/// still accepted it after `PROPAGATION`.
async fn refused_within(app: &App, access: &str) -> Option<Duration> {
    let started = Instant::now();
    loop {
        match app.whoami_status(access).await {
            Status::Unauthorized => return Some(started.elapsed()),
            Status::Ok if started.elapsed() < PROPAGATION => {
                rocket::tokio::time::sleep(Duration::from_millis(10)).await
            }
            Status::Ok => return None,
            other => panic!("unexpected {other}"),
        }
    }
}

/// Logins in flight at once in the cut-off tests, and the rounds of each.
const IN_FLIGHT: usize = 6;
const ROUNDS: usize = 5;

/// The `role` claim of `tokens`' access token, as the app sees it.
async fn role_of(app: &App, tokens: &Tokens) -> String {
    let whoami: Value = app.whoami(&tokens.access).await.into_json().await.unwrap();
    whoami["role"].as_str().unwrap_or_default().to_string()
}

/// How many of the sessions `answers` got still carry `role`: their access
/// token, or the next one a refresh gives.
async fn sessions_with_role(app: &App, answers: &[(Status, Option<Tokens>)], role: &str) -> usize {
    let mut with_role = 0;
    for tokens in answers.iter().filter_map(|(_, tokens)| tokens.as_ref()) {
        if role_of(app, tokens).await == role {
            with_role += 1;
            continue;
        }
        let refreshed = app.refresh(&tokens.refresh).await;
        if refreshed.status() == Status::Ok {
            let next = tokens_of(refreshed).await;
            with_role += usize::from(role_of(app, &next).await == role);
        }
    }
    with_role
}

async fn try_login(app: &App, username: &str, password: &str) -> Status {
    app.client
        .post(format!("/try-login/{username}/{password}"))
        .dispatch()
        .await
        .status()
}

macro_rules! acceptance_suite {
    ($backend:ident $(#[$skip:meta])*) => {
        mod $backend {
            use super::*;

            /// One app on a fresh database of this backend.
            async fn start() -> (Backend, App) {
                let backend = Backend::$backend().await;
                let app = instance(&backend, &Arc::new(TestHarness::new())).await;
                (backend, app)
            }

            /// One app configured by `configure` as well.
            async fn start_configured(
                configure: impl FnOnce(rocket::figment::Figment) -> rocket::figment::Figment,
            ) -> App {
                let backend = Backend::$backend().await;
                let harness = Arc::new(TestHarness::new());
                App::start_with(harness, |figment| configure(backend.configure(figment))).await
            }

            /// One app with the pruning job off: only `prune_now` prunes.
            async fn start_without_pruning_job() -> App {
                let backend = Backend::$backend().await;
                let harness = Arc::new(TestHarness::new());
                let app = App::start_with(harness, |figment| {
                    backend.configure(figment).merge(("sessions.auto_prune", false))
                })
                .await;
                app
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn a_session_logs_in_refreshes_and_logs_out() {
                let (_backend, app) = start().await;
                let first = app.login("alice").await;
                assert_eq!(app.whoami_status(&first.access).await, Status::Ok);
                let second = app.rotate(&first.refresh).await;
                assert_eq!(app.whoami_status(&second.access).await, Status::Ok);
                assert_eq!(
                    app.post_bearer("/auth/logout", &second.access).await,
                    Status::NoContent
                );
                assert_invalid_token(app.whoami(&second.access).await).await;
                assert_invalid_token(app.whoami(&first.access).await).await;
                assert_invalid_token(app.refresh(&second.refresh).await).await;
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn a_rotated_token_presented_after_the_grace_window_revokes_its_session() {
                let (_backend, app) = start().await;
                let first = app.login("alice").await;
                let second = app.rotate(&first.refresh).await;
                app.harness.clock().advance(11);
                assert_invalid_token(app.refresh(&first.refresh).await).await;
                assert_invalid_token(app.refresh(&second.refresh).await).await;
                assert_invalid_token(app.whoami(&second.access).await).await;
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn replays_within_the_grace_window_get_the_same_successor() {
                let (_backend, app) = start().await;
                let first = app.login("alice").await;
                let one = app.rotate(&first.refresh).await;
                let two = app.rotate(&first.refresh).await;
                assert_eq!(one.refresh, two.refresh, "one successor, never a second branch");
                let third = app.rotate(&two.refresh).await;
                assert_eq!(app.whoami_status(&third.access).await, Status::Ok);
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn a_lost_refresh_response_is_recovered_once_its_successor_was_never_used() {
                let app =
                    start_configured(|figment| figment.merge(("sessions.lost_response_recovery", true))).await;
                let first = app.login("alice").await;
                let lost = app.rotate(&first.refresh).await; // the client never got this answer
                app.harness.clock().advance(3600);
                let recovered = app.rotate(&first.refresh).await;
                assert_eq!(recovered.refresh, lost.refresh, "the same successor, an hour later");
                assert_eq!(app.rotate(&first.refresh).await.refresh, lost.refresh, "again");
                let next = app.rotate(&recovered.refresh).await;
                assert_eq!(app.whoami_status(&next.access).await, Status::Ok);

                // The successor was used: its predecessor is reuse now.
                assert_invalid_token(app.refresh(&first.refresh).await).await;
                assert_invalid_token(app.whoami(&next.access).await).await;
                assert_invalid_token(app.refresh(&next.refresh).await).await;

                // Two generations old is reuse at once.
                let first = app.login("bob").await;
                let second = app.rotate(&first.refresh).await;
                let third = app.rotate(&second.refresh).await;
                assert_invalid_token(app.refresh(&first.refresh).await).await;
                assert_invalid_token(app.refresh(&third.refresh).await).await;
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn without_lost_response_recovery_the_previous_token_after_the_window_is_reuse() {
                let (_backend, app) = start().await;
                let first = app.login("alice").await;
                let lost = app.rotate(&first.refresh).await;
                app.harness.clock().advance(11);
                assert_invalid_token(app.refresh(&first.refresh).await).await;
                assert_invalid_token(app.refresh(&lost.refresh).await).await;
            }

            /// An app allowing `max` sessions a user, `at_max` past it.
            async fn limited(max: u32, at_max: &'static str) -> App {
                start_configured(move |figment| {
                    figment
                        .merge(("sessions.max_sessions", max))
                        .merge(("sessions.at_max_sessions", at_max))
                })
                .await
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn max_sessions_3_with_5_logins_leaves_the_3_newest() {
                let app = limited(3, "end_oldest").await;
                let mut logins = Vec::new();
                for _ in 0..5 {
                    logins.push(app.login("alice").await);
                }
                let bob = app.login("bob").await;
                for old in &logins[..2] {
                    assert_invalid_token(app.whoami(&old.access).await).await;
                    assert_invalid_token(app.refresh(&old.refresh).await).await;
                }
                let mut live: Vec<String> = app
                    .manager()
                    .sessions("alice")
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|session| session.id)
                    .collect();
                live.sort();
                let mut newest: Vec<String> =
                    logins[2..].iter().map(|tokens| common::session_id_of(&tokens.access)).collect();
                newest.sort();
                assert_eq!(live, newest, "the three newest");
                for tokens in &logins[2..] {
                    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok);
                }
                assert_eq!(app.whoami_status(&bob.access).await, Status::Ok, "per user");
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn at_max_sessions_refuse_answers_409_until_a_session_ends() {
                let app = limited(3, "refuse").await;
                let first = app.login("alice").await;
                app.login("alice").await;
                app.login("alice").await;
                let refused = app.client.post("/login/alice").dispatch().await;
                assert_eq!(refused.status(), Status::Conflict);
                let body: Value = refused.into_json().await.unwrap();
                assert_eq!(body["error"], "too_many_sessions");
                assert_eq!(app.whoami_status(&first.access).await, Status::Ok, "nothing ended");
                assert_eq!(app.post_bearer("/auth/logout", &first.access).await, Status::NoContent);
                app.login("alice").await;
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn concurrent_logins_of_one_user_never_pass_the_limit() {
                for at_max in ["end_oldest", "refuse"] {
                    let app = limited(3, at_max).await;
                    for round in 0..ROUNDS {
                        let logins = (0..10).map(|_| app.client.post("/login/alice").dispatch());
                        let statuses: Vec<Status> =
                            join_all(logins).await.iter().map(|response| response.status()).collect();
                        let live = app.manager().sessions("alice").await.unwrap().len();
                        assert_eq!(live, 3, "{at_max}, round {round}: {statuses:?}");
                        let ok = statuses.iter().filter(|status| **status == Status::Ok).count();
                        match at_max {
                            "refuse" => assert_eq!((ok, 10 - ok), (3, 7), "{at_max}, round {round}: {statuses:?}"),
                            _ => assert_eq!(ok, 10, "{at_max}, round {round}: {statuses:?}"),
                        }
                        app.manager().logout_all("alice").await.unwrap();
                    }
                }
            }

            /// Right-password logins of one user at once: every check
            /// counts the attempt and takes it back, on rows the others
            /// count too. None may fail (on PostgreSQL two of them once
            /// deadlocked: 40P01, answered 503 and left counted), and none
            /// leaves a counter behind.
            #[rocket::async_test]
            $(#[$skip])*
            async fn concurrent_right_password_logins_of_one_user_all_pass_and_leave_no_counter() {
                let (backend, app) = start().await;
                let mut statuses = Vec::new();
                for _ in 0..25 {
                    let logins = (0..8).map(|_| app.client.post("/try-login/alice/right").dispatch());
                    statuses.extend(join_all(logins).await.iter().map(|response| response.status()));
                }
                let ok = statuses.iter().filter(|status| **status == Status::Ok).count();
                assert_eq!(ok, 200, "{:?}", statuses.iter().filter(|s| **s != Status::Ok).collect::<Vec<_>>());
                assert_eq!(
                    backend.count_rows(&app.harness, "auth_failures").await,
                    0,
                    "a counter that returns to zero is not kept"
                );
                // Nothing was left counted: the user's whole budget is there.
                for _ in 0..5 {
                    assert_eq!(try_login(&app, "alice", "wrong").await, Status::Unauthorized);
                }
                assert_eq!(try_login(&app, "alice", "right").await, Status::Ok);
            }

            /// RFC 7009 revocation and the RFC 6749 form refresh, stored like
            /// any revocation and rotation.
            #[rocket::async_test]
            $(#[$skip])*
            async fn a_revoked_refresh_token_ends_its_session_and_a_form_refresh_rotates() {
                let (_backend, app) = start().await;
                let first = app.login("alice").await;
                let form = |path: &'static str, body: String| {
                    app.client.post(path).header(ContentType::Form).body(body).dispatch()
                };
                let rotated = form("/auth/refresh", format!("grant_type=refresh_token&refresh_token={}", first.refresh)).await;
                assert_eq!(rotated.status(), Status::Ok);
                let second = tokens_of(rotated).await;
                let revoked = form("/auth/revoke", format!("token={}", second.refresh)).await;
                assert_eq!(revoked.status(), Status::Ok);
                assert_invalid_token(app.whoami(&second.access).await).await;
                assert_invalid_token(app.refresh(&second.refresh).await).await;
            }

            // The claims source decides, before anything rotates.

            /// An app whose claims source answers what `directory` says of a
            /// user: `Ok(decision)`, or a failed lookup.
            async fn with_claims_source(directory: Arc<Mutex<Result<ClaimsDecision, String>>>) -> App {
                let backend = Backend::$backend().await;
                let harness = Arc::new(TestHarness::new());
                let source = move |_user: String| {
                    let decided = directory.lock().unwrap().clone();
                    async move { decided }
                };
                App::start_hooked(
                    harness,
                    |figment| backend.configure(figment),
                    move |fairing| fairing.claims_source(source),
                )
                .await
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn a_ban_refuses_the_next_refresh_through_the_claims_source_alone() {
                let directory = Arc::new(Mutex::new(Ok(ClaimsDecision::Keep)));
                let app = with_claims_source(directory.clone()).await;
                let first = app.login("alice").await;
                let second = app.rotate(&first.refresh).await;
                *directory.lock().unwrap() = Ok(ClaimsDecision::End("banned"));
                assert_invalid_token(app.refresh(&second.refresh).await).await;
                assert_invalid_token(app.whoami(&second.access).await).await;
                *directory.lock().unwrap() = Ok(ClaimsDecision::Keep);
                assert_invalid_token(app.refresh(&second.refresh).await).await;
                assert!(app.manager().sessions("alice").await.unwrap().is_empty(), "the session ended");
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn a_failing_claims_source_rotates_nothing() {
                let directory = Arc::new(Mutex::new(Err("the users table is locked".to_string())));
                let app = with_claims_source(directory.clone()).await;
                let first = app.login("alice").await;
                app.harness.clock().advance(60); // past reuse_grace: a second rotation would be reuse
                let failed = app.refresh(&first.refresh).await;
                assert_eq!(failed.status(), Status::ServiceUnavailable);
                assert_eq!(failed.headers().get_one("Retry-After"), Some("1"));
                *directory.lock().unwrap() = Ok(ClaimsDecision::Replace(json!("not an object")));
                assert_eq!(app.refresh_status(&first.refresh).await, Status::InternalServerError);
                *directory.lock().unwrap() = Ok(ClaimsDecision::Keep);
                let rotated = app.rotate(&first.refresh).await;
                assert_eq!(app.whoami_status(&rotated.access).await, Status::Ok);
            }

            /// A demotion (the claims source's answer changes, then
            /// `update_claims`, as an app's role change does) with refreshes
            /// in flight whose source answered before it: no rotation
            /// committed after the demotion signs or keeps the old role.
            /// The source waits a little after reading, so that the race
            /// comes up in most rounds. Seen from the claims each session
            /// keeps: with the source then saying "keep", a refresh gives the
            /// stored role.
            #[rocket::async_test]
            $(#[$skip])*
            async fn a_demotion_reaches_the_refreshes_in_flight() {
                use std::sync::atomic::{AtomicBool, Ordering};
                const SESSIONS: usize = 6;
                const DEMOTIONS: usize = 100;
                let directory: Arc<Mutex<Result<ClaimsDecision, String>>> =
                    Arc::new(Mutex::new(Ok(ClaimsDecision::Replace(json!({ "role": "admin" })))));
                let backend = Backend::$backend().await;
                let source = {
                    let directory = directory.clone();
                    move |_user: String| {
                        let decided = directory.lock().unwrap().clone();
                        async move {
                            rocket::tokio::time::sleep(Duration::from_micros(300)).await;
                            decided
                        }
                    }
                };
                let app = App::start_hooked(
                    Arc::new(TestHarness::new()),
                    |figment| backend.configure(figment),
                    move |fairing| fairing.claims_source(source),
                )
                .await;
                let mut sessions: Vec<Tokens> = Vec::new();
                for _ in 0..SESSIONS {
                    sessions.push(app.login("alice").await);
                }
                let mut kept_old_role = 0;
                for _ in 0..DEMOTIONS {
                    let admin = json!({ "role": "admin" });
                    *directory.lock().unwrap() = Ok(ClaimsDecision::Replace(admin.clone()));
                    app.manager().update_claims("alice", admin).await.unwrap();
                    let stop = AtomicBool::new(false);
                    let refreshing = sessions.iter().map(|tokens| {
                        let stop = &stop;
                        let app = &app;
                        let mut refresh = tokens.refresh.clone();
                        async move {
                            while !stop.load(Ordering::SeqCst) {
                                let response = app.refresh(&refresh).await;
                                match response.status() {
                                    Status::Ok => refresh = tokens_of(response).await.refresh,
                                    Status::ServiceUnavailable => {}
                                    other => panic!("a refresh answered {other}"),
                                }
                            }
                            refresh
                        }
                    });
                    let demote = async {
                        rocket::tokio::time::sleep(Duration::from_millis(2)).await;
                        let member = json!({ "role": "member" });
                        *directory.lock().unwrap() = Ok(ClaimsDecision::Replace(member.clone()));
                        app.manager().update_claims("alice", member).await.unwrap();
                        stop.store(true, Ordering::SeqCst);
                    };
                    let (refreshes, ()) = rocket::tokio::join!(join_all(refreshing), demote);
                    *directory.lock().unwrap() = Ok(ClaimsDecision::Keep);
                    for (tokens, refresh) in sessions.iter_mut().zip(refreshes) {
                        let next = app.rotate(&refresh).await;
                        kept_old_role += usize::from(role_of(&app, &next).await == "admin");
                        *tokens = next;
                    }
                }
                assert_eq!(
                    kept_old_role, 0,
                    "sessions kept the old role after {DEMOTIONS} demotions with {SESSIONS} refresh loops"
                );
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn claims_the_source_replaces_are_kept_on_the_session() {
                let directory = Arc::new(Mutex::new(Ok(ClaimsDecision::Replace(json!({ "role": "admin" })))));
                let app = with_claims_source(directory.clone()).await;
                let first = app.login("alice").await;
                let second = app.rotate(&first.refresh).await;
                assert_eq!(role_of(&app, &second).await, "admin");
                *directory.lock().unwrap() = Ok(ClaimsDecision::Keep);
                let third = app.rotate(&second.refresh).await;
                assert_eq!(role_of(&app, &third).await, "admin", "kept from the last replacement");
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn logout_all_ends_every_session_of_the_user_only() {
                let (_backend, app) = start().await;
                let (phone, laptop, bob) = (
                    app.login("alice").await,
                    app.login("alice").await,
                    app.login("bob").await,
                );
                assert_eq!(
                    app.post_bearer("/auth/logout-all", &phone.access).await,
                    Status::NoContent
                );
                for tokens in [&phone, &laptop] {
                    assert_invalid_token(app.whoami(&tokens.access).await).await;
                    assert_invalid_token(app.refresh(&tokens.refresh).await).await;
                }
                assert_eq!(app.whoami_status(&bob.access).await, Status::Ok);
                assert_eq!(app.refresh_status(&bob.refresh).await, Status::Ok);
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn logout_others_ends_every_other_session_of_the_user_and_keeps_this_one() {
                let (_backend, app) = start().await;
                let (phone, laptop, bob) = (
                    app.login("alice").await,
                    app.login("alice").await,
                    app.login("bob").await,
                );
                assert_eq!(
                    app.post_bearer("/auth/logout-others", &phone.access).await,
                    Status::NoContent
                );
                assert_invalid_token(app.whoami(&laptop.access).await).await;
                assert_invalid_token(app.refresh(&laptop.refresh).await).await;
                assert_eq!(app.whoami_status(&phone.access).await, Status::Ok);
                let phone = app.rotate(&phone.refresh).await;
                assert_eq!(app.sessions(&phone.access).await.len(), 1);
                assert_eq!(app.whoami_status(&bob.access).await, Status::Ok);
                assert_invalid_token(app.client.post("/auth/logout-others").dispatch().await).await;
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn logout_everyone_ends_every_session_at_once_and_later_logins_work() {
                let (_backend, app) = start().await;
                let (alice, bob) = (app.login("alice").await, app.login("bob").await);
                let carol = app.login("carol").await;
                app.post_bearer("/auth/logout", &carol.access).await;
                assert_eq!(app.manager().logout_everyone().await.unwrap(), 2, "carol's was over");
                for tokens in [&alice, &bob] {
                    assert_invalid_token(app.whoami(&tokens.access).await).await;
                    assert_invalid_token(app.refresh(&tokens.refresh).await).await;
                }
                let again = app.login("alice").await;
                assert_eq!(app.whoami_status(&again.access).await, Status::Ok);
                assert_eq!(app.rotate(&again.refresh).await.expires_in, 900);
                // A login in flight during it is refused.
                app.directory().set("dave", "right", "member");
                let answers = in_flight_during(&app, "dave", "right", async {
                    app.manager().logout_everyone().await.unwrap();
                })
                .await;
                assert!(answers.iter().all(|(status, _)| *status == Status::Conflict));
                assert_eq!(app.gated_login("dave", "right").await.0, Status::Ok);
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn a_user_lists_and_revokes_only_their_own_sessions() {
                let (_backend, app) = start().await;
                let (phone, laptop, bob) = (
                    app.login("alice").await,
                    app.login("alice").await,
                    app.login("bob").await,
                );
                let listed = app.sessions(&phone.access).await;
                assert_eq!(listed.len(), 2);
                assert_eq!(listed.iter().filter(|s| s["current"] == true).count(), 1);
                let bobs = app.sessions(&bob.access).await[0]["id"]
                    .as_str()
                    .unwrap()
                    .to_string();
                let delete = |id: String, access: String| {
                    let client = &app.client;
                    async move {
                        client
                            .delete(format!("/auth/sessions/{id}"))
                            .header(common::bearer(&access))
                            .dispatch()
                            .await
                            .status()
                    }
                };
                assert_eq!(delete(bobs, phone.access.clone()).await, Status::NotFound);
                assert_eq!(app.whoami_status(&bob.access).await, Status::Ok);
                let laptops = common::session_id_of(&laptop.access);
                assert_eq!(delete(laptops, phone.access.clone()).await, Status::NoContent);
                assert_invalid_token(app.whoami(&laptop.access).await).await;
                assert_eq!(app.sessions(&phone.access).await.len(), 1);
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn a_user_labels_only_their_own_live_sessions() {
                let (_backend, app) = start().await;
                let (phone, laptop, bob) = (
                    app.login("alice").await,
                    app.login("alice").await,
                    app.login("bob").await,
                );
                let label = |id: String, access: String, body: String| {
                    let client = &app.client;
                    async move {
                        client
                            .put(format!("/auth/sessions/{id}/label"))
                            .header(common::bearer(&access))
                            .header(ContentType::JSON)
                            .body(body)
                            .dispatch()
                            .await
                            .status()
                    }
                };
                let laptops = common::session_id_of(&laptop.access);
                let named = |name: Value| json!({ "label": name }).to_string();
                assert_eq!(
                    label(laptops.clone(), phone.access.clone(), named(json!("  Work laptop "))).await,
                    Status::NoContent
                );
                let labels = |listed: Vec<Value>| {
                    let mut labels: Vec<Value> = listed.iter().map(|s| s["label"].clone()).collect();
                    labels.sort_by_key(|label| label.to_string());
                    labels
                };
                assert_eq!(labels(app.sessions(&phone.access).await), [json!("Work laptop"), Value::Null]);
                // Another user's session is no session of this one.
                assert_eq!(label(laptops.clone(), bob.access.clone(), named(json!("mine"))).await, Status::NotFound);
                assert_eq!(
                    label(laptops.clone(), phone.access.clone(), named(json!("é".repeat(65)))).await,
                    Status::UnprocessableEntity
                );
                assert_eq!(
                    label(laptops.clone(), phone.access.clone(), named(json!("a\u{7}b"))).await,
                    Status::UnprocessableEntity
                );
                assert_eq!(
                    label(laptops.clone(), phone.access.clone(), "[1,2]".to_string()).await,
                    Status::UnprocessableEntity
                );
                assert_eq!(labels(app.sessions(&phone.access).await), [json!("Work laptop"), Value::Null]);
                assert_eq!(
                    label(laptops.clone(), phone.access.clone(), named(json!("é".repeat(64)))).await,
                    Status::NoContent
                );
                assert_eq!(labels(app.sessions(&phone.access).await), [json!("é".repeat(64)), Value::Null]);
                assert_eq!(label(laptops.clone(), laptop.access.clone(), named(Value::Null)).await, Status::NoContent);
                assert_eq!(labels(app.sessions(&phone.access).await), [Value::Null, Value::Null]);
                // An ended session takes no label.
                assert_eq!(app.post_bearer("/auth/logout", &laptop.access).await, Status::NoContent);
                assert_eq!(label(laptops, phone.access.clone(), named(json!("gone"))).await, Status::NotFound);
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn session_data_is_kept_and_ends_with_its_session() {
                let (_backend, app) = start().await;
                let tokens = app.login("alice").await;
                let set = app
                    .client
                    .post("/data/cart")
                    .header(common::bearer(&tokens.access))
                    .header(ContentType::JSON)
                    .body(json!(["apple", "pear"]).to_string())
                    .dispatch()
                    .await;
                assert_eq!(set.status(), Status::Ok);
                let get = app
                    .client
                    .get("/data/cart")
                    .header(common::bearer(&tokens.access))
                    .dispatch()
                    .await;
                assert_eq!(get.into_json::<Value>().await, Some(json!(["apple", "pear"])));
                let renewed = app.rotate(&tokens.refresh).await;
                let get = app
                    .client
                    .get("/data/cart")
                    .header(common::bearer(&renewed.access))
                    .dispatch()
                    .await;
                assert_eq!(
                    get.into_json::<Value>().await,
                    Some(json!(["apple", "pear"])),
                    "kept across refreshes"
                );
                app.manager().logout_all("alice").await.unwrap();
                let set = app
                    .client
                    .post("/data/cart")
                    .header(common::bearer(&renewed.access))
                    .header(ContentType::JSON)
                    .body("[]")
                    .dispatch()
                    .await;
                assert_eq!(set.status(), Status::Unauthorized);
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn a_session_past_its_idle_timeout_cannot_refresh() {
                let (_backend, app) = start().await;
                let tokens = app.login("alice").await;
                app.harness.clock().advance(604_800);
                assert_invalid_token(app.refresh(&tokens.refresh).await).await;
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn wrong_passwords_are_throttled_for_that_username_until_the_window_passes() {
                let (_backend, app) = start().await;
                assert_eq!(try_login(&app, "alice", "right").await, Status::Ok);
                for _ in 0..10 {
                    assert_eq!(try_login(&app, "alice", "wrong").await, Status::Unauthorized);
                }
                assert_eq!(try_login(&app, "alice", "right").await, Status::TooManyRequests);
                assert_eq!(
                    try_login(&app, "bob", "right").await,
                    Status::Ok,
                    "another username is not throttled"
                );
                app.harness.clock().advance(15 * 60 + 1);
                assert_eq!(
                    try_login(&app, "alice", "right").await,
                    Status::Ok,
                    "the window has passed"
                );
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn pruning_deletes_what_no_token_needs_and_keeps_the_rest() {
                // (A scheduled pass at the wrong moment would take the rows.)
                let app = start_without_pruning_job().await;
                let (gone, live) = (app.login("alice").await, app.login("bob").await);
                assert_eq!(
                    app.post_bearer("/auth/logout", &gone.access).await,
                    Status::NoContent
                );
                let report = app.manager().prune_now().await.unwrap();
                assert_eq!(
                    (report.sessions, report.revoked_tokens, report.feed_entries),
                    (0, 0, 0)
                );
                assert!(report.completed);
                app.harness.clock().advance(901);
                let report = app.manager().prune_now().await.unwrap();
                assert_eq!(
                    (report.sessions, report.revoked_tokens, report.feed_entries),
                    (1, 1, 2)
                );
                assert_eq!(
                    app.whoami_status(&live.access).await,
                    Status::Unauthorized,
                    "expired"
                );
                assert_eq!(
                    app.refresh_status(&live.refresh).await,
                    Status::Ok,
                    "bob's session is kept"
                );
                assert_invalid_token(app.refresh(&gone.refresh).await).await;
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn revocations_survive_a_restart() {
                let (backend, app) = start().await;
                let tokens = app.login("alice").await;
                assert_eq!(
                    app.post_bearer("/auth/logout", &tokens.access).await,
                    Status::NoContent
                );
                let harness = app.stop().await;
                let app = instance(&backend, &harness).await;
                assert_invalid_token(app.whoami(&tokens.access).await).await;
                assert_invalid_token(app.refresh(&tokens.refresh).await).await;
            }

            /// Requests with a token the guard has admitted (and keeps) in
            /// flight while its session is logged out: every one begun after
            /// the logout answered is refused.
            #[rocket::async_test]
            $(#[$skip])*
            async fn requests_in_flight_during_a_logout_are_refused_once_it_answered() {
                let (_backend, app) = start().await;
                for round in 0..ROUNDS {
                    let tokens = app.login("alice").await;
                    assert_eq!(app.whoami_status(&tokens.access).await, Status::Ok, "round {round}");
                    let answered = std::sync::atomic::AtomicBool::new(false);
                    let requests = (0..IN_FLIGHT).map(|_| async {
                        // (begun after the logout answered, status)
                        let mut seen = Vec::new();
                        while seen.iter().filter(|(after, _)| *after).count() < 3 {
                            let after = answered.load(std::sync::atomic::Ordering::SeqCst);
                            seen.push((after, app.whoami_status(&tokens.access).await));
                            rocket::tokio::task::yield_now().await;
                        }
                        seen
                    });
                    let logout = async {
                        rocket::tokio::task::yield_now().await;
                        let status = app.post_bearer("/auth/logout", &tokens.access).await;
                        answered.store(true, std::sync::atomic::Ordering::SeqCst);
                        status
                    };
                    let (seen, logout) = rocket::tokio::join!(join_all(requests), logout);
                    assert_eq!(logout, Status::NoContent, "round {round}");
                    let seen: Vec<(bool, Status)> = seen.into_iter().flatten().collect();
                    assert!(
                        seen.iter().any(|&(after, status)| !after && status == Status::Ok),
                        "round {round}: requests ran while the logout was in flight: {seen:?}"
                    );
                    assert!(
                        seen.iter().all(|&(after, status)| !after || status == Status::Unauthorized),
                        "round {round}: admitted after the logout answered: {seen:?}"
                    );
                }
            }

            // User-wide cut-offs: logins in flight when a user changes.

            /// Logins held at the gate (their credentials read) while `change`
            /// runs, then let go; gives their answers.
            async fn in_flight_during<F: std::future::Future<Output = ()>>(
                login_on: &App,
                username: &str,
                password: &str,
                change: F,
            ) -> Vec<(Status, Option<Tokens>)> {
                let directory = login_on.directory();
                directory.close();
                let logins = (0..IN_FLIGHT).map(|_| login_on.gated_login(username, password));
                let changed = async {
                    directory.wait_for(IN_FLIGHT).await;
                    change.await;
                    directory.open();
                };
                rocket::tokio::join!(join_all(logins), changed).0
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn logins_in_flight_during_a_demotion_get_no_session_with_the_old_role() {
                let (_backend, app) = start().await;
                for round in 0..ROUNDS {
                    app.directory().set("alice", "right", "admin");
                    let answers = in_flight_during(&app, "alice", "right", async {
                        app.directory().set("alice", "right", "member");
                        app.manager()
                            .update_claims("alice", json!({ "role": "member" }))
                            .await
                            .unwrap();
                    })
                    .await;
                    let admins = sessions_with_role(&app, &answers, "admin").await;
                    assert_eq!(admins, 0, "round {round}: sessions kept the old role");
                    assert!(
                        answers.iter().all(|(status, _)| *status == Status::Conflict),
                        "round {round}: every login in flight is refused: {:?}",
                        answers.iter().map(|(status, _)| *status).collect::<Vec<_>>()
                    );
                    assert!(app.manager().sessions("alice").await.unwrap().is_empty());
                    // A login begun after the demotion gets the new role.
                    let (status, tokens) = app.gated_login("alice", "right").await;
                    assert_eq!(status, Status::Ok, "round {round}");
                    assert_eq!(role_of(&app, &tokens.unwrap()).await, "member");
                    app.manager().logout_all("alice").await.unwrap();
                }
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn logins_in_flight_during_a_password_change_get_no_session() {
                let (_backend, app) = start().await;
                for round in 0..ROUNDS {
                    let (old, new) = (format!("old{round}"), format!("new{round}"));
                    app.directory().set("alice", &old, "member");
                    let (status, device) = app.gated_login("alice", &old).await;
                    assert_eq!(status, Status::Ok);
                    let device = device.unwrap();
                    let user = app
                        .manager()
                        .verify_authorization(&format!("Bearer {}", device.access))
                        .unwrap();
                    let answers = in_flight_during(&app, "alice", &old, async {
                        app.directory().set("alice", &new, "member");
                        app.manager().logout_others(&user).await.unwrap();
                    })
                    .await;
                    assert!(
                        answers.iter().all(|(status, _)| *status == Status::Conflict),
                        "round {round}: every login with the old password is refused: {:?}",
                        answers.iter().map(|(status, _)| *status).collect::<Vec<_>>()
                    );
                    let live = app.manager().sessions("alice").await.unwrap();
                    assert_eq!(
                        live.iter().map(|session| session.id.as_str()).collect::<Vec<_>>(),
                        [user.session_id.as_str()],
                        "round {round}: only the device that changed the password"
                    );
                    let device = app.rotate(&device.refresh).await;
                    assert_eq!(app.whoami_status(&device.access).await, Status::Ok);
                    assert_eq!(app.gated_login("alice", &old).await.0, Status::Unauthorized);
                    assert_eq!(app.gated_login("alice", &new).await.0, Status::Ok);
                    app.manager().logout_all("alice").await.unwrap();
                }
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn a_login_whose_check_is_older_than_the_window_is_refused() {
                let (_backend, app) = start().await;
                app.directory().set("alice", "right", "member");
                let answers = in_flight_during(&app, "alice", "right", async {
                    app.harness.clock().advance(901);
                })
                .await;
                assert!(answers.iter().all(|(status, _)| *status == Status::Conflict));
                assert_eq!(app.gated_login("alice", "right").await.0, Status::Ok);
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn cut_offs_are_pruned_once_no_login_can_precede_them() {
                let app = start_without_pruning_job().await;
                for user in ["alice", "bob", "carol"] {
                    app.manager().logout_all(user).await.unwrap();
                }
                assert_eq!(app.manager().prune_now().await.unwrap().user_cutoffs, 0);
                app.harness.clock().advance(900 + 5);
                assert_eq!(app.manager().prune_now().await.unwrap().user_cutoffs, 3);
                assert_eq!(app.manager().prune_now().await.unwrap().user_cutoffs, 0);
            }

            // Two instances on one database.

            /// Two apps on one fresh database of this backend.
            async fn two() -> (App, App) {
                let backend = Backend::$backend().await;
                let harness = Arc::new(TestHarness::new());
                let a = instance(&backend, &harness).await;
                let b = instance(&backend, &harness).await;
                (a, b)
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn a_logout_on_one_instance_is_refused_by_the_other_within_a_second() {
                let (a, b) = two().await;
                let tokens = a.login("alice").await;
                assert_eq!(b.whoami_status(&tokens.access).await, Status::Ok);
                assert_eq!(
                    a.post_bearer("/auth/logout", &tokens.access).await,
                    Status::NoContent
                );
                let took = refused_within(&b, &tokens.access).await;
                assert!(
                    took.is_some(),
                    "B still accepted the token 1 s after the logout on A"
                );
                assert_invalid_token(b.refresh(&tokens.refresh).await).await;
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn logout_all_on_one_instance_ends_sessions_used_on_the_other() {
                let (a, b) = two().await;
                let (phone, laptop) = (b.login("alice").await, b.login("alice").await);
                let laptop = b.rotate(&laptop.refresh).await;
                assert_eq!(b.whoami_status(&phone.access).await, Status::Ok);
                let other = a.login("alice").await;
                assert_eq!(
                    a.post_bearer("/auth/logout-all", &other.access).await,
                    Status::NoContent
                );
                for tokens in [&phone, &laptop] {
                    assert!(
                        refused_within(&b, &tokens.access).await.is_some(),
                        "B still accepts a session"
                    );
                    assert_invalid_token(b.refresh(&tokens.refresh).await).await;
                }
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn refreshes_of_one_token_racing_on_two_instances_rotate_once() {
                let (a, b) = two().await;
                for round in 0..10 {
                    let tokens = a.login(&format!("user{round}")).await;
                    let (on_a, on_b) = rocket::tokio::join!(a.refresh(&tokens.refresh), b.refresh(&tokens.refresh));
                    let (status_a, status_b) = (on_a.status(), on_b.status());
                    assert_eq!(
                        (status_a, status_b),
                        (Status::Ok, Status::Ok),
                        "a replay within the grace window"
                    );
                    let (on_a, on_b): (Tokens, Tokens) = (tokens_of(on_a).await, tokens_of(on_b).await);
                    assert_eq!(on_a.refresh, on_b.refresh, "one successor for both: one rotation");
                    let next = b.rotate(&on_a.refresh).await;
                    assert_eq!(a.whoami_status(&next.access).await, Status::Ok);
                }
            }

            /// Rotations alternating between the instances, new claims and
            /// a logout written by one: the other's next refresh is decided
            /// from the session as the store holds it, not as it last wrote it.
            #[rocket::async_test]
            $(#[$skip])*
            async fn each_instance_refreshes_from_the_session_as_the_other_left_it() {
                let (a, b) = two().await;
                let mut current = a.login("alice").await;
                for round in 0..6 {
                    let (this, other) = if round % 3 == 2 { (&b, &a) } else { (&a, &b) };
                    let next = this.rotate(&current.refresh).await;
                    assert_eq!(other.whoami_status(&next.access).await, Status::Ok, "round {round}");
                    current = next;
                }
                // A rotated last each time below: what it wrote is as B left it
                // only until B writes.
                let current = a.rotate(&current.refresh).await;
                assert_eq!(b.manager().update_claims("alice", json!({ "role": "admin" })).await.unwrap(), 1);
                let after = a.rotate(&current.refresh).await;
                let body: Value = a.whoami(&after.access).await.into_json().await.unwrap();
                assert_eq!(body["role"], "admin", "the claims B wrote");
                assert_eq!(b.manager().logout_all("alice").await.unwrap(), 1);
                assert_invalid_token(a.refresh(&after.refresh).await).await;
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn reuse_detected_on_one_instance_is_refused_by_the_other() {
                let (a, b) = two().await;
                let first = a.login("alice").await;
                let second = b.rotate(&first.refresh).await;
                a.harness.clock().advance(11);
                assert_invalid_token(a.refresh(&first.refresh).await).await;
                assert!(refused_within(&b, &second.access).await.is_some());
            }
            #[rocket::async_test]
            $(#[$skip])*
            async fn logout_everyone_on_one_instance_is_refused_by_the_other_within_a_second() {
                let (a, b) = two().await;
                let (alice, bob) = (a.login("alice").await, a.login("bob").await);
                assert_eq!(b.manager().logout_everyone().await.unwrap(), 2);
                for tokens in [&alice, &bob] {
                    assert!(
                        refused_within(&a, &tokens.access).await.is_some(),
                        "A still accepted a token 1 s after B ended every session"
                    );
                    assert_invalid_token(a.refresh(&tokens.refresh).await).await;
                }
                let again = a.login("alice").await;
                assert_eq!(b.whoami_status(&again.access).await, Status::Ok);
            }

            #[rocket::async_test]
            $(#[$skip])*
            async fn a_demotion_on_one_instance_refuses_the_logins_in_flight_on_the_other() {
                let (a, b) = two().await;
                for round in 0..ROUNDS {
                    b.directory().set("alice", "right", "admin");
                    let answers = in_flight_during(&b, "alice", "right", async {
                        b.directory().set("alice", "right", "member");
                        a.manager()
                            .update_claims("alice", json!({ "role": "member" }))
                            .await
                            .unwrap();
                    })
                    .await;
                    assert_eq!(sessions_with_role(&b, &answers, "admin").await, 0, "round {round}");
                    assert!(answers.iter().all(|(status, _)| *status == Status::Conflict));
                }
            }
        }
    };
}

acceptance_suite!(sqlite);
acceptance_suite!(postgres #[cfg_attr(
    not(postgres_server),
    ignore = "needs PostgreSQL: --features postgres and ROCKET_SESSIONS_TEST_POSTGRES (see testsuite/build.rs)"
)]);
acceptance_suite!(pgbouncer #[cfg_attr(
    not(pgbouncer_server),
    ignore = "needs PgBouncer: --features postgres and ROCKET_SESSIONS_TEST_PGBOUNCER (see testsuite/build.rs)"
)]);
