//! The network test harness for integration tests: network namespaces the test creates for itself and a
//! TAP with an `AF_PACKET` socket on its host side. It lives in the library (`vmm::testing::netns`,
//! feature `test-support`) so the device's unit tests use the same code.
#![allow(unused_imports)]

pub use vmm::testing::netns::{NetNs, NetNsError, PacketSocket, TestTap};
