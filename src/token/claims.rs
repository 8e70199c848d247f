//! The claims of an access token: registered and app claims sorted in one
//! pass, and the user they name.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::user::{AuthUser, Binding};

/// Claim names the crate sets itself; app claims may not use them.
pub(crate) const RESERVED_CLAIMS: [&str; 11] = [
    "sub",
    "sid",
    "jti",
    "iat",
    "exp",
    "auth_time",
    "nbf",
    "iss",
    "aud",
    "typ",
    "cnf",
];

/// The claims of an access token.
///
/// Deserialised in one pass (see the `Deserialize` impl below): a duplicated
/// claim, a missing or mistyped registered claim is an error.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct AccessClaims {
    pub sub: String,
    pub sid: String,
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    /// When the user logged in (OpenID Connect's `auth_time`); rotation keeps it.
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The key the token is bound to (RFC 9449 §6.1: `cnf.jkt`), for a
    /// session bound with DPoP.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// The app's own claims (roles, tenant, …), given at login.
    #[serde(flatten)]
    pub app: Map<String, Value>,
}

/// A token's confirmation claim (RFC 7800): the key its session is bound
/// to, by its thumbprint: a DPoP client's (`jkt`, RFC 9449 §6.1) or a
/// browser's device key (`dbsc`, this crate's member).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Confirmation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dbsc: Option<String>,
}

// By hand rather than derived: `#[serde(flatten)]` buffers every claim before
// sorting them out, which cost more than the signature check on the guard's
// path (testsuite/benches/guard.rs). One pass sorts registered claims from app claims.
impl<'de> Deserialize<'de> for AccessClaims {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ClaimsVisitor)
    }
}

struct ClaimsVisitor;

impl<'de> Visitor<'de> for ClaimsVisitor {
    type Value = AccessClaims;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object of JWT claims")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<AccessClaims, A::Error> {
        fn set<T, E: de::Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
            match slot.replace(value) {
                Some(_) => Err(E::duplicate_field(name)),
                None => Ok(()),
            }
        }
        fn take<T, E: de::Error>(slot: Option<T>, name: &'static str) -> Result<T, E> {
            slot.ok_or_else(|| E::missing_field(name))
        }
        let (mut sub, mut sid, mut jti) = (None, None, None);
        let (mut iat, mut exp, mut auth_time, mut nbf) = (None, None, None, None);
        let (mut iss, mut aud) = (None::<Option<String>>, None::<Option<String>>);
        let mut cnf = None::<Confirmation>;
        let mut app = Map::new();
        while let Some(ClaimName(name)) = map.next_key()? {
            match &*name {
                "sub" => set(&mut sub, map.next_value::<String>()?, "sub")?,
                "sid" => set(&mut sid, map.next_value::<String>()?, "sid")?,
                "jti" => set(&mut jti, map.next_value::<String>()?, "jti")?,
                "iat" => set(&mut iat, map.next_value::<i64>()?, "iat")?,
                "exp" => set(&mut exp, map.next_value::<i64>()?, "exp")?,
                "auth_time" => set(&mut auth_time, map.next_value::<i64>()?, "auth_time")?,
                "nbf" => set(&mut nbf, map.next_value::<i64>()?, "nbf")?,
                "iss" => set(&mut iss, map.next_value()?, "iss")?,
                "aud" => set(&mut aud, map.next_value()?, "aud")?,
                "cnf" => set(&mut cnf, map.next_value()?, "cnf")?,
                _ => {
                    let value = map.next_value::<Value>()?;
                    if app.insert(name.into_owned(), value).is_some() {
                        return Err(de::Error::custom("a duplicated claim"));
                    }
                }
            }
        }
        Ok(AccessClaims {
            sub: take(sub, "sub")?,
            sid: take(sid, "sid")?,
            jti: take(jti, "jti")?,
            iat: take(iat, "iat")?,
            exp: take(exp, "exp")?,
            auth_time: take(auth_time, "auth_time")?,
            nbf,
            iss: iss.flatten(),
            aud: aud.flatten(),
            cnf,
            app,
        })
    }
}

/// Whether `json` is what the crate stores as a session's app claims: one
/// JSON object whose members have different names, none of them a claim
/// the crate sets. Checked without building it (names borrowed, values
/// skipped), so that a refresh can copy it into a token as it is
/// ([`AccessClaims::to_json`]); anything else is parsed as before.
pub(crate) fn stored_claims_are_plain(json: &str) -> bool {
    struct Members;
    impl<'de> Visitor<'de> for Members {
        type Value = bool;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a JSON object of app claims")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<bool, A::Error> {
            let mut names = Vec::new();
            while let Some(ClaimName(name)) = map.next_key()? {
                map.next_value::<de::IgnoredAny>()?;
                names.push(name);
            }
            let count = names.len();
            names.sort_unstable();
            names.dedup();
            Ok(names.len() == count && !names.iter().any(|name| RESERVED_CLAIMS.contains(&name.as_ref())))
        }
    }
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let plain = deserializer.deserialize_map(Members).unwrap_or(false);
    plain && deserializer.end().is_ok()
}

/// A claim's name, borrowed from the token when it has no escapes.
struct ClaimName<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for ClaimName<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = ClaimName<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a claim name")
            }
            fn visit_borrowed_str<E>(self, name: &'de str) -> Result<ClaimName<'de>, E> {
                Ok(ClaimName(Cow::Borrowed(name)))
            }
            fn visit_str<E>(self, name: &str) -> Result<ClaimName<'de>, E> {
                Ok(ClaimName(Cow::Owned(name.to_string())))
            }
        }
        deserializer.deserialize_str(NameVisitor)
    }
}

impl AccessClaims {
    /// The claims as JSON: the bytes `serde_json::to_vec` writes for them
    /// (tested), written field by field; serde's flattened map cost a
    /// refresh ~2,500 instructions (`scripts/instructions.sh`). The members
    /// of `stored_app`, one JSON object's text (the caller checked it is
    /// one), follow the app claims as they are.
    pub(crate) fn to_json(&self, stored_app: Option<&str>) -> Result<Vec<u8>, serde_json::Error> {
        fn text(out: &mut Vec<u8>, name: &[u8], value: &str) -> Result<(), serde_json::Error> {
            out.extend_from_slice(name);
            serde_json::to_writer(&mut *out, value)
        }
        fn number(out: &mut Vec<u8>, name: &[u8], value: i64) -> Result<(), serde_json::Error> {
            out.extend_from_slice(name);
            serde_json::to_writer(&mut *out, &value)
        }
        let mut out = Vec::with_capacity(192);
        text(&mut out, b"{\"sub\":", &self.sub)?;
        text(&mut out, b",\"sid\":", &self.sid)?;
        text(&mut out, b",\"jti\":", &self.jti)?;
        number(&mut out, b",\"iat\":", self.iat)?;
        number(&mut out, b",\"exp\":", self.exp)?;
        number(&mut out, b",\"auth_time\":", self.auth_time)?;
        if let Some(nbf) = self.nbf {
            number(&mut out, b",\"nbf\":", nbf)?;
        }
        if let Some(iss) = &self.iss {
            text(&mut out, b",\"iss\":", iss)?;
        }
        if let Some(aud) = &self.aud {
            text(&mut out, b",\"aud\":", aud)?;
        }
        if let Some(cnf) = &self.cnf {
            out.extend_from_slice(b",\"cnf\":");
            serde_json::to_writer(&mut out, cnf)?;
        }
        for (name, value) in &self.app {
            text(&mut out, b",", name)?;
            out.push(b':');
            serde_json::to_writer(&mut out, value)?;
        }
        if let Some(json) = stored_app {
            let object = json.trim();
            let members = object
                .strip_prefix('{')
                .and_then(|m| m.strip_suffix('}'))
                .unwrap_or("")
                .trim();
            if !members.is_empty() {
                out.push(b',');
                out.extend_from_slice(members.as_bytes());
            }
        }
        out.push(b'}');
        Ok(out)
    }

    /// The user these claims name, unbound (a caller that checked a proof
    /// of the key says otherwise).
    pub(crate) fn into_user(self) -> AuthUser {
        AuthUser {
            id: self.sub,
            session_id: self.sid,
            jti: self.jti,
            issued_at: self.iat,
            expires_at: self.exp,
            authenticated_at: self.auth_time,
            claims: self.app,
            binding: Binding::Unbound,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLAIMS: &str = r#""sub":"u","sid":"s","jti":"j","iat":1,"exp":2,"auth_time":1"#;

    #[test]
    fn claims_sort_registered_from_app_claims_in_one_pass() {
        let claims: AccessClaims =
            serde_json::from_str(&format!(r#"{{{CLAIMS},"ro\u006ces":["a"],"iss":null}}"#)).unwrap();
        assert_eq!((claims.sub.as_str(), claims.exp), ("u", 2));
        assert_eq!(claims.app["roles"], serde_json::json!(["a"]));
        assert!(claims.iss.is_none() && claims.app.len() == 1);
    }

    #[test]
    fn claims_are_written_as_serde_writes_them() {
        let app = serde_json::json!({
            "roles": ["admin", "ed\"itor"],
            "tenant": {"id": 7, "name": "caf\u{e9} \u{1F600}"},
            "n": -1.5,
            "flag": null,
            "quote\"d\\key": "line\nbreak\u{1}",
        });
        let Value::Object(app) = app else { unreachable!() };
        for (nbf, iss, aud, cnf, app) in [
            (None, None, None, None, Map::new()),
            (
                Some(5),
                Some("https://issuer"),
                Some("api"),
                Some((Some("jkt"), None)),
                app.clone(),
            ),
            (None, Some("\u{0}\"<>"), None, Some((None, Some("dbsc"))), app.clone()),
            (Some(-9), None, Some(""), Some((Some("a"), Some("b"))), app),
        ] {
            let claims = AccessClaims {
                sub: "us\"er\u{7f}\u{2028}".into(),
                sid: "sid".into(),
                jti: "jti".into(),
                iat: i64::MIN,
                exp: i64::MAX,
                auth_time: 0,
                nbf,
                iss: iss.map(str::to_owned),
                aud: aud.map(str::to_owned),
                cnf: cnf.map(|(jkt, dbsc): (Option<&str>, Option<&str>)| Confirmation {
                    jkt: jkt.map(str::to_owned),
                    dbsc: dbsc.map(str::to_owned),
                }),
                app,
            };
            assert_eq!(claims.to_json(None).unwrap(), serde_json::to_vec(&claims).unwrap());
            // The same app claims as the store holds them: the same token.
            let stored = serde_json::to_string(&claims.app).unwrap();
            let registered = AccessClaims {
                app: Map::new(),
                ..claims.clone()
            };
            assert_eq!(
                registered.to_json(Some(&stored)).unwrap(),
                serde_json::to_vec(&claims).unwrap()
            );
            assert_eq!(
                registered.to_json(Some(&format!(" {stored} "))).unwrap(),
                serde_json::to_vec(&claims).unwrap()
            );
        }
    }

    #[test]
    fn stored_claims_are_copied_only_when_they_are_what_the_crate_writes() {
        for plain in [
            "{}",
            r#"{"role":"admin"}"#,
            r#" { "a" : [1, {"a": 2, "a": 3}], "b\u0062": null } "#,
            r#"{"roles":["a","b"],"tenant":{"id":7}}"#,
        ] {
            assert!(stored_claims_are_plain(plain), "{plain}");
        }
        for other in [
            "",
            "null",
            "[1]",
            r#""{}""#,
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,"b":2,"\u0061":3}"#,
            r#"{"sub":"mallory"}"#,
            r#"{"role":"x","cnf":{}}"#,
            r#"{"a":1} {"#,
            r#"{"a":1"#,
        ] {
            assert!(!stored_claims_are_plain(other), "{other}");
        }
    }

    #[test]
    fn duplicated_missing_or_mistyped_claims_are_errors() {
        for bad in [
            format!(r#"{{{CLAIMS},"roles":1,"roles":2}}"#),
            format!(r#"{{{CLAIMS},"s\u0069d":"t"}}"#),
            CLAIMS.replace(r#","exp":2"#, "").replacen("", "{", 1) + "}",
            CLAIMS.replace(r#""iat":1"#, r#""iat":"1""#).replacen("", "{", 1) + "}",
            "[]".to_string(),
        ] {
            assert!(serde_json::from_str::<AccessClaims>(&bad).is_err(), "{bad}");
        }
    }
}
