//! MIDI learn: wait for the next control a mapped device sends, bind it to a parameter path
//! and append the entry to that device's mapping file (so the file's comments and layout
//! stay as they are; hot reload and the surface pick the new entry up at once).
//!
//! One request is pending at a time (a new one replaces it). The status socket
//! (`{"cmd":"learn","path":...}`, used by `faderbridge learn`) waits for the result; OSC
//! `/learn ,s PATH` arms a request and the daemon logs what was bound.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::oneshot;

use super::format;
use crate::midi::MidiEvent;

/// What was learned.
#[derive(Debug, Clone, PartialEq)]
pub struct Learned {
    /// The mapping file written.
    pub map: String,
    /// The line appended to it.
    pub entry: String,
}

struct Request {
    path: String,
    reply: oneshot::Sender<Result<Learned, String>>,
}

static PENDING: Mutex<Option<Request>> = Mutex::new(None);

fn pending() -> std::sync::MutexGuard<'static, Option<Request>> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Is a learn request waiting for a control?
pub fn is_pending() -> bool {
    pending().is_some()
}

/// Wait up to `timeout` for the next control of any mapped device and bind it to `path`.
///
/// # Errors
/// `path` is not a parameter path (with suggestions), no control arrived in time, another
/// request replaced this one, or the entry could not be written (for example because the
/// control is already mapped in that file).
pub async fn learn(path: &str, timeout: Duration) -> Result<Learned, String> {
    let rx = arm(path)?;
    wait(rx, timeout).await
}

/// The receiving end of an armed request (see [`arm`]).
pub type Pending = oneshot::Receiver<Result<Learned, String>>;

/// Arm a request at once (the next control is bound from now on); [`wait`] for its result.
///
/// # Errors
/// `path` is not a parameter path (the message suggests the closest ones).
pub fn arm(path: &str) -> Result<Pending, String> {
    let path = path.trim().trim_start_matches('/').to_string();
    if format::spec_of(&path).is_none() {
        let near = format::suggestions(&path);
        let hint = if near.is_empty() {
            String::new()
        } else {
            format!("; did you mean {}?", near.join(" or "))
        };
        return Err(format!("{path:?} is not a parameter path{hint}"));
    }
    let (tx, rx) = oneshot::channel();
    if let Some(old) = pending().replace(Request { path, reply: tx }) {
        let _ = old
            .reply
            .send(Err("replaced by a newer learn request".into()));
    }
    Ok(rx)
}

/// Wait up to `timeout` for an armed request's result; on timeout the request is dropped.
///
/// # Errors
/// As [`learn`].
pub async fn wait(rx: Pending, timeout: Duration) -> Result<Learned, String> {
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(r)) => r,
        Ok(Err(_)) => Err("the learn request was replaced or dropped".into()),
        Err(_) => {
            pending().take();
            Err(format!(
                "no control moved within {} s",
                timeout.as_secs_f32()
            ))
        }
    }
}

/// The mapping entry for a message (without the target), or None for messages that cannot
/// be learned (releases, clock, SysEx, NRPN selection).
pub fn source_of(ev: &MidiEvent) -> Option<String> {
    Some(match *ev {
        MidiEvent::ControlChange {
            channel,
            controller,
            ..
        } if controller < 120 && !matches!(controller, 6 | 38 | 98 | 99) => {
            format!("cc: {controller}, channel: {}", channel + 1)
        }
        MidiEvent::NoteOn {
            channel,
            note,
            velocity,
        } if velocity > 0 => format!("note: {note}, channel: {}", channel + 1),
        MidiEvent::PolyPressure {
            channel,
            note,
            pressure,
        } if pressure > 0 => format!("poly: {note}, channel: {}", channel + 1),
        MidiEvent::PitchBend { channel, .. } => format!("pitchbend: {}", channel + 1),
        _ => return None,
    })
}

/// Offer a message from the device of `map_file` to a pending request. Returns the new map
/// text when an entry was written (the caller applies it).
pub fn offer(ev: &MidiEvent, map_file: &Path) -> Option<String> {
    let source = source_of(ev)?;
    let req = pending().take()?;
    let entry = format!("  - {{ {source}, target: \"{}\" }}  # learned", req.path);
    match append(map_file, &entry) {
        Ok(text) => {
            tracing::info!("MIDI learn: {} ← {entry}", map_file.display());
            let _ = req.reply.send(Ok(Learned {
                map: map_file.display().to_string(),
                entry,
            }));
            Some(text)
        }
        Err(e) => {
            tracing::warn!("MIDI learn: {e}");
            let _ = req.reply.send(Err(e));
            None
        }
    }
}

/// Append one control line to the map file, if the result is a valid map.
fn append(file: &Path, entry: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .unwrap_or("");
    if !(last.starts_with("controls:") || last.starts_with(' ') || last.starts_with('-')) {
        return Err(format!(
            "{}: the controls list is not the last part of the file; add the entry by hand: {entry}",
            file.display()
        ));
    }
    let mut new = text.clone();
    if !new.ends_with('\n') {
        new.push('\n');
    }
    new.push_str(entry);
    new.push('\n');
    format::parse_str(&new, file).map_err(|e| format!("the learned entry does not fit: {e}"))?;
    let tmp = file.with_extension("yaml.learn-tmp");
    std::fs::write(&tmp, &new).map_err(|e| format!("{}: {e}", tmp.display()))?;
    std::fs::rename(&tmp, file).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn learns_the_next_control_and_appends_it() {
        let dir = std::env::temp_dir().join(format!("fb-learn-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("m.yaml");
        std::fs::write(&file, "# my map\nname: t\ncontrols:\n  # faders\n  - { cc: 1, channel: 1, target: ch/1/fader_db }\n").unwrap();
        assert!(
            learn("ch/1/fadr_db", Duration::from_millis(10))
                .await
                .unwrap_err()
                .contains("did you mean ch/1/fader_db")
        );
        let f = file.clone();
        let waiter = tokio::spawn(async move { learn("ch/2/pan", Duration::from_secs(5)).await });
        while !is_pending() {
            tokio::task::yield_now().await;
        }
        // A release and an already mapped CC are not learned / do not fit.
        assert!(
            offer(
                &MidiEvent::NoteOn {
                    channel: 0,
                    note: 3,
                    velocity: 0
                },
                &f
            )
            .is_none()
        );
        assert!(is_pending());
        let text = offer(
            &MidiEvent::ControlChange {
                channel: 1,
                controller: 7,
                value: 9,
            },
            &f,
        )
        .unwrap();
        let got = waiter.await.unwrap().unwrap();
        assert_eq!(
            got.entry,
            "  - { cc: 7, channel: 2, target: \"ch/2/pan\" }  # learned"
        );
        assert!(
            text.starts_with("# my map\n") && text.contains("  # faders\n"),
            "{text}"
        );
        let m = format::load(&file).unwrap();
        assert_eq!(m.controls.len(), 2);
        assert_eq!(m.controls[1].source, format::Source::Cc(7));
        assert_eq!(m.controls[1].channel, Some(1));
        // Learning CC 7 on channel 2 again conflicts: reported, file unchanged.
        let waiter = tokio::spawn(async move { learn("ch/3/pan", Duration::from_secs(5)).await });
        while !is_pending() {
            tokio::task::yield_now().await;
        }
        assert!(
            offer(
                &MidiEvent::ControlChange {
                    channel: 1,
                    controller: 7,
                    value: 9
                },
                &file
            )
            .is_none()
        );
        let e = waiter.await.unwrap().unwrap_err();
        assert!(
            e.contains("cc 7 on channel 2 is also used at line 6"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
