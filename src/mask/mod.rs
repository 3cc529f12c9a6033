//! Pseudonymise PII with AES-256-SIV (RFC 5297) and open it again for key holders.
//!
//! Pure and synchronous. A token is `v1:<kid>:<base64url(SIV ciphertext)>`: deterministic
//! (same value and key give the same token, so analysts can still `GROUP BY` it) and
//! authenticated with associated data `[context, kid]`, so a token only opens for the context
//! it was made for: a [`Column`] of the login (`ip`, `device_id`) or the rejects' `body`, or
//! a mapping's `token = "..."` context, whose tokens hold text ([`Context`]). IPs are
//! canonicalised and encrypted as 16 bytes, so every spelling of one address gives one token.
//!
//! The keys come from [`keyring`]; [`kms`] unwraps KMS-wrapped entries at start-up.

pub mod keyring;
pub mod kms;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};

use aes_siv::siv::Aes256Siv;
use aes_siv::KeyInit;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use thiserror::Error;

pub use keyring::{parse_entries, KeyEntry, KeyError, KeyMaterial, Keyring, KEY_LEN, KMS_PREFIX};

/// Token format version.
const PREFIX: &str = "v1";

/// What a token was made for; bound into the associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Column {
    /// `user_logins.masked_ip`.
    Ip,
    /// `user_logins.masked_device_id`.
    DeviceId,
    /// `user_logins_rejects.body_ciphertext`.
    Body,
}

impl Column {
    /// The name used in the associated data and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ip => "ip",
            Self::DeviceId => "device_id",
            Self::Body => "body",
        }
    }

    /// Every column, in the order `reveal` tries them when none is named.
    pub const ALL: [Column; 3] = [Column::Ip, Column::DeviceId, Column::Body];
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a token was made for, as `reveal --column` and `mask --column` name it: one of the
/// [`Column`]s, whose tokens hold what that column holds (`ip` an address), or a mapping's
/// token context, whose tokens hold UTF-8 text. The name is the associated data, so
/// `Text("ip")` would make the very tokens of `Column(Column::Ip)` but open them as text:
/// build a context from a name with [`Context::named`], which keeps the columns' meaning.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Context {
    /// `ip`, `device_id` or `body`.
    Column(Column),
    /// Any other name: a mapping's `token = "NAME"` (checked by whoever takes it from a user).
    Text(String),
}

impl Context {
    /// The context of `name`: a [`Column`]'s when it names one, else a text context.
    pub fn named(name: &str) -> Self {
        Column::ALL
            .into_iter()
            .find(|c| c.as_str() == name)
            .map_or_else(|| Self::Text(name.to_owned()), Self::Column)
    }

    /// The name used in the associated data, on the command line and in the audit.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Column(c) => c.as_str(),
            Self::Text(name) => name,
        }
    }
}

impl From<Column> for Context {
    fn from(c: Column) -> Self {
        Self::Column(c)
    }
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token that cannot be opened. Never carries the plaintext.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum RevealError {
    /// Not `v1:<kid>:<base64url>`.
    #[error("not a sqs2pg token (expected v1:<kid>:<base64url>)")]
    Malformed,
    /// The kid is not in the keyring.
    #[error("token was written with key {0:?}, which is not in the keyring: add that key (older keys stay after the writing key)")]
    UnknownKid(String),
    /// Authentication failed: wrong key bytes, wrong context, or a corrupted token.
    #[error("token does not open for column {0}: wrong column, wrong key for its id, or a corrupted token")]
    DoesNotOpen(Context),
    /// Opened, but the plaintext is not what the context holds.
    #[error("token opened but does not hold a valid {0} value")]
    BadPlaintext(Context),
}

/// Encrypts and decrypts tokens. Holds one expanded cipher per key; cheap to build once per
/// worker (ciphers need `&mut` to run).
pub struct Masker {
    writer: String,
    ciphers: HashMap<String, Aes256Siv>,
}

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Masker")
            .field("writer", &self.writer)
            .finish_non_exhaustive()
    }
}

impl Masker {
    /// Expands every key of the ring.
    pub fn new(keyring: &Keyring) -> Self {
        let ciphers = keyring
            .keys()
            .map(|(kid, bytes)| {
                let key = aes_siv::Key::<Aes256Siv>::from_slice(bytes);
                (kid.to_owned(), Aes256Siv::new(key))
            })
            .collect();
        Self {
            writer: keyring.writing_kid().to_owned(),
            ciphers,
        }
    }

    /// The token of an address. Every spelling of one address gives one token.
    pub fn mask_ip(&mut self, ip: IpAddr) -> String {
        self.seal(Column::Ip, &ip_plaintext(ip))
    }

    /// The token of a device id.
    pub fn mask_device_id(&mut self, device_id: &str) -> String {
        self.seal(Column::DeviceId, device_id.as_bytes())
    }

    /// The sealed form of a rejected message body.
    pub fn seal_body(&mut self, body: &[u8]) -> String {
        self.seal(Column::Body, body)
    }

    /// The token length for a plaintext of `len` bytes under the writing key, so callers can
    /// check a column limit before sealing.
    pub fn token_len(&self, len: usize) -> usize {
        PREFIX.len() + 1 + self.writer.len() + 1 + ((len + 16) * 4).div_ceil(3)
    }

    /// Encrypts under the writing key.
    pub fn seal(&mut self, column: Column, plaintext: &[u8]) -> String {
        self.seal_context(column.as_str(), plaintext)
    }

    /// Encrypts under the writing key for a mapping's token context: associated data
    /// `[context, kid]`, so the contexts `ip` and `device_id` give the very tokens of
    /// [`Masker::mask_ip`] and [`Masker::mask_device_id`].
    pub fn seal_context(&mut self, context: &str, plaintext: &[u8]) -> String {
        let kid = self.writer.as_str();
        let cipher = self
            .ciphers
            .get_mut(kid)
            .unwrap_or_else(|| unreachable!("the writing key is always in the ring"));
        // Encryption fails only for more than 126 headers; we pass two.
        let ct = cipher
            .encrypt([context.as_bytes(), kid.as_bytes()], plaintext)
            .unwrap_or_default();
        let mut out = String::with_capacity(self.token_len(plaintext.len()));
        out.push_str(PREFIX);
        out.push(':');
        out.push_str(kid);
        out.push(':');
        URL_SAFE_NO_PAD.encode_string(ct, &mut out);
        out
    }

    /// The tokens of `plaintext` under `context` by every key of the ring, the writing key
    /// first: what a value's rows hold, whichever key wrote them (erasure looks for all).
    pub fn seal_under_every_key(&mut self, context: &str, plaintext: &[u8]) -> Vec<String> {
        let writer = std::mem::take(&mut self.writer);
        let mut kids: Vec<String> = self.ciphers.keys().cloned().collect();
        kids.sort_by_key(|k| *k != writer);
        let tokens = kids
            .into_iter()
            .map(|kid| {
                self.writer = kid;
                self.seal_context(context, plaintext)
            })
            .collect();
        self.writer = writer;
        tokens
    }

    /// Decrypts a token made for `column`, under whichever key of the ring made it.
    pub fn open(&mut self, column: Column, token: &str) -> Result<Vec<u8>, RevealError> {
        self.open_context(&Context::Column(column), token)
    }

    /// Decrypts a token made for `context`, under whichever key of the ring made it.
    pub fn open_context(&mut self, context: &Context, token: &str) -> Result<Vec<u8>, RevealError> {
        let mut parts = token.trim().splitn(3, ':');
        let (Some(PREFIX), Some(kid), Some(b64)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(RevealError::Malformed);
        };
        let ct = URL_SAFE_NO_PAD
            .decode(b64)
            .map_err(|_| RevealError::Malformed)?;
        let cipher = self
            .ciphers
            .get_mut(kid)
            .ok_or_else(|| RevealError::UnknownKid(kid.to_owned()))?;
        cipher
            .decrypt([context.as_str().as_bytes(), kid.as_bytes()], &ct)
            .map_err(|_| RevealError::DoesNotOpen(context.clone()))
    }

    /// Opens a token into display text: an address, a device id, or a body.
    pub fn reveal(&mut self, column: Column, token: &str) -> Result<String, RevealError> {
        self.reveal_context(&Context::Column(column), token)
    }

    /// Opens a token into display text: the canonical address for `ip`, else the text.
    pub fn reveal_context(
        &mut self,
        context: &Context,
        token: &str,
    ) -> Result<String, RevealError> {
        let plain = self.open_context(context, token)?;
        let bad = || RevealError::BadPlaintext(context.clone());
        match context {
            Context::Column(Column::Ip) => {
                let bytes: [u8; 16] = plain.try_into().map_err(|_| bad())?;
                Ok(Ipv6Addr::from(bytes).to_canonical().to_string())
            }
            Context::Column(Column::DeviceId | Column::Body) | Context::Text(_) => {
                String::from_utf8(plain).map_err(|_| bad())
            }
        }
    }

    /// Opens a token whose column is unknown by trying each; returns the column that opened.
    pub fn reveal_any(&mut self, token: &str) -> Result<(Column, String), RevealError> {
        let columns = Column::ALL.map(Context::Column);
        match self.reveal_first(&columns, token)? {
            (Context::Column(c), v) => Ok((*c, v)),
            (Context::Text(_), _) => unreachable!("only columns were tried"),
        }
    }

    /// Opens a token whose context is unknown by trying each of `contexts` in order; returns
    /// the one that opened. A token that is not one, or whose key is not in the ring, stops
    /// at once; else the error is the last context's.
    pub fn reveal_first<'c>(
        &mut self,
        contexts: &'c [Context],
        token: &str,
    ) -> Result<(&'c Context, String), RevealError> {
        let mut last = RevealError::Malformed;
        for context in contexts {
            match self.reveal_context(context, token) {
                Ok(v) => return Ok((context, v)),
                Err(e @ (RevealError::Malformed | RevealError::UnknownKid(_))) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

#[cfg(test)]
impl Masker {
    /// A masker on one fixed key (kid `t`), for the unit tests of the stages that mask.
    pub(crate) fn fixed_for_tests() -> Self {
        use base64::Engine;
        let key = base64::engine::general_purpose::STANDARD.encode([9u8; 64]);
        Self::new(&Keyring::parse(&format!("t={key}")).expect("a valid test key"))
    }
}

/// The 16 bytes an address is sealed as: IPv4 as its IPv4-mapped IPv6 form, so both
/// spellings encrypt the same bytes.
pub fn ip_plaintext(ip: IpAddr) -> [u8; 16] {
    match ip.to_canonical() {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    fn ring(text: &str) -> Keyring {
        Keyring::parse(text).unwrap()
    }
    fn k(kid: &str, byte: u8) -> String {
        format!("{kid}={}", STANDARD.encode([byte; KEY_LEN]))
    }

    #[test]
    fn ip_tokens_are_49_chars_and_canonical() {
        let mut m = Masker::new(&ring(&k("k1", 1)));
        let a = m.mask_ip("1.2.3.4".parse().unwrap());
        let b = m.mask_ip("::ffff:1.2.3.4".parse().unwrap());
        assert_eq!(a, b);
        assert_eq!(a.len(), 49);
        assert!(a.starts_with("v1:k1:"));
        let v6 = m.mask_ip("2001:db8::1".parse().unwrap());
        assert_eq!(v6.len(), 49);
        assert_ne!(a, v6);
        assert_eq!(m.reveal(Column::Ip, &a).unwrap(), "1.2.3.4");
        assert_eq!(m.reveal(Column::Ip, &v6).unwrap(), "2001:db8::1");
    }

    /// What an erasure looks for: a value's token under each key of the ring, the writing
    /// key's first, each what that key wrote when it was the writing key.
    #[test]
    fn a_value_has_one_token_under_every_key() {
        let mut now = Masker::new(&ring(&format!("{}\n{}", k("k2", 2), k("k1", 1))));
        let mut before = Masker::new(&ring(&k("k1", 1)));
        let tokens = now.seal_under_every_key("email", b"a@b.c");
        assert_eq!(
            tokens,
            [
                now.seal_context("email", b"a@b.c"),
                before.seal_context("email", b"a@b.c")
            ]
        );
        assert!(tokens[0].starts_with("v1:k2:"), "the writing key stays k2");
        assert_eq!(now.seal_context("email", b"x"), tokens_of(&mut now, b"x"));
    }

    fn tokens_of(m: &mut Masker, value: &[u8]) -> String {
        m.seal_under_every_key("email", value).remove(0)
    }

    #[test]
    fn context_tokens_are_the_column_tokens() {
        let mut m = Masker::new(&ring(&k("k1", 1)));
        let ip: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(m.seal_context("ip", &ip_plaintext(ip)), m.mask_ip(ip));
        assert_eq!(m.seal_context("device_id", b"d-1"), m.mask_device_id("d-1"));
        let email = m.seal_context("email", b"d-1");
        assert_ne!(email, m.mask_device_id("d-1"));
        assert!(m.open(Column::DeviceId, &email).is_err());
    }

    #[test]
    fn text_contexts_round_trip() {
        let mut m = Masker::new(&ring(&k("k1", 1)));
        let email = Context::named("email");
        assert_eq!(email, Context::Text("email".into()));
        for value in ["zoë@example.com", "", "a\u{1b}b\n"] {
            let t = m.seal_context("email", value.as_bytes());
            assert!(t.starts_with("v1:k1:"));
            assert_eq!(m.reveal_context(&email, &t).unwrap(), value);
        }
        let t = m.seal_context("email", b"zoe@example.com");
        let mut rotated = Masker::new(&ring(&format!("{},{}", k("k2", 2), k("k1", 1))));
        assert_eq!(
            rotated.reveal_context(&email, &t).unwrap(),
            "zoe@example.com"
        );
        // Not UTF-8: opens, but is no text.
        let t = m.seal_context("email", &[0xff, 0xfe]);
        assert_eq!(
            m.reveal_context(&email, &t),
            Err(RevealError::BadPlaintext(email.clone()))
        );
        assert_eq!(
            RevealError::BadPlaintext(email).to_string(),
            "token opened but does not hold a valid email value"
        );
    }

    #[test]
    fn a_context_token_opens_under_no_other_context() {
        let mut m = Masker::new(&ring(&k("k1", 1)));
        let email = m.seal_context("email", b"zoe@example.com");
        let contexts = ["email", "phone", "emails", "ip", "device_id", "body"].map(Context::named);
        assert_eq!(contexts[3], Context::Column(Column::Ip));
        for other in &contexts[1..] {
            assert_eq!(
                m.reveal_context(other, &email),
                Err(RevealError::DoesNotOpen(other.clone())),
                "{other}"
            );
        }
        assert_eq!(
            RevealError::DoesNotOpen(Context::named("ip")).to_string(),
            "token does not open for column ip: wrong column, wrong key for its id, or a corrupted token"
        );
        // The login's tokens do not open as an email either, nor does reveal_any open an email.
        let device = m.mask_device_id("zoe@example.com");
        assert!(m.reveal_context(&contexts[0], &device).is_err());
        assert_eq!(
            m.reveal_any(&email),
            Err(RevealError::DoesNotOpen(Column::Body.into()))
        );
        // Tried in order, the first that opens names the context.
        let (found, v) = m.reveal_first(&contexts[1..], &device).unwrap();
        assert_eq!((found, v.as_str()), (&contexts[4], "zoe@example.com"));
        let (found, _) = m.reveal_first(&contexts, &email).unwrap();
        assert_eq!(found, &contexts[0]);
        assert_eq!(
            m.reveal_first(&contexts, "v1:k9:AAAA"),
            Err(RevealError::UnknownKid("k9".into()))
        );
    }

    #[test]
    fn token_len_matches() {
        let mut m = Masker::new(&ring(&k("kid-7", 1)));
        for n in 0..100 {
            let d = "x".repeat(n);
            assert_eq!(m.mask_device_id(&d).len(), m.token_len(n), "{n}");
        }
    }

    #[test]
    fn token_opens_only_for_its_column() {
        let mut m = Masker::new(&ring(&k("k1", 1)));
        let t = m.mask_device_id("593-47-5928");
        assert_eq!(m.reveal(Column::DeviceId, &t).unwrap(), "593-47-5928");
        assert_eq!(
            m.open(Column::Ip, &t),
            Err(RevealError::DoesNotOpen(Column::Ip.into()))
        );
        assert_eq!(
            m.open(Column::Body, &t),
            Err(RevealError::DoesNotOpen(Column::Body.into()))
        );
        assert_eq!(
            m.reveal_any(&t).unwrap(),
            (Column::DeviceId, "593-47-5928".into())
        );
        let body = m.seal_body(b"{\"ip\":\"1.2.3.4\"}");
        assert_eq!(m.reveal_any(&body).unwrap().0, Column::Body);
    }

    #[test]
    fn wrong_or_missing_key_fails_clearly() {
        let mut m1 = Masker::new(&ring(&k("k1", 1)));
        let t = m1.mask_device_id("abc");
        // Same kid, other bytes: authentication fails.
        let mut other = Masker::new(&ring(&k("k1", 2)));
        assert_eq!(
            other.open(Column::DeviceId, &t),
            Err(RevealError::DoesNotOpen(Column::DeviceId.into()))
        );
        // Kid not in the ring.
        let mut m2 = Masker::new(&ring(&k("k2", 1)));
        let e = m2.open(Column::DeviceId, &t).unwrap_err();
        assert_eq!(e, RevealError::UnknownKid("k1".into()));
        assert!(e.to_string().contains("not in the keyring"));
        // A tampered token.
        let mut bad = t.clone();
        bad.pop();
        bad.push(if t.ends_with('A') { 'B' } else { 'A' });
        assert!(m1.open(Column::DeviceId, &bad).is_err());
        for junk in ["", "v1", "v2:k1:AAAA", "v1:k1:***", "v1:k1"] {
            assert!(m1.open(Column::DeviceId, junk).is_err(), "{junk}");
        }
    }

    #[test]
    fn errors_and_debug_name_the_column_and_kid_never_the_key() {
        assert_eq!(
            RevealError::BadPlaintext(Column::DeviceId.into()).to_string(),
            "token opened but does not hold a valid device_id value"
        );
        let entry = k("kid-9", 7);
        let key_b64 = entry.split_once('=').unwrap().1;
        let ring = ring(&entry);
        for debug in [format!("{:?}", Masker::new(&ring)), format!("{ring:?}")] {
            assert!(debug.contains("\"kid-9\""), "the writing kid: {debug}");
            assert!(!debug.contains(key_b64), "no key bytes: {debug}");
            assert!(!debug.contains("7, 7"), "no key bytes: {debug}");
        }
    }

    #[test]
    fn keyring_errors_say_how_to_fix() {
        assert_eq!(Keyring::parse(" \n#c\n").unwrap_err(), KeyError::Empty);
        assert!(KeyError::Empty.to_string().contains("sqs2pg keygen"));
        assert_eq!(
            Keyring::parse("nokey").unwrap_err(),
            KeyError::NotAnEntry { index: 1 }
        );
        assert_eq!(
            Keyring::parse("k1=AAAA").unwrap_err(),
            KeyError::WrongLength {
                kid: "k1".into(),
                len: 3
            }
        );
        assert!(Keyring::parse("k1=AAAA")
            .unwrap_err()
            .to_string()
            .contains("keygen --kid k1"));
        assert_eq!(
            Keyring::parse("k1=!!!").unwrap_err(),
            KeyError::BadBase64 { kid: "k1".into() }
        );
        assert_eq!(
            Keyring::parse(&format!("a:b={}", STANDARD.encode([0; 64]))).unwrap_err(),
            KeyError::BadKid { kid: "a:b".into() }
        );
        assert_eq!(
            Keyring::parse(&format!("{},{}", k("k1", 1), k("k1", 2))).unwrap_err(),
            KeyError::DuplicateKid { kid: "k1".into() }
        );
        let r = ring(&format!("{}\n{}, {}", k("k3", 3), k("k2", 2), k("k1", 1)));
        assert_eq!(r.kids(), ["k3", "k2", "k1"]);
        assert!(!format!("{r:?}").contains(&STANDARD.encode([3u8; 64])));
    }

    #[test]
    fn older_keys_still_read_after_rotation() {
        let mut old = Masker::new(&ring(&k("k1", 1)));
        let t = old.mask_device_id("dev");
        let mut rotated = Masker::new(&ring(&format!("{},{}", k("k2", 2), k("k1", 1))));
        assert_eq!(rotated.reveal(Column::DeviceId, &t).unwrap(), "dev");
        assert!(rotated.mask_device_id("dev").starts_with("v1:k2:"));
    }

    #[test]
    fn generated_entries_parse() {
        let e = Keyring::generate_entry("k9").unwrap();
        let r = ring(&e);
        assert_eq!(r.writing_kid(), "k9");
        assert_ne!(Keyring::generate_entry("k9").unwrap(), e);
        assert!(Keyring::generate_entry("bad kid").is_err());
    }

    proptest! {
        #[test]
        fn deterministic_and_injective(a in ".{0,40}", b in ".{0,40}") {
            let mut m = Masker::new(&ring(&k("k1", 7)));
            let (ta, tb) = (m.mask_device_id(&a), m.mask_device_id(&b));
            prop_assert_eq!(ta == tb, a == b);
            prop_assert_eq!(&m.mask_device_id(&a), &ta);
            prop_assert_eq!(m.reveal(Column::DeviceId, &ta).unwrap(), a);
        }

        #[test]
        fn ip_round_trip(bytes in any::<[u8; 16]>(), v4 in any::<[u8; 4]>()) {
            let mut m = Masker::new(&ring(&k("k1", 7)));
            for ip in [IpAddr::from(bytes).to_canonical(), IpAddr::from(v4)] {
                let t = m.mask_ip(ip);
                prop_assert_eq!(t.len(), 49);
                prop_assert_eq!(m.reveal(Column::Ip, &t).unwrap(), ip.to_string());
            }
        }

        #[test]
        fn open_never_panics(s in ".{0,80}") {
            let mut m = Masker::new(&ring(&k("k1", 7)));
            let _ = m.reveal_any(&s);
            let _ = m.reveal_any(&format!("v1:k1:{s}"));
        }
    }
}
