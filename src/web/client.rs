//! Who sent a request: its address (for the device list and throttling) and
//! scheme (for the CSRF origin check).
//!
//! By default the client is the socket's peer and every forwarding header is
//! ignored: anyone can write `X-Real-IP`. Only when the peer is one of the
//! configured `trusted_proxies` are `Forwarded` (RFC 7239), `X-Forwarded-For`
//! and `X-Real-IP` read (the first of them present), walking the hops from the
//! right: each trusted proxy vouches for the hop before it, so the client is
//! the right-most address that is not a trusted proxy. A client can put what it
//! likes at the left of the list; it cannot get past a proxy that appends the
//! real peer. A hop that is not an address ends the walk at the last trusted
//! one. Rocket's own `ip_header` setting is not used.

use std::net::IpAddr;

use ipnet::IpNet;
use rocket::request::{FromRequest, Outcome, Request};

use crate::client::{address, canonical, forwarded_pair, ClientInfo};
use crate::web::request::managed_settings;

impl ClientInfo {
    /// The client of `request`, with the trusted proxies of the managed
    /// [`Sessions`](crate::Sessions) (none when the fairing is not attached).
    pub fn of(request: &Request<'_>) -> Self {
        let user_agent = request.headers().get_one("User-Agent").map(ClientInfo::cut_user_agent);
        ClientInfo {
            ip: client_ip(request, trusted_proxies(request)),
            user_agent,
        }
    }
}

#[rocket::async_trait]
impl<'r> FromRequest<'r> for ClientInfo {
    type Error = std::convert::Infallible;

    async fn from_request(request: &'r Request<'_>) -> Outcome<Self, Self::Error> {
        Outcome::Success(ClientInfo::of(request))
    }
}

fn trusted_proxies<'r>(request: &'r Request<'_>) -> &'r [IpNet] {
    managed_settings(request).map_or(&[], |settings| &settings.browser.trusted_proxies)
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

/// The client's address: see the module docs.
fn client_ip(request: &Request<'_>, trusted: &[IpNet]) -> Option<IpAddr> {
    let peer = canonical(request.remote()?.ip());
    if !is_trusted(peer, trusted) {
        return Some(peer);
    }
    let mut client = peer;
    for hop in forwarded_hops(request).iter().rev() {
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

/// The forwarded hops, left (client) to right (nearest proxy), of the first
/// forwarding header present; `None` for a hop that is not an address.
fn forwarded_hops(request: &Request<'_>) -> Vec<Option<IpAddr>> {
    let headers = request.headers();
    let values = |name: &str| headers.get(name).flat_map(|value| value.split(',')).map(str::trim);
    if headers.contains("Forwarded") {
        values("Forwarded")
            .map(|element| forwarded_pair(element, "for").and_then(address))
            .collect()
    } else if headers.contains("X-Forwarded-For") {
        values("X-Forwarded-For").map(address).collect()
    } else {
        headers
            .get_one("X-Real-IP")
            .map(|value| address(value.trim()))
            .into_iter()
            .collect()
    }
}

/// The scheme the client used, when it is known: `https` when Rocket itself
/// serves TLS, else what a trusted proxy says (`Forwarded: proto=`, or
/// `X-Forwarded-Proto`); `None` when nothing says.
pub(crate) fn request_scheme(request: &Request<'_>) -> Option<String> {
    if request.rocket().config().tls_enabled() {
        return Some("https".into());
    }
    trusted_peer(request, trusted_proxies(request))?;
    let headers = request.headers();
    // The nearest proxy's word: the last element of the last header line.
    let last = |name: &str| {
        headers
            .get(name)
            .last()
            .and_then(|value| value.rsplit(',').next())
            .map(str::trim)
    };
    let proto = if headers.contains("Forwarded") {
        last("Forwarded").and_then(|element| forwarded_pair(element, "proto"))
    } else {
        last("X-Forwarded-Proto")
    };
    proto
        .map(|proto| proto.to_ascii_lowercase())
        .filter(|proto| proto == "http" || proto == "https")
}
