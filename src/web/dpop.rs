//! DPoP's part of an answer (RFC 9449): the `WWW-Authenticate: DPoP`
//! challenge of a refused request that spoke DPoP or presented a bound
//! token (§7.1), and the server's nonce (§8) to any request that carried a
//! proof, when nonces are on.

use rocket::http::{Header, Status};
use rocket::request::Request;
use rocket::response::Response;

use crate::dpop::DpopMode;
use crate::sessions::Sessions;
use crate::token::{authorization_token, Rejection, Scheme};
use crate::web::request::{first_header, RequestRecord, Verdict};

/// Adds DPoP's headers to `response`.
pub(crate) fn finish_dpop(
    sessions: &Sessions,
    request: &Request<'_>,
    record: &RequestRecord,
    response: &mut Response<'_>,
) {
    let settings = sessions.dpop_settings();
    // Nothing to add but a refused token's challenge, unless nonces are on:
    // most answers look at no header here.
    let refused = response.status() == Status::Unauthorized && record.token_refused();
    if settings.mode == DpopMode::Off || !(refused || settings.nonces) {
        return;
    }
    let dpop_scheme = first_header(request, "Authorization")
        .is_some_and(|value| matches!(authorization_token(value), Ok((Scheme::Dpop, _))));
    let rejection = match record.verdict() {
        Some(Verdict::Rejected(rejection)) => Some(*rejection),
        _ => None,
    };
    let bound_refusal = matches!(
        rejection,
        Some(Rejection::Binding | Rejection::DpopRequired | Rejection::DpopProof | Rejection::DpopNonce)
    );
    if refused && (dpop_scheme || bound_refusal) {
        let error = match rejection {
            Some(Rejection::DpopNonce) => "use_dpop_nonce",
            Some(Rejection::DpopProof) => "invalid_dpop_proof",
            _ => "invalid_token",
        };
        response.set_header(Header::new(
            "WWW-Authenticate",
            format!(r#"DPoP error="{error}", algs="{}""#, settings.algs()),
        ));
    }
    if dpop_scheme || first_header(request, "DPoP").is_some() {
        if let Some(nonce) = sessions.dpop_nonce() {
            response.set_header(Header::new("DPoP-Nonce", nonce));
        }
    }
}
