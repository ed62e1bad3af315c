//! Latency compensation of the whole mix graph (issue 8 point 3): which delays make every
//! summing point (group bus, aux bus, master) take all of its inputs aligned, with the least
//! added delay. Pure arithmetic on the graph; [`super::Engine::build_with`] turns the plan
//! into delay lines.
//!
//! Times are in samples after a signal enters a channel strip. Each edge of the graph (a
//! channel's main output, each of its aux sends, each bus's output) has an *arrival* time at
//! its destination; each summing point has an *input* time `R` at which all its inputs must
//! arrive.
//!
//! 1. Arrivals, forward. A channel with an insert of latency `L` (0 without one) reaches its
//!    main output and its post-fader sends at `L`; its pre-fader sends at `L` too, except with
//!    a `post_fader` insert: those sends are tapped ahead of the insert and arrive at 0. A bus
//!    reaches its destination at `R_bus + L_bus` (a bus insert sits inside the bus, whatever
//!    its position, so every bus output is behind it).
//! 2. Earliest input times, forward in processing order: `E_x` = the latest arrival among x's
//!    inputs (a pre/post send counts with its later tap, so switching a send to post-fader at
//!    run time never needs more than was planned), buses before the buses they feed, the
//!    master last.
//! 3. Input times, backward from the master: `R_master = E_master`; a bus feeding D takes its
//!    input at `R_D − L_bus` (so its output arrives exactly at `R_D`; this is never earlier
//!    than `E_bus`); a terminal bus (direct `outputs:`, a cue mix) is aligned only among its own
//!    inputs, at `R = E`.
//! 4. Delays. Bus outputs never need one (step 3). A channel's edges need `R_dest − arrival`
//!    each; the channel gets one common delay `C` = the least of them (main output and
//!    post-fader taps) at its compensation point (after the dynamics and a pre-fader insert,
//!    ahead of the pre-fader send tap), and an edge gets its own delay line only for what it
//!    needs beyond `C`. With inserts on channels only every summing point has `R = max L`,
//!    every channel edge needs exactly `max L − L_own`, and no edge has a line of its own.
//!
//! The engine's latency from input to master output is then the limiter's look-ahead plus
//! `R_master` plus the master insert's latency ([`Plan::latency`]).

use crate::session::model::Output;

/// A channel as the plan sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct ChanNode {
    /// The insert's latency (samples; 0 without an insert).
    pub latency: usize,
    /// The insert is after the fader (pre-fader sends are tapped ahead of it).
    pub post_fader: bool,
    pub output: Output,
    /// The aux buses it sends to (indices into the session's buses).
    pub sends: Vec<usize>,
}

/// A bus as the plan sees it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BusNode {
    /// The insert's latency (samples; 0 without an insert).
    pub latency: usize,
    /// Where it sums into (ignored for a terminal bus).
    pub output: Output,
    /// Feeds interface outputs directly (`outputs:`), not another bus or the master.
    pub terminal: bool,
}

/// The delays of a graph.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Per channel: the common delay at its compensation point.
    pub common: Vec<usize>,
    /// Per channel: the extra delay of its main output.
    pub main_extra: Vec<usize>,
    /// Per channel, per send (as in [`ChanNode::sends`]): the extra delay while the send is
    /// post-fader and while it is pre-fader.
    pub send_extra: Vec<Vec<SendExtra>>,
    /// Per bus: its input time `R`.
    pub bus_input: Vec<usize>,
    /// The master's input time.
    pub master_input: usize,
    /// The master insert's latency.
    pub master_latency: usize,
}

/// The extra delays of one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SendExtra {
    pub post: usize,
    pub pre: usize,
}

impl Plan {
    /// Input to master output (samples), without the limiter's look-ahead.
    pub fn latency(&self) -> usize {
        self.master_input + self.master_latency
    }

    /// True when no edge needs a delay line of its own.
    pub fn no_extras(&self) -> bool {
        self.main_extra.iter().all(|&e| e == 0)
            && self
                .send_extra
                .iter()
                .flatten()
                .all(|e| e.post == 0 && e.pre == 0)
    }
}

/// The plan for `channels` and `buses` (the session's cycle check has run) with a master
/// insert of `master_latency` samples; `order` is the buses' processing order (sources
/// first).
pub fn plan(
    channels: &[ChanNode],
    buses: &[BusNode],
    order: &[usize],
    master_latency: usize,
) -> Plan {
    // 2. Earliest input times.
    let mut earliest = vec![0usize; buses.len()];
    let mut master = 0usize;
    let mut arrive = |dest: Output, t: usize, earliest: &mut [usize]| match dest {
        Output::Master => master = master.max(t),
        Output::Bus(b) => {
            if let Some(e) = earliest.get_mut(b) {
                *e = (*e).max(t);
            }
        }
    };
    for c in channels {
        arrive(c.output, c.latency, &mut earliest);
        for &s in &c.sends {
            arrive(Output::Bus(s), c.latency, &mut earliest);
        }
    }
    for &b in order {
        let bus = &buses[b];
        if !bus.terminal {
            let t = earliest[b] + bus.latency;
            arrive(bus.output, t, &mut earliest);
        }
    }
    // 3. Input times, backward (destinations before their sources).
    let mut input = earliest.clone();
    for &b in order.iter().rev() {
        let bus = &buses[b];
        if bus.terminal {
            continue;
        }
        let dest = match bus.output {
            Output::Master => master,
            Output::Bus(d) => input[d],
        };
        input[b] = dest.saturating_sub(bus.latency).max(earliest[b]);
    }
    let r = |dest: Output| match dest {
        Output::Master => master,
        Output::Bus(b) => input[b],
    };
    // 4. Channel delays.
    let mut p = Plan {
        bus_input: input.clone(),
        master_input: master,
        master_latency,
        ..Plan::default()
    };
    for c in channels {
        let main = r(c.output) - c.latency;
        let post: Vec<usize> = c
            .sends
            .iter()
            .map(|&s| r(Output::Bus(s)) - c.latency)
            .collect();
        let common = post.iter().copied().fold(main, usize::min);
        let pre_lat = if c.post_fader { 0 } else { c.latency };
        p.common.push(common);
        p.main_extra.push(main - common);
        p.send_extra.push(
            c.sends
                .iter()
                .zip(&post)
                .map(|(&s, &d)| SendExtra {
                    post: d - common,
                    pre: r(Output::Bus(s)) - pre_lat - common,
                })
                .collect(),
        );
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ch(latency: usize, output: Output, sends: &[usize]) -> ChanNode {
        ChanNode {
            latency,
            post_fader: false,
            output,
            sends: sends.to_vec(),
        }
    }

    fn bus(latency: usize, output: Output) -> BusNode {
        BusNode {
            latency,
            output,
            terminal: false,
        }
    }

    fn no_sends(n: usize) -> Vec<Vec<SendExtra>> {
        vec![Vec::new(); n]
    }

    #[test]
    fn channels_only_delay_every_channel_to_the_slowest() {
        // Three channels with inserts 0, 100, 237 into the master, one of them through a
        // group, all sending to an aux: every edge needs 237 - L_own.
        let m = Output::Master;
        let chans = [
            ch(0, m, &[1]),
            ch(100, Output::Bus(0), &[1]),
            ch(237, m, &[1]),
        ];
        let buses = [bus(0, m), bus(0, m)];
        let p = plan(&chans, &buses, &[0, 1], 0);
        assert_eq!(p.common, vec![237, 137, 0]);
        assert_eq!(p.main_extra, vec![0, 0, 0]);
        assert!(p.no_extras());
        assert_eq!(p.bus_input, vec![237, 237]);
        assert_eq!(p.master_input, 237);
        assert_eq!(p.latency(), 237);
    }

    #[test]
    fn an_insert_on_a_group_delays_the_channels_that_bypass_it() {
        // a, b -> group (insert 500) -> master; c -> master.
        let m = Output::Master;
        let g = Output::Bus(0);
        let chans = [ch(0, g, &[]), ch(0, g, &[]), ch(0, m, &[])];
        let p = plan(&chans, &[bus(500, m)], &[0], 0);
        assert_eq!(p.common, vec![0, 0, 500]);
        assert_eq!(p.main_extra, vec![0, 0, 0]);
        assert_eq!(p.bus_input, vec![0]);
        assert_eq!(p.master_input, 500);
        assert_eq!(p.latency(), 500);
        // With a channel insert of 200 inside the group as well: the group takes its input
        // at 200, the master at 700.
        let chans = [ch(200, g, &[]), ch(0, g, &[]), ch(0, m, &[])];
        let p = plan(&chans, &[bus(500, m)], &[0], 0);
        assert_eq!(p.common, vec![0, 200, 700]);
        assert_eq!((p.bus_input[0], p.master_input), (200, 700));
        assert_eq!(p.send_extra, no_sends(3));
    }

    #[test]
    fn an_insert_on_an_aux_delays_the_dry_paths() {
        // a, b -> master, both sending to an aux (insert 64) -> master.
        let m = Output::Master;
        let chans = [ch(0, m, &[0]), ch(0, m, &[0])];
        let p = plan(&chans, &[bus(64, m)], &[0], 0);
        // The sends need 0, the mains 64: the common delay is 0, the mains get 64 each.
        assert_eq!(p.common, vec![0, 0]);
        assert_eq!(p.main_extra, vec![64, 64]);
        assert_eq!(p.bus_input, vec![0]);
        assert_eq!(p.master_input, 64);
    }

    #[test]
    fn a_post_fader_insert_delays_its_pre_fader_sends() {
        // a: insert 300 after the fader, main -> master, a send to an aux -> master;
        // b: no insert, main -> master, a send to the aux.
        let m = Output::Master;
        let mut a = ch(300, m, &[0]);
        a.post_fader = true;
        let chans = [a, ch(0, m, &[0])];
        let p = plan(&chans, &[bus(0, m)], &[0], 0);
        assert_eq!(p.master_input, 300);
        assert_eq!(p.bus_input, vec![300]);
        assert_eq!(p.common, vec![0, 300]);
        assert_eq!(p.main_extra, vec![0, 0]);
        // a's send: post-fader it is behind the insert (no extra), pre-fader ahead of it
        // (300 extra); b's send needs nothing beyond its common 300.
        assert_eq!(p.send_extra[0], vec![SendExtra { post: 0, pre: 300 }]);
        assert_eq!(p.send_extra[1], vec![SendExtra { post: 0, pre: 0 }]);
    }

    #[test]
    fn a_bus_feeding_a_bus() {
        // a -> sub (insert 40) -> group (insert 100) -> master; b -> group; c -> master.
        let m = Output::Master;
        let (sub, grp) = (Output::Bus(0), Output::Bus(1));
        let chans = [ch(0, sub, &[]), ch(0, grp, &[]), ch(0, m, &[])];
        let buses = [bus(40, grp), bus(100, m)];
        let p = plan(&chans, &buses, &[0, 1], 0);
        // The group takes its input at 40 (when the sub arrives), the master at 140.
        assert_eq!(p.bus_input, vec![0, 40]);
        assert_eq!(p.master_input, 140);
        assert_eq!(p.common, vec![0, 40, 140]);
        assert!(p.no_extras());
    }

    #[test]
    fn a_cue_mix_is_aligned_among_its_own_inputs() {
        // a -> group (insert 500) -> master; b -> master; both send to a cue aux with its own
        // outputs.
        let m = Output::Master;
        let chans = [ch(0, Output::Bus(0), &[1]), ch(0, m, &[1])];
        let cue = BusNode {
            latency: 0,
            output: m,
            terminal: true,
        };
        let p = plan(&chans, &[bus(500, m), cue], &[0, 1], 0);
        assert_eq!(p.master_input, 500);
        assert_eq!(p.bus_input, vec![0, 0]);
        // b: main needs 500, its cue send 0: common 0, the main gets its own 500.
        assert_eq!(p.common, vec![0, 0]);
        assert_eq!(p.main_extra, vec![0, 500]);
        assert_eq!(p.send_extra[1], vec![SendExtra { post: 0, pre: 0 }]);
        // A cue with an insert of 30 is only its own inputs' business.
        let cue = BusNode { latency: 30, ..cue };
        let p = plan(&chans, &[bus(500, m), cue], &[0, 1], 0);
        assert_eq!((p.master_input, p.bus_input[1]), (500, 0));
    }

    #[test]
    fn the_master_insert_adds_to_the_latency() {
        let m = Output::Master;
        let chans = [ch(0, m, &[]), ch(120, m, &[])];
        let p = plan(&chans, &[], &[], 256);
        assert_eq!(p.master_input, 120);
        assert_eq!(p.common, vec![120, 0]);
        assert_eq!(p.latency(), 376);
    }
}
