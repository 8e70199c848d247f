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
