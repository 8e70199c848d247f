//! The verdict on a request: who it is from, decided once, from its bearer
//! token or its cookies (refreshing them silently), with CSRF proof for
//! unsafe cookie requests.

use std::sync::Arc;

use rocket::request::Request;

use crate::client::ClientInfo;
use crate::csrf::{CsrfBinding, CsrfRefusal};
use crate::error::{log_claims_source_failure, log_store_failure, Error};
use crate::sessions::Sessions;
use crate::token::{authorization_token, Rejection, Scheme};
use crate::web::client::{one_dpop_header, request_url};
use crate::web::csrf_proof::{check_origin, is_unsafe, presented_csrf_token};
use crate::web::request::{record, CookieChange, RequestRecord, Verdict};

/// The request's verdict, decided once and kept in its record.
pub(crate) async fn verdict<'r>(request: &'r Request<'_>, sessions: &Sessions) -> &'r Verdict {
    verdict_in(record(request), request, sessions).await
}

/// [`verdict`], with the request's record already looked up.
pub(crate) async fn verdict_in<'r>(
    record: &'r RequestRecord,
    request: &'r Request<'_>,
    sessions: &Sessions,
) -> &'r Verdict {
    if let Some(decided) = record.verdict() {
        return decided;
    }
    let decided = match authorization_headers(request) {
        // A bearer token is judged from memory, without awaiting anything.
        (Some(value), false) => decide_bearer(request, sessions, value),
        // Two Authorization headers are one too many.
        (Some(_), true) => Verdict::Rejected(Rejection::Missing),
        // Boxed: the cookie path's future (a silent refresh) is large, and would
        // otherwise make every guard's future as large.
        (None, _) => Box::pin(decide_cookies(request, sessions)).await,
    };
    record.decide(decided)
}

/// The request's first `Authorization` header, and whether there is
/// another. The headers are walked rather than looked up: a request has a
/// handful, and comparing their names costs less than hashing one (this is
/// on every guarded request's path, `scripts/instructions.sh`).
fn authorization_headers<'r>(request: &'r Request<'_>) -> (Option<&'r str>, bool) {
    let (mut first, mut count) = (None, 0);
    for header in request.headers().iter() {
        if header.name().as_str().eq_ignore_ascii_case("Authorization") {
            count += 1;
            if let (None, std::borrow::Cow::Borrowed(value)) = (first, header.value) {
                first = Some(value);
            }
        }
    }
    // Rocket lends its headers; should a value ever be owned, look it up.
    if count > 0 && first.is_none() {
        first = request.headers().get_one("Authorization");
    }
    (first, count > 1)
}

/// The verdict on a request with one `Authorization` header, `value`. It is
/// judged alone: an invalid one never falls back to cookies.
fn decide_bearer(request: &Request<'_>, sessions: &Sessions, value: &str) -> Verdict {
    let judged = match authorization_token(value) {
        Ok((Scheme::Bearer, token)) => sessions.authenticate_bearer(token),
        Ok((Scheme::Dpop, token)) => match (one_dpop_header(request), request_url(request)) {
            (proof, Some(url)) => sessions.authenticate_dpop(token, proof, request.method().as_str(), &url),
            (_, None) => Err(Rejection::DpopProof),
        },
        Err(rejection) => Err(rejection),
    };
    match judged {
        Ok(user) => Verdict::User(user),
        Err(rejection) => Verdict::Rejected(rejection),
    }
}

/// The verdict on a request without an `Authorization` header: its cookies.
/// Cookie changes (a rotation, clearing dead cookies) are left for the
/// fairing's response hook, which writes them whatever answers the request.
async fn decide_cookies(request: &Request<'_>, sessions: &Sessions) -> Verdict {
    let settings = &sessions.settings().browser;
    let jar = request.cookies();
    let access = jar.get(&settings.access_cookie).map(|c| c.value().to_string());
    let refresh = jar.get(&settings.refresh_cookie).map(|c| c.value().to_string());
    if access.is_none() && refresh.is_none() {
        return Verdict::Rejected(Rejection::Missing);
    }
    let change = |change: CookieChange| record(request).change_cookies(change);
    // For unsafe methods, before anything else and before any rotation: a
    // forged request stops here.
    let csrf = if is_unsafe(request.method()) {
        if let Err(refusal) = check_origin(request, settings) {
            return Verdict::Csrf(refusal);
        }
        match presented_csrf_token(request) {
            Some(presented) => Some(presented),
            None => return Verdict::Csrf(CsrfRefusal::MissingToken),
        }
    } else {
        None
    };
    let by_access = access.as_deref().map(|token| sessions.authenticate_cookie(token));
    let user = match (by_access, refresh) {
        (Some(Ok(user)), _) => user,
        (by_access, None) => {
            change(CookieChange::Clear);
            return Verdict::Rejected(by_access.map_or(Rejection::Missing, |r| r.unwrap_err()));
        }
        (_, Some(refresh)) => {
            // The refresh token names its session: a wrong CSRF token is
            // refused before the rotation, which would otherwise be lost.
            if let Some(presented) = csrf {
                match sessions.refresh_token_session(&refresh) {
                    Some(session_id) if sessions.csrf_token_matches(CsrfBinding::Session(&session_id), presented) => {}
                    Some(_) => return Verdict::Csrf(CsrfRefusal::WrongToken),
                    None => {
                        change(CookieChange::Clear);
                        return Verdict::Rejected(Rejection::Refresh);
                    }
                }
            }
            match sessions.refresh_issuing(&refresh, &ClientInfo::of(request), true).await {
                // The user just issued, not its token parsed again; a logout
                // committed since the rotation still refuses it.
                Ok(issued) if sessions.is_revoked(&issued.user.session_id, &issued.user.jti) => {
                    return Verdict::Rejected(Rejection::Revoked)
                }
                Ok(issued) => {
                    change(CookieChange::Set(issued.pair));
                    Arc::new(issued.user)
                }
                Err(Error::InvalidToken) => {
                    change(CookieChange::Clear);
                    return Verdict::Rejected(Rejection::Refresh);
                }
                // Nothing rotated: the cookies stay for a retry.
                Err(Error::Store(cause)) => {
                    log_store_failure(format_args!("silent refresh"), &cause);
                    return Verdict::Unavailable;
                }
                Err(Error::ClaimsSourceFailed(cause)) => {
                    log_claims_source_failure(format_args!("silent refresh"), &cause);
                    return Verdict::Unavailable;
                }
                Err(other) => {
                    log::error!("rocket_sqlite_sessions: silent refresh: {other}");
                    return Verdict::Unavailable;
                }
            }
        }
    };
    if let Some(presented) = csrf {
        if !sessions.csrf_token_matches(CsrfBinding::Session(&user.session_id), presented) {
            return Verdict::Csrf(CsrfRefusal::WrongToken);
        }
    }
    Verdict::User(user)
}
