//! The message API: registering pb and binary handlers, and sending messages.

use bytes::{BufMut, Bytes};

use super::{Node, SendError};
use crate::addr::LogicAddr;
use crate::codec::{Frame, FrameKind};
use crate::framebuf;

impl Node {
    /// Registers prost type `M` under `cmd`, for sending with [`send_pb`](Self::send_pb).
    pub fn register_pb_message<M: prost::Message + Default + 'static>(&self, cmd: u16) {
        self.inner.messages.register_type::<M>(cmd);
    }

    /// Registers `M` under `cmd` and the handler for received `M`s.
    pub fn register_pb_handler<M, F>(&self, cmd: u16, handler: F)
    where
        M: prost::Message + Default + 'static,
        F: Fn(LogicAddr, M) + Send + Sync + 'static,
    {
        self.inner.messages.register_pb(cmd, handler);
    }

    /// Registers the handler for binary messages with `cmd`.
    pub fn register_bin_handler<F>(&self, cmd: u16, handler: F)
    where
        F: Fn(LogicAddr, u16, Bytes) + Send + Sync + 'static,
    {
        self.inner.messages.register_bin(cmd, handler);
    }

    /// Sends a protobuf message (its type registered first) to `to`.
    ///
    /// `Ok` means queued for `to`'s link, not delivered: the message is still
    /// dropped, and counted in [`Metrics`](crate::Metrics), if it is not written
    /// within `Config::send_timeout` (`frames_expired`), if the peer turns out down
    /// or stops reading (`frames_dropped`), or if the link breaks under it. On a
    /// healthy cluster none of these happens.
    pub fn send_pb<M: prost::Message + 'static>(
        &self,
        to: LogicAddr,
        msg: &M,
    ) -> Result<(), SendError> {
        let cmd = self
            .inner
            .messages
            .cmd_of::<M>()
            .ok_or(SendError::Unregistered(std::any::type_name::<M>()))?;
        let run = self.inner.running().ok_or(SendError::NotStarted)?;
        let len = msg.encoded_len();
        let mut buf = framebuf::take(Frame::HEADER_MAX + len);
        Frame::put_header(&mut buf, FrameKind::Pb, to, run.local, cmd, len);
        msg.encode(&mut buf)
            .map_err(|e| SendError::Encode(e.to_string()))?;
        self.inner.send_frame(to, framebuf::finish(buf), None)
    }

    /// Sends a binary message to `to`; `Ok` means queued, as for
    /// [`send_pb`](Self::send_pb).
    pub fn send_bin(&self, to: LogicAddr, cmd: u16, body: &[u8]) -> Result<(), SendError> {
        let run = self.inner.running().ok_or(SendError::NotStarted)?;
        let mut buf = framebuf::take(Frame::HEADER_MAX + body.len());
        Frame::put_header(&mut buf, FrameKind::Binary, to, run.local, cmd, body.len());
        buf.put_slice(body);
        self.inner.send_frame(to, framebuf::finish(buf), None)
    }
}
