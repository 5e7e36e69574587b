//! The read buffer of a node link, and what a frame to relay keeps alive of it.
//!
//! A frame split off the read buffer without copying keeps the buffer's whole
//! allocation alive. A frame handled at once lets it go again, but one a harbor
//! queues for a slow target holds it while it waits, and the queue's byte bound
//! counts the frame only: a small frame read into the tail of a 4 MiB buffer pinned
//! 4 MiB. So the link's reader ([`crate::codec::LinkCodec`]) places every
//! allocation itself and knows its size:
//!
//! - a frame longer than a chunk is read into an allocation of its own, exactly its
//!   length (its body crosses a harbor without a copy);
//! - other frames are read into chunks of [`CHUNK`] bytes, and a chunk no frame
//!   holds any more is reused; the first buffer is smaller ([`FIRST`]), so an idle
//!   link holds little;
//! - a frame to relay keeps its bytes where they are only if they are at least
//!   `1/`[`MAX_PIN`] of the allocation ([`keep_in_place`]); smaller ones are copied
//!   out (at most a quarter chunk: cheap).
//!
//! So a queued relayed frame keeps at most [`MAX_PIN`] times its own length alive,
//! and a link's read buffer never stays bigger than a chunk after a big frame.

use bytes::BytesMut;

/// The read buffer's usual allocation (tokio-util's `FramedRead` starts with the same).
pub(crate) const CHUNK: usize = 8 * 1024;

/// A link's first read buffer: a link that stays idle needs no more, and one that
/// is used fills it and goes on in chunks.
pub(crate) const FIRST: usize = 1024;

/// At most this many times its own length may a queued frame keep alive.
const MAX_PIN: usize = 4;

/// Whether a frame of `wire_len` bytes to relay may keep its bytes in the read
/// allocation of `alloc` bytes (else it is copied out).
pub(crate) fn keep_in_place(wire_len: usize, alloc: usize) -> bool {
    wire_len.saturating_mul(MAX_PIN) >= alloc
}

/// The allocation a link's read buffer lives in. Every allocation the buffer gets
/// is made by [`make_room`](Self::make_room), which the decoder calls whenever it
/// needs more bytes, so `FramedRead` never finds the buffer full and never
/// allocates on its own.
#[derive(Debug)]
pub(crate) struct ReadBuf {
    alloc: usize,
}

impl ReadBuf {
    /// For a read buffer made with `BytesMut::with_capacity(alloc)`.
    pub(crate) fn new(alloc: usize) -> Self {
        Self { alloc }
    }

    /// Size of the allocation the read buffer is in now.
    pub(crate) fn alloc(&self) -> usize {
        self.alloc
    }

    /// Makes room in `src` to read up to `want` bytes in all (the whole frame at its
    /// front, when its header is known) and at least one more: in the same
    /// allocation if it fits, or once no frame holds the chunk any more; else in a
    /// fresh chunk, or an allocation of exactly `want` bytes if that is more than a
    /// chunk. Only a chunk is reused: not a frame's own allocation, nor the first
    /// buffer (a link that filled it is in use: it goes on in chunks).
    pub(crate) fn make_room(&mut self, src: &mut BytesMut, want: usize) {
        let want = want.max(src.len() + 1);
        if src.capacity() >= want {
            return;
        }
        if self.alloc == CHUNK && want <= CHUNK && src.try_reclaim(want - src.len()) {
            return;
        }
        let alloc = want.max(CHUNK);
        let mut fresh = BytesMut::with_capacity(alloc);
        fresh.extend_from_slice(src);
        *src = fresh;
        self.alloc = alloc;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_relayed_frames_stay_in_place() {
        // (frame length, allocation it was read into, kept in place)
        let cases = [
            (100, CHUNK, false),
            (CHUNK / MAX_PIN - 1, CHUNK, false),
            (CHUNK / MAX_PIN, CHUNK, true),
            (CHUNK, CHUNK, true),
            // A big frame in its own allocation.
            (4 << 20, 4 << 20, true),
            // A small frame next to a big allocation (the defect).
            (20, 4 << 20, false),
            ((1 << 20) - 1, 4 << 20, false),
            (1 << 20, 4 << 20, true),
            (usize::MAX, 4 << 20, true),
        ];
        for (len, alloc, want) in cases {
            assert_eq!(keep_in_place(len, alloc), want, "{len} in {alloc}");
        }
    }

    #[test]
    fn room_is_made_in_known_allocations() {
        // (bytes in the buffer, its capacity, its allocation, want,
        //  allocation afterwards, a new one made)
        let cases = [
            (0, CHUNK, CHUNK, 5, CHUNK, false),
            (10, CHUNK, CHUNK, 100, CHUNK, false),
            // Full: at least one byte more, in a fresh chunk.
            (0, 0, CHUNK, 5, CHUNK, true),
            // A big frame: its own allocation, exactly its size.
            (100, CHUNK, CHUNK, 100_000, 100_000, true),
            // After it: a chunk again, however big the allocation before was.
            (0, 0, 100_000, 5, CHUNK, true),
            // The first buffer filled: a chunk.
            (10, FIRST, FIRST, FIRST + 1, CHUNK, true),
            (0, 0, FIRST, 5, CHUNK, true),
        ];
        for (len, cap, alloc, want, alloc_after, fresh) in cases {
            let mut src = BytesMut::with_capacity(cap + 1);
            // The tail shares the allocation, so it cannot be reclaimed.
            let _tail = src.split_off(cap);
            src.extend((0..len).map(|i| i as u8));
            let before = src.as_ptr();
            let mut rb = ReadBuf::new(alloc);
            rb.make_room(&mut src, want);
            let case = format!("{len} in {cap} of {alloc}, want {want}");
            assert_eq!(rb.alloc(), alloc_after, "{case}");
            assert_eq!(src.as_ptr() != before, fresh, "{case}");
            assert_eq!(src.len(), len, "{case}");
            assert!(src.capacity() >= want.max(len + 1), "{case}");
            assert!(src.iter().enumerate().all(|(i, b)| *b == i as u8), "{case}");
        }
    }

    #[test]
    fn a_chunk_nobody_holds_is_reused() {
        let mut src = BytesMut::with_capacity(CHUNK);
        src.resize(CHUNK, 7);
        let frame = src.split_to(CHUNK - 3); // read, and dropped at once
        drop(frame);
        let at = src.as_ptr() as usize - (CHUNK - 3);
        let mut rb = ReadBuf::new(CHUNK);
        rb.make_room(&mut src, 100);
        assert_eq!(src.as_ptr() as usize, at, "moved to the chunk's start");
        assert_eq!((&src[..], rb.alloc()), (&[7u8; 3][..], CHUNK));
        // Not the first buffer: a link that filled it goes on in chunks.
        let mut src = BytesMut::with_capacity(FIRST);
        src.resize(FIRST, 7);
        drop(src.split_to(FIRST - 3));
        let mut rb = ReadBuf::new(FIRST);
        rb.make_room(&mut src, 100);
        assert_eq!((&src[..], rb.alloc()), (&[7u8; 3][..], CHUNK));
        assert!(src.capacity() >= CHUNK);
    }
}
