//! Who sent a request: its address (for the device list and throttling) and
//! scheme (for the CSRF origin check).
//!
//! By default the client is the socket's peer and every forwarding header is
//! ignored: anyone can write `X-Real-IP`. Only when the peer is one of the
//! configured `trusted_proxies` is one header read, the one named by
//! `forwarded_header` (`X-Forwarded-For`, RFC 7239 `Forwarded` or
//! `X-Real-IP`); the others are ignored whoever sent them, because a proxy
//! passes on the headers it does not overwrite (nginx passes a client's
//! `Forwarded` through untouched). The hops are walked from the right: each
//! trusted proxy vouches for the hop before it, so the client is the
//! right-most address that is not a trusted proxy. A client can put what it
//! likes at the left of the list; it cannot get past a proxy that appends the
//! real peer. A hop that is not an address ends the walk at the last trusted
//! one. Rocket's own `ip_header` setting is not used.

use std::net::IpAddr;

use ipnet::IpNet;
use rocket::request::{FromRequest, Outcome, Request};

use crate::client::{address, canonical, forwarded_pair, ClientInfo, ProofOutcome};
use crate::config::{BrowserSettings, DpopMode, ForwardedHeader};
use crate::web::request::{first_header, managed_settings, record};

impl ClientInfo {
    /// The client of `request`, with the trusted proxies of the managed
    /// [`Sessions`](crate::Sessions) (none when the fairing is not attached).
    pub fn of(request: &Request<'_>) -> Self {
        let user_agent = first_header(request, "User-Agent").map(ClientInfo::cut_user_agent);
        ClientInfo {
            ip: client_ip(request, managed_settings(request).map(|settings| &settings.browser)),
            user_agent,
            proof: token_request_proof(request),
        }
    }
}

/// The DPoP proof of a login or refresh request, checked once per request
/// (a second check would find it replayed). A request with an
/// `Authorization` header is not one: its proof is the guard's.
fn token_request_proof(request: &Request<'_>) -> ProofOutcome {
    if first_header(request, "DPoP").is_none() || first_header(request, "Authorization").is_some() {
        return ProofOutcome::Absent;
    }
    let record = record(request);
    let Some(sessions) = record.sessions() else {
        return ProofOutcome::Absent;
    };
    record
        .token_request_proof(|| {
            if sessions.dpop_settings().mode == DpopMode::Off {
                return ProofOutcome::Absent;
            }
            let (Some(proof), Some(url)) = (one_dpop_header(request), request_url(request)) else {
                return ProofOutcome::Refused {
                    nonce: false,
                    reason: "not one DPoP header, or no Host to check its htu with",
                };
            };
            sessions.token_request_proof(proof, request.method().as_str(), &url)
        })
        .clone()
}

/// The request's one `DPoP` header; `None` without one or with several
/// (RFC 9449 §4.3: exactly one).
pub(crate) fn one_dpop_header<'r>(request: &'r Request<'_>) -> Option<&'r str> {
    let mut proofs = request.headers().get("DPoP");
    match (proofs.next(), proofs.next()) {
        (Some(proof), None) => Some(proof),
        _ => None,
    }
}

/// The URL of the request without its query, as a DPoP proof's `htu` names
/// it: the scheme the client used (see [`request_scheme`]; `http` when
/// nothing says), the `Host` header, the path as sent. `None` without a
/// `Host`.
pub(crate) fn request_url(request: &Request<'_>) -> Option<String> {
    let scheme = request_scheme(request).unwrap_or_else(|| "http".into());
    let path = request.uri().path();
    match request.host() {
        Some(host) => Some(format!("{scheme}://{host}{path}")),
        // Requests made without hyper (Rocket's local client) have their
        // `Host` header only.
        None => request
            .headers()
            .get_one("Host")
            .map(|host| format!("{scheme}://{}{path}", host.trim())),
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ClientInfo {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(ClientInfo::of(request))
    }
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|net| net.contains(&ip))
}

/// The peer, when it is one of the trusted proxies.
fn trusted_peer(request: &Request<'_>, trusted: &[IpNet]) -> Option<IpAddr> {
    request
        .remote()
        .map(|peer| canonical(peer.ip()))
        .filter(|peer| is_trusted(*peer, trusted))
}

/// The client's address: see the module docs. Without the fairing's
/// settings, the peer.
fn client_ip(request: &Request<'_>, settings: Option<&BrowserSettings>) -> Option<IpAddr> {
    let peer = canonical(request.remote()?.ip());
    let Some(settings) = settings.filter(|settings| is_trusted(peer, &settings.trusted_proxies)) else {
        return Some(peer);
    };
    let trusted = &settings.trusted_proxies[..];
    let mut client = peer;
    for hop in forwarded_hops(request, settings.forwarded_header).iter().rev() {
        match hop {
            Some(ip) => {
                client = canonical(*ip);
                if !is_trusted(client, trusted) {
                    break;
                }
            }
            None => break,
        }
    }
    Some(client)
}

/// The forwarded hops, left (client) to right (nearest proxy), of `header`
/// alone; `None` for a hop that is not an address.
fn forwarded_hops(request: &Request<'_>, header: ForwardedHeader) -> Vec<Option<IpAddr>> {
    let headers = request.headers();
    let values = |name: &str| headers.get(name).flat_map(|value| value.split(',')).map(str::trim);
    match header {
        ForwardedHeader::Forwarded => values("Forwarded")
            .map(|element| forwarded_pair(element, "for").and_then(address))
            .collect(),
        ForwardedHeader::XForwardedFor => values("X-Forwarded-For").map(address).collect(),
        // One address: several `X-Real-IP` lines are not a proxy's.
        ForwardedHeader::XRealIp => match headers.get("X-Real-IP").collect::<Vec<_>>()[..] {
            [one] => vec![address(one.trim())],
            _ => Vec::new(),
        },
    }
}

/// The scheme the client used, when it is known: `https` when Rocket itself
/// serves TLS, else what a trusted proxy says (`Forwarded: proto=` with
/// `forwarded_header = "forwarded"`, else `X-Forwarded-Proto`); `None` when
/// nothing says.
pub(crate) fn request_scheme(request: &Request<'_>) -> Option<String> {
    if request.rocket().config().tls_enabled() {
        return Some("https".into());
    }
    let settings = &managed_settings(request)?.browser;
    trusted_peer(request, &settings.trusted_proxies)?;
    let headers = request.headers();
    // The nearest proxy's word: the last element of the last header line.
    let last = |name: &str| {
        headers
            .get(name)
            .last()
            .and_then(|value| value.rsplit(',').next())
            .map(str::trim)
    };
    let proto = match settings.forwarded_header {
        ForwardedHeader::Forwarded => last("Forwarded").and_then(|element| forwarded_pair(element, "proto")),
        ForwardedHeader::XForwardedFor | ForwardedHeader::XRealIp => last("X-Forwarded-Proto"),
    };
    proto
        .map(|proto| proto.to_ascii_lowercase())
        .filter(|proto| proto == "http" || proto == "https")
}
