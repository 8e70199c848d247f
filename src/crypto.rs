//! Randomness and derived keys: the ground every token and key stands on.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, KeyInit, Mac};
use rand::TryRng as _;
use sha2::{Digest, Sha256};

/// `N` bytes from the operating system's CSPRNG.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0u8; N];
    rand::rngs::SysRng
        .try_fill_bytes(&mut bytes)
        .expect("the operating system's random number generator failed");
    bytes
}

/// A fresh 128-bit identifier, base64url: session ids and `jti`s.
pub(crate) fn random_id() -> String {
    base64url(&random_bytes::<16>())
}

/// The base64url alphabet (RFC 4648 §5).
const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The two characters of every 12 bits, the first in the low byte: half
/// the lookups of one table of 64 (8 KiB).
const BASE64URL_PAIRS: [u16; 4096] = {
    let mut pairs = [0; 4096];
    let mut i = 0;
    while i < 4096 {
        pairs[i] = BASE64URL[i >> 6] as u16 | (BASE64URL[i & 63] as u16) << 8;
        i += 1;
    }
    pairs
};

/// `input` in base64url without padding, appended to `bytes`. The same
/// characters as `URL_SAFE_NO_PAD.encode_string` writes (tested against it), in
/// half its instructions: six bytes at a time, twelve bits a lookup. Every
/// token a login or refresh issues is encoded with it.
pub(crate) fn encode_base64url(input: &[u8], bytes: &mut Vec<u8>) {
    let start = bytes.len();
    bytes.resize(start + input.len() / 3 * 4 + [0, 2, 3][input.len() % 3], 0);
    encode_base64url_into(input, &mut bytes[start..]);
}

/// [`encode_base64url`] into `output`, which is exactly as long as the
/// encoding (`4n / 3` characters, rounded up, for `n` bytes).
pub(crate) fn encode_base64url_into(input: &[u8], output: &mut [u8]) {
    let pair = |bits: u64| u64::from(BASE64URL_PAIRS[(bits & 0xFFF) as usize]);
    debug_assert_eq!(output.len(), input.len() / 3 * 4 + [0, 2, 3][input.len() % 3]);
    let (sixes, rest) = input.as_chunks::<6>();
    let (eights, tail) = output.as_chunks_mut::<8>();
    for (six, eight) in sixes.iter().zip(eights) {
        let [a, b, c, d, e, f] = six.map(u64::from);
        let bits = (a << 40) | (b << 32) | (c << 24) | (d << 16) | (e << 8) | f;
        *eight =
            (pair(bits >> 36) | (pair(bits >> 24) << 16) | (pair(bits >> 12) << 32) | (pair(bits) << 48)).to_le_bytes();
    }
    let (rest, tail) = match (rest, tail) {
        ([a, b, c, more @ ..], [w, x, y, z, after @ ..]) => {
            let bits = (u64::from(*a) << 16) | (u64::from(*b) << 8) | u64::from(*c);
            [*w, *x] = (pair(bits >> 12) as u16).to_le_bytes();
            [*y, *z] = (pair(bits) as u16).to_le_bytes();
            (more, after)
        }
        (rest, tail) => (rest, tail),
    };
    match (rest, tail) {
        (&[a], [x, y]) => {
            *x = BASE64URL[usize::from(a >> 2)];
            *y = BASE64URL[usize::from(a & 0x03) << 4];
        }
        (&[a, b], [x, y, z]) => {
            let bits = (usize::from(a) << 8) | usize::from(b);
            *x = BASE64URL[(bits >> 10) & 63];
            *y = BASE64URL[(bits >> 4) & 63];
            *z = BASE64URL[(bits << 2) & 63];
        }
        _ => {}
    }
}

/// `input` in base64url without padding (see [`encode_base64url`]).
pub(crate) fn base64url(input: &[u8]) -> String {
    let mut encoded = Vec::with_capacity(input.len().div_ceil(3) * 4);
    encode_base64url(input, &mut encoded);
    String::from_utf8(encoded).expect("base64url is ASCII")
}

/// An id's 16 bytes, for the in-memory revocation sets: the id decoded when
/// it is one [`random_id`] made (22 base64url characters, so the bytes are
/// random and the mapping one-to-one), else the first 16 bytes of its
/// SHA-256, so that an id from elsewhere still has a fixed-size key. Two ids
/// share a key only by a 2^-128 chance, and then one's revocation refuses the
/// other: never an acceptance.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub(crate) struct IdKey(pub(crate) [u8; 16]);

impl IdKey {
    /// The key of `id`.
    pub(crate) fn of(id: &str) -> IdKey {
        let mut bytes = [0u8; 16];
        if id.len() == 22 && decode_base64url(id.as_bytes(), &mut bytes) == Some(16) {
            return IdKey(bytes);
        }
        let digest = Sha256::new_with_prefix(b"rocket_sqlite_sessions id\0")
            .chain_update(id)
            .finalize();
        bytes.copy_from_slice(&digest[..16]);
        IdKey(bytes)
    }
}

/// The 16-byte key under which a replay cache remembers `id` seen in
/// `scope` (a proof's `jti` under its key's thumbprint, a challenge under its
/// session): the first bytes of a SHA-256 of both, under `purpose` (which
/// ends in a NUL byte), so no two purposes or scopes share a key.
pub(crate) fn replay_key(purpose: &[u8], scope: &str, id: &str) -> [u8; 16] {
    let digest = Sha256::new_with_prefix(purpose)
        .chain_update(scope.as_bytes())
        .chain_update([0])
        .chain_update(id.as_bytes())
        .finalize();
    let mut key = [0u8; 16];
    key.copy_from_slice(&digest[..16]);
    key
}

/// Base64url without padding, decoded into `output`: the decoded length, or
/// `None` for anything but the one canonical spelling of some bytes (a
/// character outside `A-Z a-z 0-9 - _`, padding, a length of 4n + 1, bits
/// set past the last byte) or an `output` too short. The same answers as
/// `URL_SAFE_NO_PAD.decode_slice` (tested against it), in half its
/// instructions: a table and four characters at a time. On the guard's path
/// for every token it has not seen before.
pub(crate) fn decode_base64url(input: &[u8], output: &mut [u8]) -> Option<usize> {
    /// Each byte's 6 bits, or 0xFF for a byte outside the alphabet.
    const VALUES: [u8; 256] = {
        let mut values = [0xFF; 256];
        let mut i = 0;
        while i < BASE64URL.len() {
            values[BASE64URL[i] as usize] = i as u8;
            i += 1;
        }
        values
    };
    /// The same, shifted to each place of a group of four characters (the
    /// first to bits 18-23), and bit 31 for a byte outside the alphabet: a
    /// group is four lookups and three ORs.
    const PLACED: [[u32; 256]; 4] = {
        let mut placed = [[1 << 31; 256]; 4];
        let mut i = 0;
        while i < BASE64URL.len() {
            let (byte, bits) = (BASE64URL[i] as usize, i as u32);
            placed[0][byte] = bits << 18;
            placed[1][byte] = bits << 12;
            placed[2][byte] = bits << 6;
            placed[3][byte] = bits;
            i += 1;
        }
        placed
    };
    let length = input.len() / 4 * 3 + (input.len() % 4).saturating_sub(1);
    if input.len() % 4 == 1 || output.len() < length {
        return None;
    }
    let (quads, rest) = input.as_chunks::<4>();
    let mut placed_invalid = 0u32;
    for (&[a, b, c, d], out) in quads.iter().zip(output.as_chunks_mut::<3>().0) {
        let bits = PLACED[0][usize::from(a)]
            | PLACED[1][usize::from(b)]
            | PLACED[2][usize::from(c)]
            | PLACED[3][usize::from(d)];
        placed_invalid |= bits;
        let [_, x, y, z] = bits.to_be_bytes();
        *out = [x, y, z];
    }
    let tail = &mut output[quads.len() * 3..length];
    let mut invalid = 0u8;
    match *rest {
        [] => {}
        [a, b] => {
            let (a, b) = (VALUES[a as usize], VALUES[b as usize]);
            invalid |= a | b | (u8::from(b & 0x0F != 0) << 7);
            tail[0] = (a << 2) | (b >> 4);
        }
        [a, b, c] => {
            let (a, b, c) = (VALUES[a as usize], VALUES[b as usize], VALUES[c as usize]);
            invalid |= a | b | c | (u8::from(c & 0x03 != 0) << 7);
            tail[0] = (a << 2) | (b >> 4);
            tail[1] = (b << 4) | (c >> 2);
        }
        _ => unreachable!("a length of 4n + 1 was refused"),
    }
    // A value of the alphabet is below 64: 0xFF, or a bit past the last
    // byte (made the top bit), sets one of the top two bits.
    (placed_invalid >> 31 == 0 && invalid & 0xC0 == 0).then_some(length)
}

/// Whether `a` and `b` are the same bytes, in a time that depends on their
/// length only (which is no secret): how much of a secret (a kept token, a
/// tag, an HMAC) a presented one matches must not show. Eight bytes at a time.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let ((a_words, a_rest), (b_words, b_rest)) = (a.as_chunks::<8>(), b.as_chunks::<8>());
    let mut difference = 0;
    for (x, y) in a_words.iter().zip(b_words) {
        difference |= u64::from_ne_bytes(*x) ^ u64::from_ne_bytes(*y);
    }
    for (x, y) in a_rest.iter().zip(b_rest) {
        difference |= u64::from(x ^ y);
    }
    // Kept opaque, so that the loop is not turned into one that stops early.
    std::hint::black_box(difference) == 0
}

/// A key for one purpose, derived from a signing secret, so that no other use
/// ever holds the JWT key itself.
pub(crate) fn derive_key(signing_secret: &[u8], purpose: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(signing_secret).expect("HMAC takes any key length");
    mac.update(purpose);
    mac.finalize().into_bytes().into()
}

/// A key id derived from the key, so tokens name the key that signed them without
/// the configuration having to.
pub(crate) fn derived_key_id(secret: &[u8]) -> String {
    let digest = Sha256::new_with_prefix(b"rocket_sqlite_sessions kid\0")
        .chain_update(secret)
        .finalize();
    URL_SAFE_NO_PAD.encode(&digest[..9])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stream of numbers (xorshift) from `state`.
    fn numbers(mut state: u64) -> impl FnMut() -> u64 {
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    #[test]
    fn base64url_encodes_as_the_base64_crate_does() {
        let mut next = numbers(0x9e37_79b9_7f4a_7c15);
        for length in (0..200).chain([311, 1000, 4099]) {
            for _ in 0..20 {
                let bytes: Vec<u8> = (0..length).map(|_| next() as u8).collect();
                assert_eq!(base64url(&bytes), URL_SAFE_NO_PAD.encode(&bytes), "{bytes:?}");
                // Appended after what the string holds.
                let mut appended = b"header.".to_vec();
                encode_base64url(&bytes, &mut appended);
                assert_eq!(
                    appended,
                    format!("header.{}", URL_SAFE_NO_PAD.encode(&bytes)).into_bytes()
                );
            }
        }
        assert_eq!(base64url(&[0x00, 0x10, 0x83]), "ABCD");
        assert_eq!(base64url(&[0xFB, 0xFF, 0xBF]), "-_-_");
        assert_eq!(base64url(&[]), "");
    }

    #[test]
    fn bytes_are_the_same_only_when_every_one_is() {
        let token: Vec<u8> = (0..=255).cycle().take(311).collect();
        assert!(constant_time_eq(&token, &token.clone()));
        for at in [0, 7, 8, 300, 303, 310] {
            let mut other = token.clone();
            other[at] ^= 0x10;
            assert!(!constant_time_eq(&token, &other), "byte {at}");
        }
        assert!(!constant_time_eq(&token, &token[..310]));
        assert!(constant_time_eq(b"", b"") && !constant_time_eq(b"a", b""));
    }

    #[test]
    fn base64url_decodes_as_the_base64_crate_does() {
        // A deterministic stream of inputs: valid encodings of every length,
        // the same with one byte changed to anything, and with bits past the
        // last byte.
        let mut next = numbers(0x2545_f491_4f6c_dd1d);
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_=+/. ";
        let mut checked = 0;
        for round in 0..20_000 {
            let bytes: Vec<u8> = (0..next() % 70).map(|_| next() as u8).collect();
            let mut input = URL_SAFE_NO_PAD.encode(&bytes).into_bytes();
            match round % 3 {
                1 if !input.is_empty() => {
                    let at = next() as usize % input.len();
                    input[at] = alphabet[next() as usize % alphabet.len()];
                }
                2 => input.push(alphabet[next() as usize % 64]),
                _ => {}
            }
            for room in [input.len(), input.len() * 3 / 4, 0] {
                let (mut ours, mut theirs) = (vec![0u8; room], vec![0u8; room + 3]);
                let expected = URL_SAFE_NO_PAD
                    .decode_slice(&input, &mut theirs)
                    .ok()
                    .filter(|&length| length <= room);
                let got = decode_base64url(&input, &mut ours);
                assert_eq!(got, expected, "{:?} into {room}", String::from_utf8_lossy(&input));
                if let Some(length) = got {
                    assert_eq!(ours[..length], theirs[..length]);
                    checked += 1;
                }
            }
        }
        assert!(checked > 10_000, "{checked} valid decodings compared");
    }

    #[test]
    fn ids_carry_128_bits() {
        assert_eq!(URL_SAFE_NO_PAD.decode(random_id()).unwrap().len(), 16);
    }

    #[test]
    fn an_id_key_is_the_id_decoded_or_its_digest() {
        let id = random_id();
        assert_eq!(IdKey::of(&id).0.to_vec(), URL_SAFE_NO_PAD.decode(&id).unwrap());
        // Not one of ours: a digest, the same each time, distinct per id.
        assert_eq!(IdKey::of("fixture-jti-00000001"), IdKey::of("fixture-jti-00000001"));
        assert_ne!(IdKey::of("fixture-jti-00000001"), IdKey::of("fixture-jti-00000002"));
        // 22 characters whose last one carries bits past the 16 bytes: not
        // canonical, so not decoded (two spellings never share the decoding).
        let canonical = URL_SAFE_NO_PAD.encode([0u8; 16]);
        let mut other = canonical.clone();
        other.replace_range(21.., "B");
        assert_ne!(IdKey::of(&canonical), IdKey::of(&other));
        assert_eq!(IdKey::of(&canonical).0, [0u8; 16]);
    }
}
