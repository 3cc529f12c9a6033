//! Envelopes: the login event inside an SNS notification or an EventBridge event.
//!
//! A queue subscribed to an SNS topic (raw message delivery off) receives
//! `{"Type":"Notification","TopicArn":…,"Message":"<the event as a JSON string>",…}`; a queue
//! that is an EventBridge target receives `{"detail-type":…,"source":…,"detail":{the event},…}`.
//! [`open`] finds the event in either, or takes the body itself as the event. Pure: it only
//! looks at the bytes, and what it returns borrows from them where it can (an EventBridge
//! `detail` is never copied; an SNS `Message` is unescaped once).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::RejectReason;

/// Which envelope the queue's bodies come in (`--envelope`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Envelope {
    /// The body is the event.
    None,
    /// Every body is an SNS notification.
    Sns,
    /// Every body is an EventBridge event.
    EventBridge,
    /// An SNS notification or an EventBridge event is opened, recognised by its keys; any
    /// other body is the event.
    #[default]
    Auto,
}

impl FromStr for Envelope {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "sns" => Ok(Self::Sns),
            "eventbridge" => Ok(Self::EventBridge),
            "auto" => Ok(Self::Auto),
            _ => Err(format!(
                "{s:?} is not an envelope: use none, sns, eventbridge or auto"
            )),
        }
    }
}

impl fmt::Display for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::None => "none",
            Self::Sns => "sns",
            Self::EventBridge => "eventbridge",
            Self::Auto => "auto",
        })
    }
}

/// Where a row's `create_date` comes from (`--create-date-from`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CreateDateFrom {
    /// The SQS `SentTimestamp` (the contract's rule).
    #[default]
    Sqs,
    /// The envelope's own time (SNS `Timestamp`, EventBridge `time`) when the body is an
    /// envelope; a bare body still takes its `SentTimestamp`.
    Envelope,
}

impl FromStr for CreateDateFrom {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "sqs" => Ok(Self::Sqs),
            "envelope" => Ok(Self::Envelope),
            _ => Err(format!("{s:?} is not a date source: use sqs or envelope")),
        }
    }
}

impl fmt::Display for CreateDateFrom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Sqs => "sqs",
            Self::Envelope => "envelope",
        })
    }
}

/// How a queue's bodies are read: the envelope around the event, and which clock dates the
/// row. Travels with each received message, so whoever transforms it reads it the same way.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Framing {
    /// `--envelope`.
    pub envelope: Envelope,
    /// `--create-date-from`.
    pub create_date_from: CreateDateFrom,
}

/// The kind of envelope a body turned out to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// An SNS notification.
    Sns,
    /// An EventBridge event.
    EventBridge,
}

/// The event found in a body.
#[derive(Debug)]
pub struct Opened<'a> {
    /// The event's JSON.
    pub event: Cow<'a, [u8]>,
    /// The envelope it came in; `None` when the body is the event.
    pub kind: Option<Kind>,
    /// The envelope's time field, as sent.
    time: Option<&'a RawValue>,
    /// Of the top-level fields [`open_reading`] was asked for, each one's value as sent
    /// (the last of a repeated one); empty for a bare body.
    pub fields: Vec<Option<&'a RawValue>>,
}

impl Opened<'_> {
    /// The envelope's own time (SNS `Timestamp`, EventBridge `time`, RFC 3339); `None` for a
    /// bare body. An envelope without a readable time is broken.
    pub fn time(&self) -> Result<Option<DateTime<Utc>>, RejectReason> {
        if self.kind.is_none() {
            return Ok(None);
        }
        let text: Cow<'_, str> = self
            .time
            .and_then(|t| serde_json::from_str(t.get()).ok())
            .ok_or(RejectReason::BadEnvelope)?;
        DateTime::parse_from_rfc3339(&text)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| RejectReason::BadEnvelope)
    }

    /// The reason an inner event's failure is given: an SNS `Message` that is not JSON is a
    /// broken envelope; any other failure is the event's own.
    pub fn inner_reason(&self, reason: RejectReason) -> RejectReason {
        match (self.kind, reason) {
            (Some(Kind::Sns), RejectReason::NotJson) => RejectReason::BadEnvelope,
            (_, r) => r,
        }
    }
}

/// Finds the event in `body` as `envelope` says. A body that should be an envelope and is
/// not a whole one (a key missing or repeated, `Message` not a string, `detail` not an
/// object, a `Type` other than `Notification`) is [`RejectReason::BadEnvelope`]. Never
/// panics.
pub fn open(body: &[u8], envelope: Envelope) -> Result<Opened<'_>, RejectReason> {
    open_reading(body, envelope, &[])
}

/// [`open`], keeping as well an envelope's top-level fields named in `wanted`
/// ([`Opened::fields`]), read in the same pass over the body.
pub fn open_reading<'a>(
    body: &'a [u8],
    envelope: Envelope,
    wanted: &[String],
) -> Result<Opened<'a>, RejectReason> {
    let bare = || Opened {
        event: Cow::Borrowed(body),
        kind: None,
        time: None,
        fields: Vec::new(),
    };
    if envelope == Envelope::None {
        return Ok(bare());
    }
    let keys = read_keys(body, wanted);
    let kind = match (envelope, &keys) {
        (Envelope::Sns, _) => Kind::Sns,
        (Envelope::EventBridge, _) => Kind::EventBridge,
        (_, Some(k)) if k.has(&SNS_KEYS) => Kind::Sns,
        (_, Some(k)) if k.has(&EVENTBRIDGE_KEYS) => Kind::EventBridge,
        _ => return Ok(bare()),
    };
    let keys = keys.ok_or(RejectReason::BadEnvelope)?;
    if keys.duplicate {
        return Err(RejectReason::BadEnvelope);
    }
    let mut opened = match kind {
        Kind::Sns => open_sns(&keys)?,
        Kind::EventBridge => open_eventbridge(&keys)?,
    };
    opened.fields = keys.wanted;
    Ok(opened)
}

/// The body read as a whole JSON object, as `serde_json::from_slice` reads it.
fn read_keys<'a>(body: &'a [u8], wanted: &[String]) -> Option<Keys<'a>> {
    let mut de = serde_json::Deserializer::from_slice(body);
    let keys = KeysSeed(wanted).deserialize(&mut de).ok()?;
    de.end().ok().map(|()| keys)
}

fn open_sns<'a>(keys: &Keys<'a>) -> Result<Opened<'a>, RejectReason> {
    let [kind, _, message] = SNS_KEYS.map(|k| keys.get(k));
    let _topic = keys.get(TOPIC_ARN).ok_or(RejectReason::BadEnvelope)?;
    let is_notification = kind
        .and_then(|k| serde_json::from_str::<Cow<'_, str>>(k.get()).ok())
        .is_some_and(|k| k == "Notification");
    if !is_notification {
        return Err(RejectReason::BadEnvelope);
    }
    let message: String = message
        .and_then(|m| serde_json::from_str(m.get()).ok())
        .ok_or(RejectReason::BadEnvelope)?;
    Ok(Opened {
        event: Cow::Owned(message.into_bytes()),
        kind: Some(Kind::Sns),
        time: keys.get("Timestamp"),
        fields: Vec::new(),
    })
}

fn open_eventbridge<'a>(keys: &Keys<'a>) -> Result<Opened<'a>, RejectReason> {
    let [detail_type, source, detail] = EVENTBRIDGE_KEYS.map(|k| keys.get(k));
    let detail = detail
        .filter(|d| d.get().starts_with('{'))
        .ok_or(RejectReason::BadEnvelope)?;
    if detail_type.is_none() || source.is_none() {
        return Err(RejectReason::BadEnvelope);
    }
    Ok(Opened {
        event: Cow::Borrowed(detail.get().as_bytes()),
        kind: Some(Kind::EventBridge),
        time: keys.get("time"),
        fields: Vec::new(),
    })
}

const TOPIC_ARN: &str = "TopicArn";
/// The keys that make a body an SNS notification (with [`TOPIC_ARN`]).
const SNS_KEYS: [&str; 3] = ["Type", TOPIC_ARN, "Message"];
/// The keys that make a body an EventBridge event.
const EVENTBRIDGE_KEYS: [&str; 3] = ["detail-type", "source", "detail"];
/// Every key an envelope is read by.
const KNOWN: [&str; 7] = [
    "Type",
    TOPIC_ARN,
    "Message",
    "Timestamp",
    "detail-type",
    "source",
    "detail",
];
/// EventBridge's time key; kept apart from [`KNOWN`] only for its index.
const TIME: &str = "time";

/// The top-level keys an envelope is read by, and those asked for, their values
/// unparsed; any other key is skipped. Reading fails for a body that is not a JSON object.
struct Keys<'a> {
    values: [Option<&'a RawValue>; 8],
    duplicate: bool,
    wanted: Vec<Option<&'a RawValue>>,
}

impl<'a> Keys<'a> {
    fn index(key: &str) -> Option<usize> {
        KNOWN
            .iter()
            .position(|k| *k == key)
            .or((key == TIME).then_some(KNOWN.len()))
    }

    fn get(&self, key: &str) -> Option<&'a RawValue> {
        Self::index(key).and_then(|i| self.values[i])
    }

    fn has(&self, keys: &[&str]) -> bool {
        keys.iter().all(|k| self.get(k).is_some())
    }
}

/// A top-level key as its index in [`Keys::values`] and in the fields asked for, without
/// copying it.
struct KeyIndex<'w>(&'w [String]);

impl<'de> DeserializeSeed<'de> for KeyIndex<'_> {
    type Value = (Option<usize>, Option<usize>);
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KeyIndex<'_> {
    type Value = (Option<usize>, Option<usize>);
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((Keys::index(v), self.0.iter().position(|w| w == v)))
    }
}

/// Reads [`Keys`], keeping the fields named in its list too.
struct KeysSeed<'w>(&'w [String]);

impl<'de> DeserializeSeed<'de> for KeysSeed<'_> {
    type Value = Keys<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Keys<'de>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for KeysSeed<'_> {
    type Value = Keys<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys<'de>, A::Error> {
        let mut keys = Keys {
            values: [None; 8],
            duplicate: false,
            wanted: vec![None; self.0.len()],
        };
        while let Some((known, wanted)) = map.next_key_seed(KeyIndex(self.0))? {
            if known.is_none() && wanted.is_none() {
                map.next_value::<IgnoredAny>()?;
                continue;
            }
            let v: &'de RawValue = map.next_value()?;
            if let Some(i) = known {
                keys.duplicate |= keys.values[i].replace(v).is_some();
            }
            // A repeated field the envelope is not read by: the last one, as a map of the
            // body's fields keeps it.
            if let Some(i) = wanted {
                keys.wanted[i] = Some(v);
            }
        }
        Ok(keys)
    }
}

#[cfg(test)]
#[path = "envelope_tests.rs"]
mod tests;
