//! MIDI for every MIDI surface (SPEC §7): the byte-stream parser and encoder ([`parse`]) and
//! the transports that carry bytes to and from a device.

pub mod parse;
pub mod transport;

pub use parse::{MidiEvent, Parser, ParserStats, encode_running};
pub use transport::{MidiPort, MidiSender, PortEvent, PortSpec};
