//! How a failed command reaches the user: one line that says each cause once, and the exit
//! code its kind calls for (2 when the user must change a setting, 1 otherwise).
//!
//! Every error type of the crate implements [`Classified`] next to its definition, so exit
//! codes are decided the same way everywhere; the binary only asks the [`Failure`] built
//! from it.

use std::fmt;

/// An error that knows whether the user must fix a setting.
pub trait Classified: std::error::Error + Send + Sync + 'static {
    /// True for a usage or configuration error (exit 2).
    fn is_usage(&self) -> bool;
}

/// A failed command, ready to print.
#[derive(Debug)]
pub struct Failure {
    message: String,
    usage: bool,
    /// The flag at fault, when the command line's parser says which.
    flag: Option<String>,
}

impl Failure {
    /// 2 for usage and configuration errors, 1 for the rest.
    pub fn exit_code(&self) -> u8 {
        if self.usage {
            2
        } else {
            1
        }
    }

    /// A usage error described in words (a flag combination, say).
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            usage: true,
            flag: None,
        }
    }

    /// This failure blaming `flag` (`--pollers`), shown as `fields.flag` in its JSON line.
    pub fn with_flag(mut self, flag: Option<String>) -> Self {
        self.flag = flag;
        self
    }

    /// The failure as the one stderr line `--log-format json` prints: the shape of the
    /// tracing JSON lines before it (`timestamp`, `level`, `fields.message`), so a log
    /// shipper parses one shape, with the exit code among the fields, and the flag at fault
    /// (`fields.flag`) when the command line's parser said which.
    pub fn json_line(&self) -> String {
        let mut fields =
            serde_json::json!({ "message": self.message, "exit_code": self.exit_code() });
        if let Some(flag) = &self.flag {
            fields["flag"] = flag.as_str().into();
        }
        serde_json::json!({
            "timestamp": chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "level": "ERROR",
            "fields": fields,
        })
        .to_string()
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl<E: Classified> From<E> for Failure {
    fn from(e: E) -> Self {
        Self {
            message: causes(&e),
            usage: e.is_usage(),
            flag: None,
        }
    }
}

/// I/O at the edge (reading stdin, writing stdout): never the user's setting.
impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Self {
            message: causes(e.as_ref()),
            usage: false,
            flag: None,
        }
    }
}

/// An error and its sources as one line, each text once: a message that already quotes its
/// source (`SQS2PG_KEYS: key "k1" is not valid base64…`) does not repeat it.
pub fn causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        source = s.source();
    }
    text
}

/// The one error type still classified by an inherent method (`src/pipeline` is next).
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        let e = crate::config::ConfigError::Key {
            origin: "SQS2PG_KEYS",
            source: crate::mask::KeyError::BadBase64 { kid: "k1".into() },
        };
        let f = Failure::from(e);
        assert_eq!(
            f.to_string(),
            "SQS2PG_KEYS: key \"k1\" is not valid base64: make a new one with `sqs2pg keygen --kid k1`"
        );
        assert_eq!(f.exit_code(), 2);
    }
}
