//! Arbitrary bytes as the body of `POST /auth/refresh`, raw and as the
//! `refresh_token` string: body parsing, the token format and tag checks.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use rocket::http::ContentType;

thread_local! {
    static APP: common::App = common::app();
}

fuzz_target!(|data: &[u8]| {
    let as_token = serde_json::to_vec(&serde_json::json!({ "refresh_token": String::from_utf8_lossy(data) }))
        .expect("a JSON string");
    APP.with(|app| {
        for body in [data.to_vec(), as_token.clone()] {
            let status = app
                .client
                .post("/auth/refresh")
                .header(ContentType::JSON)
                .body(body)
                .dispatch()
                .status();
            common::assert_refused(status, data);
        }
    });
});
