//! Arbitrary bytes as the `Authorization` header of a guarded route: header
//! parsing, token decoding, signature and claim checks.
#![no_main]

mod common;

use libfuzzer_sys::fuzz_target;
use rocket::http::Header;

thread_local! {
    static APP: common::App = common::app();
}

fuzz_target!(|data: &[u8]| {
    let value = String::from_utf8_lossy(data).into_owned();
    APP.with(|app| {
        for header in [value.clone(), format!("Bearer {value}")] {
            let status = app
                .client
                .get("/me")
                .header(Header::new("Authorization", header))
                .dispatch()
                .status();
            common::assert_refused(status, data);
        }
    });
});
