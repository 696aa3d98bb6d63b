//! Validated configuration: what the command line (or a config file) asks
//! for, checked and with its defaults filled in.

pub mod rate;
pub mod secret;

use std::fmt;
use std::str::FromStr;

pub use rate::FrameRate;
pub use secret::Secret;

/// A picture size in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl Size {
    pub const fn new(width: u32, height: u32) -> Self {
        Self { width, height }
    }

    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}", self.width, self.height)
    }
}

impl FromStr for Size {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || format!("invalid size '{text}': use WIDTHxHEIGHT, as in 1920x1080");
        let (width, height) = text.split_once(['x', 'X']).ok_or_else(invalid)?;
        let width = width.trim().parse::<u32>().map_err(|_| invalid())?;
        let height = height.trim().parse::<u32>().map_err(|_| invalid())?;
        if width < 16 || height < 16 || width > 7680 || height > 4320 {
            return Err(format!(
                "invalid size '{text}': width and height must be between 16 and 7680x4320"
            ));
        }
        if width % 2 != 0 || height % 2 != 0 {
            return Err(format!(
                "invalid size '{text}': H.264 with 4:2:0 chroma needs an even width and height"
            ));
        }
        Ok(Self { width, height })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn size_parses_and_rejects() {
        assert_eq!("1280x720".parse::<Size>(), Ok(Size::new(1280, 720)));
        assert_eq!("1920X1080".parse::<Size>(), Ok(Size::new(1920, 1080)));
        for text in ["1280", "x720", "1281x720", "8x8", "axb", "99999x10"] {
            let error = text.parse::<Size>().unwrap_err();
            assert!(error.contains(text), "{error}");
        }
    }
}
