//! Real-time scheduling for the backends' own audio threads (null clock, cpal supervisor's
//! streams are cpal's own): ask for SCHED_FIFO and say clearly when it was refused.

/// Priority asked for (below JACK's usual 70-95 range for drivers, above ordinary threads).
pub(crate) const RT_PRIORITY: i32 = 70;

/// Put the calling thread under SCHED_FIFO at `prio`. Logs a warning when refused.
pub(crate) fn make_realtime(what: &str, prio: i32) -> bool {
    // SAFETY: sched_param is plain data; pthread_self() is always a valid handle for the
    // calling thread.
    let rc = unsafe {
        let param = libc::sched_param {
            sched_priority: prio,
        };
        libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &param)
    };
    if rc == 0 {
        tracing::info!("{what} thread runs with real-time priority (SCHED_FIFO {prio})");
        true
    } else {
        tracing::warn!(
            "{what} thread could NOT get real-time priority (SCHED_FIFO {prio}): {}; audio may \
             drop out under load. Allow it with LimitRTPRIO= (systemd) or an rtprio limit for \
             the `audio` group in /etc/security/limits.d",
            std::io::Error::from_raw_os_error(rc)
        );
        false
    }
}

/// Whether the calling thread runs under a real-time policy (FIFO or RR).
pub(crate) fn is_realtime() -> bool {
    let mut policy = 0;
    // SAFETY: both out-pointers are to live locals.
    let rc = unsafe {
        let mut param = libc::sched_param { sched_priority: 0 };
        libc::pthread_getschedparam(libc::pthread_self(), &mut policy, &mut param)
    };
    rc == 0 && (policy == libc::SCHED_FIFO || policy == libc::SCHED_RR)
}

/// Name the calling thread (at most 15 bytes show; Linux only, elsewhere nothing).
pub(crate) fn name_this_thread(name: &std::ffi::CStr) {
    #[cfg(target_os = "linux")]
    // SAFETY: PR_SET_NAME reads a NUL-terminated string, which a CStr is.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, name.as_ptr());
    }
    #[cfg(not(target_os = "linux"))]
    let _ = name;
}
