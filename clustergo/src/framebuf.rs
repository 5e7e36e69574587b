//! Where small outgoing frames are encoded: slices of a per-thread chunk instead of
//! an allocation each.
//!
//! A frame is encoded by one task and freed by the peer's writer on another thread,
//! after it was copied into the write batch; with glibc that cross-thread
//! malloc/free pair was a good part of the allocator's 11–15 % of the call and
//! message profiles. Here a frame takes the unused end of its thread's chunk
//! ([`take`]) and is cut off it when done ([`finish`]); the chunk is freed when its
//! last frame is. A queued frame keeps its chunk ([`CHUNK`] bytes) alive, so only
//! frames expected under [`SMALL`] bytes use one.

use std::cell::Cell;

use bytes::{Bytes, BytesMut};

/// Size of a chunk: what one long-queued small frame can keep alive.
pub(crate) const CHUNK: usize = 8 * 1024;
/// Frames expected bigger than this get an allocation of their own.
pub(crate) const SMALL: usize = 512;

thread_local! {
    static SPARE: Cell<BytesMut> = Cell::new(BytesMut::new());
}

/// An empty buffer for a frame of about `len` bytes: the rest of this thread's
/// chunk (a fresh chunk when too little is left), or its own allocation when big.
/// Writing past the room it has still works (the frame then moves to its own
/// allocation).
pub(crate) fn take(len: usize) -> BytesMut {
    if len > SMALL {
        return BytesMut::with_capacity(len);
    }
    let spare = SPARE.with(Cell::take);
    if spare.capacity() >= len {
        spare
    } else {
        BytesMut::with_capacity(CHUNK)
    }
}

/// The frame written into `buf` (from [`take`]); what is left of the chunk goes
/// back to this thread for the next frame. What is left of a big frame's own
/// allocation does not: it would keep that allocation alive on this thread.
pub(crate) fn finish(mut buf: BytesMut) -> Bytes {
    let frame = buf.split().freeze();
    // The frame and the rest span the allocation from the frame's start on: more
    // than a chunk means the buffer grew (or was made) bigger than one, however
    // little of it is left.
    let rest = buf.capacity();
    if rest >= SMALL / 4 && frame.len() + rest <= CHUNK {
        SPARE.with(|s| s.set(buf));
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    #[test]
    fn frames_share_a_chunk_and_stay_intact() {
        let mut frames = Vec::new();
        for i in 0..200u32 {
            let mut buf = take(40);
            buf.put_u32(i);
            buf.put_slice(&[i as u8; 36]);
            frames.push(finish(buf));
        }
        // A frame written past its room, and a big one.
        let mut buf = take(8);
        buf.put_slice(&[7; 3 * CHUNK]);
        let grown = finish(buf);
        let mut buf = take(SMALL + 1);
        buf.put_slice(&[9; SMALL + 1]);
        let big = finish(buf);
        for (i, f) in frames.iter().enumerate() {
            assert_eq!(f.len(), 40);
            assert_eq!(&f[..4], &(i as u32).to_be_bytes());
            assert!(f[4..].iter().all(|&b| b == i as u8));
        }
        assert!(grown.len() == 3 * CHUNK && grown.iter().all(|&b| b == 7));
        assert!(big.len() == SMALL + 1 && big.iter().all(|&b| b == 9));
        // Consecutive small frames sit in one chunk.
        assert_eq!(frames[1].as_ptr(), frames[0].as_ptr().wrapping_add(40));
        // The rest of a big allocation is not kept for later frames.
        let mut buf = take(8);
        buf.reserve(16 * CHUNK);
        buf.put_slice(&[1; 10]);
        let _small_in_big = finish(buf);
        assert!(SPARE.with(|s| {
            let spare = s.take();
            let cap = spare.capacity();
            s.set(spare);
            cap <= CHUNK
        }));
    }

    /// A frame expected small but written big in small pieces (a message of many
    /// fields) grows its buffer by doubling; what is left of the last allocation
    /// may be under a chunk. Kept as the spare, it made the next small frames
    /// slices of that allocation: each one, queued, kept 64 KiB alive, not a chunk.
    #[test]
    fn the_rest_of_a_grown_frame_is_not_the_next_frames_buffer() {
        SPARE.with(Cell::take);
        let mut buf = take(40);
        for i in 0..15_000u32 {
            buf.put_u32(i);
        }
        let rest = buf.capacity() - buf.len();
        assert!(buf.len() > CHUNK && (SMALL / 4..=CHUNK).contains(&rest));
        let big = finish(buf);
        let mut buf = take(8);
        buf.put_u64(1);
        let small = finish(buf);
        assert_ne!(
            small.as_ptr(),
            big.as_ptr().wrapping_add(big.len()),
            "the next small frame is cut from the big frame's allocation"
        );
    }
}
