//! virtio-input: a keyboard or an absolute pointer ("tablet") fed from other threads.
//!
//! The control socket and the RFB server hold an [`InputHandle`] and push Linux `input_event`s; they are
//! queued and written into the guest's eventq as soon as it has buffers (signalling the IRQ). Events
//! sent before the driver is ready are kept, up to [`MAX_PENDING_EVENTS`] (oldest dropped, logged), and
//! delivered once it is. The handle and the device share that state through their own mutex, never
//! through the bus lock. LED events on the statusq are consumed and ignored.
//!
//! The configuration space answers the select/subsel queries Linux's `virtio_input` driver makes
//! (name, serial, device IDs, property bits, event bits, absolute axis info), see virtio 1.2 5.8.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use virtio_bindings::virtio_ids::VIRTIO_ID_INPUT;
use virtio_queue::{DescriptorChain, Queue, Writer};

use super::{
    add_used, pop_chain, warn_once, ActivateContext, GuestMemory, GuestMemoryT, Interrupt, VirtioDevice,
    VirtioError, VIRTIO_F_VERSION_1, VIRTIO_RING_F_INDIRECT_DESC,
};

pub const EV_SYN: u16 = 0x00;
pub const EV_KEY: u16 = 0x01;
pub const EV_REL: u16 = 0x02;
pub const EV_ABS: u16 = 0x03;
pub const EV_LED: u16 = 0x11;
pub const EV_REP: u16 = 0x14;
pub const SYN_REPORT: u16 = 0;
pub const ABS_X: u16 = 0x00;
pub const ABS_Y: u16 = 0x01;
pub const REL_HWHEEL: u16 = 0x06;
pub const REL_WHEEL: u16 = 0x08;
pub const BTN_LEFT: u16 = 0x110;
pub const BTN_RIGHT: u16 = 0x111;
pub const BTN_MIDDLE: u16 = 0x112;
/// Highest keyboard key code advertised (KEY_MICMUTE); codes 1..=this are the standard keys.
pub const KEY_LAST_STANDARD: u16 = 248;
const LED_NUML: u16 = 0;
const LED_CAPSL: u16 = 1;
const LED_SCROLLL: u16 = 2;
const INPUT_PROP_DIRECT: u16 = 0x01;
const BUS_VIRTUAL: u16 = 0x06;
/// Vendor/product IDs reported in ID_DEVIDS.
const ID_VENDOR: u16 = 0x5056;
const ID_PRODUCT_KEYBOARD: u16 = 0x0001;
const ID_PRODUCT_TABLET: u16 = 0x0002;

const CFG_UNSET: u8 = 0x00;
const CFG_ID_NAME: u8 = 0x01;
const CFG_ID_SERIAL: u8 = 0x02;
const CFG_ID_DEVIDS: u8 = 0x03;
const CFG_PROP_BITS: u8 = 0x10;
const CFG_EV_BITS: u8 = 0x11;
const CFG_ABS_INFO: u8 = 0x12;
/// select, subsel, size, 5 reserved bytes, 128-byte payload.
const CONFIG_LEN: usize = 136;
const CONFIG_PAYLOAD: usize = 128;

/// Size of each of the two queues.
pub const QUEUE_SIZE: u16 = 64;
/// Events kept while the guest has no buffers; older ones are dropped beyond this.
pub const MAX_PENDING_EVENTS: usize = 1024;
/// Size of a `virtio_input_event` in the guest.
const EVENT_LEN: usize = 8;

/// What the device presents to the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputKind {
    /// All standard keys, LEDs, autorepeat done by the guest.
    Keyboard,
    /// Absolute pointer: ABS_X in 0..width-1, ABS_Y in 0..height-1, left/right/middle buttons, wheels.
    Tablet { width: u32, height: u32 },
}

/// A Linux `input_event` without the timestamp (`virtio_input_event`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InputEvent {
    pub type_: u16,
    pub code: u16,
    /// Signed values (relative motion) are passed as their two's complement.
    pub value: u32,
}

impl InputEvent {
    pub fn new(type_: u16, code: u16, value: u32) -> Self {
        Self { type_, code, value }
    }

    /// EV_SYN/SYN_REPORT: ends a group of events.
    pub fn syn() -> Self {
        Self::new(EV_SYN, SYN_REPORT, 0)
    }

    fn to_le_bytes(self) -> [u8; EVENT_LEN] {
        let mut b = [0u8; EVENT_LEN];
        b[0..2].copy_from_slice(&self.type_.to_le_bytes());
        b[2..4].copy_from_slice(&self.code.to_le_bytes());
        b[4..8].copy_from_slice(&self.value.to_le_bytes());
        b
    }
}

/// A live queue together with what is needed to use it.
struct Active {
    mem: GuestMemory,
    interrupt: Interrupt,
    queue: Queue,
}

/// State shared between the device (vCPU thread) and its handles (other threads).
struct Shared {
    pending: VecDeque<InputEvent>,
    dropped: u64,
    eventq: Option<Active>,
}

impl Shared {
    fn push(&mut self, ev: InputEvent) {
        if self.pending.len() >= MAX_PENDING_EVENTS {
            self.pending.pop_front();
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(
                    dropped = self.dropped,
                    "virtio-input: guest not taking events; oldest dropped"
                );
            }
        }
        self.pending.push_back(ev);
    }

    /// Moves pending events into eventq buffers while both exist.
    fn deliver(&mut self) {
        let Shared { pending, eventq, .. } = self;
        let Some(Active {
            mem,
            interrupt,
            queue,
        }) = eventq.as_mut()
        else {
            return;
        };
        let mut used_any = false;
        let mut failed = None;
        while let Some(ev) = pending.front().copied() {
            let chain = match pop_chain(queue, &*mem, 0) {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            };
            let head = chain.head_index();
            let written = write_event(mem, chain, ev);
            if written {
                pending.pop_front();
            }
            if let Err(e) = add_used(queue, &*mem, 0, head, if written { EVENT_LEN as u32 } else { 0 }) {
                failed = Some(e);
                break;
            }
            used_any = true;
        }
        if used_any {
            interrupt.signal_used_queue();
        }
        if let Some(e) = failed {
            tracing::warn!(error = %e, "virtio-input: eventq broken; device needs reset");
            interrupt.set_needs_reset();
            *eventq = None;
        }
    }
}

fn write_event<M: GuestMemoryT>(mem: &M, chain: DescriptorChain<&M>, ev: InputEvent) -> bool {
    let mut writer: Writer<'_, _> = match chain.writer(mem) {
        Ok(w) => w,
        Err(_) => {
            warn_once!("virtio-input: event buffer outside guest memory");
            return false;
        }
    };
    if writer.available_bytes() < EVENT_LEN {
        warn_once!(
            len = writer.available_bytes(),
            "virtio-input: event buffer too small"
        );
        return false;
    }
    writer.write_obj(ev.to_le_bytes()).is_ok()
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    // A panic while holding the lock cannot leave `Shared` inconsistent in a harmful way.
    shared.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The virtio-input device as the transport sees it.
pub struct Input {
    kind: InputKind,
    name: String,
    select: u8,
    subsel: u8,
    shared: Arc<Mutex<Shared>>,
    statusq: Option<Active>,
}

/// Sends events to an [`Input`] device from any thread.
#[derive(Clone)]
pub struct InputHandle {
    kind: InputKind,
    shared: Arc<Mutex<Shared>>,
}

impl Input {
    pub fn new(kind: InputKind, name: &str) -> (Input, InputHandle) {
        let shared = Arc::new(Mutex::new(Shared {
            pending: VecDeque::new(),
            dropped: 0,
            eventq: None,
        }));
        let input = Input {
            kind,
            name: name.to_owned(),
            select: CFG_UNSET,
            subsel: 0,
            shared: shared.clone(),
            statusq: None,
        };
        (input, InputHandle { kind, shared })
    }

    /// The payload for the current select/subsel; empty means "size 0" (not supported).
    fn config_payload(&self) -> Vec<u8> {
        match (self.select, self.subsel) {
            (CFG_ID_NAME, 0) => truncated(self.name.as_bytes()),
            (CFG_ID_SERIAL, 0) => truncated(match self.kind {
                InputKind::Keyboard => b"keyboard",
                InputKind::Tablet { .. } => b"tablet",
            }),
            (CFG_ID_DEVIDS, 0) => {
                let product = match self.kind {
                    InputKind::Keyboard => ID_PRODUCT_KEYBOARD,
                    InputKind::Tablet { .. } => ID_PRODUCT_TABLET,
                };
                [BUS_VIRTUAL, ID_VENDOR, product, 1]
                    .iter()
                    .flat_map(|v| v.to_le_bytes())
                    .collect()
            }
            (CFG_PROP_BITS, 0) => match self.kind {
                InputKind::Keyboard => Vec::new(),
                InputKind::Tablet { .. } => bitmap(&[INPUT_PROP_DIRECT]),
            },
            (CFG_EV_BITS, ev) => self.event_bits(u16::from(ev)),
            (CFG_ABS_INFO, axis) => match self.kind {
                InputKind::Tablet { width, height } => {
                    let max = match u16::from(axis) {
                        ABS_X => width.saturating_sub(1),
                        ABS_Y => height.saturating_sub(1),
                        _ => return Vec::new(),
                    };
                    // min, max, fuzz, flat, res
                    [0u32, max, 0, 0, 0]
                        .iter()
                        .flat_map(|v| v.to_le_bytes())
                        .collect()
                }
                InputKind::Keyboard => Vec::new(),
            },
            _ => Vec::new(),
        }
    }

    fn event_bits(&self, ev_type: u16) -> Vec<u8> {
        match (self.kind, ev_type) {
            (InputKind::Keyboard, EV_KEY) => bitmap(&(1..=KEY_LAST_STANDARD).collect::<Vec<_>>()),
            (InputKind::Keyboard, EV_LED) => bitmap(&[LED_NUML, LED_CAPSL, LED_SCROLLL]),
            // A non-empty answer enables EV_REP: the guest's input core does the autorepeat.
            (InputKind::Keyboard, EV_REP) => vec![0],
            (InputKind::Tablet { .. }, EV_KEY) => bitmap(&[BTN_LEFT, BTN_RIGHT, BTN_MIDDLE]),
            (InputKind::Tablet { .. }, EV_ABS) => bitmap(&[ABS_X, ABS_Y]),
            (InputKind::Tablet { .. }, EV_REL) => bitmap(&[REL_HWHEEL, REL_WHEEL]),
            _ => Vec::new(),
        }
    }

    fn config_bytes(&self) -> [u8; CONFIG_LEN] {
        let mut cfg = [0u8; CONFIG_LEN];
        cfg[0] = self.select;
        cfg[1] = self.subsel;
        let payload = self.config_payload();
        let n = payload.len().min(CONFIG_PAYLOAD);
        cfg[2] = n as u8;
        cfg[8..8 + n].copy_from_slice(&payload[..n]);
        cfg
    }

    fn process_statusq(&mut self) -> Result<(), VirtioError> {
        let Some(Active {
            mem,
            interrupt,
            queue,
        }) = self.statusq.as_mut()
        else {
            return Ok(());
        };
        let mut used_any = false;
        let result = loop {
            let chain = match pop_chain(queue, &*mem, 1) {
                Ok(Some(c)) => c,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            };
            let head = chain.head_index();
            if let Err(e) = add_used(queue, &*mem, 1, head, 0) {
                break Err(e);
            }
            used_any = true;
        };
        if used_any {
            interrupt.signal_used_queue();
        }
        result
    }
}

fn truncated(s: &[u8]) -> Vec<u8> {
    s[..s.len().min(CONFIG_PAYLOAD)].to_vec()
}

/// A little-endian bitmap with the given bits set, as long as the highest bit needs.
fn bitmap(bits: &[u16]) -> Vec<u8> {
    let Some(max) = bits.iter().max() else {
        return Vec::new();
    };
    let mut map = vec![0u8; usize::from(*max) / 8 + 1];
    for &b in bits {
        map[usize::from(b) / 8] |= 1 << (b % 8);
    }
    map
}

impl InputHandle {
    /// Queues events and delivers as many as the guest has buffers for (signalling the IRQ).
    pub fn send(&self, events: &[InputEvent]) {
        let mut shared = lock(&self.shared);
        for &ev in events {
            shared.push(ev);
        }
        shared.deliver();
    }

    /// A key press or release followed by SYN_REPORT.
    pub fn send_key(&self, linux_keycode: u16, pressed: bool) {
        self.send(&[
            InputEvent::new(EV_KEY, linux_keycode, u32::from(pressed)),
            InputEvent::syn(),
        ]);
    }

    /// What the device presents (a tablet's coordinate range is `0..width` x `0..height`).
    pub fn kind(&self) -> InputKind {
        self.kind
    }

    /// Number of events waiting for guest buffers.
    pub fn pending(&self) -> usize {
        lock(&self.shared).pending.len()
    }
}

impl VirtioDevice for Input {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_INPUT
    }

    fn queue_max_sizes(&self) -> &[u16] {
        &[QUEUE_SIZE, QUEUE_SIZE]
    }

    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | VIRTIO_RING_F_INDIRECT_DESC
    }

    fn config_len(&self) -> usize {
        CONFIG_LEN
    }

    fn read_config(&self, offset: usize, data: &mut [u8]) {
        let cfg = self.config_bytes();
        match cfg.get(offset..offset.saturating_add(data.len())) {
            Some(src) => data.copy_from_slice(src),
            None => data.fill(0),
        }
    }

    fn write_config(&mut self, offset: usize, data: &[u8]) {
        for (i, &b) in data.iter().enumerate() {
            match offset + i {
                0 => self.select = b,
                1 => self.subsel = b,
                other => warn_once!(
                    offset = other,
                    "virtio-input: write to read-only config byte ignored"
                ),
            }
        }
    }

    fn activate(&mut self, ctx: ActivateContext) -> Result<(), VirtioError> {
        let got = ctx.queues.len();
        let mut queues = ctx.queues.into_iter();
        let (Some(eventq), Some(statusq)) = (queues.next(), queues.next()) else {
            return Err(VirtioError::ActivateQueueCount { expected: 2, got });
        };
        self.statusq = Some(Active {
            mem: ctx.mem.clone(),
            interrupt: ctx.interrupt.clone(),
            queue: statusq,
        });
        let mut shared = lock(&self.shared);
        shared.eventq = Some(Active {
            mem: ctx.mem,
            interrupt: ctx.interrupt,
            queue: eventq,
        });
        shared.deliver();
        Ok(())
    }

    fn process_queue(&mut self, index: usize) -> Result<(), VirtioError> {
        match index {
            0 => {
                lock(&self.shared).deliver();
                Ok(())
            }
            1 => self.process_statusq(),
            other => Err(VirtioError::NotifyUnknownQueue(other)),
        }
    }

    fn reset(&mut self) {
        self.statusq = None;
        lock(&self.shared).eventq = None;
        self.select = CFG_UNSET;
        self.subsel = 0;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::virtio::testutil::{counting_irq, memory, r, w, CountingIrq, DriverQueue};

    const KEY_A: u16 = 30;

    fn select(dev: &mut Input, sel: u8, subsel: u8) -> Vec<u8> {
        dev.write_config(0, &[sel, subsel]);
        let mut size = [0u8];
        dev.read_config(2, &mut size);
        let mut payload = vec![0u8; usize::from(size[0])];
        dev.read_config(8, &mut payload);
        payload
    }

    fn has_bit(map: &[u8], bit: u16) -> bool {
        map.get(usize::from(bit) / 8)
            .is_some_and(|b| b & (1 << (bit % 8)) != 0)
    }

    struct Fixture {
        dev: Input,
        handle: InputHandle,
        eventq: DriverQueue,
        statusq: DriverQueue,
        irq: Arc<CountingIrq>,
        next_buf: u64,
    }

    fn activated(kind: InputKind, pending: &[InputEvent]) -> Fixture {
        let (mut dev, handle) = Input::new(kind, "test input");
        handle.send(pending);
        let mem = memory();
        let eventq = DriverQueue::new(&mem, 0x1000, 16);
        let statusq = DriverQueue::new(&mem, 0x2000, 16);
        let irq = counting_irq();
        dev.activate(ActivateContext {
            mem,
            interrupt: Interrupt::new(irq.clone()),
            queues: vec![eventq.queue(), statusq.queue()],
            acked_features: dev.features(),
        })
        .unwrap();
        Fixture {
            dev,
            handle,
            eventq,
            statusq,
            irq,
            next_buf: 0x10000,
        }
    }

    impl Fixture {
        fn add_buffers(&mut self, n: usize) {
            for _ in 0..n {
                self.eventq.add_chain(&[w(self.next_buf, 8)]);
                self.next_buf += 8;
            }
            self.dev.process_queue(0).unwrap();
        }

        /// Events the guest has received so far, in used-ring order.
        fn received(&self) -> Vec<InputEvent> {
            (0..self.eventq.used_idx())
                .filter_map(|i| {
                    let (head, len) = self.eventq.used_elem(i);
                    (len == 8).then(|| {
                        let b = self.eventq.read_bytes(0x10000 + 8 * u64::from(head), 8);
                        InputEvent::new(
                            u16::from_le_bytes([b[0], b[1]]),
                            u16::from_le_bytes([b[2], b[3]]),
                            u32::from_le_bytes([b[4], b[5], b[6], b[7]]),
                        )
                    })
                })
                .collect()
        }
    }

    #[test]
    fn keyboard_config_describes_a_keyboard() {
        let (mut dev, _h) = Input::new(InputKind::Keyboard, "Portal Keyboard");
        assert_eq!(select(&mut dev, CFG_ID_NAME, 0), b"Portal Keyboard");
        assert!(!select(&mut dev, CFG_ID_SERIAL, 0).is_empty());
        let ids = select(&mut dev, CFG_ID_DEVIDS, 0);
        assert_eq!(ids.len(), 8);
        assert_eq!(u16::from_le_bytes([ids[0], ids[1]]), BUS_VIRTUAL);
        let keys = select(&mut dev, CFG_EV_BITS, EV_KEY as u8);
        for key in [
            1u16, KEY_A, 28,  /* enter */
            42,  /* lshift */
            103, /* up */
            125, /* meta */
        ] {
            assert!(has_bit(&keys, key), "key {key} advertised");
        }
        assert!(!has_bit(&keys, BTN_LEFT), "a keyboard is not a mouse");
        assert!(!select(&mut dev, CFG_EV_BITS, EV_REP as u8).is_empty());
        assert!(has_bit(&select(&mut dev, CFG_EV_BITS, EV_LED as u8), LED_CAPSL));
        assert!(select(&mut dev, CFG_EV_BITS, EV_ABS as u8).is_empty());
        assert!(select(&mut dev, CFG_ABS_INFO, 0).is_empty());
        assert!(select(&mut dev, 0x7f, 0).is_empty(), "unknown select has size 0");
    }

    #[test]
    fn tablet_config_describes_an_absolute_pointer() {
        let (mut dev, _h) = Input::new(
            InputKind::Tablet {
                width: 1024,
                height: 768,
            },
            "Portal Tablet",
        );
        let buttons = select(&mut dev, CFG_EV_BITS, EV_KEY as u8);
        assert!(has_bit(&buttons, BTN_LEFT) && has_bit(&buttons, BTN_RIGHT) && has_bit(&buttons, BTN_MIDDLE));
        let abs = select(&mut dev, CFG_EV_BITS, EV_ABS as u8);
        assert!(has_bit(&abs, ABS_X) && has_bit(&abs, ABS_Y));
        assert!(has_bit(&select(&mut dev, CFG_EV_BITS, EV_REL as u8), REL_WHEEL));
        assert!(has_bit(&select(&mut dev, CFG_PROP_BITS, 0), INPUT_PROP_DIRECT));
        let x = select(&mut dev, CFG_ABS_INFO, ABS_X as u8);
        assert_eq!(x.len(), 20);
        assert_eq!(u32::from_le_bytes([x[0], x[1], x[2], x[3]]), 0);
        assert_eq!(u32::from_le_bytes([x[4], x[5], x[6], x[7]]), 1023);
        let y = select(&mut dev, CFG_ABS_INFO, ABS_Y as u8);
        assert_eq!(u32::from_le_bytes([y[4], y[5], y[6], y[7]]), 767);
        // Config reads of any width and offset within the 136 bytes.
        let mut word = [0u8; 4];
        dev.read_config(0, &mut word);
        assert_eq!(word[..3], [CFG_ABS_INFO, ABS_Y as u8, 20]);
    }

    #[test]
    fn events_are_delivered_in_order_with_an_interrupt() {
        let mut f = activated(InputKind::Keyboard, &[]);
        f.add_buffers(4);
        f.handle.send_key(KEY_A, true);
        f.handle.send_key(KEY_A, false);
        assert_eq!(
            f.received(),
            vec![
                InputEvent::new(EV_KEY, KEY_A, 1),
                InputEvent::syn(),
                InputEvent::new(EV_KEY, KEY_A, 0),
                InputEvent::syn()
            ]
        );
        assert!(f.irq.count() >= 1);
        assert_eq!(f.handle.pending(), 0);
    }

    #[test]
    fn events_wait_for_buffers_and_keep_their_order() {
        let early = [
            InputEvent::new(EV_KEY, 2, 1),
            InputEvent::syn(),
            InputEvent::new(EV_KEY, 2, 0),
        ];
        let mut f = activated(InputKind::Keyboard, &early);
        assert_eq!(f.handle.pending(), 3, "kept until the driver offers buffers");
        f.add_buffers(2);
        assert_eq!(f.received(), early[..2]);
        f.handle.send(&[InputEvent::syn()]);
        assert_eq!(f.handle.pending(), 2);
        let irqs = f.irq.count();
        f.add_buffers(8);
        assert_eq!(f.received(), [&early[..], &[InputEvent::syn()]].concat());
        assert!(f.irq.count() > irqs);
    }

    #[test]
    fn pending_events_are_bounded_oldest_dropped() {
        let (_dev, handle) = Input::new(InputKind::Keyboard, "k");
        for i in 0..(MAX_PENDING_EVENTS + 10) {
            handle.send(&[InputEvent::new(EV_KEY, 1, i as u32)]);
        }
        assert_eq!(handle.pending(), MAX_PENDING_EVENTS);
        assert_eq!(lock(&handle.shared).pending.front().map(|e| e.value), Some(10));
    }

    #[test]
    fn bad_event_buffers_are_returned_empty() {
        let mut f = activated(InputKind::Keyboard, &[]);
        f.eventq.add_chain(&[w(0x10000, 4)]); // too small
        f.eventq.add_chain(&[r(0x10008, 8)]); // not writable
        f.eventq.add_chain(&[w(0x4000_0000, 8)]); // outside memory
        f.next_buf = 0x10000 + 8 * 3;
        f.add_buffers(1);
        f.handle.send_key(KEY_A, true);
        assert_eq!(f.eventq.used_idx(), 4);
        assert_eq!(f.received(), vec![InputEvent::new(EV_KEY, KEY_A, 1)]);
        assert_eq!(f.handle.pending(), 1, "SYN waits for the next buffer");
    }

    #[test]
    fn status_queue_is_consumed() {
        let mut f = activated(InputKind::Keyboard, &[]);
        f.statusq
            .write_bytes(0x30000, &InputEvent::new(EV_LED, LED_CAPSL, 1).to_le_bytes());
        f.statusq.add_chain(&[r(0x30000, 8)]);
        f.dev.process_queue(1).unwrap();
        assert_eq!(f.statusq.used_idx(), 1);
        assert_eq!(f.statusq.used_elem(0), (0, 0));
        assert!(f.dev.process_queue(2).is_err());
    }

    #[test]
    fn reset_detaches_the_guest_but_keeps_new_events() {
        let mut f = activated(InputKind::Keyboard, &[]);
        f.add_buffers(2);
        f.dev.reset();
        f.handle.send_key(KEY_A, true);
        assert_eq!(
            f.eventq.used_idx(),
            0,
            "nothing written into a reset device's memory"
        );
        assert_eq!(f.handle.pending(), 2);
    }

    #[test]
    fn handles_work_from_other_threads() {
        let mut f = activated(
            InputKind::Tablet {
                width: 800,
                height: 600,
            },
            &[],
        );
        f.add_buffers(12);
        let threads: Vec<_> = (0..3)
            .map(|t| {
                let h = f.handle.clone();
                std::thread::spawn(move || {
                    h.send(&[
                        InputEvent::new(EV_ABS, ABS_X, t),
                        InputEvent::new(EV_ABS, ABS_Y, t),
                    ]);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let got = f.received();
        assert_eq!(got.len(), 6);
        // Each sender's pair stays together and in order.
        for pair in got.chunks(2) {
            assert_eq!((pair[0].code, pair[1].code), (ABS_X, ABS_Y));
            assert_eq!(pair[0].value, pair[1].value);
        }
    }
}
