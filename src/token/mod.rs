//! The two kinds of token: access tokens, signed JWTs checked from memory
//! ([`access`]) with the configured keys ([`keys`]), those already checked
//! kept with their claims ([`verified`]), and refresh tokens, opaque and
//! tagged, whose hashes the store keeps ([`refresh`]).

mod access;
mod claims;
mod keys;
mod refresh;
mod verified;

pub(crate) use access::{
    authorization_token, stored_claims_are_plain, AccessClaims, AccessRules, Admitted, Confirmation, Rejection, Scheme,
    TokenCodec, RESERVED_CLAIMS,
};
pub(crate) use keys::SigningKey;
pub(crate) use refresh::{RefreshKeys, RefreshToken};
