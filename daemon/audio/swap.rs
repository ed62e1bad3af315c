//! Glitch-free engine swaps: the control side pushes a new graph into one wait-free ring, the
//! audio thread takes it at a block boundary (see [`super::xfade`] for how it is faded in) and
//! pushes the retired graph into a second ring, from which the supervisor drops it, off the
//! audio thread.

use rtrb::{Consumer, Producer, RingBuffer};

/// Graphs in flight at once (a reload storm waits on the control side beyond this).
const DEPTH: usize = 8;

/// Control side: send new graphs, collect retired ones.
pub(crate) struct SwapTx<T> {
    tx: Producer<T>,
    back: Consumer<T>,
    /// Graphs sent and graphs collected: every graph sent retires exactly one graph (itself
    /// when a newer one overtook it, else the one it replaced), so the two are equal once
    /// every swap has finished.
    sent: u64,
    retired: u64,
}

/// Audio side.
pub(crate) struct SwapRx<T> {
    rx: Consumer<T>,
    back: Producer<T>,
}

/// A connected pair. Allocates.
pub(crate) fn pair<T>() -> (SwapTx<T>, SwapRx<T>) {
    let (tx, rx) = RingBuffer::new(DEPTH);
    let (back_tx, back) = RingBuffer::new(DEPTH);
    (
        SwapTx {
            tx,
            back,
            sent: 0,
            retired: 0,
        },
        SwapRx { rx, back: back_tx },
    )
}

impl<T> SwapTx<T> {
    /// Queue `graph`. A full ring gives it back.
    pub(crate) fn send(&mut self, graph: T) -> Result<(), T> {
        self.tx.push(graph).map_err(|rtrb::PushError::Full(g)| g)?;
        self.sent += 1;
        Ok(())
    }

    /// Drop every retired graph; returns how many.
    pub(crate) fn collect(&mut self) -> usize {
        let mut n = 0;
        while let Ok(g) = self.back.pop() {
            drop(g);
            n += 1;
        }
        self.retired += n as u64;
        n
    }

    /// True while a swap is unfinished: a graph waits for the audio thread, or one is being
    /// faded in and the graph it replaces still runs (or has not been collected yet).
    pub(crate) fn busy(&self) -> bool {
        self.sent != self.retired
    }
}

impl<T> SwapRx<T> {
    /// Take the newest queued graph, retiring the older queued ones unused. Real-time safe:
    /// only takes graphs while the retire ring keeps a free slot for the graph the taken one
    /// will replace ([`SwapRx::retire`]), so nothing is ever dropped here.
    #[inline]
    pub(crate) fn take(&mut self) -> Option<T> {
        let mut newest: Option<T> = None;
        while self.back.slots() > 1 {
            let Ok(g) = self.rx.pop() else { break };
            if let Some(skipped) = newest.replace(g)
                && let Err(rtrb::PushError::Full(_)) = self.back.push(skipped)
            {
                unreachable!("slots checked above");
            }
        }
        newest
    }

    /// True when the retire ring has room (always true after [`SwapRx::take`] returned a
    /// graph, until one graph is retired).
    #[inline]
    pub(crate) fn can_retire(&self) -> bool {
        self.back.slots() > 0
    }

    /// Hand a graph that no longer runs to the supervisor. Real-time safe. A full ring (only
    /// when [`SwapRx::can_retire`] was not checked) gives it back.
    #[inline]
    pub(crate) fn retire(&mut self, old: T) -> Result<(), T> {
        self.back.push(old).map_err(|rtrb::PushError::Full(g)| g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_the_newest_and_retires_the_skipped() {
        let (mut tx, mut rx) = pair::<Box<u32>>();
        tx.send(Box::new(1)).expect("room");
        tx.send(Box::new(2)).expect("room");
        assert!(tx.busy());
        let new = rx.take().expect("a graph");
        assert_eq!(*new, 2);
        // 1 was skipped and retired; 2 replaces the running graph, which is still running.
        assert_eq!(tx.collect(), 1);
        assert!(tx.busy());
        assert!(rx.can_retire());
        rx.retire(Box::new(0)).expect("room");
        assert_eq!(tx.collect(), 1);
        assert!(!tx.busy());
        assert!(rx.take().is_none());
    }

    #[test]
    fn a_full_retire_ring_defers_the_take() {
        let (mut tx, mut rx) = pair::<u32>();
        // Fill the retire ring but one slot: nothing may be taken (the taken graph's
        // predecessor needs that slot).
        for i in 0..DEPTH as u32 - 1 {
            rx.retire(100 + i).expect("room");
        }
        tx.send(1).expect("room");
        assert_eq!(rx.take(), None);
        assert_eq!(tx.collect(), DEPTH - 1);
        assert_eq!(rx.take(), Some(1));
        assert!(rx.can_retire());
    }
}
