//! The validation of each key, and what `Debug` hides.

use base64::Engine as _;

use super::*;

fn valid() -> SessionsConfig {
    SessionsConfig {
        secret: Some(base64::engine::general_purpose::STANDARD.encode([7u8; 32])),
        ..SessionsConfig::default()
    }
}

fn error_of(config: SessionsConfig) -> String {
    match config.validate(false) {
        Ok(_) => panic!("config was accepted"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_with_a_secret_are_valid() {
    let settings = valid().validate(false).unwrap();
    assert_eq!(settings.tokens.access_ttl, 900);
    assert_eq!(settings.keys.len(), 1);
    assert_eq!(settings.keys[0].secret, vec![7u8; 32]);
}

#[test]
fn debug_output_never_shows_the_secret() {
    let shown = format!("{:?}", valid());
    assert!(!shown.contains(valid().secret.as_deref().unwrap()), "{shown}");
    assert!(shown.contains("<redacted>"));
}

#[test]
fn each_bad_value_is_named() {
    let short = SessionsConfig {
        secret: Some(base64::engine::general_purpose::STANDARD.encode([1u8; 16])),
        ..valid()
    };
    assert!(error_of(short).contains("sessions.secret"));
    let garbage = SessionsConfig {
        secret: Some("not base64 !!".into()),
        ..valid()
    };
    let message = error_of(garbage);
    assert!(
        message.contains("sessions.secret") && !message.contains("not base64 !!"),
        "{message}"
    );
    assert!(error_of(SessionsConfig {
        secret: None,
        ..valid()
    })
    .contains("sessions.secret"));
    assert!(error_of(SessionsConfig {
        access_ttl: 0,
        ..valid()
    })
    .contains("sessions.access_ttl"));
    assert!(error_of(SessionsConfig {
        refresh_ttl: 0,
        ..valid()
    })
    .contains("sessions.refresh_ttl"));
    assert!(error_of(SessionsConfig {
        idle_timeout: 0,
        ..valid()
    })
    .contains("sessions.idle_timeout"));
    assert!(error_of(SessionsConfig {
        absolute_timeout: 0,
        ..valid()
    })
    .contains("sessions.absolute_timeout"));
    assert!(error_of(SessionsConfig { leeway: 900, ..valid() }).contains("sessions.leeway"));
    assert!(error_of(SessionsConfig {
        refresh_ttl: u64::MAX,
        ..valid()
    })
    .contains("sessions.refresh_ttl"));
    let cron = SessionsConfig {
        prune_schedule: "every tuesday".into(),
        ..valid()
    };
    assert!(error_of(cron).contains("sessions.prune_schedule"));
    let issuer = SessionsConfig {
        issuer: Some(" ".into()),
        ..valid()
    };
    assert!(error_of(issuer).contains("sessions.issuer"));
    assert!(error_of(SessionsConfig {
        prune_batch: 0,
        ..valid()
    })
    .contains("sessions.prune_batch"));
    assert!(error_of(SessionsConfig {
        max_sessions: Some(0),
        ..valid()
    })
    .contains("sessions.max_sessions"));
}

fn key(kid: &str, byte: u8, len: usize) -> KeyConfig {
    KeyConfig {
        kid: kid.into(),
        secret: Some(base64::engine::general_purpose::STANDARD.encode(vec![byte; len])),
        private_key: None,
        private_key_file: None,
    }
}

#[test]
fn rotation_keys_are_checked_one_by_one_and_named() {
    let keys = |keys: Vec<KeyConfig>| SessionsConfig {
        secret: None,
        keys,
        ..valid()
    };
    let settings = keys(vec![key("new", 1, 32), key("old", 2, 48)])
        .validate(false)
        .unwrap();
    assert_eq!(
        settings.keys.iter().map(|k| k.kid.as_str()).collect::<Vec<_>>(),
        ["new", "old"]
    );

    let short = error_of(keys(vec![key("new", 1, 32), key("old", 2, 16)]));
    assert!(
        short.contains("sessions.keys") && short.contains("key 2 (kid \"old\")"),
        "{short}"
    );
    let duplicate = error_of(keys(vec![key("a", 1, 32), key("a", 2, 32)]));
    assert!(duplicate.contains("used twice"), "{duplicate}");
    let bad_kid = error_of(keys(vec![key("", 1, 32)]));
    assert!(bad_kid.contains("kid must be"), "{bad_kid}");
    let both = error_of(SessionsConfig {
        keys: vec![key("a", 1, 32)],
        ..valid()
    });
    assert!(both.contains("not both"), "{both}");
    let shown = format!("{:?}", keys(vec![key("a", 1, 32)]));
    assert!(!shown.contains(key("a", 1, 32).secret.as_deref().unwrap()), "{shown}");
}

#[test]
fn missing_secret_is_generated_only_when_allowed() {
    let settings = SessionsConfig::default().validate(true).unwrap();
    assert!(settings.secret_was_generated);
    assert_eq!(settings.keys[0].secret.len(), 32);
}

#[test]
fn unknown_and_mistyped_keys_are_named() {
    let figment = Figment::from(rocket::figment::providers::Serialized::default(
        "sessions",
        serde_json::json!({ "acess_ttl": 5 }),
    ));
    let message = SessionsConfig::from_figment(&figment).unwrap_err().to_string();
    assert!(message.contains("acess_ttl"), "{message}");
    let figment = Figment::from(rocket::figment::providers::Serialized::default(
        "sessions",
        serde_json::json!({ "access_ttl": "soon" }),
    ));
    let message = SessionsConfig::from_figment(&figment).unwrap_err().to_string();
    assert!(message.contains("access_ttl"), "{message}");
}
