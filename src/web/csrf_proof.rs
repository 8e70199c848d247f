//! What a request presents as CSRF proof: where it comes from (the same-origin
//! check) and the CSRF token it carries (a header, or a form field the
//! fairing peeked at).
//!
//! Unsafe requests (anything but GET, HEAD, OPTIONS, TRACE) authenticated by
//! cookie must come from the app's own origin (`Sec-Fetch-Site` not
//! `cross-site`, `Origin` the app's own, scheme and port included, when sent)
//! and carry the session's CSRF token in the `X-CSRF-Token` header or a
//! `csrf_token` field among the complete fields in the first 512 bytes of a
//! url-encoded form (percent-decoded). The field of a multipart form is not
//! read: such forms need the header. The token is an HMAC of the session id
//! under a key derived from the signing key; it is not the JWT key. It is
//! checked before any silent refresh. Failures answer 403.

use rocket::http::Method;
use rocket::request::Request;

use crate::config::BrowserSettings;
use crate::csrf::CsrfRefusal;
use crate::origin::{default_port, host_and_port, parse_origin};
use crate::web::client::request_scheme;
use crate::web::request::record;

/// The header that may carry a CSRF token.
pub const CSRF_HEADER: &str = "X-CSRF-Token";
/// The form field that may carry a CSRF token, in a url-encoded form: among the
/// complete fields of the first 512 bytes of the body (first is safest).
pub const CSRF_FIELD: &str = "csrf_token";
/// How much of a form body is looked at for the CSRF field.
pub(crate) const CSRF_PEEK_BYTES: usize = 512;

/// Whether `method` may change state, so needs CSRF protection.
pub(crate) fn is_unsafe(method: Method) -> bool {
    !matches!(method, Method::Get | Method::Head | Method::Options | Method::Trace)
}

/// The `csrf_token` value among the complete fields at the start of a
/// url-encoded form body, percent-decoded.
pub(crate) fn csrf_field_of(form_prefix: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(form_prefix).ok().or_else(|| {
        // The peek may cut a multi-byte character: keep the valid start.
        let valid = std::str::from_utf8(form_prefix).unwrap_err().valid_up_to();
        std::str::from_utf8(&form_prefix[..valid]).ok()
    })?;
    let mut fields: Vec<&str> = text.split('&').collect();
    if form_prefix.len() >= CSRF_PEEK_BYTES {
        fields.pop(); // possibly cut short
    }
    let decode = |text: &str| {
        rocket::http::RawStr::new(text)
            .url_decode()
            .ok()
            .map(|text| text.into_owned())
    };
    fields
        .into_iter()
        .filter_map(|field| field.split_once('='))
        .find(|(name, _)| decode(name).as_deref() == Some(CSRF_FIELD))
        .and_then(|(_, value)| decode(value))
}

/// The same-origin part of CSRF protection: `Sec-Fetch-Site` and `Origin`.
/// Without `allowed_origins`, the origin must be the request's own: the
/// `Host` (its port, or the scheme's default) and the scheme, when known
/// (Rocket's TLS, or a trusted proxy's word); when nothing says which
/// scheme the client used, `http` and `https` both pass.
pub(crate) fn check_origin(request: &Request<'_>, settings: &BrowserSettings) -> Result<(), CsrfRefusal> {
    let headers = request.headers();
    if headers.get_one("Sec-Fetch-Site") == Some("cross-site") {
        return Err(CsrfRefusal::CrossSite);
    }
    let Some(origin) = headers.get_one("Origin") else {
        return Ok(());
    };
    let Some(origin) = parse_origin(origin) else {
        return Err(CsrfRefusal::ForeignOrigin);
    };
    let allowed = &settings.allowed_origins;
    let own = if allowed.is_empty() {
        let scheme_is_ours = request_scheme(request).is_none_or(|scheme| scheme == origin.scheme);
        let default = default_port(&origin.scheme).unwrap_or(0);
        scheme_is_ours
            && headers
                .get_one("Host")
                .and_then(|host| host_and_port(host, default))
                .is_some_and(|(host, port)| host == origin.host && port == origin.port)
    } else {
        allowed
            .iter()
            .filter_map(|allowed| parse_origin(allowed))
            .any(|allowed| allowed == origin)
    };
    if own {
        Ok(())
    } else {
        Err(CsrfRefusal::ForeignOrigin)
    }
}

/// The CSRF token a request presents, from the header or the form field.
pub(crate) fn presented_csrf_token<'r>(request: &'r Request<'_>) -> Option<&'r str> {
    request
        .headers()
        .get_one(CSRF_HEADER)
        .or_else(|| record(request).csrf_field())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csrf_field_is_found_only_among_complete_leading_fields() {
        assert_eq!(csrf_field_of(b"csrf_token=abc&username=x").as_deref(), Some("abc"));
        assert_eq!(
            csrf_field_of(b"a=1&csrf%5Ftoken=%41bc").as_deref(),
            Some("Abc"),
            "percent-decoded"
        );
        assert_eq!(csrf_field_of(b"username=x&csrf_token=abc").as_deref(), Some("abc"));
        assert_eq!(csrf_field_of(b"username=x").as_deref(), None);
        let mut long = b"username=".to_vec();
        long.extend(std::iter::repeat_n(b'x', CSRF_PEEK_BYTES - 30));
        long.extend(b"&csrf_token=abcdefghijklmnop");
        long.truncate(CSRF_PEEK_BYTES);
        assert_eq!(csrf_field_of(&long), None, "a field cut by the peek is not trusted");
    }
}
