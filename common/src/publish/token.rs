//! The reply address a record carries through the producer: one plain integer (mailbox,
//! connection slot, slot generation, low bits of the connection's sequence number), packed
//! and unpacked here; `dispatch` routes by it.

const MAILBOX_BITS: u32 = 10;
const SLOT_BITS: u32 = 20;
pub(super) const GEN_BITS: u32 = 10;
const SEQ_BITS: u32 = 24;
const _: () = assert!(MAILBOX_BITS + SLOT_BITS + GEN_BITS + SEQ_BITS == 64);

/// Mailboxes one process can have (one per I/O thread).
pub const MAX_MAILBOXES: usize = 1 << MAILBOX_BITS;
/// Connections one mailbox can serve at once.
pub const MAX_SLOTS: usize = 1 << SLOT_BITS;
/// The sequence bits a report carries; the connection restores the rest from its window
/// of outstanding sequence numbers (which is far smaller).
pub const SEQ_MASK: u64 = (1 << SEQ_BITS) - 1;
pub(super) const GEN_MASK: u32 = (1 << GEN_BITS) - 1;

/// Where a connection's reports go: mailbox, slot and generation, packed. `Copy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyTo(u64);

impl ReplyTo {
    /// `gen` is never 0 for a registered slot, so the token 0 means "no reply".
    pub(super) fn new(mailbox: usize, slot: usize, gen: u32) -> ReplyTo {
        debug_assert!(mailbox < MAX_MAILBOXES && slot < MAX_SLOTS && gen != 0);
        ReplyTo(
            ((mailbox as u64) << (SLOT_BITS + GEN_BITS + SEQ_BITS))
                | ((slot as u64) << (GEN_BITS + SEQ_BITS))
                | (u64::from(gen & GEN_MASK) << SEQ_BITS),
        )
    }

    /// A reply address that belongs to no mailbox (for tests of the state machine alone).
    pub fn detached() -> ReplyTo {
        ReplyTo::new(MAX_MAILBOXES - 1, MAX_SLOTS - 1, GEN_MASK)
    }

    /// The integer a record carries through the producer (its delivery opaque).
    pub fn token(self, seq: u64) -> u64 {
        self.0 | (seq & SEQ_MASK)
    }
}

/// The token of a record nobody waits for.
pub const NO_REPLY: u64 = 0;

pub(super) struct Token {
    pub(super) mailbox: usize,
    pub(super) slot: usize,
    pub(super) gen: u32,
    pub(super) seq: u64,
}

pub(super) fn decode(token: u64) -> Option<Token> {
    let gen = ((token >> SEQ_BITS) as u32) & GEN_MASK;
    if gen == 0 {
        return None;
    }
    Some(Token {
        mailbox: (token >> (SLOT_BITS + GEN_BITS + SEQ_BITS)) as usize,
        slot: ((token >> (GEN_BITS + SEQ_BITS)) as usize) & (MAX_SLOTS - 1),
        gen,
        seq: token & SEQ_MASK,
    })
}

/// Restores a full sequence number from its low bits, given the lowest outstanding one
/// (`base`); exact while fewer than 2^24 numbers are outstanding.
pub fn expand_seq(seq: u64, base: u64) -> u64 {
    base.wrapping_add(seq.wrapping_sub(base) & SEQ_MASK)
}
