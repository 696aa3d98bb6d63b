//! Frame rates as exact fractions: `30`, `30000/1001` and `29.97` alike.

use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameRate {
    pub numerator: u32,
    pub denominator: u32,
}

impl FrameRate {
    pub const fn new(numerator: u32, denominator: u32) -> Self {
        Self {
            numerator,
            denominator,
        }
    }

    pub fn as_f64(&self) -> f64 {
        f64::from(self.numerator) / f64::from(self.denominator)
    }

    /// Frames in `seconds`, rounded, at least one.
    pub fn frames_in(&self, seconds: f64) -> u32 {
        ((seconds * self.as_f64()).round() as u32).max(1)
    }

    /// Whether this rate is within 0.02 % of `other`, so that 29.97 matches
    /// 30000/1001 as devices report it.
    pub fn matches(&self, other: &FrameRate) -> bool {
        (self.as_f64() - other.as_f64()).abs() <= other.as_f64() * 0.0002
    }
}

impl fmt::Display for FrameRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.numerator, self.denominator)
    }
}

/// NTSC-family rates written as decimals map to their exact fractions.
const DECIMAL_RATES: &[(&str, FrameRate)] = &[
    ("23.976", FrameRate::new(24000, 1001)),
    ("23.98", FrameRate::new(24000, 1001)),
    ("29.97", FrameRate::new(30000, 1001)),
    ("47.952", FrameRate::new(48000, 1001)),
    ("59.94", FrameRate::new(60000, 1001)),
    ("119.88", FrameRate::new(120000, 1001)),
];

impl FromStr for FrameRate {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || {
            format!(
                "invalid frame rate '{text}': use an integer (30), a fraction (30000/1001) \
                 or a decimal (29.97)"
            )
        };
        let text = text.trim();
        if let Some((_, rate)) = DECIMAL_RATES.iter().find(|(name, _)| *name == text) {
            return Ok(*rate);
        }
        let rate = if let Some((num, den)) = text.split_once('/') {
            let numerator = num.trim().parse::<u32>().map_err(|_| invalid())?;
            let denominator = den.trim().parse::<u32>().map_err(|_| invalid())?;
            FrameRate::new(numerator, denominator)
        } else if let Some((whole, fraction)) = text.split_once('.') {
            let digits = fraction.len() as u32;
            if digits == 0 || digits > 3 || whole.is_empty() {
                return Err(invalid());
            }
            let scale = 10u32.pow(digits);
            let whole = whole.parse::<u32>().map_err(|_| invalid())?;
            let fraction = fraction.parse::<u32>().map_err(|_| invalid())?;
            let numerator = whole
                .checked_mul(scale)
                .and_then(|n| n.checked_add(fraction))
                .ok_or_else(invalid)?;
            reduce(FrameRate::new(numerator, scale))
        } else {
            FrameRate::new(text.parse::<u32>().map_err(|_| invalid())?, 1)
        };
        if rate.numerator == 0 || rate.denominator == 0 || rate.as_f64() > 240.0 {
            return Err(format!(
                "invalid frame rate '{text}': it must be above 0 and at most 240 frames per second"
            ));
        }
        Ok(rate)
    }
}

fn reduce(rate: FrameRate) -> FrameRate {
    let divisor = gcd(rate.numerator, rate.denominator);
    FrameRate::new(rate.numerator / divisor, rate.denominator / divisor)
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 {
        a.max(1)
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        let cases = [
            ("30", FrameRate::new(30, 1)),
            ("25", FrameRate::new(25, 1)),
            ("30000/1001", FrameRate::new(30000, 1001)),
            ("29.97", FrameRate::new(30000, 1001)),
            ("59.94", FrameRate::new(60000, 1001)),
            ("23.976", FrameRate::new(24000, 1001)),
            ("12.5", FrameRate::new(25, 2)),
            (" 50 ", FrameRate::new(50, 1)),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<FrameRate>(), Ok(expected), "{text}");
        }
    }

    #[test]
    fn rejects_bad_rates() {
        for text in ["", "0", "abc", "30/0", "-5", "1.2345", "300", ".5", "30/"] {
            let error = text.parse::<FrameRate>().unwrap_err();
            assert!(error.contains(&format!("'{}'", text.trim())), "{error}");
        }
    }

    #[test]
    fn decimal_matches_fraction() {
        let decimal: FrameRate = "29.97".parse().unwrap();
        assert!(decimal.matches(&FrameRate::new(30000, 1001)));
        assert!(!decimal.matches(&FrameRate::new(30, 1)));
        assert_eq!(FrameRate::new(30000, 1001).frames_in(2.0), 60);
    }
}
