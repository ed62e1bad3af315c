//! One fully processed channel strip (every processor of the strip on, two sends), as the
//! YAML body of a `channels:` entry: the load the JACK, real-time and capacity checks use.

#![allow(dead_code)] // not every test binary uses it

/// Append after `  - name: NAME\n    source: ...`; sends go to buses `verb` and `echo`.
pub const FULL_STRIP: &str = "
    trim_db: 3
    invert: true
    delay_ms: 1.5
    hpf: { freq: 60, slope: 24 }
    lpf: { freq: 15000, slope: 12 }
    gate: { threshold_db: -50, range_db: 40, attack_ms: 0.5, hold_ms: 20, release_ms: 100 }
    eq:
      - { type: low_shelf, freq: 80, gain_db: 3, q: 0.7 }
      - { type: bell, freq: 400, gain_db: -4, q: 1.4 }
      - { type: bell, freq: 3000, gain_db: 2, q: 1.0 }
      - { type: high_shelf, freq: 10000, gain_db: 2, q: 0.7 }
    comp: { threshold_db: -24, ratio: 4, knee_db: 6, attack_ms: 5, release_ms: 80, makeup_db: 3 }
    saturation: { drive_db: 6, mix: 0.5 }
    pan: -0.3
    fader_db: -3
    sends: [ { bus: verb, level_db: -10 }, { bus: echo, level_db: -14, pre_fader: true } ]";
