//! Test frames for the virtio-net test and benchmark: Ethernet frames of the local experimental
//! ethertype 0x88b5 whose payload is a sequence number, the frame length and a pattern derived from
//! both, and the check that what came back is the echo of one of them (the probe guest's `net echo`:
//! the same bytes with the addresses swapped, source = the guest's MAC).

/// IEEE 802 local experimental ethertype 1: never a protocol the host kernel answers.
pub const ETHERTYPE: u16 = 0x88b5;
/// Smallest frame the test sends (an Ethernet minimum without FCS) and the largest at MTU 1500.
pub const MIN_LEN: usize = 60;
pub const MAX_LEN_1500: usize = 1514;
/// Ethernet header, sequence number, length.
const HEADER: usize = 14 + 4 + 4;

/// A deterministic mix of lengths in MIN_LEN..=MAX_LEN_1500 that includes both ends often.
pub fn mixed_len(seq: u32) -> usize {
    match seq % 7 {
        0 => MIN_LEN,
        1 => MAX_LEN_1500,
        _ => {
            let spread = (seq.wrapping_mul(2_654_435_761) >> 8) as usize;
            MIN_LEN + spread % (MAX_LEN_1500 - MIN_LEN + 1)
        }
    }
}

/// Byte `i` of the payload of frame `seq` of `len` bytes.
pub fn pattern(seq: u32, len: usize, i: usize) -> u8 {
    (seq as usize)
        .wrapping_mul(31)
        .wrapping_add(len.wrapping_mul(7))
        .wrapping_add(i.wrapping_mul(13)) as u8
}

/// Frame `seq` of `len` bytes (≥ 22) from `src` to `dst`.
pub fn frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
    assert!(len >= HEADER, "frame of {len} bytes cannot hold the test header");
    let mut f = Vec::with_capacity(len);
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ETHERTYPE.to_be_bytes());
    f.extend_from_slice(&seq.to_be_bytes());
    f.extend_from_slice(&(len as u32).to_be_bytes());
    f.extend((HEADER..len).map(|i| pattern(seq, len, i)));
    f
}

/// The sequence number of a test frame (None for anything else).
pub fn seq_of(f: &[u8]) -> Option<u32> {
    if f.len() < HEADER || f[12..14] != ETHERTYPE.to_be_bytes() {
        return None;
    }
    Some(u32::from_be_bytes([f[14], f[15], f[16], f[17]]))
}

/// Checks that `got` is the echo of `sent` (a frame from `host` to `guest`): from `guest` to `host`,
/// every other byte unchanged. The error names the first difference.
pub fn check_echo(sent: &[u8], got: &[u8], guest: [u8; 6], host: [u8; 6]) -> Result<(), String> {
    if got.len() != sent.len() {
        return Err(format!("length {} instead of {}", got.len(), sent.len()));
    }
    if got[..6] != host {
        return Err(format!("destination {:02x?} instead of {host:02x?}", &got[..6]));
    }
    if got[6..12] != guest {
        return Err(format!("source {:02x?} instead of {guest:02x?}", &got[6..12]));
    }
    match (12..sent.len()).find(|&i| got[i] != sent[i]) {
        Some(i) => Err(format!("byte {i} is {:#04x} instead of {:#04x}", got[i], sent[i])),
        None => Ok(()),
    }
}
