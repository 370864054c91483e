//! virtio-rng (entropy) driver: fills a buffer with device randomness (virtio 1.2 section 5.4).

use crate::arena;
use crate::virtio::{Error, Queue, Transport, DESC_F_WRITE};

pub const MAX_BYTES: usize = 64;
/// Requests per call before giving up on a device that returns short reads.
const MAX_ROUNDS: usize = 16;

pub struct Rng {
    transport: Transport,
    queue: Queue,
    buf: *mut u8,
    failed: bool,
}

impl Rng {
    pub fn init(transport: Transport) -> Result<Self, Error> {
        transport.negotiate(0)?;
        let queue = transport.setup_queue(0)?;
        let buf = arena::alloc(MAX_BYTES, 64).ok_or(Error::OutOfMemory)?;
        transport.driver_ok();
        Ok(Self {
            transport,
            queue,
            buf,
            failed: false,
        })
    }

    /// Fills `out` (≤ MAX_BYTES) with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) -> Result<(), Error> {
        if self.failed {
            return Err(Error::DeviceFailed);
        }
        let mut done = 0;
        for _ in 0..MAX_ROUNDS {
            if done >= out.len() {
                return Ok(());
            }
            let want = (out.len() - done).min(MAX_BYTES);
            self.queue
                .set_desc(0, self.buf as u64, want as u32, DESC_F_WRITE, 0);
            let got = match self.queue.submit_and_wait(0) {
                Ok(n) => (n as usize).min(want),
                Err(e) => {
                    self.failed = true;
                    self.transport.reset();
                    return Err(e);
                }
            };
            // SAFETY: the device wrote `got` ≤ MAX_BYTES bytes into `buf` and is done with it.
            unsafe { core::ptr::copy_nonoverlapping(self.buf, out[done..].as_mut_ptr(), got) };
            done += got;
        }
        if done >= out.len() {
            Ok(())
        } else {
            Err(Error::BadResponse)
        }
    }
}
