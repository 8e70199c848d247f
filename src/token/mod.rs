//! The two kinds of token: access tokens, signed JWTs checked from memory
//! ([`access`]), and refresh tokens, opaque and tagged, whose hashes the
//! store keeps ([`refresh`]).

mod access;
mod refresh;

pub(crate) use access::{bearer_token, AccessClaims, AccessRules, Rejection, SigningKey, TokenCodec, RESERVED_CLAIMS};
pub(crate) use refresh::{RefreshKeys, RefreshToken};
