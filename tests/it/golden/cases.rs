//! What one golden case is: an event body, the envelopes it is wrapped in, the framings it
//! is read with, the column limits it is checked against, and its `SentTimestamp`.

use sqs2pg::decode::{AppVersionColumn, CreateDateFrom, Envelope, Framing, Limits};

/// The `SentTimestamp` of most cases: 2024-03-05T00:00:00Z.
pub const SENT: &str = "1709596800000";
/// The SNS `Timestamp` every wrapped case carries (unless it is left out).
pub const SNS_TIME: &str = "2021-06-15T23:59:58.123Z";
/// The EventBridge `time` every wrapped case carries (unless it is left out).
pub const EVENTBRIDGE_TIME: &str = "2021-06-16T00:00:01Z";

/// A message body: text, as SQS and Lambda carry it, or bytes that are not UTF-8, which
/// only the decoder (not `transform`, whose input is a `String`) can be handed.
#[derive(Clone, Debug)]
pub enum Body {
    Text(String),
    Bytes(Vec<u8>),
}

impl Body {
    pub fn bytes(&self) -> &[u8] {
        match self {
            Self::Text(s) => s.as_bytes(),
            Self::Bytes(b) => b,
        }
    }
}

impl From<String> for Body {
    fn from(s: String) -> Self {
        Self::Text(s)
    }
}

impl From<&str> for Body {
    fn from(s: &str) -> Self {
        Self::Text(s.to_owned())
    }
}

/// One body of the corpus and how widely it is run.
pub struct Event {
    /// `category/…`: unique, and enough to find the code that builds the body.
    pub id: String,
    pub body: Body,
    pub wraps: &'static [Wrap],
    pub framings: &'static [Framing],
    /// The first is run under every wrap; the others on the bare body only.
    pub limits: &'static [Lim],
    pub sent: Option<&'static str>,
}

impl Event {
    /// Bare, `--envelope auto --create-date-from sqs`, the contract's limits.
    pub fn plain(id: impl Into<String>, body: impl Into<Body>) -> Self {
        Self {
            id: id.into(),
            body: body.into(),
            wraps: &[Wrap::Bare],
            framings: &[DEFAULT_FRAMING],
            limits: &[Lim::Default],
            sent: Some(SENT),
        }
    }

    /// Bare and in each envelope (with and without its time), under every framing.
    pub fn wrapped(id: impl Into<String>, body: impl Into<Body>) -> Self {
        Self {
            wraps: &Wrap::ALL,
            framings: &ALL_FRAMINGS,
            ..Self::plain(id, body)
        }
    }

    /// Bare under every framing: bodies that are envelopes already, and bodies too big to
    /// wrap again usefully.
    pub fn bare(id: impl Into<String>, body: impl Into<Body>) -> Self {
        Self {
            framings: &ALL_FRAMINGS,
            ..Self::plain(id, body)
        }
    }

    /// Also checked against these column shapes (bare, under every framing).
    pub fn with_limits(self, limits: &'static [Lim]) -> Self {
        Self { limits, ..self }
    }

    pub fn sent(self, sent: Option<&'static str>) -> Self {
        Self { sent, ..self }
    }
}

/// `--envelope auto --create-date-from sqs`, the defaults.
pub const DEFAULT_FRAMING: Framing = framing(Envelope::Auto, CreateDateFrom::Sqs);

const fn framing(envelope: Envelope, create_date_from: CreateDateFrom) -> Framing {
    Framing {
        envelope,
        create_date_from,
    }
}

/// Every `Framing`: four envelope modes by two date sources.
pub const ALL_FRAMINGS: [Framing; 8] = {
    use CreateDateFrom::{Envelope as Dated, Sqs};
    use Envelope::{Auto, EventBridge, None, Sns};
    [
        framing(None, Sqs),
        framing(Sns, Sqs),
        framing(EventBridge, Sqs),
        framing(Auto, Sqs),
        framing(None, Dated),
        framing(Sns, Dated),
        framing(EventBridge, Dated),
        framing(Auto, Dated),
    ]
};

/// `envelope/date-source`, as the flags spell them.
pub fn framing_name(f: Framing) -> String {
    format!("{}/{}", f.envelope, f.create_date_from)
}

/// How a body is put on the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wrap {
    Bare,
    Sns,
    SnsUntimed,
    EventBridge,
    EventBridgeUntimed,
}

impl Wrap {
    pub const ALL: [Wrap; 5] = [
        Wrap::Bare,
        Wrap::Sns,
        Wrap::SnsUntimed,
        Wrap::EventBridge,
        Wrap::EventBridgeUntimed,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Bare => "bare",
            Self::Sns => "sns",
            Self::SnsUntimed => "sns-untimed",
            Self::EventBridge => "eventbridge",
            Self::EventBridgeUntimed => "eventbridge-untimed",
        }
    }

    /// The body on the queue; `None` where it cannot be built (an SNS `Message` is a JSON
    /// string, so it cannot hold bytes that are not UTF-8).
    pub fn apply(self, event: &Body) -> Option<Body> {
        match (self, event) {
            (Self::Bare, b) => Some(b.clone()),
            (Self::Sns | Self::SnsUntimed, Body::Bytes(_)) => None,
            (Self::Sns, Body::Text(s)) => Some(sns(s, Some(SNS_TIME)).into()),
            (Self::SnsUntimed, Body::Text(s)) => Some(sns(s, None).into()),
            (Self::EventBridge, b) => Some(eventbridge(b.bytes(), Some(EVENTBRIDGE_TIME))),
            (Self::EventBridgeUntimed, b) => Some(eventbridge(b.bytes(), None)),
        }
    }
}

/// An SNS notification around `message`, as a queue subscribed without raw message
/// delivery receives it (fixed ids, so the body is the same on every run).
pub fn sns(message: &str, time: Option<&str>) -> String {
    let message = serde_json::to_string(message).expect("a string serialises");
    let time = time.map_or(String::new(), |t| format!(r#""Timestamp":"{t}","#));
    format!(
        r#"{{"Type":"Notification","MessageId":"0b4a7d52-golden","TopicArn":"arn:aws:sns:us-east-1:000000000000:logins","Message":{message},{time}"SignatureVersion":"1","Signature":"c2lnbmF0dXJl"}}"#
    )
}

/// An EventBridge event around `detail`, spliced in verbatim whatever it is.
pub fn eventbridge(detail: &[u8], time: Option<&str>) -> Body {
    let time = time.map_or(String::new(), |t| format!(r#""time":"{t}","#));
    let head = format!(
        r#"{{"version":"0","id":"6a7e8feb-golden","detail-type":"user.login","source":"app.auth","account":"000000000000",{time}"region":"us-east-1","resources":[],"detail":"#
    );
    let mut out = head.into_bytes();
    out.extend_from_slice(detail);
    out.push(b'}');
    match String::from_utf8(out) {
        Ok(s) => Body::Text(s),
        Err(e) => Body::Bytes(e.into_bytes()),
    }
}

/// The column shapes a body is checked against, as `db::schema` reads them from the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lim {
    /// The contract's DDL: varchar(128/32/256/256/32), app_version integer.
    Default,
    /// app_version smallint.
    Int2,
    /// app_version varchar(20), as in the e2e test of an altered column.
    Text20,
    /// Every column `text`: no length limits, app_version verbatim.
    Unbounded,
    /// Narrow columns: user_id 8, device_type 7, locale 2, and the token columns exactly
    /// as wide as an address's token and an 11-byte device id's.
    Tight,
    /// `Tight`, but the ip token column one character short.
    IpShort,
}

impl Lim {
    pub fn name(self) -> &'static str {
        match self {
            Self::Default => "default",
            Self::Int2 => "int2",
            Self::Text20 => "text20",
            Self::Unbounded => "unbounded",
            Self::Tight => "tight",
            Self::IpShort => "ip-short",
        }
    }

    /// `token_len` is the masker's (tokens are checked, not plaintexts).
    pub fn limits(self, token_len: impl Fn(usize) -> usize) -> Limits {
        let text = |max_chars| AppVersionColumn::Text { max_chars };
        let tight = Limits {
            user_id: Some(8),
            device_type: Some(7),
            locale: Some(2),
            masked_ip: Some(token_len(16)),
            masked_device_id: Some(token_len(11)),
            app_version: AppVersionColumn::Integer { max: 32767 },
        };
        match self {
            Self::Default => Limits::default(),
            Self::Int2 => Limits {
                app_version: AppVersionColumn::Integer { max: 32767 },
                ..Limits::default()
            },
            Self::Text20 => Limits {
                app_version: text(Some(20)),
                ..Limits::default()
            },
            Self::Unbounded => Limits {
                user_id: None,
                device_type: None,
                locale: None,
                masked_ip: None,
                masked_device_id: None,
                app_version: text(None),
            },
            Self::Tight => tight,
            Self::IpShort => Limits {
                masked_ip: Some(token_len(16) - 1),
                ..tight
            },
        }
    }
}

/// What the app_version and length mutations are also checked against.
pub const SHAPES: [Lim; 6] = [
    Lim::Default,
    Lim::Int2,
    Lim::Text20,
    Lim::Unbounded,
    Lim::Tight,
    Lim::IpShort,
];
