//! Device profiles (`mappings/mcu/*.yaml`): the quirks of each MCU-family surface.

use serde::Deserialize;

use super::protocol::{DEVICE_MCU, DEVICE_MCU_XT};

/// What differs between MCU-family devices.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Shown in logs and `faderbridge status`.
    pub name: String,
    /// SysEx device byte of the main unit (0x14 MCU, 0x10 Logic Control).
    #[serde(default = "default_main")]
    pub device_id: u8,
    /// SysEx device byte of extenders (0x15 MCU XT, 0x11 Logic Control XT).
    #[serde(default = "default_ext")]
    pub extender_id: u8,
    /// The pitch-bend value of a fader at the top of its travel (some send less than 16383).
    #[serde(default = "default_fader_max")]
    pub fader_max: u16,
    /// Characters per LCD line (56 on an MCU; 0 when the device has no LCD).
    #[serde(default = "default_lcd")]
    pub lcd_width: usize,
    /// X-Touch style colour scribble strips.
    #[serde(default)]
    pub colour: bool,
    /// LEDs can flash (velocity 1).
    #[serde(default = "yes")]
    pub flashing: bool,
    /// Strips per unit (8 on every MCU-family device; FaderPort 16 in MCU mode is two units).
    #[serde(default = "default_strips")]
    pub strips: usize,
    /// Whether the device answers the device query with a challenge (false: no handshake
    /// expected, the host syncs at once).
    #[serde(default = "yes")]
    pub handshake: bool,
}

fn default_main() -> u8 {
    DEVICE_MCU
}
fn default_ext() -> u8 {
    DEVICE_MCU_XT
}
fn default_fader_max() -> u16 {
    16383
}
fn default_lcd() -> usize {
    56
}
fn default_strips() -> usize {
    8
}
fn yes() -> bool {
    true
}

impl Default for Profile {
    fn default() -> Self {
        Profile {
            name: "Mackie Control Universal".into(),
            device_id: DEVICE_MCU,
            extender_id: DEVICE_MCU_XT,
            fader_max: 16383,
            lcd_width: 56,
            colour: false,
            flashing: true,
            strips: 8,
            handshake: true,
        }
    }
}

impl Profile {
    /// Parse a profile file's text. `what` names it in errors.
    pub fn parse(text: &str, what: &str) -> Result<Profile, String> {
        let p: Profile = serde_saphyr::from_str(text).map_err(|e| format!("{what}: {e}"))?;
        if p.fader_max < 1024 {
            return Err(format!(
                "{what}: fader_max {} is too small (at least 1024)",
                p.fader_max
            ));
        }
        if p.strips == 0 || p.strips > 8 {
            return Err(format!("{what}: strips must be 1..8, not {}", p.strips));
        }
        Ok(p)
    }

    /// A profile shipped in `mappings/mcu/` by its file stem (`xtouch`, `mcu-pro`, ...).
    pub fn builtin(name: &str) -> Option<Profile> {
        let text = BUILTIN.iter().find(|(n, _)| *n == name)?.1;
        Profile::parse(text, name).ok()
    }

    /// The names of the shipped profiles.
    pub fn builtin_names() -> impl Iterator<Item = &'static str> {
        BUILTIN.iter().map(|(n, _)| *n)
    }
}

/// The profiles in `mappings/mcu/`, compiled in so the daemon needs no data files.
const BUILTIN: &[(&str, &str)] = &[
    ("mcu-pro", include_str!("../../mappings/mcu/mcu-pro.yaml")),
    ("mcu-xt", include_str!("../../mappings/mcu/mcu-xt.yaml")),
    ("xtouch", include_str!("../../mappings/mcu/xtouch.yaml")),
    (
        "xtouch-extender",
        include_str!("../../mappings/mcu/xtouch-extender.yaml"),
    ),
    (
        "icon-qcon",
        include_str!("../../mappings/mcu/icon-qcon.yaml"),
    ),
    (
        "faderport8",
        include_str!("../../mappings/mcu/faderport8.yaml"),
    ),
    (
        "faderport16",
        include_str!("../../mappings/mcu/faderport16.yaml"),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_profile_parses() {
        for name in Profile::builtin_names() {
            let p = Profile::builtin(name).unwrap_or_else(|| panic!("{name} does not parse"));
            assert!(p.fader_max >= 1024 && p.strips == 8, "{name}: {p:?}");
        }
        let x = Profile::builtin("xtouch").unwrap();
        assert!(x.colour);
        assert!(!Profile::builtin("mcu-pro").unwrap().colour);
        assert!(Profile::parse("name: x\nbogus: 1\n", "t").is_err());
        assert!(Profile::parse("name: x\nfader_max: 100\n", "t").is_err());
    }
}
