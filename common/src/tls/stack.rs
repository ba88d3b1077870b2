//! One connection as the driver sees it: the state machine, under a TLS session when TLS is
//! on. Every entry point is `Conn`'s; without TLS each is a direct call (one branch: no
//! copy, no allocation).

use std::sync::Arc;
use std::time::Instant;

use super::session::TlsSession;
use super::Setup;
use crate::conn::{Conn, Shared};
use crate::publish::token::ReplyTo;
use crate::publish::Delivery;

pub struct Stack {
    conn: Conn,
    /// Boxed: a plaintext connection pays one pointer for it.
    tls: Option<Box<TlsSession>>,
}

impl Stack {
    /// A plaintext connection, or a TLS one if `tls` is set. `None` if the TLS session
    /// cannot be created (counted as a failed handshake): the driver closes the socket.
    pub fn new(
        shared: Arc<Shared>,
        reply: ReplyTo,
        tls: Option<&Setup>,
        now: Instant,
    ) -> Option<Stack> {
        let tls = match tls {
            Some(setup) => Some(Box::new(TlsSession::new(
                setup,
                shared.metrics.clone(),
                now,
            )?)),
            None => None,
        };
        Some(Stack {
            conn: Conn::new(shared, reply, now),
            tls,
        })
    }

    pub fn routed(&self) -> u64 {
        self.conn.routed()
    }

    pub fn wants_read(&self) -> bool {
        match &self.tls {
            None => self.conn.wants_read(),
            Some(t) => t.wants_read(&self.conn),
        }
    }

    pub fn is_finished(&self) -> bool {
        match &self.tls {
            None => self.conn.is_finished(),
            Some(t) => t.is_finished(&self.conn),
        }
    }

    pub fn deadline(&self) -> Option<Instant> {
        match &self.tls {
            None => self.conn.deadline(),
            Some(t) => t.deadline(&self.conn),
        }
    }

    pub fn on_data(&mut self, data: &[u8], now: Instant) {
        match &mut self.tls {
            None => self.conn.on_data(data, now),
            Some(t) => t.on_data(&mut self.conn, data, now),
        }
    }

    pub fn on_eof(&mut self, now: Instant) {
        match &mut self.tls {
            None => self.conn.on_eof(now),
            Some(t) => t.on_eof(&mut self.conn, now),
        }
    }

    pub fn on_delivery(&mut self, d: Delivery, now: Instant) {
        self.conn.on_delivery(d, now);
    }

    pub fn on_timer(&mut self, now: Instant) {
        match &mut self.tls {
            None => self.conn.on_timer(now),
            Some(t) => t.on_timer(&mut self.conn, now),
        }
    }

    pub fn on_shutdown(&mut self, now: Instant) {
        match &mut self.tls {
            None => self.conn.on_shutdown(now),
            Some(t) => t.on_shutdown(&mut self.conn, now),
        }
    }

    pub fn take_output(&mut self) -> Option<Vec<u8>> {
        match &mut self.tls {
            None => self.conn.take_output(),
            Some(t) => t.take_output(&mut self.conn),
        }
    }

    pub fn recycle_output(&mut self, buf: Vec<u8>) {
        match &mut self.tls {
            None => self.conn.recycle_output(buf),
            Some(t) => t.recycle_output(buf),
        }
    }
}
