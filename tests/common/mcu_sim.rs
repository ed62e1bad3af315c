//! A simulated Mackie Control device for tests: it keeps what the host sent it (motor
//! positions, LEDs, rings, LCD, SysEx) the way the hardware would. Transports feed it bytes.

#![allow(dead_code)] // each test binary uses part of it

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use faderbridge::midi::{MidiEvent, Parser};

pub const WAIT: Duration = Duration::from_secs(5);

/// What the simulated device has been told.
#[derive(Default)]
pub struct DevState {
    /// Last pitch bend per MIDI channel (0..7 strips, 8 master).
    pub faders: HashMap<u8, u16>,
    /// Every pitch bend received, in order: (channel, value).
    pub bends: Vec<(u8, u16)>,
    pub leds: HashMap<u8, u8>,
    pub rings: HashMap<u8, u8>,
    pub lcd: Vec<u8>,
    /// Last meter level (0..12) per strip, from channel pressure.
    pub meters: HashMap<u8, u8>,
    /// Mackie SysEx commands received (the byte after the device id) with their data.
    pub sysex: Vec<(u8, Vec<u8>)>,
}

pub struct Device {
    pub state: Mutex<DevState>,
    cv: Condvar,
    parser: Mutex<Parser>,
}

impl Default for Device {
    fn default() -> Self {
        Device {
            state: Mutex::new(DevState {
                lcd: vec![b' '; 112],
                ..Default::default()
            }),
            cv: Condvar::new(),
            parser: Mutex::new(Parser::new()),
        }
    }
}

impl Device {
    /// Bytes from the host.
    pub fn feed(&self, bytes: &[u8]) {
        let evs = self.parser.lock().unwrap().parse(bytes);
        let mut s = self.state.lock().unwrap();
        for ev in evs {
            match ev {
                MidiEvent::PitchBend { channel, value } => {
                    s.faders.insert(channel, value);
                    s.bends.push((channel, value));
                }
                MidiEvent::NoteOn { note, velocity, .. } => {
                    s.leds.insert(note, velocity);
                }
                MidiEvent::ChannelPressure { pressure, .. } => {
                    s.meters.insert(pressure >> 4, pressure & 0x0F);
                }
                MidiEvent::ControlChange {
                    controller, value, ..
                } => {
                    s.rings.insert(controller, value);
                }
                MidiEvent::SysEx(p) if p.len() >= 5 && p[..3] == [0, 0, 0x66] => {
                    if p[4] == 0x12 && p.len() > 6 {
                        let off = p[5] as usize;
                        for (i, c) in p[6..].iter().enumerate() {
                            if let Some(x) = s.lcd.get_mut(off + i) {
                                *x = *c;
                            }
                        }
                    }
                    s.sysex.push((p[4], p[5..].to_vec()));
                }
                _ => {}
            }
        }
        self.cv.notify_all();
    }

    /// Wait until `f` holds (or fail with `what` after [`WAIT`]).
    pub fn wait<T>(&self, what: &str, mut f: impl FnMut(&DevState) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        let mut s = self.state.lock().unwrap();
        loop {
            if let Some(v) = f(&s) {
                return v;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "device: timed out waiting for {what}");
            s = self.cv.wait_timeout(s, left).unwrap().0;
        }
    }

    pub fn lcd_line(&self, line: usize) -> String {
        let s = self.state.lock().unwrap();
        String::from_utf8_lossy(&s.lcd[line * 56..(line + 1) * 56]).into_owned()
    }

    pub fn bends(&self) -> Vec<(u8, u16)> {
        self.state.lock().unwrap().bends.clone()
    }

    /// Wait for the device query; answer with a challenge; check the reply (serial echoed,
    /// response to 01 02 03 04 as worked by hand in daemon/mcu/protocol.rs); confirm.
    pub fn handshake(&self, mut send: impl FnMut(&[u8])) {
        self.wait("the device query F0 00 00 66 14 00 F7", |s| {
            s.sysex.iter().any(|(c, _)| *c == 0x00).then_some(())
        });
        let serial = [0x53, 0x45, 0x52, 0x49, 0x41, 0x4C, 0x31];
        let mut q = vec![0xF0, 0x00, 0x00, 0x66, 0x14, 0x01];
        q.extend(serial);
        q.extend([1, 2, 3, 4]);
        q.push(0xF7);
        send(&q);
        let reply = self.wait("the host connection reply", |s| {
            s.sysex
                .iter()
                .find(|(c, _)| *c == 0x02)
                .map(|(_, d)| d.clone())
        });
        let mut want = serial.to_vec();
        want.extend([0x05, 0x05, 0x7B, 0x2F]);
        assert_eq!(reply, want);
        self.state.lock().unwrap().bends.clear();
        let mut c = vec![0xF0, 0x00, 0x00, 0x66, 0x14, 0x03];
        c.extend(serial);
        c.push(0xF7);
        send(&c);
    }

    /// Wait until strips 1..8 show `want`.
    pub fn wait_faders(&self, what: &str, want: &[u16]) {
        self.wait(what, |s| {
            (0..8u8)
                .all(|c| s.faders.get(&c) == Some(&want[c as usize]))
                .then_some(())
        });
    }
}
