//! Exact decimals for prices, quantities and money.
//!
//! Cloud prices go down to ten decimal places (Lambda's arm64 GB-second is $0.0000133334), and
//! floats would print sums like 0.30000000000000004. A [`Fixed`] is an `i128` count of
//! trillionths, so every price in the table and every quantity Herald computes is held exactly
//! to twelve decimals, and only the final cost of a line is rounded, once, to the cent's
//! hundredth.

use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

/// Decimal places a [`Fixed`] holds.
const PLACES: u32 = 12;
/// One whole unit, in trillionths.
const ONE: i128 = 10_i128.pow(PLACES);

/// A non-negative decimal with twelve places, exact for everything the cost model does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Fixed(i128);

/// A string that is not a plain non-negative decimal such as `"0.20"` or `"400000"`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a decimal such as \"0.20\" (digits, at most one point, 12 places at most)")]
pub struct ParseFixedError(String);

impl Fixed {
    /// Zero.
    pub const ZERO: Fixed = Fixed(0);

    /// A whole number.
    pub fn from_int(n: u64) -> Fixed {
        Fixed(i128::from(n) * ONE)
    }

    /// `num / den`, rounded half up to twelve places; `den` must not be zero (a zero gives
    /// zero rather than a panic, and callers never pass one).
    pub fn ratio(num: u128, den: u128) -> Fixed {
        if den == 0 {
            return Fixed::ZERO;
        }
        let scaled = num.saturating_mul(ONE as u128);
        let value = (scaled + den / 2) / den;
        Fixed(i128::try_from(value).unwrap_or(i128::MAX))
    }

    /// The product, rounded half up to twelve places; `None` when it would not fit.
    pub fn checked_mul(self, other: Fixed) -> Option<Fixed> {
        let product = self.0.checked_mul(other.0)?;
        Some(Fixed((product + ONE / 2) / ONE))
    }

    /// The quotient by a whole number, rounded half up.
    pub fn div_int(self, den: u64) -> Fixed {
        if den == 0 {
            return Fixed::ZERO;
        }
        let den = i128::from(den);
        Fixed((self.0 + den / 2) / den)
    }

    /// The sum; saturates rather than overflow (values here stay far below the limit).
    pub fn plus(self, other: Fixed) -> Fixed {
        Fixed(self.0.saturating_add(other.0))
    }

    /// `self - other`, or zero when `other` is larger (a free tier never makes a bill negative).
    pub fn sub_floor(self, other: Fixed) -> Fixed {
        Fixed((self.0 - other.0).max(0))
    }

    /// The smaller of the two.
    pub fn min(self, other: Fixed) -> Fixed {
        Fixed(self.0.min(other.0))
    }

    /// Rounded half up to `places` decimals (at most twelve).
    pub fn round(self, places: u32) -> Fixed {
        let step = 10_i128.pow(PLACES - places.min(PLACES));
        Fixed((self.0 + step / 2) / step * step)
    }

    /// Whether this is zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }

    /// Digits with thousands separators and exactly `places` decimals, e.g. `1,250.0000`.
    pub fn grouped(self, places: u32) -> String {
        let rounded = self.round(places);
        let whole = rounded.0 / ONE;
        let frac = rounded.0 % ONE;
        let mut out = group_digits(whole.unsigned_abs());
        if places > 0 {
            let digits = format!("{frac:012}");
            out.push('.');
            out.push_str(&digits[..places.min(PLACES) as usize]);
        }
        out
    }

    /// Digits with thousands separators and only the decimals needed, e.g. `0.0000133334`.
    pub fn trimmed(self) -> String {
        let whole = self.0 / ONE;
        let frac = self.0 % ONE;
        let mut out = group_digits(whole.unsigned_abs());
        if frac != 0 {
            let digits = format!("{frac:012}");
            out.push('.');
            out.push_str(digits.trim_end_matches('0'));
        }
        out
    }
}

/// `n` with a comma between each group of three digits, e.g. `6,144,000,000`.
pub fn group_digits(n: u128) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl FromStr for Fixed {
    type Err = ParseFixedError;

    fn from_str(s: &str) -> Result<Fixed, ParseFixedError> {
        let bad = || ParseFixedError(s.to_owned());
        let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
        let all_digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if whole.is_empty() || !all_digits(whole) || !all_digits(frac) || frac.len() > 12 {
            return Err(bad());
        }
        if s.contains('.') && frac.is_empty() {
            return Err(bad());
        }
        let whole: i128 = whole.parse().map_err(|_| bad())?;
        let frac_value: i128 = if frac.is_empty() {
            0
        } else {
            let padded = format!("{frac:0<12}");
            padded.parse().map_err(|_| bad())?
        };
        let value = whole.checked_mul(ONE).ok_or_else(bad)? + frac_value;
        Ok(Fixed(value))
    }
}

impl fmt::Display for Fixed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.trimmed().replace(',', ""))
    }
}

/// JSON carries decimals as strings, so no reader turns them back into floats by accident.
impl Serialize for Fixed {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixed(s: &str) -> Fixed {
        s.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn parses_exact_decimals() {
        assert_eq!(fixed("0.0000133334").to_string(), "0.0000133334");
        assert_eq!(fixed("400000").to_string(), "400000");
        assert_eq!(fixed("19.95").trimmed(), "19.95");
        assert_eq!(fixed("1000000").trimmed(), "1,000,000");
    }

    #[test]
    fn rejects_what_is_not_a_plain_decimal() {
        for bad in [
            "",
            ".5",
            "5.",
            "-1",
            "1e3",
            "0.1.2",
            "1,000",
            "0.0000000000001",
            " 1",
        ] {
            assert!(bad.parse::<Fixed>().is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn tenths_add_up_exactly() {
        let tenth = fixed("0.1");
        let sum = tenth.plus(tenth).plus(tenth);
        assert_eq!(sum, fixed("0.3"));
        assert_eq!(sum.grouped(4), "0.3000");
    }

    #[test]
    fn multiplication_and_division_round_half_up() {
        // 1,250 GB-s at the arm64 rate is $0.01666675: four places round it up to 0.0167.
        let cost = Fixed::from_int(1250).checked_mul(fixed("0.0000133334"));
        assert_eq!(cost, Some(fixed("0.01666675")));
        assert_eq!(fixed("0.01666675").grouped(4), "0.0167");
        assert_eq!(fixed("0.00005").round(4), fixed("0.0001"));
        assert_eq!(fixed("0.00004999").round(4), Fixed::ZERO);
        assert_eq!(fixed("1").div_int(3).to_string(), "0.333333333333");
        assert_eq!(Fixed::ratio(128 * 100, 1_024_000).to_string(), "0.0125");
    }

    #[test]
    fn free_tiers_never_go_below_zero() {
        assert_eq!(
            Fixed::from_int(5).sub_floor(Fixed::from_int(9)),
            Fixed::ZERO
        );
        assert_eq!(
            Fixed::from_int(9).sub_floor(Fixed::from_int(5)),
            Fixed::from_int(4)
        );
    }

    #[test]
    fn groups_thousands() {
        assert_eq!(Fixed::from_int(648_000).grouped(0), "648,000");
        assert_eq!(fixed("1234567.891").grouped(2), "1,234,567.89");
        assert_eq!(Fixed::ZERO.grouped(4), "0.0000");
    }
}
