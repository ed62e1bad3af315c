//! Persistent live state (SPEC §9): the state directory, the saved-state file format, and
//! atomic, crash-safe writes. Owns nothing but files in the state directory; the control
//! plane ([`crate::control`]) decides what to save and when.
//!
//! # File format (`state.json`)
//! One JSON document with a fixed envelope, so both truncation and corruption are detected
//! even when what is left happens to parse:
//! ```text
//! {"fnv1a64":"<16 lowercase hex digits>","state":<BODY>}\n
//! ```
//! `<BODY>` is the [`SavedState`] as JSON and the checksum is FNV-1a (64 bit) of exactly the
//! bytes of `<BODY>` as they appear in the file. A file that does not have this exact shape,
//! whose checksum does not match, or whose body does not parse is *corrupt*: [`StateDir::load`]
//! renames it to `state.json.corrupt-<unix time>`, logs a warning and returns `None`.
//!
//! # Numbers
//! JSON has no infinities, and gains are often `-inf`. Every value is written as a JSON number
//! when finite and as the strings `"-inf"` / `"inf"` otherwise (`null` is never written and is
//! read as "no value": the entry is skipped). Finite values are written with the shortest
//! representation that reads back to the same `f32`.
//!
//! # Atomic writes
//! [`StateDir::save`] writes `state.json.tmp`, fsyncs it, renames it over `state.json` and
//! fsyncs the directory. A process killed at any instant leaves either the old or the new
//! file; a leftover `state.json.tmp` is never read and is removed by [`StateDir::open`].

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Version of the [`SavedState`] layout written by this build.
pub const STATE_VERSION: u32 = 1;

/// File name of the saved state inside the state directory.
pub const STATE_FILE: &str = "state.json";
/// File name of the temporary file a save writes before renaming it into place.
pub const TEMP_FILE: &str = "state.json.tmp";
/// File name of the status socket inside the state directory.
pub const STATUS_SOCKET: &str = "status.sock";

const ENVELOPE_HEAD: &str = "{\"fnv1a64\":\"";
const ENVELOPE_MID: &str = "\",\"state\":";
const ENVELOPE_TAIL: &str = "}\n";

/// Errors reading or writing the state directory.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("cannot create the state directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot set aside the corrupt state file {path}: {source}")]
    SetAside {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode the state: {0}")]
    Encode(#[from] serde_json::Error),
}

/// Everything the daemon persists.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SavedState {
    /// Layout version ([`STATE_VERSION`]).
    pub version: u32,
    /// Every parameter's value, by canonical path (`ch/kick/fader_db`).
    #[serde(with = "value_map")]
    pub params: BTreeMap<String, f32>,
    /// Named scenes: scene name → path → value.
    #[serde(with = "scene_map")]
    pub scenes: BTreeMap<String, BTreeMap<String, f32>>,
    /// Measured round-trip latency of hardware inserts, in samples, by strip name (the
    /// first, unkeyed form; still read and written, superseded by
    /// [`SavedState::insert_measurements`]).
    #[serde(default)]
    pub insert_latency: BTreeMap<String, u32>,
    /// Hardware insert latencies, measured or set by hand, by strip name, each for one
    /// backend, sample rate and block size (`faderbridge measure-insert`;
    /// [`crate::insert::latency_for`] reads them).
    #[serde(default)]
    pub insert_measurements: BTreeMap<String, Vec<crate::insert::InsertMeasurement>>,
    /// Automation modes other than off, by canonical parameter path.
    #[serde(default)]
    pub automation: BTreeMap<String, crate::automation::Mode>,
    /// Automation lanes (breakpoints in transport frames at [`SavedState::lane_rate`]), by
    /// canonical parameter path. Only lanes with points are stored.
    #[serde(default)]
    pub lanes: BTreeMap<String, Vec<crate::automation::Point>>,
    /// The sample rate the lanes' frames count at (0: no lanes were written).
    #[serde(default)]
    pub lane_rate: u32,
    /// Outboard recall notes by strip (`ch/kick`, `bus/drums`, `master`).
    #[serde(default)]
    pub outboard: BTreeMap<String, Outboard>,
    /// The outboard notes each scene holds: scene → strip → notes.
    #[serde(default)]
    pub scene_outboard: BTreeMap<String, BTreeMap<String, Outboard>>,
}

/// Outboard recall notes of a strip's hardware insert (issue 8): the unit and how its knobs
/// are set, as free text, so a scene recall tells the user how to set the hardware.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Outboard {
    /// The unit (`1176 rev. F`).
    pub unit: String,
    /// Knob → setting (`input` → `24`, `ratio` → `4:1`).
    pub settings: BTreeMap<String, String>,
}

/// The state directory (see the module doc).
#[derive(Debug, Clone)]
pub struct StateDir {
    dir: PathBuf,
    writes: Arc<AtomicU64>,
}

impl StateDir {
    /// Open (creating it and its parents if needed) the state directory at `dir`. A leftover
    /// temporary file from an interrupted save is removed.
    ///
    /// # Errors
    /// The directory cannot be created.
    pub fn open(dir: &Path) -> Result<Self, StateError> {
        fs::create_dir_all(dir).map_err(|source| StateError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })?;
        let s = Self {
            dir: dir.to_path_buf(),
            writes: Arc::new(AtomicU64::new(0)),
        };
        let tmp = s.dir.join(TEMP_FILE);
        if tmp.exists() {
            tracing::info!(
                "removing {} left by an interrupted save (the previous state file is intact)",
                tmp.display()
            );
            let _ = fs::remove_file(&tmp);
        }
        Ok(s)
    }

    /// The default state directory: `$STATE_DIRECTORY` (set by systemd's `StateDirectory=`,
    /// `/var/lib/faderbridge`), else `$XDG_STATE_HOME/faderbridge`, else
    /// `~/.local/state/faderbridge`, else `./faderbridge-state`.
    pub fn default_dir() -> PathBuf {
        default_dir_from(|k| std::env::var_os(k))
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// The state file's path.
    pub fn file(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    /// The status socket's path (`status.sock` in the directory).
    pub fn status_socket(&self) -> PathBuf {
        self.dir.join(STATUS_SOCKET)
    }

    /// Number of successful saves through this directory (and its clones) so far.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// Read the saved state. `Ok(None)` when there is none, or when the file was corrupt,
    /// truncated or from a newer version: then it is renamed to
    /// `state.json.corrupt-<unix time>` and a warning is logged.
    ///
    /// # Errors
    /// The file exists but cannot be read, or a corrupt file cannot be renamed.
    pub fn load(&self) -> Result<Option<SavedState>, StateError> {
        let path = self.file();
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(StateError::Read { path, source }),
        };
        match decode(&bytes) {
            Ok(s) => Ok(Some(s)),
            Err(why) => {
                let aside = self.set_aside(&path)?;
                tracing::warn!(
                    "state file {} is unusable ({why}); moved it to {} and starting from the session's values",
                    path.display(),
                    aside.display()
                );
                Ok(None)
            }
        }
    }

    fn set_aside(&self, path: &Path) -> Result<PathBuf, StateError> {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut aside = self.dir.join(format!("{STATE_FILE}.corrupt-{t}"));
        let mut n = 1;
        while aside.exists() {
            aside = self.dir.join(format!("{STATE_FILE}.corrupt-{t}.{n}"));
            n += 1;
        }
        fs::rename(path, &aside).map_err(|source| StateError::SetAside {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(aside)
    }

    /// Write `s` atomically: temp file, write, fsync, rename over the state file, fsync the
    /// directory. Blocking (call it from a blocking thread in async code).
    ///
    /// # Errors
    /// Any I/O failure; the previous state file is then left untouched.
    pub fn save(&self, s: &SavedState) -> Result<(), StateError> {
        let bytes = encode(s)?;
        let tmp = self.dir.join(TEMP_FILE);
        let werr = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StateError::Write { path, source }
        };
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)
            .map_err(werr(&tmp))?;
        f.write_all(&bytes).map_err(werr(&tmp))?;
        f.sync_all().map_err(werr(&tmp))?;
        drop(f);
        let dest = self.file();
        fs::rename(&tmp, &dest).map_err(werr(&dest))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(werr(&self.dir))?;
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

/// [`StateDir::default_dir`] with the environment given as a lookup function.
fn default_dir_from(env: impl Fn(&str) -> Option<std::ffi::OsString>) -> PathBuf {
    let var = |k: &str| env(k).map(PathBuf::from).filter(|p| p.is_absolute());
    if let Some(d) = var("STATE_DIRECTORY") {
        // systemd may list several, separated by ':'; the first is ours.
        let s = d.to_string_lossy().into_owned();
        return PathBuf::from(s.split(':').next().unwrap_or(&s));
    }
    if let Some(d) = var("XDG_STATE_HOME") {
        return d.join("faderbridge");
    }
    if let Some(h) = var("HOME") {
        return h.join(".local/state/faderbridge");
    }
    PathBuf::from("faderbridge-state")
}

/// FNV-1a, 64 bit.
fn fnv1a64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// The file's bytes for `s` (see the module doc).
///
/// # Errors
/// Serialization failure (not expected for this type).
pub fn encode(s: &SavedState) -> Result<Vec<u8>, serde_json::Error> {
    let body = serde_json::to_vec(s)?;
    let mut out = Vec::with_capacity(body.len() + 48);
    out.extend_from_slice(ENVELOPE_HEAD.as_bytes());
    out.extend_from_slice(format!("{:016x}", fnv1a64(&body)).as_bytes());
    out.extend_from_slice(ENVELOPE_MID.as_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(ENVELOPE_TAIL.as_bytes());
    Ok(out)
}

/// Parse a state file's bytes; the error says why it is unusable.
///
/// # Errors
/// A wrong envelope, a checksum mismatch (truncation, corruption), a body that does not
/// parse, or a version newer than [`STATE_VERSION`].
pub fn decode(bytes: &[u8]) -> Result<SavedState, String> {
    let rest = bytes
        .strip_prefix(ENVELOPE_HEAD.as_bytes())
        .ok_or("not a faderbridge state file")?;
    if rest.len() < 16 {
        return Err("truncated".into());
    }
    let (hex, rest) = rest.split_at(16);
    let want = std::str::from_utf8(hex)
        .ok()
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .ok_or("bad checksum field")?;
    let body = rest
        .strip_prefix(ENVELOPE_MID.as_bytes())
        .ok_or("bad envelope")?
        .strip_suffix(ENVELOPE_TAIL.as_bytes())
        .ok_or("truncated (no end marker)")?;
    let got = fnv1a64(body);
    if got != want {
        return Err(format!(
            "checksum mismatch (file says {want:016x}, content is {got:016x}): truncated or corrupt"
        ));
    }
    let s: SavedState = serde_json::from_slice(body).map_err(|e| format!("bad JSON: {e}"))?;
    if s.version > STATE_VERSION {
        return Err(format!(
            "written by a newer faderbridge (state version {}, this build reads up to {STATE_VERSION})",
            s.version
        ));
    }
    Ok(s)
}

/// Serde helpers for `f32` values that may be infinite (see the module doc): finite values are
/// numbers, infinities are the strings `"-inf"` / `"inf"`. Usable with `#[serde(with)]`.
pub mod jnum {
    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};
    use std::fmt;

    /// Write one value.
    ///
    /// # Errors
    /// NaN cannot be written.
    pub fn serialize<S: Serializer>(v: &f32, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f32(*v)
        } else if *v == f32::NEG_INFINITY {
            s.serialize_str("-inf")
        } else if *v == f32::INFINITY {
            s.serialize_str("inf")
        } else {
            Err(serde::ser::Error::custom("NaN cannot be stored"))
        }
    }

    pub(super) struct V;
    impl Visitor<'_> for V {
        type Value = Option<f32>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number, \"-inf\", \"inf\" or null")
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v as f32))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v as f32))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v as f32))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            match v {
                "-inf" => Ok(Some(f32::NEG_INFINITY)),
                "inf" => Ok(Some(f32::INFINITY)),
                _ => Err(E::custom(format!("{v:?} is not a number"))),
            }
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }

    /// Read one value (`null` reads as `-inf`, the closed gain).
    ///
    /// # Errors
    /// Anything but a number, `"-inf"`, `"inf"` or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
        Ok(d.deserialize_any(V)?.unwrap_or(f32::NEG_INFINITY))
    }

    /// An optional value (a request field that may be absent): absent or `null` is `None`.
    pub mod opt {
        use serde::Deserializer;

        /// Read an optional value.
        ///
        /// # Errors
        /// Anything but a number, `"-inf"`, `"inf"` or `null`.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f32>, D::Error> {
            d.deserialize_any(super::V)
        }
    }

    /// The same encoding for a pair (stereo meters).
    pub mod pair {
        use serde::ser::SerializeTuple;
        use serde::{Deserialize, Deserializer, Serializer};

        #[derive(serde::Serialize, Deserialize)]
        struct W(#[serde(with = "super")] f32);

        /// Write a pair.
        ///
        /// # Errors
        /// NaN cannot be written.
        pub fn serialize<S: Serializer>(v: &[f32; 2], s: S) -> Result<S::Ok, S::Error> {
            let mut t = s.serialize_tuple(2)?;
            t.serialize_element(&W(v[0]))?;
            t.serialize_element(&W(v[1]))?;
            t.end()
        }

        /// Read a pair.
        ///
        /// # Errors
        /// Not a two-element array of values.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<[f32; 2], D::Error> {
            let [a, b] = <[W; 2]>::deserialize(d)?;
            Ok([a.0, b.0])
        }
    }
}

/// A path → value map: NaN entries are skipped on write, `null` entries on read.
mod value_map {
    use std::collections::BTreeMap;
    use std::fmt;

    use serde::de::{MapAccess, Visitor};
    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};

    struct Opt(Option<f32>);
    impl<'de> Deserialize<'de> for Opt {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(super::jnum::V).map(Opt)
        }
    }
    struct One(f32);
    impl serde::Serialize for One {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            super::jnum::serialize(&self.0, s)
        }
    }

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, f32>, s: S) -> Result<S::Ok, S::Error> {
        let n = m.values().filter(|v| !v.is_nan()).count();
        let mut map = s.serialize_map(Some(n))?;
        for (k, v) in m.iter().filter(|(_, v)| !v.is_nan()) {
            map.serialize_entry(k, &One(*v))?;
        }
        map.end()
    }

    struct MapV;
    impl<'de> Visitor<'de> for MapV {
        type Value = BTreeMap<String, f32>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a map of parameter paths to values")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Self::Value, A::Error> {
            let mut m = BTreeMap::new();
            while let Some((k, v)) = a.next_entry::<String, Opt>()? {
                if let Some(v) = v.0 {
                    m.insert(k, v);
                }
            }
            Ok(m)
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f32>, D::Error> {
        d.deserialize_map(MapV)
    }

    /// A borrowed value map as a standalone serde type (for nesting).
    pub struct ValuesRef<'a>(pub &'a BTreeMap<String, f32>);
    impl serde::Serialize for ValuesRef<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            serialize(self.0, s)
        }
    }

    /// An owned value map as a standalone serde type (for nesting).
    pub struct Values(pub BTreeMap<String, f32>);
    impl<'de> Deserialize<'de> for Values {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            deserialize(d).map(Values)
        }
    }
}

/// Scene name → value map.
mod scene_map {
    use std::collections::BTreeMap;

    use serde::ser::SerializeMap;
    use serde::{Deserialize, Deserializer, Serializer};

    use super::value_map::{Values, ValuesRef};

    pub fn serialize<S: Serializer>(
        m: &BTreeMap<String, BTreeMap<String, f32>>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(m.len()))?;
        for (k, v) in m {
            map.serialize_entry(k, &ValuesRef(v))?;
        }
        map.end()
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, BTreeMap<String, f32>>, D::Error> {
        let m = BTreeMap::<String, Values>::deserialize(d)?;
        Ok(m.into_iter().map(|(k, v)| (k, v.0)).collect())
    }
}

#[cfg(test)]
pub(crate) mod tests;
