//! nft itself accepts every rendered ruleset — ordinary, empty, odd and large states — and apply/remove
//! replace and delete the tables as a whole. `nft -c` still talks to the kernel (it runs the
//! transaction and aborts it) and needs `CAP_NET_ADMIN`, so all of it runs in a namespace made here.
//! Root only; skips loudly otherwise.

mod common;

use std::net::Ipv4Addr;

use common::{can_run, generated_state, run, Namespaces};
use netplane::state::{FloatingIp, PortForward, Protocol, Rule, Source};
use netplane::{nft, ruleset, NetState};

/// States chosen to stress the rendering: edge values, things render must leave out, nothing at all.
fn odd_states() -> Vec<(&'static str, NetState)> {
    let base = generated_state(2, 3);
    let mut states = vec![("empty", NetState::default()), ("small", base.clone())];

    let mut s = base.clone();
    s.uplink = None;
    s.metadata_port = None;
    states.push(("isolated, no metadata", s));

    let mut s = base.clone();
    let rules = &mut s.security_groups[0].rules;
    for protocol in [Protocol::Any, Protocol::Tcp, Protocol::Udp, Protocol::Icmp] {
        for ports in [None, Some((0, 0)), Some((65535, 1)), Some((1, 65535))] {
            for source in [
                Source::Cidr("0.0.0.0/0".parse().expect("cidr")),
                Source::Cidr("10.0.0.77/8".parse().expect("cidr")),
                Source::Cidr("255.255.255.255/32".parse().expect("cidr")),
                Source::Group("t0-web".into()),
                Source::Group("no-such-group".into()),
            ] {
                rules.push(Rule {
                    protocol,
                    ports,
                    source,
                });
            }
        }
    }
    s.networks[0].ports[0].security_groups.push("unknown".into());
    s.networks[0].ports[1].security_groups.clear();
    states.push(("every rule shape", s));

    let mut s = base.clone();
    s.networks[0].cidr = "10.0.0.0/8".parse().expect("cidr");
    let twin = s.networks[0].ports[0].clone();
    s.networks[0].ports.push(twin.clone());
    s.networks[0].ports.push(netplane::state::Port {
        tap: "tap-twin".into(),
        ..twin
    });
    s.networks.push(s.networks[1].clone());
    s.networks[1].ports[0].tap = "tap \"x\"".into();
    s.networks[1].ports[1].tap = "tap*".into();
    s.networks[1].ports[2].tap = "tap-0123456789ab".into();
    s.floating_ips.push(s.floating_ips[0].clone());
    s.floating_ips.push(FloatingIp {
        id: "on the uplink".into(),
        address: Ipv4Addr::new(198, 51, 100, 1),
        fixed_ip: Ipv4Addr::new(10, 0, 0, 99),
    });
    s.port_forwards.push(s.port_forwards[0].clone());
    for (protocol, host_port) in [(Protocol::Any, 0), (Protocol::Icmp, 1), (Protocol::Udp, 65535)] {
        s.port_forwards.push(PortForward {
            id: "odd \"forward\"\n".into(),
            protocol,
            host_port,
            vm_ip: Ipv4Addr::new(10, 0, 0, 10),
            vm_port: 0,
        });
    }
    s.metadata_port = Some(0);
    assert!(ruleset::validate(&s).is_err());
    states.push(("duplicates, overlaps and bad names", s));

    states.push(("100 tenants, 1000 VMs", generated_state(100, 10)));
    states
}

#[test]
fn nft_accepts_every_rendered_ruleset_and_apply_replaces_it_whole() {
    if !can_run("nft_accepts_every_rendered_ruleset_and_apply_replaces_it_whole") {
        return;
    }
    let mut namespaces = Namespaces::new("c");
    let ns = namespaces.add("nft").expect("namespace");

    for (name, state) in odd_states() {
        let text = ruleset::render(&state);
        if let Err(e) = nft::check(&text, Some(&ns)) {
            panic!("{name}: {e}\n{text}");
        }
        nft::apply(&text, Some(&ns)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    // Applying again replaces (no duplicate tables, elements or rules); what is listed is the last state.
    let state = generated_state(2, 3);
    nft::apply(&ruleset::render(&state), Some(&ns)).expect("apply");
    nft::apply(&ruleset::render(&state), Some(&ns)).expect("apply again");
    let listed = run(&["ip", "netns", "exec", &ns, "nft", "list", "ruleset"]).expect("list");
    assert_eq!(listed.matches("table inet cloudportal {").count(), 1);
    assert_eq!(listed.matches("table bridge cloudportal {").count(), 1);
    assert_eq!(listed.matches("chain c_fwd {").count(), 1);
    assert!(listed.contains("\"br-1\" . 10.0.1.12"), "{listed}");
    assert!(!listed.contains("br-99"), "the large state is gone: {listed}");

    // A rejected batch changes nothing.
    let err = nft::apply("table inet cloudportal { chain c_fwd { nonsense } }", Some(&ns))
        .expect_err("nft must reject nonsense");
    assert!(
        matches!(&err, nft::NftError::Rejected { stderr, .. } if stderr.contains("nonsense")),
        "{err}"
    );
    let after = run(&["ip", "netns", "exec", &ns, "nft", "list", "ruleset"]).expect("list");
    assert_eq!(after, listed);

    nft::remove(Some(&ns)).expect("remove");
    nft::remove(Some(&ns)).expect("remove when already gone");
    let empty = run(&["ip", "netns", "exec", &ns, "nft", "list", "ruleset"]).expect("list");
    assert!(!empty.contains("cloudportal"), "{empty}");
}

/// `nft list` with the elements of every set and map sorted: the kernel lists them in its own order.
fn normalized(listing: &str) -> String {
    let mut out = String::new();
    let mut rest = listing;
    while let Some(at) = rest.find("elements = {") {
        let (before, after) = rest.split_at(at + "elements = {".len());
        out.push_str(before);
        let end = after.find('}').expect("elements end");
        let mut items: Vec<&str> = after[..end].split(',').map(str::trim).collect();
        items.sort_unstable();
        out.push_str(&items.join(", "));
        rest = &after[end..];
    }
    out.push_str(rest);
    out
}

#[test]
fn an_element_update_in_place_gives_the_ruleset_a_whole_replace_gives() {
    let test = "an_element_update_in_place_gives_the_ruleset_a_whole_replace_gives";
    if !can_run(test) {
        return;
    }
    let mut namespaces = Namespaces::new("d");
    let ns = namespaces.add("nft").expect("namespace");
    let list = || run(&["ip", "netns", "exec", &ns, "nft", "list", "ruleset"]).expect("list");

    let before = generated_state(3, 4);
    let mut after = before.clone();
    // A VM deleted, one launched, one moved to other groups.
    after.networks[0].ports.remove(3);
    let mut new = after.networks[0].ports[0].clone();
    new.id = "port-new".into();
    new.vm_id = "vm-new".into();
    new.tap = "tap-new".into();
    new.mac = [0x52, 0x54, 0, 0xee, 0, 1];
    new.ip = Ipv4Addr::new(10, 0, 0, 50);
    after.networks[0].ports.push(new);
    after.networks[1].ports[0].security_groups = vec!["t1-default".into(), "t1-db".into()];

    let old = ruleset::render_parts(&before);
    let now = ruleset::render_parts(&after);
    nft::apply(old.text(), Some(&ns)).expect("apply before");
    assert_eq!(old.changes_from(&old).as_deref(), Some(""));
    let batch = now
        .changes_from(&old)
        .expect("only elements differ: an update in place");
    assert!(
        batch.contains("add element") && batch.contains("delete element"),
        "{batch}"
    );
    nft::apply(&batch, Some(&ns)).unwrap_or_else(|e| panic!("{e}\n{batch}"));
    let updated = normalized(&list());

    nft::apply(now.text(), Some(&ns)).expect("apply whole");
    let whole = normalized(&list());
    assert_eq!(updated, whole, "update:\n{batch}");
    assert!(updated.contains("\"tap-new\""), "{updated}");
    assert!(!updated.contains("\"tap-3\""), "{updated}");

    // A new network changes more than elements: no update, a whole replace.
    let mut bigger = after.clone();
    bigger.networks.push(generated_state(4, 1).networks[3].clone());
    assert!(ruleset::render_parts(&bigger).changes_from(&now).is_none());
}
