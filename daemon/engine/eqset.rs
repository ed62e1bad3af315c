//! The four EQ bands of a strip, bus or master, with the parameter values they were last given
//! (a band is re-tuned as a whole whenever one of its values changes).

use crate::dsp::filters::{EqBand, EqKind, process_series};
use crate::params::{Key, spec};

pub(super) struct EqSet {
    bands: [EqBand; spec::EQ_BANDS],
    /// type, freq, gain_db, q of each band.
    values: [[f32; 4]; spec::EQ_BANDS],
}

fn kind_of(v: f32) -> EqKind {
    match v.round() as i32 {
        1 => EqKind::LowShelf,
        2 => EqKind::HighShelf,
        3 => EqKind::Notch,
        _ => EqKind::Bell,
    }
}

impl EqSet {
    pub fn new(sample_rate: f32, channels: usize) -> Self {
        let g = spec::EQ_BAND;
        Self {
            bands: std::array::from_fn(|_| EqBand::new(sample_rate, channels)),
            values: std::array::from_fn(|i| {
                [
                    spec::get(g, "type").default,
                    spec::EQ_DEFAULT_FREQS[i],
                    spec::get(g, "gain_db").default,
                    spec::get(g, "q").default,
                ]
            }),
        }
    }

    /// Apply an `Eq*` key; others are ignored.
    pub fn apply(&mut self, key: Key, v: f32) {
        let (band, slot) = match key {
            Key::EqOn(b) => {
                if let Some(band) = self.bands.get_mut(b as usize) {
                    band.set_enabled(v >= 0.5);
                }
                return;
            }
            Key::EqType(b) => (b, 0),
            Key::EqFreq(b) => (b, 1),
            Key::EqGain(b) => (b, 2),
            Key::EqQ(b) => (b, 3),
            _ => return,
        };
        let b = band as usize;
        if b >= self.bands.len() {
            return;
        }
        self.values[b][slot] = v;
        let [t, f, g, q] = self.values[b];
        self.bands[b].set(kind_of(t), f, g, q);
    }

    pub fn snap(&mut self) {
        self.bands.iter_mut().for_each(EqBand::snap);
    }

    /// The bands, in order (for the strip's fused filter loop).
    pub fn bands_mut(&mut self) -> &mut [EqBand] {
        &mut self.bands
    }

    pub fn process(&mut self, chans: &mut [&mut [f32]]) {
        process_series(&mut [], &mut self.bands, chans);
    }
}
