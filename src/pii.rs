//! Wrappers for raw personal data.
//!
//! Anything that holds a raw `ip`, `device_id` or a whole message body lives in a
//! [`Pii`] so that `{:?}` and `{}` print `<redacted>`: a stray `tracing::debug!(?msg)`
//! cannot leak it. Reading the value takes an explicit [`Pii::expose`].

use std::fmt;

/// A value that must never reach a log, a metric or an error text.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Pii<T>(T);

impl<T> Pii<T> {
    /// Wraps a raw value.
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// Borrows the raw value. Call sites are the places to audit.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// Unwraps the raw value.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl<T> fmt::Display for Pii<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_redact() {
        let p = Pii::new("10.1.2.3".to_string());
        assert_eq!(
            format!("{p:?} {p} {:?}", Some(&p)),
            "<redacted> <redacted> Some(<redacted>)"
        );
        assert_eq!(p.expose(), "10.1.2.3");
    }
}
