//! A fractional-free time-alignment delay for a channel strip (`delay_ms`). When the delay time
//! changes, the old and the new read positions are crossfaded over a short time, so moving the
//! control never clicks.

use super::util::ms_to_samples;

/// A whole-sample delay of up to `max_ms`, one line per channel.
#[derive(Debug, Clone)]
pub struct AlignDelay {
    lines: Vec<Vec<f32>>,
    write: usize,
    mask: usize,
    /// Delay in samples now playing.
    current: usize,
    /// Delay being faded in (equal to `current` when idle).
    next: usize,
    fade_pos: usize,
    fade_len: usize,
    sample_rate: f32,
    max: usize,
}

impl AlignDelay {
    /// A delay for `channels` channels and up to `max_ms` of delay. Allocates.
    pub fn new(sample_rate: f32, channels: usize, max_ms: f32) -> Self {
        let max = ms_to_samples(max_ms, sample_rate);
        let size = (max + 1).next_power_of_two();
        Self {
            lines: (0..channels.max(1))
                .map(|_| crate::dsp::util::zeroed(size))
                .collect(),
            write: 0,
            mask: size - 1,
            current: 0,
            next: 0,
            fade_pos: 0,
            fade_len: ms_to_samples(10.0, sample_rate).max(1),
            sample_rate,
            max,
        }
    }

    /// Set the delay in milliseconds (clamped to the maximum); crossfades to it.
    pub fn set_ms(&mut self, ms: f32) {
        let d = ms_to_samples(ms, self.sample_rate).min(self.max);
        if d != self.next {
            // A change while a fade runs restarts the fade from the delay most audible now.
            if self.fade_pos * 2 >= self.fade_len {
                self.current = self.next;
            }
            self.next = d;
            self.fade_pos = 0;
        }
    }

    /// Jump to the target at once (initial state).
    pub fn snap(&mut self) {
        self.current = self.next;
        self.fade_pos = self.fade_len;
    }

    /// The delay now, in samples.
    pub fn samples(&self) -> usize {
        self.next
    }

    /// Delay the channels in place.
    pub fn process(&mut self, chans: &mut [&mut [f32]]) {
        if self.current == 0 && self.next == 0 {
            return;
        }
        let n = chans.first().map_or(0, |c| c.len());
        let start_write = self.write;
        let start_fade = self.fade_pos;
        for (ch, line) in chans.iter_mut().zip(self.lines.iter_mut()) {
            let mut w = start_write;
            let mut fade = start_fade;
            for s in ch.iter_mut().take(n) {
                line[w] = *s;
                let a = line[(w.wrapping_sub(self.current)) & self.mask];
                *s = if self.current == self.next || fade >= self.fade_len {
                    line[(w.wrapping_sub(self.next)) & self.mask]
                } else {
                    let b = line[(w.wrapping_sub(self.next)) & self.mask];
                    let t = fade as f32 / self.fade_len as f32;
                    fade += 1;
                    a + (b - a) * t
                };
                w = (w + 1) & self.mask;
            }
        }
        self.write = (start_write + n) & self.mask;
        if self.current != self.next {
            self.fade_pos = (start_fade + n).min(self.fade_len);
            if self.fade_pos >= self.fade_len {
                self.current = self.next;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn impulse_comes_out_exactly_late() {
        let mut d = AlignDelay::new(48000.0, 1, 100.0);
        d.set_ms(2.5); // 120 samples
        d.snap();
        let mut x = vec![0.0f32; 256];
        x[3] = 1.0;
        d.process(&mut [&mut x[..]]);
        assert_eq!(x.iter().position(|&v| v == 1.0), Some(123));
        assert_eq!(x.iter().filter(|&&v| v != 0.0).count(), 1);
    }

    #[test]
    fn change_crossfades_without_step() {
        let sr = 48000.0;
        let mut d = AlignDelay::new(sr, 1, 100.0);
        let f = 100.0;
        let mut x: Vec<f32> = (0..9600)
            .map(|i| (2.0 * std::f32::consts::PI * f * i as f32 / sr).sin())
            .collect();
        let max_slope = 2.0 * std::f32::consts::PI * f / sr;
        let (a, b) = x.split_at_mut(4800);
        d.process(&mut [a]);
        d.set_ms(5.0); // a half-period jump: hard cut would step by ~2
        d.process(&mut [b]);
        let worst = x
            .windows(2)
            .map(|w| (w[1] - w[0]).abs())
            .fold(0.0f32, f32::max);
        // A crossfade over 480 samples between two sines adds at most 2/480 per sample.
        assert!(worst < max_slope + 2.0 / 480.0 + 1e-4, "step {worst}");
    }
}
