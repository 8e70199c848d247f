//! Origins (`scheme://host[:port]`), read and compared as browsers send
//! them: the same-origin half of CSRF protection, and `allowed_origins`.

/// An origin, normalised: scheme and host in lower case, the port explicit.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Origin {
    pub(crate) scheme: String,
    pub(crate) host: String,
    pub(crate) port: u16,
}

pub(crate) fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// `host[:port]` (IPv6 hosts in brackets), the port `default` when absent.
pub(crate) fn host_and_port(authority: &str, default: u16) -> Option<(String, u16)> {
    let (host, port) = match authority.strip_prefix('[') {
        Some(rest) => {
            let (host, after) = rest.split_once(']')?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    let port = match port {
        Some(port) => port.parse().ok()?,
        None => default,
    };
    (!host.is_empty() && !host.contains(['/', '?', '#', '@', ' '])).then(|| (host.to_ascii_lowercase(), port))
}

/// Whether `text` is an origin `allowed_origins` can hold:
/// `http(s)://host[:port]`.
pub(crate) fn is_origin(text: &str) -> bool {
    parse_origin(text).is_some()
}

/// An `Origin` header's value (or an `allowed_origins` entry) read; `None`
/// for `null` and anything else that is not `http(s)://host[:port]`.
pub(crate) fn parse_origin(text: &str) -> Option<Origin> {
    let (scheme, authority) = text.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let (host, port) = host_and_port(authority, default_port(&scheme)?)?;
    Some(Origin { scheme, host, port })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_compared_with_scheme_and_port() {
        let origin = |text| parse_origin(text);
        assert_eq!(origin("HTTPS://App.Example"), origin("https://app.example:443"));
        assert_ne!(origin("http://app.example"), origin("https://app.example"));
        assert_ne!(origin("https://app.example:8443"), origin("https://app.example"));
        assert_eq!(origin("http://[::1]:8000").map(|o| o.host), Some("::1".into()));
        for bad in [
            "null",
            "ftp://app.example",
            "https://",
            "https://a/b",
            "https://a:port",
            "app.example",
        ] {
            assert_eq!(origin(bad), None, "{bad}");
        }
    }
}
