//! Pseudo-terminal pairs for serial MIDI tests: the test holds the master side (the
//! "device"); the daemon opens the slave through a stable symlink, as a udev rule would give.

use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

/// A pty pair: the master end as a file, and the slave's device path.
pub struct Pty {
    pub master: File,
    pub slave_path: PathBuf,
    /// Kept open so the slave device exists even before the port opens it.
    _slave: OwnedFd,
}

impl Pty {
    pub fn open() -> Pty {
        let (mut m, mut s) = (0, 0);
        let mut name = [0 as libc::c_char; 128];
        // SAFETY: openpty writes two fds and a NUL-terminated name into the buffers given.
        let rc = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                name.as_mut_ptr(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
        // Not inherited by processes the test spawns (a daemon holding the master open would
        // never see the device unplugged).
        for fd in [m, s] {
            // SAFETY: fcntl on fds we own.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
        // SAFETY: the name buffer holds a C string written by openpty.
        let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }
            .to_string_lossy()
            .into_owned();
        Pty {
            // SAFETY: fresh fds owned by nobody else.
            master: unsafe { File::from_raw_fd(m) },
            slave_path: PathBuf::from(path),
            _slave: unsafe { OwnedFd::from_raw_fd(s) },
        }
    }

    /// Make reads of the master side non-blocking.
    #[allow(dead_code)] // not every test binary that includes this file reads this way
    pub fn nonblocking(&self) {
        let fd = self.master.as_raw_fd();
        // SAFETY: fcntl on an fd we own.
        unsafe {
            let fl = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, fl | libc::O_NONBLOCK);
        }
    }

    /// Point `link` at this pty's slave (replacing what was there).
    pub fn link(&self, link: &Path) {
        let _ = std::fs::remove_file(link);
        std::os::unix::fs::symlink(&self.slave_path, link).unwrap();
    }
}
