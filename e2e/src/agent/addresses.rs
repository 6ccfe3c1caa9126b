//! Loopback pod IPs: each pod gets its own 127.x.y.z, so many pods can serve port 8000 side by side.
//!
//! All of 127.0.0.0/8 routes to `lo` on Linux with no set-up. Each agent allocates from its own /16 (127.B.0.0),
//! skipping addresses whose port is taken (another cluster on this machine, a leftover process), and reuses
//! addresses of deleted pods last, so that a recreated pod rarely gets a stale address that a scraper still
//! remembers.

use std::collections::{HashSet, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};

/// Hands out loopback addresses from 127.B.0.2 upwards.
#[derive(Debug)]
pub(crate) struct LoopbackAllocator {
    second_octet: u8,
    next: u32,
    in_use: HashSet<Ipv4Addr>,
    released: VecDeque<Ipv4Addr>,
}

impl LoopbackAllocator {
    /// Allocates from 127.`second_octet`.0.0/16.
    pub fn new(second_octet: u8) -> Self {
        Self {
            second_octet,
            next: 2,
            in_use: HashSet::new(),
            released: VecDeque::new(),
        }
    }

    fn candidate(&self, n: u32) -> Ipv4Addr {
        Ipv4Addr::new(127, self.second_octet, (n >> 8) as u8, (n & 0xff) as u8)
    }

    /// An address whose `port` is free right now, or `None` when the range is exhausted.
    pub(crate) fn allocate(&mut self, port: u16) -> Option<Ipv4Addr> {
        while self.next < 0xfffe {
            let ip = self.candidate(self.next);
            self.next += 1;
            if !self.in_use.contains(&ip) && port_free(ip, port) {
                self.in_use.insert(ip);
                return Some(ip);
            }
        }
        // Fresh addresses exhausted: recycle released ones, oldest first.
        let count = self.released.len();
        for _ in 0..count {
            let ip = self.released.pop_front()?;
            if port_free(ip, port) {
                self.in_use.insert(ip);
                return Some(ip);
            }
            self.released.push_back(ip);
        }
        None
    }

    /// Returns an address to the pool.
    pub fn release(&mut self, ip: Ipv4Addr) {
        if self.in_use.remove(&ip) {
            self.released.push_back(ip);
        }
    }
}

fn port_free(ip: Ipv4Addr, port: u16) -> bool {
    TcpListener::bind(SocketAddrV4::new(ip, port)).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_unique_and_skip_taken_ports() {
        let mut alloc = LoopbackAllocator::new(201);
        let first = alloc.allocate(18_000).expect("address");
        assert_eq!(first, Ipv4Addr::new(127, 201, 0, 2));
        // Occupy the next candidate's port: the allocator skips it.
        let _held = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::new(127, 201, 0, 3), 18_000))
            .expect("bind");
        let second = alloc.allocate(18_000).expect("address");
        assert_eq!(second, Ipv4Addr::new(127, 201, 0, 4));
        alloc.release(first);
        let third = alloc.allocate(18_000).expect("address");
        assert_ne!(third, first, "released addresses are reused last");
    }
}
