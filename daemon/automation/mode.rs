//! Automation modes (SPEC §5 `/PATH/automation ,s MODE`), as engineers know them from Ardour
//! and Pro Tools. The console keeps one per parameter; surfaces set and show them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What a parameter's automation lane does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// The lane is ignored.
    #[default]
    Off,
    /// The lane drives the parameter.
    Read,
    /// Writes while the control is touched, then glides back to the lane.
    Touch,
    /// Writes from the first touch until the transport stops.
    Latch,
    /// Overwrites from play to stop, then turns into touch.
    Write,
    /// Writes offsets relative to the lane.
    Trim,
}

impl Mode {
    /// Every mode, in the order SPEC §5 lists them.
    pub const ALL: [Mode; 6] = [
        Mode::Off,
        Mode::Read,
        Mode::Touch,
        Mode::Latch,
        Mode::Write,
        Mode::Trim,
    ];

    /// The name used on the wire and in the state file.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Read => "read",
            Mode::Touch => "touch",
            Mode::Latch => "latch",
            Mode::Write => "write",
            Mode::Trim => "trim",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not a mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown automation mode `{0}`: expected off, read, touch, latch, write or trim")]
pub struct BadMode(pub String);

impl FromStr for Mode {
    type Err = BadMode;

    fn from_str(s: &str) -> Result<Mode, BadMode> {
        Mode::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| BadMode(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_ones_are_refused() {
        let names = ["off", "read", "touch", "latch", "write", "trim"];
        for (m, n) in Mode::ALL.iter().zip(names) {
            assert_eq!(m.name(), n);
            assert_eq!(n.parse::<Mode>(), Ok(*m));
        }
        assert_eq!(
            "Touch".parse::<Mode>(),
            Err(BadMode("Touch".into())),
            "names are lower case"
        );
        assert_eq!(Mode::default(), Mode::Off);
    }
}
