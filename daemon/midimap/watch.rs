//! Hot reload: watch the folder of a mapping file and report, debounced, that the file
//! changed. On Linux through inotify on the folder (editors that save by writing a temporary
//! file and renaming it are seen too); elsewhere, or when inotify is unavailable, by looking
//! at the file's modification time and size every [`POLL`].

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

/// Quiet time after the last event before a change is reported (an editor's save is often
/// several events).
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// Polling interval of the fallback watcher.
pub const POLL: Duration = Duration::from_millis(250);

/// A running watcher; dropping it stops its thread.
pub struct Watcher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Watch `file`; every debounced change sends `()` on the returned channel.
///
/// # Errors
/// The watcher thread could not be started.
pub fn watch(file: &Path) -> std::io::Result<(Watcher, mpsc::UnboundedReceiver<()>)> {
    let (tx, rx) = mpsc::unbounded_channel();
    let stop = Arc::new(AtomicBool::new(false));
    let file = file.to_path_buf();
    let st = stop.clone();
    let thread = std::thread::Builder::new()
        .name("midimap watch".into())
        .spawn(move || {
            #[cfg(target_os = "linux")]
            if inotify_loop(&file, &st, &tx) {
                return;
            }
            poll_loop(&file, &st, &tx);
        })?;
    Ok((
        Watcher {
            stop,
            thread: Some(thread),
        },
        rx,
    ))
}

fn stamp(file: &Path) -> Option<(std::time::SystemTime, u64)> {
    let m = std::fs::metadata(file).ok()?;
    Some((m.modified().ok()?, m.len()))
}

fn poll_loop(file: &Path, stop: &AtomicBool, tx: &mpsc::UnboundedSender<()>) {
    let mut last = stamp(file);
    while !stop.load(Ordering::Acquire) {
        std::thread::sleep(POLL);
        let now = stamp(file);
        if now != last {
            last = now;
            if tx.send(()).is_err() {
                return;
            }
        }
    }
}

/// Watch with inotify; false if inotify could not be set up (use polling instead).
#[cfg(target_os = "linux")]
fn inotify_loop(file: &Path, stop: &AtomicBool, tx: &mpsc::UnboundedSender<()>) -> bool {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;

    let dir: PathBuf = match file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let Some(name) = file.file_name().map(|n| n.as_bytes().to_vec()) else {
        return false;
    };
    let Ok(cdir) = CString::new(dir.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: plain syscalls on an fd this function owns and closes.
    let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
    if fd < 0 {
        return false;
    }
    let mask = libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO | libc::IN_CREATE | libc::IN_MODIFY;
    // SAFETY: fd is ours; cdir is a valid C string.
    if unsafe { libc::inotify_add_watch(fd, cdir.as_ptr(), mask) } < 0 {
        // SAFETY: closing our own fd.
        unsafe { libc::close(fd) };
        return false;
    }
    let mut buf = vec![0u8; 4096];
    let mut pending: Option<Instant> = None;
    while !stop.load(Ordering::Acquire) {
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let r = unsafe { libc::poll(&mut pfd, 1, 50) };
        if r > 0 {
            // SAFETY: reading into our buffer of its length.
            let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
            let mut off = 0usize;
            let n = usize::try_from(n).unwrap_or(0);
            let head = std::mem::size_of::<libc::inotify_event>();
            while off + head <= n {
                // SAFETY: the kernel wrote whole events; read_unaligned copes with alignment.
                let ev: libc::inotify_event =
                    unsafe { std::ptr::read_unaligned(buf.as_ptr().add(off).cast()) };
                let len = ev.len as usize;
                let raw = &buf[off + head..(off + head + len).min(n)];
                let ev_name: Vec<u8> = raw.iter().copied().take_while(|b| *b != 0).collect();
                if ev_name == name {
                    pending = Some(Instant::now());
                }
                off += head + len;
            }
        }
        if let Some(t) = pending
            && t.elapsed() >= DEBOUNCE
        {
            pending = None;
            if tx.send(()).is_err() {
                break;
            }
        }
    }
    // SAFETY: closing our own fd.
    unsafe { libc::close(fd) };
    true
}
