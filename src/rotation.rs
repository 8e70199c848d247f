//! What a presented refresh token does to its session: a pure function of the
//! stored state, the token and the time, which the store applies inside the
//! transaction that read the state (so two refreshes of one token are
//! serialised and at most one rotates it).
//!
//! A session has one live branch of refresh tokens. It stores a generation
//! counter, the hash of its current token and of the one rotated last, and when
//! that rotation happened: a constant number of columns whatever the number of
//! refreshes.
//!
//! | presented token | answer |
//! |---|---|
//! | the current one | rotate: the successor becomes current, generation + 1 |
//! | the previous one, within `reuse_grace` of its rotation | the same successor again (two tabs refreshing at once); nothing written |
//! | the previous one after the grace window, with `lost_response_recovery` (so its successor was never presented) | the same successor again (a refresh response the client never got) |
//! | the previous one after the grace window, or any earlier one | reuse (RFC 9700 §4.14.2): the session is revoked |
//! | any token of a session bound to a key (DPoP's or a browser's, DBSC), without proof of that key | refused, nothing changed (not even by reuse) |
//! | any token of a revoked or expired session | refused |
//! | a generation the session has not reached | refused (a database restored from an older backup) |

/// A presented refresh token, as the decision needs it. Its tag has been
/// checked: the server issued it.
#[derive(Debug, Clone)]
pub(crate) struct Presented {
    pub generation: i64,
    pub hash: [u8; 32],
    /// The hash of its successor under each key, the current key's first.
    pub successor_hashes: Vec<[u8; 32]>,
    /// The thumbprint of the key the request proved it holds (a DPoP proof,
    /// or a browser's signature over a DBSC challenge), if any.
    pub proven_key: Option<String>,
}

/// What the store holds of a session for a refresh.
#[derive(Debug, Clone)]
pub(crate) struct RefreshState {
    pub user_id: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub absolute_expires_at: i64,
    pub revoked: bool,
    pub generation: i64,
    pub current_hash: Option<[u8; 32]>,
    pub previous_hash: Option<[u8; 32]>,
    /// When the previous token was rotated (the current one issued).
    pub rotated_at: Option<i64>,
    pub claims_json: String,
    /// The session's own refresh lifetime, when its login set one.
    pub refresh_ttl: Option<i64>,
    /// Whether its cookies outlive the browser session.
    pub persistent: bool,
    /// The thumbprint of the DPoP key the session is bound to.
    pub dpop_jkt: Option<String>,
    /// The thumbprint of the browser key the session is bound to (DBSC).
    pub dbsc_jkt: Option<String>,
}

/// The settings the decision depends on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RotationPolicy {
    pub reuse_grace: i64,
    /// The previous token replays past the grace window too, while its
    /// successor has never been presented (`lost_response_recovery`).
    pub lost_response_recovery: bool,
    pub idle_timeout: i64,
    pub refresh_ttl: i64,
}

/// Why a refresh was refused without touching the session: for a debug log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    Revoked,
    Expired,
    /// A generation the session has not reached, or a hash that does not match
    /// its generation's.
    NotInLineage,
    /// Claims a claims source gave before a cut-off of the user (a role
    /// change, a ban, logout everywhere) that committed before this
    /// refresh: they must not be signed or written.
    StaleClaims,
    /// The session is bound to a key (DPoP's, or a browser's by DBSC) and
    /// the request did not prove it holds it: the holder of a stolen refresh
    /// token, who must not get to end the session by reuse either.
    WrongKey,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Revoked => "the session is revoked",
            Refusal::Expired => "the session has expired",
            Refusal::NotInLineage => "the token is not in its session's lineage",
            Refusal::StaleClaims => "the claims were looked up before a cut-off of the user",
            Refusal::WrongKey => "the session is bound to a key and the request did not prove it holds it",
        })
    }
}

/// What to do with a presented refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Refuse it; change nothing.
    Refuse(Refusal),
    /// It is an earlier token presented again: revoke the whole session.
    Revoke,
    /// Make its successor (under the current key) the session's current token,
    /// the session then expiring at `expires_at`.
    Rotate { expires_at: i64 },
    /// It was rotated moments ago: answer with the successor already issued
    /// (under key `key`), writing nothing.
    Replay { key: usize },
}

/// The decision for `presented` against `state` at `now`.
pub(crate) fn decide(presented: &Presented, state: &RefreshState, now: i64, policy: &RotationPolicy) -> Decision {
    // First: without the session's key, a token (even an old one, which
    // would be reuse) changes nothing.
    if let Some(bound) = state.dpop_jkt.as_ref().or(state.dbsc_jkt.as_ref()) {
        if presented.proven_key.as_ref() != Some(bound) {
            return Decision::Refuse(Refusal::WrongKey);
        }
    }
    if state.revoked {
        return Decision::Refuse(Refusal::Revoked);
    }
    if now >= state.expires_at {
        return Decision::Refuse(Refusal::Expired);
    }
    let current = state.generation;
    if presented.generation == current {
        return if state.current_hash == Some(presented.hash) {
            let expires_at = now
                .saturating_add(policy.idle_timeout)
                .min(now.saturating_add(state.refresh_ttl.unwrap_or(policy.refresh_ttl)))
                .min(state.absolute_expires_at);
            Decision::Rotate { expires_at }
        } else {
            Decision::Refuse(Refusal::NotInLineage)
        };
    }
    if presented.generation > current {
        return Decision::Refuse(Refusal::NotInLineage);
    }
    if presented.generation + 1 == current && state.previous_hash == Some(presented.hash) {
        // The window is measured both ways from the rotation: a clock that
        // stepped back a long way is no reason to hand out the current token.
        let within_grace = policy.reuse_grace > 0
            && state
                .rotated_at
                .is_some_and(|rotated_at| now.abs_diff(rotated_at) <= policy.reuse_grace.unsigned_abs());
        // The previous token is the successor's only predecessor: had the
        // successor been presented, it would be current's predecessor now.
        if within_grace || policy.lost_response_recovery {
            let issued = presented
                .successor_hashes
                .iter()
                .position(|successor| Some(*successor) == state.current_hash);
            // No key derives the current token again (the key it was made with
            // was retired meanwhile): refuse rather than fork the session.
            return issued.map_or(Decision::Refuse(Refusal::NotInLineage), |key| Decision::Replay { key });
        }
    }
    // An earlier token of this session, genuine (its tag was checked), and
    // spent: whoever presents it is not the only holder of the session.
    Decision::Revoke
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RotationPolicy = RotationPolicy {
        reuse_grace: 10,
        lost_response_recovery: false,
        idle_timeout: 600,
        refresh_ttl: 1000,
    };

    fn state(generation: i64) -> RefreshState {
        RefreshState {
            user_id: "u".into(),
            created_at: 0,
            expires_at: 10_000,
            absolute_expires_at: 5_000,
            revoked: false,
            generation,
            current_hash: Some([generation as u8; 32]),
            previous_hash: generation.checked_sub(1).map(|g| [g as u8; 32]),
            rotated_at: (generation > 0).then_some(100),
            claims_json: "{}".into(),
            refresh_ttl: None,
            persistent: true,
            dpop_jkt: None,
            dbsc_jkt: None,
        }
    }

    fn presented(generation: i64) -> Presented {
        Presented {
            generation,
            hash: [generation as u8; 32],
            successor_hashes: vec![[generation as u8 + 1; 32]],
            proven_key: None,
        }
    }

    #[test]
    fn a_bound_session_without_its_key_changes_nothing_not_even_by_reuse() {
        let bound = RefreshState {
            dpop_jkt: Some("key".into()),
            ..state(3)
        };
        for generation in [3, 1] {
            for key in [None, Some("other".to_string())] {
                let presented = Presented {
                    proven_key: key,
                    ..presented(generation)
                };
                assert_eq!(
                    decide(&presented, &bound, 200, &POLICY),
                    Decision::Refuse(Refusal::WrongKey)
                );
            }
            let with_key = Presented {
                proven_key: Some("key".into()),
                ..presented(generation)
            };
            assert_ne!(
                decide(&with_key, &bound, 200, &POLICY),
                Decision::Refuse(Refusal::WrongKey)
            );
        }
    }

    #[test]
    fn the_current_token_rotates_within_every_timeout() {
        assert_eq!(
            decide(&presented(3), &state(3), 200, &POLICY),
            Decision::Rotate { expires_at: 800 }
        );
        assert_eq!(
            decide(&presented(3), &state(3), 4_900, &POLICY),
            Decision::Rotate { expires_at: 5_000 },
            "never past the absolute timeout"
        );
    }

    #[test]
    fn the_previous_token_replays_within_the_grace_window_only() {
        assert_eq!(
            decide(&presented(2), &state(3), 110, &POLICY),
            Decision::Replay { key: 0 }
        );
        assert_eq!(decide(&presented(2), &state(3), 111, &POLICY), Decision::Revoke);
        assert_eq!(
            decide(&presented(2), &state(3), 50, &POLICY),
            Decision::Revoke,
            "a clock far behind the rotation is not within the window"
        );
        let no_grace = RotationPolicy {
            reuse_grace: 0,
            ..POLICY
        };
        assert_eq!(decide(&presented(2), &state(3), 100, &no_grace), Decision::Revoke);
    }

    #[test]
    fn with_lost_response_recovery_only_the_previous_token_replays_after_the_window() {
        let recovery = RotationPolicy {
            lost_response_recovery: true,
            ..POLICY
        };
        assert_eq!(
            decide(&presented(2), &state(3), 4_000, &recovery),
            Decision::Replay { key: 0 },
            "the previous token, long after its rotation"
        );
        assert_eq!(
            decide(&presented(1), &state(3), 110, &recovery),
            Decision::Revoke,
            "two generations old"
        );
        assert_eq!(
            decide(&presented(3), &state(3), 4_000, &recovery),
            Decision::Rotate { expires_at: 4_600 }
        );
    }

    #[test]
    fn any_earlier_token_is_reuse() {
        assert_eq!(decide(&presented(0), &state(3), 101, &POLICY), Decision::Revoke);
        assert_eq!(decide(&presented(1), &state(3), 101, &POLICY), Decision::Revoke);
    }

    #[test]
    fn dead_sessions_and_foreign_lineages_are_refused() {
        let revoked = RefreshState {
            revoked: true,
            ..state(3)
        };
        assert_eq!(
            decide(&presented(0), &revoked, 101, &POLICY),
            Decision::Refuse(Refusal::Revoked)
        );
        assert_eq!(
            decide(&presented(3), &state(3), 10_000, &POLICY),
            Decision::Refuse(Refusal::Expired)
        );
        assert_eq!(
            decide(&presented(4), &state(3), 101, &POLICY),
            Decision::Refuse(Refusal::NotInLineage),
            "a generation not reached yet"
        );
        let mut other = presented(3);
        other.hash = [99; 32];
        assert_eq!(
            decide(&other, &state(3), 101, &POLICY),
            Decision::Refuse(Refusal::NotInLineage)
        );
        let mut retired_key = presented(2);
        retired_key.successor_hashes = vec![[77; 32]];
        assert_eq!(
            decide(&retired_key, &state(3), 105, &POLICY),
            Decision::Refuse(Refusal::NotInLineage)
        );
    }
}
