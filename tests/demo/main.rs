//! The demo app's tests, in one binary so the demo is compiled once: its HTTP
//! contract, browser mode, logs, hostile input and a real browser.

#[path = "../common/mod.rs"]
mod common;
#[path = "../common/demo.rs"]
mod demo;

mod browser;
mod contract;
mod logs;
mod properties;
mod real_browser;
