//! Numbers exactly as written: a JSON number's text (or a numeric string) read into an
//! exact decimal, never through `f64`, so `19.99` loads as 19.99 and `1e400` is refused
//! rather than rounded. Two decimals are equal when their values are (`1.0 == 1`,
//! `1e2 == 100`): JSON does not tell integers from other numbers, and neither does `jsonb`.

/// Why a text is not a number we take.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NumberError {
    /// Not the JSON number grammar.
    Syntax,
    /// An exponent beyond what any Postgres type holds.
    Range,
}

/// An exact decimal `digits × 10^exp`, normalised (no leading or trailing zero digits; zero
/// has no digits and is never negative), so equal values compare equal.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    exp: i64,
}

/// Larger exponents than numeric's 131072 integer digits are refused outright.
const MAX_EXP: i64 = 1 << 20;

impl Decimal {
    /// Reads the JSON number grammar, `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`; no
    /// spaces, no `+`, no `NaN` or `Infinity`.
    pub fn parse(text: &str) -> Result<Self, NumberError> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, text),
        };
        let (mantissa, exponent) = match rest.find(['e', 'E']) {
            Some(i) => (&rest[..i], Some(&rest[i + 1..])),
            None => (rest, None),
        };
        let (int, frac) = match mantissa.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (mantissa, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        let int_ok = all_digits(int) && (int == "0" || !int.starts_with('0'));
        if !int_ok || frac.is_some_and(|f| !all_digits(f)) {
            return Err(NumberError::Syntax);
        }
        let frac = frac.unwrap_or("");
        let mut exp = match exponent {
            None => 0,
            Some(e) => parse_exponent(e)?,
        };
        exp -= frac.len() as i64;
        let mut digits: Vec<u8> = int.bytes().chain(frac.bytes()).collect();
        let lead = digits.iter().take_while(|&&d| d == b'0').count();
        digits.drain(..lead);
        while digits.last() == Some(&b'0') {
            digits.pop();
            exp += 1;
        }
        if digits.is_empty() {
            return Ok(Self::zero());
        }
        if !(-MAX_EXP..=MAX_EXP).contains(&exp) {
            return Err(NumberError::Range);
        }
        Ok(Self {
            negative,
            digits,
            exp,
        })
    }

    fn zero() -> Self {
        Self {
            negative: false,
            digits: Vec::new(),
            exp: 0,
        }
    }

    /// Whether it has no fractional part.
    pub fn is_integer(&self) -> bool {
        self.exp >= 0
    }

    /// Its value as an `i64`, when it is an integer in range.
    pub fn to_i64(&self) -> Option<i64> {
        if !self.is_integer() || self.digits.len() as i64 + self.exp > 19 {
            return None;
        }
        let mut v: i128 = 0;
        for d in &self.digits {
            v = v * 10 + i128::from(d - b'0');
        }
        for _ in 0..self.exp {
            v *= 10;
        }
        i64::try_from(if self.negative { -v } else { v }).ok()
    }

    /// Digits before the point.
    pub fn integer_digits(&self) -> i64 {
        (self.digits.len() as i64 + self.exp).max(0)
    }

    /// Digits after the point.
    pub fn fraction_digits(&self) -> i64 {
        (-self.exp).max(0)
    }

    /// Whether `numeric(precision, scale)` holds it without rounding (`None`: unconstrained,
    /// within Postgres's own limits of 131072 digits before the point and 16383 after).
    pub fn fits(&self, typmod: Option<(i32, i32)>) -> bool {
        if self.digits.is_empty() {
            return true;
        }
        let len = self.digits.len() as i64;
        match typmod {
            None => self.integer_digits() <= 131_072 && self.fraction_digits() <= 16_383,
            Some((p, s)) => -self.exp <= i64::from(s) && len + self.exp <= i64::from(p - s),
        }
    }

    /// Postgres's binary `numeric` (what `numeric_recv` reads): the digit count, the weight of
    /// the first base-10000 digit, the sign, the display scale, then the base-10000 digits.
    pub fn to_pg_binary(&self) -> Vec<u8> {
        let scale = self.fraction_digits();
        // Decimal digits from the highest group boundary on: the integer part padded left
        // to a multiple of 4, the fraction padded right to one.
        let int_len = self.integer_digits();
        let lead = (4 - int_len % 4) % 4;
        let frac_len = scale + (4 - scale % 4) % 4;
        let digit_at = |i: i64| -> u16 {
            // Position i counts from the first padded integer digit; the value's digit at
            // 10^(int_len - 1 - (i - lead)).
            let power = int_len - 1 - (i - lead);
            let index = self.digits.len() as i64 - 1 - (power - self.exp);
            if (0..self.digits.len() as i64).contains(&index) {
                u16::from(self.digits[index as usize] - b'0')
            } else {
                0
            }
        };
        let total = lead + int_len + frac_len;
        let mut groups: Vec<u16> = (0..total / 4)
            .map(|g| (0..4).fold(0, |acc, k| acc * 10 + digit_at(g * 4 + k)))
            .collect();
        let mut weight = (lead + int_len) / 4 - 1;
        let leading = groups.iter().take_while(|&&g| g == 0).count();
        groups.drain(..leading);
        weight -= leading as i64;
        while groups.last() == Some(&0) {
            groups.pop();
        }
        if groups.is_empty() {
            weight = 0;
        }
        let sign: u16 = if self.negative { 0x4000 } else { 0 };
        let mut out = Vec::with_capacity(8 + 2 * groups.len());
        out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
        out.extend_from_slice(&(weight as i16).to_be_bytes());
        out.extend_from_slice(&sign.to_be_bytes());
        out.extend_from_slice(&(scale as u16).to_be_bytes());
        for g in groups {
            out.extend_from_slice(&g.to_be_bytes());
        }
        out
    }

    /// Plain decimal notation (`-0.001`, `1000`), as Postgres reads and prints numerics.
    pub fn to_plain(&self) -> String {
        if self.digits.is_empty() {
            return "0".into();
        }
        let digits = std::str::from_utf8(&self.digits).unwrap_or("0");
        let mut out = String::from(if self.negative { "-" } else { "" });
        if self.exp >= 0 {
            out.push_str(digits);
            out.extend(std::iter::repeat_n('0', self.exp as usize));
        } else {
            let point = self.digits.len() as i64 + self.exp;
            if point <= 0 {
                out.push_str("0.");
                out.extend(std::iter::repeat_n('0', (-point) as usize));
                out.push_str(digits);
            } else {
                let (a, b) = digits.split_at(point as usize);
                out.push_str(a);
                out.push('.');
                out.push_str(b);
            }
        }
        out
    }
}

fn parse_exponent(e: &str) -> Result<i64, NumberError> {
    let digits = e.strip_prefix(['+', '-']).unwrap_or(e);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(NumberError::Syntax);
    }
    let significant = digits.trim_start_matches('0');
    if significant.len() > 9 {
        return Err(NumberError::Range);
    }
    let v: i64 = significant.parse().unwrap_or(0);
    Ok(if e.starts_with('-') { -v } else { v })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn d(s: &str) -> Decimal {
        Decimal::parse(s).unwrap()
    }

    /// `numeric_send`'s output for the same values: digit count, weight, sign, scale, and
    /// the base-10000 digits.
    #[test]
    fn binary_numerics_are_what_postgres_sends() {
        let bin = |s: &str| {
            let b = d(s).to_pg_binary();
            b.chunks(2)
                .map(|c| i32::from(i16::from_be_bytes([c[0], c[1]])))
                .collect::<Vec<_>>()
        };
        assert_eq!(bin("19.99"), [2, 0, 0, 2, 19, 9900]);
        assert_eq!(bin("0.001"), [1, -1, 0, 3, 10]);
        assert_eq!(bin("-12345.6"), [3, 1, 0x4000, 1, 1, 2345, 6000]);
        assert_eq!(bin("1e2"), [1, 0, 0, 0, 100]);
        assert_eq!(bin("100000000"), [1, 2, 0, 0, 1]);
        assert_eq!(bin("0"), [0, 0, 0, 0]);
        assert_eq!(bin("1.50"), [2, 0, 0, 1, 1, 5000]);
    }

    #[test]
    fn equal_values_are_equal_decimals() {
        assert_eq!(d("1.0"), d("1"));
        assert_eq!(d("1e2"), d("100"));
        assert_eq!(d("-0"), d("0.000"));
        assert_eq!(d("0.1"), d("1E-1"));
        assert_ne!(d("0.1"), d("0.1000000000000000055511151231257827"));
        assert_ne!(d("-1"), d("1"));
    }

    #[test]
    fn the_grammar_is_json_s() {
        for bad in [
            "", "-", "01", "1.", ".5", "+1", "1e", "1e+", "NaN", " 1", "1 ", "0x1", "1_0",
        ] {
            assert_eq!(Decimal::parse(bad), Err(NumberError::Syntax), "{bad:?}");
        }
        assert_eq!(Decimal::parse("1e99999999999"), Err(NumberError::Range));
        assert_eq!(Decimal::parse("1e-99999999999999"), Err(NumberError::Range));
    }

    #[test]
    fn integers_and_ranges() {
        assert_eq!(d("9223372036854775807").to_i64(), Some(i64::MAX));
        assert_eq!(d("-9223372036854775808").to_i64(), Some(i64::MIN));
        assert_eq!(d("9223372036854775808").to_i64(), None);
        assert_eq!(d("1.5").to_i64(), None);
        assert_eq!(d("1.50e1").to_i64(), Some(15));
        assert_eq!(d("1e30").to_i64(), None);
    }

    #[test]
    fn numeric_precision_and_scale() {
        let p = Some((5, 2));
        assert!(d("19.99").fits(p) && d("999.99").fits(p) && d("19.990").fits(p));
        assert!(!d("19.999").fits(p) && !d("1000").fits(p));
        assert!(d("1000e-3").fits(Some((1, 0))));
        assert!(d("12300").fits(Some((3, -2))) && !d("12310").fits(Some((3, -2))));
        assert_eq!(d("19.99").to_plain(), "19.99");
        assert_eq!(d("-1e-3").to_plain(), "-0.001");
        assert_eq!(d("12e2").to_plain(), "1200");
    }

    proptest! {
        /// Plain notation reads back as the same value, and matches the integer's own text.
        #[test]
        fn plain_text_round_trips(int in any::<i64>(), frac in 0u32..20, exp in -30i64..30) {
            let text = format!("{int}.{frac}e{exp}");
            let v = d(&text);
            prop_assert_eq!(d(&v.to_plain()), v);
            prop_assert_eq!(d(&int.to_string()).to_i64(), Some(int));
        }
    }
}
