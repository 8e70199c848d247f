//! The demo app's HTTP contract (the README's "The demo's API"), end to end.

use rocket::http::{ContentType, Status};
use rocket::local::asynchronous::{Client, LocalResponse};
use serde_json::{json, Value};

use crate::common::bearer;
use crate::demo::{self, login, post_json, start};

#[rocket::async_test]
async fn register_login_me_refresh_logout() {
    let harness = demo::harness();
    let client = start(&harness).await;
    let credentials = json!({ "username": "alice", "password": "correct horse battery" });

    let registered = post_json(&client, "/auth/register", credentials.clone()).await;
    assert_eq!(registered.status(), Status::Created);
    let user_id = registered.into_json::<Value>().await.unwrap()["user_id"].clone();
    assert!(user_id.is_i64());

    let login = post_json(&client, "/auth/login", credentials.clone()).await;
    assert_eq!(login.status(), Status::Ok);
    assert_eq!(login.headers().get_one("Cache-Control"), Some("no-store"));
    let tokens: Value = login.into_json().await.unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 900);
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    let me = client.get("/me").header(bearer(access)).dispatch().await;
    assert_eq!(me.status(), Status::Ok);
    let me: Value = me.into_json().await.unwrap();
    assert_eq!(me["user_id"], user_id);
    assert_eq!(me["username"], "alice");
    assert!(me["session_id"].is_string());

    let refreshed = post_json(&client, "/auth/refresh", json!({ "refresh_token": refresh })).await;
    assert_eq!(refreshed.status(), Status::Ok);
    let refreshed: Value = refreshed.into_json().await.unwrap();
    let new_access = refreshed["access_token"].as_str().unwrap();
    assert_ne!(refreshed["refresh_token"], tokens["refresh_token"]);

    let sessions = client.get("/auth/sessions").header(bearer(new_access)).dispatch().await;
    let sessions: Vec<Value> = sessions.into_json().await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["id"], me["session_id"]);
    assert_eq!(sessions[0]["current"], true);

    let logout = client.post("/auth/logout").header(bearer(new_access)).dispatch().await;
    assert_eq!(logout.status(), Status::NoContent);
    let after = client.get("/me").header(bearer(new_access)).dispatch().await;
    assert_eq!(after.status(), Status::Unauthorized);
    assert_eq!(
        after.headers().get_one("WWW-Authenticate"),
        Some(r#"Bearer error="invalid_token""#)
    );
    let refresh_after = post_json(
        &client,
        "/auth/refresh",
        json!({ "refresh_token": refreshed["refresh_token"] }),
    )
    .await;
    assert_eq!(refresh_after.status(), Status::Unauthorized);
}

#[rocket::async_test]
async fn registration_refuses_taken_names_and_bad_input() {
    let harness = demo::harness();
    let client = start(&harness).await;
    let alice = json!({ "username": "alice", "password": "correct horse" });
    assert_eq!(
        post_json(&client, "/auth/register", alice.clone()).await.status(),
        Status::Created
    );
    assert_eq!(
        post_json(&client, "/auth/register", alice).await.status(),
        Status::Conflict
    );

    for bad in [
        json!({ "username": "bob", "password": "short" }),
        json!({ "username": "", "password": "long enough" }),
        json!({ "username": "x".repeat(200), "password": "long enough" }),
        json!({ "username": "bob", "password": "p".repeat(5000) }),
        json!({ "username": "bob" }),
        json!({ "username": 5, "password": "long enough" }),
        json!("not an object"),
    ] {
        let response = post_json(&client, "/auth/register", bad).await;
        assert_eq!(response.status(), Status::UnprocessableEntity);
        assert!(response.into_json::<Value>().await.unwrap()["error"].is_string());
    }
    let garbage = client.post("/auth/register").body("{not json").dispatch().await;
    assert_eq!(garbage.status(), Status::UnprocessableEntity);
}

/// One account per name whatever its look-alikes: usernames are compared in
/// the PRECIS UsernameCaseMapped form (RFC 8265); invisible, direction and
/// separator characters, and letters of two look-alike scripts, are refused.
#[rocket::async_test]
async fn look_alike_usernames_are_one_account_or_refused() {
    let harness = demo::harness();
    let client = start(&harness).await;
    assert_eq!(
        demo::register(&client, "alice", "correct horse").await.status(),
        Status::Created
    );
    let same = [
        "Alice",
        "ALICE",
        " alice ",
        "\u{ff41}\u{ff4c}\u{ff49}\u{ff43}\u{ff45}", // fullwidth
    ];
    for name in same {
        let answer = demo::register(&client, name, "another horse").await;
        assert_eq!(answer.status(), Status::Conflict, "{name:?} is alice");
    }
    let refused = [
        "al\u{200b}ice",       // zero-width space
        "\u{202e}ecila",       // right-to-left override
        "alice\u{2028}",       // line separator
        "\u{0430}lice",        // Cyrillic а
        "\u{0430}\u{043b}ice", // Cyrillic а and л
        "ali ce",
        "alice\u{0007}",
        "",
        "   ",
    ];
    for name in refused {
        let answer = demo::register(&client, name, "another horse").await;
        assert_eq!(answer.status(), Status::UnprocessableEntity, "{name:?} is refused");
    }
    // One account: alice signs in under any of her forms.
    for name in ["alice", "Alice", "\u{ff41}lice"] {
        let tokens = login(&client, name, "correct horse").await;
        let me: Value = client
            .get("/me")
            .header(bearer(tokens["access_token"].as_str().unwrap()))
            .dispatch()
            .await
            .into_json()
            .await
            .unwrap();
        assert_eq!(me["username"], "alice");
    }
    // A name in a script of its own is a name like any other.
    assert_eq!(
        demo::register(&client, "\u{0430}\u{043b}\u{0438}\u{0441}\u{0430}", "correct horse")
            .await
            .status(),
        Status::Created
    );
    let admin: Value = login(&client, "alice", "correct horse").await;
    let listed: Value = client
        .get("/admin/users")
        .header(bearer(admin["access_token"].as_str().unwrap()))
        .dispatch()
        .await
        .into_json()
        .await
        .unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 2, "{listed}");
}

/// A username no user can have is refused before anything else: never
/// counted, hashed for, or logged, however large.
#[rocket::async_test]
async fn an_oversized_username_is_refused_before_any_check() {
    let harness = demo::harness();
    let client = start(&harness).await;
    let huge = "a".repeat(512 * 1024);
    let before = crate::common::logs::lines().len();
    for _ in 0..20 {
        let answer = post_json(
            &client,
            "/auth/login",
            json!({ "username": huge, "password": "whatever" }),
        )
        .await;
        assert_eq!(answer.status(), Status::UnprocessableEntity);
    }
    let lines = crate::common::logs::lines();
    let longest = lines[before..].iter().map(String::len).max().unwrap_or(0);
    assert!(longest < 1024, "a log line of {longest} bytes");
    assert_eq!(
        demo::users::peak_concurrent_hashes(client.rocket()),
        0,
        "no password was hashed"
    );
}

#[rocket::async_test]
async fn login_gives_one_answer_for_unknown_user_and_wrong_password() {
    let harness = demo::harness();
    let client = start(&harness).await;
    let alice = json!({ "username": "alice", "password": "correct horse" });
    post_json(&client, "/auth/register", alice).await;

    let wrong = post_json(
        &client,
        "/auth/login",
        json!({ "username": "alice", "password": "wrong horse" }),
    )
    .await;
    let unknown = post_json(
        &client,
        "/auth/login",
        json!({ "username": "nobody", "password": "wrong horse" }),
    )
    .await;
    assert_eq!(wrong.status(), Status::Unauthorized);
    assert_eq!(unknown.status(), Status::Unauthorized);
    let wrong: Value = wrong.into_json().await.unwrap();
    let unknown: Value = unknown.into_json().await.unwrap();
    assert_eq!(wrong, unknown);
}

#[rocket::async_test]
async fn health_needs_no_token_and_me_needs_one() {
    let harness = demo::harness();
    let client = start(&harness).await;
    assert_eq!(client.get("/health").dispatch().await.status(), Status::Ok);
    let me = client.get("/me").dispatch().await;
    assert_eq!(me.status(), Status::Unauthorized);
    assert_eq!(
        me.into_json::<Value>().await.unwrap(),
        json!({ "error": "invalid_token", "message": rocket_sqlite_sessions::INVALID_TOKEN_MESSAGE })
    );
    let missing = client.get("/no/such/page").dispatch().await;
    assert_eq!(missing.status(), Status::NotFound);
    assert!(missing.into_json::<Value>().await.is_some(), "errors are JSON");
}

async fn change_password<'c>(client: &'c Client, access: &str, current: &str, new: &str) -> LocalResponse<'c> {
    client
        .post("/auth/password")
        .header(bearer(access))
        .header(ContentType::JSON)
        .body(json!({ "current_password": current, "new_password": new }).to_string())
        .dispatch()
        .await
}

#[rocket::async_test]
async fn a_password_change_ends_every_other_session_and_keeps_this_one() {
    let harness = demo::harness();
    let client = start(&harness).await;
    post_json(
        &client,
        "/auth/register",
        json!({ "username": "alice", "password": "old password" }),
    )
    .await;
    let laptop = login(&client, "alice", "old password").await;
    let phone = login(&client, "alice", "old password").await;
    let laptop_access = laptop["access_token"].as_str().unwrap();

    let wrong = change_password(&client, laptop_access, "not the password", "new password").await;
    assert_eq!(wrong.status(), Status::Forbidden);
    let short = change_password(&client, laptop_access, "old password", "short").await;
    assert_eq!(short.status(), Status::UnprocessableEntity);
    let phone_still = client
        .get("/me")
        .header(bearer(phone["access_token"].as_str().unwrap()))
        .dispatch()
        .await;
    assert_eq!(phone_still.status(), Status::Ok, "refused changes end nothing");

    let changed = change_password(&client, laptop_access, "old password", "new password").await;
    assert_eq!(changed.status(), Status::NoContent);

    let phone_me = client
        .get("/me")
        .header(bearer(phone["access_token"].as_str().unwrap()))
        .dispatch()
        .await;
    assert_eq!(phone_me.status(), Status::Unauthorized);
    let phone_refresh = post_json(
        &client,
        "/auth/refresh",
        json!({ "refresh_token": phone["refresh_token"] }),
    )
    .await;
    assert_eq!(phone_refresh.status(), Status::Unauthorized);
    let laptop_me = client.get("/me").header(bearer(laptop_access)).dispatch().await;
    assert_eq!(laptop_me.status(), Status::Ok, "the current session stays");
    let laptop_refresh = post_json(
        &client,
        "/auth/refresh",
        json!({ "refresh_token": laptop["refresh_token"] }),
    )
    .await;
    assert_eq!(laptop_refresh.status(), Status::Ok);

    let old = post_json(
        &client,
        "/auth/login",
        json!({ "username": "alice", "password": "old password" }),
    )
    .await;
    assert_eq!(old.status(), Status::Unauthorized);
    login(&client, "alice", "new password").await;
}

#[rocket::async_test]
async fn a_password_change_needs_a_recent_login() {
    let harness = demo::harness();
    let client = start(&harness).await;
    post_json(
        &client,
        "/auth/register",
        json!({ "username": "alice", "password": "old password" }),
    )
    .await;
    let tokens = login(&client, "alice", "old password").await;
    harness.clock().advance(301); // default fresh_age is 300 s
    let refreshed = post_json(
        &client,
        "/auth/refresh",
        json!({ "refresh_token": tokens["refresh_token"] }),
    )
    .await;
    let refreshed: Value = refreshed.into_json().await.unwrap();
    let stale = change_password(
        &client,
        refreshed["access_token"].as_str().unwrap(),
        "old password",
        "new password",
    )
    .await;
    assert_eq!(stale.status(), Status::Unauthorized);
    assert!(stale
        .headers()
        .get_one("WWW-Authenticate")
        .unwrap()
        .contains("insufficient_user_authentication"));
}

#[rocket::async_test]
async fn repeated_wrong_passwords_throttle_the_username() {
    let harness = demo::harness();
    let client = start(&harness).await;
    post_json(
        &client,
        "/auth/register",
        json!({ "username": "alice", "password": "right password" }),
    )
    .await;
    for _ in 0..10 {
        let wrong = post_json(
            &client,
            "/auth/login",
            json!({ "username": "alice", "password": "wrong password" }),
        )
        .await;
        assert_eq!(wrong.status(), Status::Unauthorized);
    }
    let throttled = post_json(
        &client,
        "/auth/login",
        json!({ "username": "alice", "password": "right password" }),
    )
    .await;
    assert_eq!(throttled.status(), Status::TooManyRequests);
    assert_eq!(throttled.headers().get_one("Retry-After"), Some("900"));
    harness.clock().advance(900);
    login(&client, "alice", "right password").await;
}

#[rocket::async_test]
async fn concurrent_password_hashing_is_capped_at_the_cores() {
    let harness = demo::harness();
    let client = start(&harness).await;
    let credentials = json!({ "username": "alice", "password": "correct horse battery" });
    assert_eq!(
        post_json(&client, "/auth/register", credentials.clone()).await.status(),
        Status::Created
    );
    // Eight at once (more than the cores; fewer than login_max_failures, as an
    // attempt counts until it passes).
    let logins = (0..8).map(|_| post_json(&client, "/auth/login", credentials.clone()));
    for response in rocket::futures::future::join_all(logins).await {
        assert_eq!(response.status(), Status::Ok, "every login is answered");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let peak = demo::users::peak_concurrent_hashes(client.rocket());
    assert!(
        (1..=cores).contains(&peak),
        "at most one password hash per core at a time: {peak} on {cores} cores"
    );
}

/// Registers and logs in `username`; gives the token response.
async fn signed_up(client: &Client, username: &str) -> Value {
    let credentials = json!({ "username": username, "password": "correct horse battery" });
    let registered = post_json(client, "/auth/register", credentials.clone()).await;
    assert_eq!(registered.status(), Status::Created);
    let login = post_json(client, "/auth/login", credentials).await;
    assert_eq!(login.status(), Status::Ok);
    login.into_json().await.unwrap()
}

async fn get_status(client: &Client, path: &'static str, access: &Value) -> Status {
    let access = access["access_token"].as_str().unwrap();
    client.get(path).header(bearer(access)).dispatch().await.status()
}

async fn refreshed(client: &Client, tokens: &Value) -> Value {
    let response = post_json(
        client,
        "/auth/refresh",
        json!({ "refresh_token": tokens["refresh_token"] }),
    )
    .await;
    assert_eq!(response.status(), Status::Ok);
    response.into_json().await.unwrap()
}

#[rocket::async_test]
async fn the_first_user_is_the_admin_and_role_changes_reach_the_next_refresh() {
    let harness = demo::harness();
    let client = start(&harness).await;
    let ada = signed_up(&client, "ada").await;
    let bob = signed_up(&client, "bob").await;

    let me = client
        .get("/me")
        .header(bearer(ada["access_token"].as_str().unwrap()))
        .dispatch()
        .await;
    assert_eq!(me.into_json::<Value>().await.unwrap()["roles"], json!(["admin"]));
    assert_eq!(get_status(&client, "/admin/users", &ada).await, Status::Ok);
    assert_eq!(get_status(&client, "/admin/users", &bob).await, Status::Forbidden);

    let change = |username: &'static str, role: &'static str, by: &Value| {
        let access = by["access_token"].as_str().unwrap().to_string();
        let client = &client;
        async move {
            client
                .put(format!("/admin/users/{username}/role"))
                .header(bearer(&access))
                .header(ContentType::JSON)
                .body(json!({ "role": role }).to_string())
                .dispatch()
                .await
                .status()
        }
    };
    assert_eq!(
        change("ada", "member", &bob).await,
        Status::Forbidden,
        "members manage nobody"
    );
    assert_eq!(change("bob", "root", &ada).await, Status::UnprocessableEntity);
    assert_eq!(change("nobody", "admin", &ada).await, Status::NotFound);
    assert_eq!(change("bob", "admin", &ada).await, Status::NoContent);

    // Bob's token still says member until his next refresh.
    assert_eq!(get_status(&client, "/admin/users", &bob).await, Status::Forbidden);
    let bob = refreshed(&client, &bob).await;
    assert_eq!(get_status(&client, "/admin/users", &bob).await, Status::Ok);
    let listed = client
        .get("/admin/users")
        .header(bearer(bob["access_token"].as_str().unwrap()))
        .dispatch()
        .await
        .into_json::<Value>()
        .await
        .unwrap();
    assert_eq!(
        listed,
        json!([{ "username": "ada", "role": "admin" }, { "username": "bob", "role": "admin" }])
    );

    // And back: demoted, Bob loses the role at the next refresh.
    assert_eq!(change("bob", "member", &ada).await, Status::NoContent);
    let bob = refreshed(&client, &bob).await;
    assert_eq!(get_status(&client, "/admin/users", &bob).await, Status::Forbidden);
}

/// Logins racing a demotion, as they happen in the demo (the role read, then
/// Argon2, then the login): after five rounds, no session of the user gets
/// the admin role at its next refresh, and every login either got a session
/// or was told to sign in again (409).
#[rocket::async_test]
async fn logins_racing_a_demotion_leave_no_session_with_the_old_role() {
    let harness = demo::harness();
    let client = start(&harness).await;
    let ada = signed_up(&client, "ada").await;
    signed_up(&client, "bob").await;
    let change_role = |role: &'static str| {
        let access = ada["access_token"].as_str().unwrap().to_string();
        let client = &client;
        async move {
            let status = client
                .put("/admin/users/bob/role")
                .header(bearer(&access))
                .header(ContentType::JSON)
                .body(json!({ "role": role }).to_string())
                .dispatch()
                .await
                .status();
            assert_eq!(status, Status::NoContent);
        }
    };
    let mut superseded = 0;
    for round in 0..5 {
        change_role("admin").await;
        let logins = (0..6).map(|_| {
            post_json(
                &client,
                "/auth/login",
                json!({ "username": "bob", "password": "correct horse battery" }),
            )
        });
        let (answers, ()) = rocket::tokio::join!(rocket::futures::future::join_all(logins), change_role("member"));
        for answer in answers {
            match answer.status() {
                Status::Ok => {
                    let tokens: Value = answer.into_json().await.unwrap();
                    let next = refreshed(&client, &tokens).await;
                    let me = client
                        .get("/me")
                        .header(bearer(next["access_token"].as_str().unwrap()))
                        .dispatch()
                        .await;
                    let roles = me.into_json::<Value>().await.unwrap()["roles"].clone();
                    assert_eq!(roles, json!(["member"]), "round {round}: a session kept the admin role");
                }
                Status::Conflict => superseded += 1,
                other => panic!("round {round}: a login answered {other}"),
            }
        }
    }
    println!("{superseded} of 30 logins were overtaken by the demotion and refused");
}

async fn post_as(client: &Client, path: &str, by: &Value) -> Status {
    client
        .post(path.to_string())
        .header(bearer(by["access_token"].as_str().unwrap()))
        .dispatch()
        .await
        .status()
}

async fn refresh_status(client: &Client, tokens: &Value) -> Status {
    post_json(
        client,
        "/auth/refresh",
        json!({ "refresh_token": tokens["refresh_token"] }),
    )
    .await
    .status()
}

#[rocket::async_test]
async fn a_banned_user_is_signed_out_everywhere_and_cannot_sign_in() {
    let harness = demo::harness();
    let client = start(&harness).await;
    let ada = signed_up(&client, "ada").await;
    let bob = signed_up(&client, "bob").await;
    let bob_phone = login(&client, "bob", "correct horse battery").await;
    assert_eq!(
        post_as(&client, "/admin/users/ada/ban", &bob).await,
        Status::Forbidden,
        "members ban nobody"
    );
    assert_eq!(
        post_as(&client, "/admin/users/nobody/ban", &ada).await,
        Status::NotFound
    );

    assert_eq!(post_as(&client, "/admin/users/bob/ban", &ada).await, Status::NoContent);
    for tokens in [&bob, &bob_phone] {
        let me = client
            .get("/me")
            .header(bearer(tokens["access_token"].as_str().unwrap()))
            .dispatch()
            .await;
        assert_eq!(me.status(), Status::Unauthorized, "at once");
        assert_eq!(refresh_status(&client, tokens).await, Status::Unauthorized);
    }
    let refused = post_json(
        &client,
        "/auth/login",
        json!({ "username": "bob", "password": "correct horse battery" }),
    )
    .await;
    assert_eq!(refused.status(), Status::Forbidden);
    assert_eq!(refused.into_json::<Value>().await.unwrap()["error"], "account_disabled");
    let wrong = post_json(
        &client,
        "/auth/login",
        json!({ "username": "bob", "password": "not the password" }),
    )
    .await;
    assert_eq!(
        wrong.status(),
        Status::Unauthorized,
        "a wrong password says nothing of the ban"
    );
}

#[rocket::async_test]
async fn a_ban_made_in_the_table_alone_ends_the_session_at_its_next_refresh() {
    let harness = demo::harness();
    let client = start(&harness).await;
    signed_up(&client, "ada").await;
    let bob = signed_up(&client, "bob").await;
    let bob = refreshed(&client, &bob).await;
    let table = rusqlite::Connection::open(harness.database()).unwrap();
    table
        .execute("UPDATE demo_users SET banned = 1 WHERE username = 'bob'", [])
        .unwrap();
    assert_eq!(
        refresh_status(&client, &bob).await,
        Status::Unauthorized,
        "the claims source ends it"
    );
}

#[rocket::async_test]
async fn the_last_admin_can_be_neither_demoted_nor_banned() {
    let harness = demo::harness();
    let client = start(&harness).await;
    let ada = signed_up(&client, "ada").await;
    let bob = signed_up(&client, "bob").await;
    let demote = |username: &'static str, by: &Value| {
        let access = by["access_token"].as_str().unwrap().to_string();
        let client = &client;
        async move {
            let response = client
                .put(format!("/admin/users/{username}/role"))
                .header(bearer(&access))
                .header(ContentType::JSON)
                .body(json!({ "role": "member" }).to_string())
                .dispatch()
                .await;
            let status = response.status();
            (status, response.into_json::<Value>().await)
        }
    };
    let (status, body) = demote("ada", &ada).await;
    assert_eq!(status, Status::Conflict);
    assert_eq!(body.unwrap()["error"], "last_admin");
    assert_eq!(post_as(&client, "/admin/users/ada/ban", &ada).await, Status::Conflict);
    // With a second admin, the first may step down.
    let promoted = client
        .put("/admin/users/bob/role")
        .header(bearer(ada["access_token"].as_str().unwrap()))
        .header(ContentType::JSON)
        .body(json!({ "role": "admin" }).to_string())
        .dispatch()
        .await;
    assert_eq!(promoted.status(), Status::NoContent);
    let bob = refreshed(&client, &bob).await;
    assert_eq!(demote("ada", &bob).await.0, Status::NoContent);
    assert_eq!(
        post_as(&client, "/admin/users/bob/ban", &bob).await,
        Status::Conflict,
        "now bob is the last"
    );
}

#[rocket::async_test]
async fn an_admin_ends_every_session_of_every_user() {
    let harness = demo::harness();
    let client = start(&harness).await;
    let ada = signed_up(&client, "ada").await;
    let bob = signed_up(&client, "bob").await;
    assert_eq!(
        post_as(&client, "/admin/logout-everyone", &bob).await,
        Status::Forbidden
    );
    assert_eq!(
        post_as(&client, "/admin/logout-everyone", &ada).await,
        Status::NoContent
    );
    for tokens in [&ada, &bob] {
        let me = client
            .get("/me")
            .header(bearer(tokens["access_token"].as_str().unwrap()))
            .dispatch()
            .await;
        assert_eq!(me.status(), Status::Unauthorized);
        assert_eq!(refresh_status(&client, tokens).await, Status::Unauthorized);
    }
    login(&client, "bob", "correct horse battery").await;
}

/// A password hash the demo stored before argon2 0.6 (made by its argon2 0.5
/// code at commit d42dd9f, for "password one").
const ARGON2_05_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$htBm9hvlr5ZKg0nj8oZckw$CtjkA9U8+mvv6eiVa6c9Os0oNP1kjGGsOy/ppg8O8qY";

#[rocket::async_test]
async fn a_password_hashed_by_the_previous_argon2_still_signs_in() {
    let harness = demo::harness();
    let client = start(&harness).await;
    assert_eq!(
        demo::register(&client, "alice", "password one").await.status(),
        Status::Created
    );
    rusqlite::Connection::open(harness.database())
        .unwrap()
        .execute(
            "INSERT INTO demo_users (username, password_hash, created_at) VALUES ('olduser', ?1, 0)",
            [ARGON2_05_HASH],
        )
        .unwrap();
    let login = |password: &'static str| {
        post_json(
            &client,
            "/auth/login",
            json!({ "username": "olduser", "password": password }),
        )
    };
    assert_eq!(login("password one").await.status(), Status::Ok);
    assert_eq!(login("password two").await.status(), Status::Unauthorized);
}

/// A body that is not UTF-8 is malformed (400), not too large (413), however
/// short.
#[rocket::async_test]
async fn a_body_that_is_not_utf8_is_a_400() {
    let harness = demo::harness();
    let client = start(&harness).await;
    for path in ["/auth/login", "/auth/register"] {
        for body in [vec![0xFF], b"{\"username\":\"al\xFFice\",\"password\":\"x\"}".to_vec()] {
            let response = client.post(path).header(ContentType::JSON).body(body).dispatch().await;
            assert_eq!(response.status(), Status::BadRequest, "{path}");
            let error: Value = response.into_json().await.unwrap();
            assert_eq!(error["error"], "invalid_request");
        }
    }
}

/// Registers `username` from `address`: the status.
async fn register_from(client: &Client, address: &str, username: &str) -> Status {
    client
        .post("/auth/register")
        .remote(address.parse().unwrap())
        .header(ContentType::JSON)
        .body(json!({ "username": username, "password": "correct horse battery" }).to_string())
        .dispatch()
        .await
        .status()
}

/// Every look-alike of a taken name is taken too (UTS #39 skeletons), and
/// found so before any password hashing; a different name is not.
#[rocket::async_test]
async fn look_alikes_of_a_taken_name_are_taken_and_cost_no_hashing() {
    let harness = demo::harness();
    let figment = harness.figment().merge(("sessions.login_max_failures", 1000));
    let client = Client::tracked(demo::app(rocket::custom(figment).attach(harness.fairing())))
        .await
        .unwrap();
    for name in ["alice", "bob"] {
        assert_eq!(register_from(&client, "10.0.0.1:1", name).await, Status::Created);
    }
    let hashed = demo::users::registration_hashes(client.rocket());
    let look_alikes = [
        "аӏісе",        // all Cyrillic
        "ɑlice",        // Latin alpha
        "alıce",        // dotless i
        "aǀice",        // dental click
        "ali\u{307}ce", // i with a combining dot above
        "boƅ",          // tone six
        "bօb",          // Armenian o
        "ALICE",        // case
        "ａｌｉｃｅ",   // full width
        "al1ce",        // digit one
        "b0b",          // digit zero
    ];
    for name in look_alikes {
        let status = register_from(&client, "10.0.0.1:1", name).await;
        assert!(
            status == Status::Conflict || status == Status::UnprocessableEntity,
            "{name:?} registered as a look-alike of a taken name: {status}"
        );
    }
    assert_eq!(
        demo::users::registration_hashes(client.rocket()),
        hashed,
        "no password was hashed for a taken name"
    );
    assert_eq!(register_from(&client, "10.0.0.1:1", "alicia").await, Status::Created);
}

/// Registrations are throttled per network like failed logins: past
/// `login_max_failures` from one address, 429 with `Retry-After`; another
/// network is not held back.
#[rocket::async_test]
async fn registrations_from_one_network_are_throttled() {
    let harness = demo::harness();
    let figment = harness.figment().merge(("sessions.login_max_failures", 3));
    let client = Client::tracked(demo::app(rocket::custom(figment).attach(harness.fairing())))
        .await
        .unwrap();
    for n in 0..3 {
        assert_eq!(
            register_from(&client, "10.0.0.1:1", &format!("user{n}")).await,
            Status::Created
        );
    }
    let refused = client
        .post("/auth/register")
        .remote("10.0.0.1:2".parse().unwrap())
        .header(ContentType::JSON)
        .body(json!({ "username": "user9", "password": "correct horse battery" }).to_string())
        .dispatch()
        .await;
    assert_eq!(refused.status(), Status::TooManyRequests);
    assert!(refused.headers().get_one("Retry-After").is_some());
    assert_eq!(register_from(&client, "10.0.0.2:1", "user9").await, Status::Created);
    // A user signs in from the throttled network all the same.
    let login = client
        .post("/auth/login")
        .remote("10.0.0.1:3".parse().unwrap())
        .header(ContentType::JSON)
        .body(json!({ "username": "user0", "password": "correct horse battery" }).to_string())
        .dispatch()
        .await;
    assert_eq!(login.status(), Status::Ok);
}

/// Registrations hash one at a time, so a sign-in during a burst of them
/// gets a core at once: it is answered well before the burst ends (sharing
/// the cores in turn, it would come after all those sent before it). The
/// margin is wide, 32 registrations and the sign-in within the first 20,
/// because this binary's other tests load the same two cores: once, in CI,
/// the sign-in came 13th of 16.
#[rocket::async_test]
async fn a_burst_of_registrations_leaves_a_core_for_sign_ins() {
    use std::sync::Mutex;
    let harness = demo::harness();
    let client = start(&harness).await;
    assert_eq!(register_from(&client, "10.0.0.1:1", "alice").await, Status::Created);
    let finished: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let registrations = (0..32).map(|n| {
        let finished = &finished;
        let client = &client;
        async move {
            let address = format!("10.0.{}.1:1", n % 8 + 1);
            let status = register_from(client, &address, &format!("user{n}")).await;
            assert_eq!(status, Status::Created);
            finished.lock().unwrap().push(format!("user{n}"));
        }
    });
    let sign_in = async {
        rocket::tokio::task::yield_now().await;
        login(&client, "alice", "correct horse battery").await;
        finished.lock().unwrap().push("sign-in".to_string());
    };
    let (_, ()) = rocket::tokio::join!(rocket::futures::future::join_all(registrations), sign_in);
    let finished = finished.into_inner().unwrap();
    let place = finished.iter().position(|name| name == "sign-in").unwrap();
    assert!(
        place <= 20,
        "the sign-in finished after {place} of 32 registrations: {finished:?}"
    );
    assert_eq!(demo::users::peak_concurrent_registration_hashes(client.rocket()), 1);
}
