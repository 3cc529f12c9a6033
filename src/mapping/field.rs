//! Where a column's or a predicate's value comes from: an RFC 6901 JSON Pointer into the
//! event (`path`) or a piece of the message's metadata (`meta`). Both are checked when the
//! file is read, so evaluation never meets a malformed one.

use std::fmt;

/// An RFC 6901 JSON Pointer, checked and split into its unescaped reference tokens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pointer {
    text: String,
    tokens: Vec<String>,
}

impl Pointer {
    /// `""` (the whole event) or `/`-separated tokens in which `~` appears only as `~0`
    /// (`~`) or `~1` (`/`).
    pub fn parse(text: &str) -> Result<Self, String> {
        if text.is_empty() {
            return Ok(Self {
                text: String::new(),
                tokens: Vec::new(),
            });
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(format!(
                "{text:?} is not a JSON Pointer: it must be \"\" or start with \"/\" (RFC 6901)"
            ));
        };
        let tokens = rest
            .split('/')
            .map(|t| unescape(t).ok_or_else(|| format!("{text:?} is not a JSON Pointer: \"~\" must be followed by 0 or 1 (RFC 6901)")))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            text: text.to_owned(),
            tokens,
        })
    }

    /// The unescaped reference tokens, outermost first.
    pub fn tokens(&self) -> &[String] {
        &self.tokens
    }

    /// As written in the file.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

fn unescape(token: &str) -> Option<String> {
    let mut out = String::with_capacity(token.len());
    let mut chars = token.chars();
    while let Some(c) = chars.next() {
        match c {
            '~' => match chars.next() {
                Some('0') => out.push('~'),
                Some('1') => out.push('/'),
                _ => return None,
            },
            c => out.push(c),
        }
    }
    Some(out)
}

/// A piece of the message besides its event.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Meta {
    /// The SQS message id.
    MessageId,
    /// SQS `SentTimestamp`, a time.
    SentTimestamp,
    /// The time a row is dated by, as `--create-date-from` says: with `envelope`, the
    /// envelope's own time (SNS `Timestamp`, EventBridge `time`; an envelope without a
    /// readable one is `bad_envelope`); otherwise, and for a bare body, `SentTimestamp`;
    /// the current time when that is missing. The login's `create_date`. In a `when`, and
    /// under [`super::eval::eval_body`], it is `SentTimestamp` (or the current time).
    MessageTime,
    /// SQS `ApproximateReceiveCount`, an integer.
    ReceiveCount,
    /// A FIFO queue's message group id.
    GroupId,
    /// An SQS message attribute by name.
    Attribute(String),
    /// A top-level field of the envelope that was opened (absent for a bare body).
    Envelope(String),
}

/// The names `meta` takes, for error texts.
pub const META_NAMES: &str =
    "message_id, sent_timestamp, message_time, receive_count, group_id, attribute:NAME, envelope:NAME";

impl Meta {
    /// One of [`META_NAMES`]; `NAME` must not be empty.
    pub fn parse(text: &str) -> Result<Self, String> {
        let named = |prefix: &str| {
            text.strip_prefix(prefix)
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
        };
        Ok(match text {
            "message_id" => Self::MessageId,
            "sent_timestamp" => Self::SentTimestamp,
            "message_time" => Self::MessageTime,
            "receive_count" => Self::ReceiveCount,
            "group_id" => Self::GroupId,
            _ => match (named("attribute:"), named("envelope:")) {
                (Some(n), _) => Self::Attribute(n),
                (_, Some(n)) => Self::Envelope(n),
                _ => return Err(format!("{text:?} is not a meta: use one of {META_NAMES}")),
            },
        })
    }
}

impl fmt::Display for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MessageId => f.write_str("message_id"),
            Self::SentTimestamp => f.write_str("sent_timestamp"),
            Self::MessageTime => f.write_str("message_time"),
            Self::ReceiveCount => f.write_str("receive_count"),
            Self::GroupId => f.write_str("group_id"),
            Self::Attribute(n) => write!(f, "attribute:{n}"),
            Self::Envelope(n) => write!(f, "envelope:{n}"),
        }
    }
}

/// Where a value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// A JSON Pointer into the event.
    Path(Pointer),
    /// The message's metadata.
    Meta(Meta),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(p) => write!(f, "path {:?}", p.as_str()),
            Self::Meta(m) => write!(f, "meta {m}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointers_follow_rfc_6901() {
        assert!(Pointer::parse("").unwrap().tokens().is_empty());
        assert_eq!(Pointer::parse("/").unwrap().tokens(), [""]);
        assert_eq!(
            Pointer::parse("/a~1b/c~0d/0").unwrap().tokens(),
            ["a/b", "c~d", "0"]
        );
        assert_eq!(Pointer::parse("/~01").unwrap().tokens(), ["~1"]);
        for bad in ["a", "a/b", "/~", "/~2", "/a~"] {
            assert!(Pointer::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metas_parse_and_print_back() {
        for text in [
            "message_id",
            "sent_timestamp",
            "message_time",
            "receive_count",
            "group_id",
            "attribute:tenant",
            "envelope:detail-type",
        ] {
            assert_eq!(Meta::parse(text).unwrap().to_string(), text);
        }
        for bad in ["", "attribute:", "envelope:", "time", "Message_id"] {
            assert!(Meta::parse(bad).is_err(), "{bad}");
        }
    }
}
