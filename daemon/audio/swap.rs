//! Glitch-free engine swaps: the control side pushes a new graph into one wait-free ring, the
//! audio thread takes it at a block boundary and pushes the retired graph into a second ring,
//! from which the supervisor drops it, off the audio thread.

use rtrb::{Consumer, Producer, RingBuffer};

/// Graphs in flight at once (a reload storm waits on the control side beyond this).
const DEPTH: usize = 8;

/// Control side: send new graphs, collect retired ones.
pub(crate) struct SwapTx<T> {
    tx: Producer<T>,
    back: Consumer<T>,
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
    (SwapTx { tx, back }, SwapRx { rx, back: back_tx })
}

impl<T> SwapTx<T> {
    /// Queue `graph`. A full ring gives it back.
    pub(crate) fn send(&mut self, graph: T) -> Result<(), T> {
        self.tx.push(graph).map_err(|rtrb::PushError::Full(g)| g)
    }

    /// Drop every retired graph; returns how many.
    pub(crate) fn collect(&mut self) -> usize {
        let mut n = 0;
        while let Ok(g) = self.back.pop() {
            drop(g);
            n += 1;
        }
        n
    }

    /// Graphs sent but not yet taken by the audio thread.
    pub(crate) fn pending(&self) -> usize {
        self.tx.buffer().capacity() - self.tx.slots()
    }
}

impl<T> SwapRx<T> {
    /// Take the newest queued graph into `current`, retiring the old one. Real-time safe:
    /// only swaps when the retire ring has room, so nothing is ever dropped here.
    #[inline]
    pub(crate) fn poll(&mut self, current: &mut T) {
        while self.back.slots() > 0 {
            let Ok(new) = self.rx.pop() else { return };
            let old = std::mem::replace(current, new);
            if let Err(rtrb::PushError::Full(_)) = self.back.push(old) {
                unreachable!("slots checked above");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swaps_in_order_and_retires_the_old() {
        let (mut tx, mut rx) = pair::<Box<u32>>();
        let mut cur = Box::new(0);
        tx.send(Box::new(1)).expect("room");
        tx.send(Box::new(2)).expect("room");
        assert_eq!(tx.pending(), 2);
        rx.poll(&mut cur);
        assert_eq!(*cur, 2);
        assert_eq!(tx.pending(), 0);
        assert_eq!(tx.collect(), 2);
        assert_eq!(tx.collect(), 0);
    }

    #[test]
    fn full_retire_ring_defers_the_swap() {
        let (mut tx, mut rx) = pair::<u32>();
        let mut cur = 0;
        for round in 0..3 {
            for i in 0..DEPTH as u32 {
                if tx.send(round * 100 + i).is_err() {
                    break;
                }
            }
            rx.poll(&mut cur);
        }
        // Nothing collected: the retire ring filled after DEPTH swaps and further graphs wait.
        assert_eq!(cur, DEPTH as u32 - 1);
        assert_eq!(tx.pending(), DEPTH);
        assert_eq!(tx.collect(), DEPTH);
        rx.poll(&mut cur);
        assert_eq!(cur, 100 + DEPTH as u32 - 1);
    }
}
