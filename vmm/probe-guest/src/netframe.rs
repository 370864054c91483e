//! virtio-net rules without a device (virtio 1.2 section 5.1): which features the probe asks for, how
//! big its receive buffers are, and how a received buffer (`virtio_net_hdr_v1` + Ethernet frame) is
//! turned into its echo. Host-testable; the rings are in net.rs.

pub const F_CSUM: u64 = 1 << 0;
pub const F_GUEST_CSUM: u64 = 1 << 1;
pub const F_MTU: u64 = 1 << 3;
pub const F_MAC: u64 = 1 << 5;
pub const F_GUEST_TSO4: u64 = 1 << 7;
pub const F_GUEST_TSO6: u64 = 1 << 8;
pub const F_HOST_TSO4: u64 = 1 << 11;
pub const F_HOST_TSO6: u64 = 1 << 12;
pub const F_STATUS: u64 = 1 << 16;

/// `virtio_net_hdr_v1`: flags u8, gso_type u8, hdr_len, gso_size, csum_start, csum_offset,
/// num_buffers (u16 each). With VIRTIO_F_VERSION_1 it is 12 bytes whatever else was negotiated.
pub const HDR_LEN: usize = 12;
const HDR_FLAGS: usize = 0;
const HDR_NUM_BUFFERS: usize = 10;
/// VIRTIO_NET_HDR_F_NEEDS_CSUM: the only flag with a meaning on the transmit queue (DATA_VALID and
/// RSC_INFO are receive-only, section 5.1.6.2).
const HDR_F_NEEDS_CSUM: u8 = 1;

pub const ETH_HLEN: usize = 14;
const VLAN_HLEN: usize = 4;
/// Receive buffers without GUEST_TSO/UFO: at least 1526 bytes (section 5.1.6.3.1), i.e. the header
/// and a 1514-byte frame; the probe adds room for a VLAN tag like Linux does.
const MIN_RX_BUFFER: usize = 1526;
/// With GUEST_TSO4/TSO6 and without MRG_RXBUF: at least 65562 bytes (section 5.1.6.3.1).
const GSO_RX_BUFFER: usize = 65562;
const DEFAULT_MTU: u16 = 1500;

/// The features the probe accepts from `offered`: always MAC, MTU and STATUS; with `offload` also the
/// checksum and TSO offloads, but only in receive/transmit pairs (the echo sends a frame back with the
/// header it arrived with, so every receive offload needs its transmit twin), and TSO only with its
/// checksum offload (section 5.1.3.1: GUEST_TSO4 requires GUEST_CSUM, HOST_TSO4 requires CSUM).
pub fn choose_features(offered: u64, offload: bool) -> u64 {
    let mut wanted = F_MAC | F_MTU | F_STATUS;
    let both = |a: u64, b: u64| offered & a != 0 && offered & b != 0;
    if offload && both(F_CSUM, F_GUEST_CSUM) {
        wanted |= F_CSUM | F_GUEST_CSUM;
        if both(F_HOST_TSO4, F_GUEST_TSO4) {
            wanted |= F_HOST_TSO4 | F_GUEST_TSO4;
        }
        if both(F_HOST_TSO6, F_GUEST_TSO6) {
            wanted |= F_HOST_TSO6 | F_GUEST_TSO6;
        }
    }
    offered & wanted
}

/// The MTU the driver works with: the device's (if VIRTIO_NET_F_MTU was negotiated) or 1500.
pub fn effective_mtu(features: u64, config_mtu: u16) -> u16 {
    if features & F_MTU != 0 && config_mtu != 0 {
        config_mtu
    } else {
        DEFAULT_MTU
    }
}

/// Bytes per receive chain (one descriptor per chain), rounded up to 64 for alignment: room for the
/// header and the largest frame the device may put in it.
pub fn rx_buffer_size(features: u64, mtu: u16) -> usize {
    let need = if features & (F_GUEST_TSO4 | F_GUEST_TSO6) != 0 {
        GSO_RX_BUFFER
    } else {
        (HDR_LEN + ETH_HLEN + VLAN_HLEN + mtu as usize).max(MIN_RX_BUFFER)
    };
    (need + 63) & !63
}

/// A received buffer too short to hold the header and an Ethernet header.
#[derive(Debug, PartialEq, Eq)]
pub struct Runt;

/// Turns a received buffer (header + frame, as the device returned it) into the buffer to transmit:
/// Ethernet destination := the received source, source := `mac` (the VMM drops frames from any other
/// source); the header keeps its offload fields (a GSO frame goes back as GSO, for the host to
/// segment) but only the flags that mean something on transmit, and num_buffers 0.
pub fn echo_rewrite(buf: &mut [u8], mac: &[u8; 6]) -> Result<(), Runt> {
    if buf.len() < HDR_LEN + ETH_HLEN {
        return Err(Runt);
    }
    buf[HDR_FLAGS] &= HDR_F_NEEDS_CSUM;
    buf[HDR_NUM_BUFFERS] = 0;
    buf[HDR_NUM_BUFFERS + 1] = 0;
    let eth = &mut buf[HDR_LEN..];
    eth.copy_within(6..12, 0);
    eth[6..12].copy_from_slice(mac);
    Ok(())
}

/// `52:54:00:12:34:56`.
pub fn fmt_mac(mac: &[u8; 6]) -> [u8; 17] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b':'; 17];
    for (i, b) in mac.iter().enumerate() {
        out[3 * i] = HEX[(b >> 4) as usize];
        out[3 * i + 1] = HEX[(b & 0xf) as usize];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFERED_BY_THE_VMM: u64 = F_CSUM
        | F_GUEST_CSUM
        | F_MTU
        | F_MAC
        | F_GUEST_TSO4
        | F_GUEST_TSO6
        | F_HOST_TSO4
        | F_HOST_TSO6
        | F_STATUS
        | (1 << 15);

    #[test]
    fn plain_mode_takes_no_offloads() {
        assert_eq!(
            choose_features(OFFERED_BY_THE_VMM, false),
            F_MAC | F_MTU | F_STATUS
        );
        assert_eq!(choose_features(0, false), 0);
    }

    #[test]
    fn offloads_come_in_receive_transmit_pairs_with_their_checksums() {
        let all = F_MAC | F_MTU | F_STATUS | F_CSUM | F_GUEST_CSUM;
        assert_eq!(
            choose_features(OFFERED_BY_THE_VMM, true),
            all | F_GUEST_TSO4 | F_GUEST_TSO6 | F_HOST_TSO4 | F_HOST_TSO6
        );
        // A receive offload without its transmit twin is refused.
        assert_eq!(
            choose_features(OFFERED_BY_THE_VMM & !F_HOST_TSO6, true),
            all | F_GUEST_TSO4 | F_HOST_TSO4
        );
        // No TSO without checksum offload.
        assert_eq!(
            choose_features(OFFERED_BY_THE_VMM & !F_CSUM, true),
            F_MAC | F_MTU | F_STATUS
        );
    }

    #[test]
    fn receive_buffers_hold_the_header_and_the_largest_frame() {
        assert_eq!(effective_mtu(F_MTU, 9000), 9000);
        assert_eq!(effective_mtu(0, 9000), 1500);
        assert_eq!(effective_mtu(F_MTU, 0), 1500);
        assert_eq!(rx_buffer_size(0, 1500), 1536);
        assert_eq!(rx_buffer_size(0, 68), 1536);
        assert_eq!(rx_buffer_size(0, 65535), 65600);
        assert_eq!(rx_buffer_size(F_GUEST_TSO4, 1500), 65600);
        for (f, mtu) in [(0, 1500), (0, 65535), (F_GUEST_TSO6, 1500)] {
            let n = rx_buffer_size(f, mtu);
            assert_eq!(n % 64, 0);
            assert!(n >= HDR_LEN + ETH_HLEN + mtu as usize);
        }
    }

    #[test]
    fn echo_swaps_addresses_and_keeps_offload_fields() {
        let own = [0x52, 0x54, 0, 0xaa, 0xbb, 0xcc];
        let mut buf = vec![0u8; HDR_LEN + 60];
        // flags DATA_VALID|NEEDS_CSUM, gso_type TCPV4, hdr_len, gso_size, csum, num_buffers 1
        buf[..HDR_LEN].copy_from_slice(&[3, 1, 54, 0, 0xb4, 5, 34, 0, 16, 0, 1, 0]);
        buf[HDR_LEN..HDR_LEN + 6].copy_from_slice(&own);
        buf[HDR_LEN + 6..HDR_LEN + 12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        buf[HDR_LEN + 12..HDR_LEN + 14].copy_from_slice(&[0x88, 0xb5]);
        for (i, b) in buf[HDR_LEN + 14..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let before = buf.clone();
        echo_rewrite(&mut buf, &own).unwrap();
        assert_eq!(&buf[..HDR_LEN], &[1, 1, 54, 0, 0xb4, 5, 34, 0, 16, 0, 0, 0]);
        assert_eq!(&buf[HDR_LEN..HDR_LEN + 6], &[2, 0, 0, 0, 0, 1]);
        assert_eq!(&buf[HDR_LEN + 6..HDR_LEN + 12], &own);
        assert_eq!(&buf[HDR_LEN + 12..], &before[HDR_LEN + 12..]);
    }

    #[test]
    fn runts_are_refused() {
        let mut buf = [0u8; HDR_LEN + ETH_HLEN - 1];
        assert_eq!(echo_rewrite(&mut buf, &[2, 0, 0, 0, 0, 1]), Err(Runt));
        let mut buf = [0u8; HDR_LEN + ETH_HLEN];
        assert_eq!(echo_rewrite(&mut buf, &[2, 0, 0, 0, 0, 1]), Ok(()));
    }

    #[test]
    fn macs_print_in_the_usual_form() {
        assert_eq!(
            &fmt_mac(&[0x52, 0x54, 0x00, 0x12, 0xab, 0xff]),
            b"52:54:00:12:ab:ff"
        );
    }
}
