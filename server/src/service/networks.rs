//! Tenant networks as a service: networks, security groups and rules, port forwards and floating IPs.
//! Every object is the caller's tenant's (another tenant's reads as "not found"); bad input is refused
//! with the field it concerns before anything changes; every change is audited and makes the host
//! re-apply its network state (within a second).

use std::net::Ipv4Addr;

use app::error::AppError;
use app::model::{
    AttachFloatingIp, FloatingIpView, GroupRef, NetProtocol, NetworkPoolView, NetworkSettingsView,
    NetworkView, NewNetwork, NewPortForward, NewRule, NewSecurityGroup, NicView, PortForwardView, RuleView,
    SecurityGroupView, SetVmGroups, VmNetworkView,
};
use app::port::{Caller, Networks};
use async_trait::async_trait;
use ipnet::Ipv4Net;

use super::{internal, Service};
use crate::db::networks::{self as nets, Limit};
use crate::db::public_access::{self as access, AccessError};
use crate::db::security_groups as groups;
use crate::db::{self, format_time};
use crate::domain::{parse_id, Label};
use crate::net::Networking;

fn off() -> AppError {
    AppError::conflict("Tenant networks are turned off on this cloud.")
}

fn network_view(n: &nets::NetworkWithPorts) -> NetworkView {
    let r = &n.network;
    NetworkView {
        id: r.id.clone(),
        tenant_id: r.tenant_id.clone(),
        name: r.name.clone(),
        cidr: r.cidr.clone(),
        gateway: r.gateway.clone(),
        mtu: u16::try_from(r.mtu).unwrap_or(0),
        vxlan_id: u32::try_from(r.vxlan_id).unwrap_or(0),
        is_default: r.is_default,
        ports: u32::try_from(n.ports).unwrap_or(0),
        created_at: format_time(r.created_at),
    }
}

fn protocol(text: &str) -> NetProtocol {
    NetProtocol::parse(text).unwrap_or(NetProtocol::Any)
}

fn port(v: Option<i64>) -> Option<u16> {
    v.and_then(|p| u16::try_from(p).ok())
}

fn access_error(e: AccessError) -> AppError {
    match e {
        AccessError::Quota { what, used, limit } => AppError::QuotaExceeded {
            resource: what.to_string(),
            message: format!(
                "{} quota exceeded: {used} of {limit} in use.",
                what.replace('_', " ")
            ),
        },
        AccessError::PortTaken(p) => {
            AppError::invalid("host_port", format!("Host port {p} is already forwarded."))
        }
        e @ (AccessError::NoPort(..) | AccessError::NoAddress(_)) => AppError::conflict(format!("{e}.")),
        AccessError::Db(e) => internal(e),
    }
}

/// A CIDR a rule may name, normalised to its network address.
fn parse_cidr(text: &str) -> Result<Ipv4Net, AppError> {
    let net: Ipv4Net = text
        .trim()
        .parse()
        .or_else(|_| text.trim().parse::<Ipv4Addr>().map(Ipv4Net::from))
        .map_err(|_| {
            AppError::invalid(
                "source_cidr",
                "Give an IPv4 block like 203.0.113.0/24 (0.0.0.0/0 is anywhere).",
            )
        })?;
    Ok(net.trunc())
}

impl Service {
    fn networking(&self) -> Result<&Networking, AppError> {
        self.network().ok_or_else(off)
    }

    async fn tenant_group(&self, caller: &Caller, id: &str) -> Result<groups::GroupWithVms, AppError> {
        let id = parse_id("security group", id)?;
        match groups::get(self.pool(), &id).await.map_err(internal)? {
            Some(g) if g.group.tenant_id == caller.tenant_id => Ok(g),
            _ => Err(AppError::not_found("Security group")),
        }
    }

    async fn group_view(&self, g: &groups::GroupWithVms) -> Result<SecurityGroupView, AppError> {
        let rules = groups::rules(self.pool(), &g.group.id).await.map_err(internal)?;
        let mut views = Vec::with_capacity(rules.len());
        for r in rules {
            let source_group = match &r.source_group_id {
                Some(id) => groups::get(self.pool(), id)
                    .await
                    .map_err(internal)?
                    .map(|s| GroupRef {
                        id: s.group.id,
                        name: s.group.name,
                    }),
                None => None,
            };
            views.push(RuleView {
                id: r.id.clone(),
                protocol: protocol(&r.protocol),
                port_min: port(r.port_min),
                port_max: port(r.port_max),
                source_cidr: r.source_cidr.clone(),
                source_group,
            });
        }
        Ok(SecurityGroupView {
            id: g.group.id.clone(),
            name: g.group.name.clone(),
            description: g.group.description.clone(),
            is_default: g.group.is_default,
            rules: views,
            vms: u32::try_from(g.vms).unwrap_or(0),
        })
    }

    fn host_address(&self) -> Option<String> {
        self.network()?.uplink().map(|u| u.address.to_string())
    }

    fn forward_view(&self, f: &access::ForwardWithVm) -> PortForwardView {
        PortForwardView {
            id: f.forward.id.clone(),
            vm_id: f.forward.vm_id.clone(),
            vm_name: f.vm_name.clone(),
            protocol: protocol(&f.forward.protocol),
            host_address: self.host_address().unwrap_or_default(),
            host_port: port(Some(f.forward.host_port)).unwrap_or(0),
            vm_port: port(Some(f.forward.vm_port)).unwrap_or(0),
        }
    }

    /// How a VM is reached (empty when networks are off or the VM has no card).
    pub(crate) async fn vm_network(&self, vm_id: &str) -> Result<VmNetworkView, AppError> {
        let pool = self.pool();
        let nics = nets::vm_nics(pool, vm_id).await.map_err(internal)?;
        if nics.is_empty() {
            return Ok(VmNetworkView::default());
        }
        let security_groups = groups::of_vm(pool, vm_id)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|g| GroupRef {
                id: g.id,
                name: g.name,
            })
            .collect();
        let floating_ip = access::floating_of_vm(pool, vm_id).await.map_err(internal)?;
        let port_forwards: Vec<PortForwardView> = access::forwards_of_vm(pool, vm_id)
            .await
            .map_err(internal)?
            .iter()
            .map(|f| self.forward_view(f))
            .collect();
        let ssh_command = match (
            &floating_ip,
            port_forwards
                .iter()
                .find(|f| f.vm_port == 22 && f.protocol == NetProtocol::Tcp),
        ) {
            (Some(ip), _) => Some(format!("ssh root@{ip}")),
            (None, Some(f)) if !f.host_address.is_empty() => {
                Some(format!("ssh -p {} root@{}", f.host_port, f.host_address))
            }
            _ => None,
        };
        Ok(VmNetworkView {
            nics: nics
                .into_iter()
                .map(|(p, n)| NicView {
                    network_id: n.id,
                    network_name: n.name,
                    mac: p.mac,
                    ip: p.ip,
                    gateway: n.gateway,
                    cidr: n.cidr,
                })
                .collect(),
            security_groups,
            floating_ip,
            port_forwards,
            ssh_command,
        })
    }

    /// Checks launch choices: the network and groups must be the caller's tenant's.
    pub(crate) async fn check_launch_network(
        &self,
        caller: &Caller,
        network_id: Option<&str>,
        group_ids: &[String],
    ) -> Result<(), AppError> {
        if network_id.is_none() && group_ids.is_empty() {
            return Ok(());
        }
        self.networking()?;
        if let Some(id) = network_id {
            let id = parse_id("network", id)?;
            match nets::get(self.pool(), &id).await.map_err(internal)? {
                Some(n) if n.tenant_id == caller.tenant_id => {}
                _ => return Err(AppError::invalid("network_id", "Choose one of your networks.")),
            }
        }
        for g in group_ids {
            self.tenant_group(caller, g)
                .await
                .map_err(|_| AppError::invalid("security_group_ids", "Choose your own security groups."))?;
        }
        Ok(())
    }

    fn changed(&self) {
        if let Some(n) = self.network() {
            n.changed();
        }
    }
}

#[async_trait]
impl Networks for Service {
    async fn network_settings(&self, caller: &Caller) -> Result<NetworkSettingsView, AppError> {
        let Some(net) = self.network() else {
            return Ok(NetworkSettingsView::default());
        };
        let s = net.settings();
        Ok(NetworkSettingsView {
            enabled: true,
            public_address: self.host_address(),
            floating_ips: s.floating_pool.is_some() && net.uplink().is_some(),
            forward_ports: s.forward_ports,
            admin: caller.is_admin().then(|| NetworkPoolView {
                pool: s.pool.to_string(),
                mtu: s.mtu,
                uplink: s.uplink.map(|u| u.to_string()),
                floating_pool: s.floating_pool.map(|f| f.to_string()),
                namespace: s.namespace.clone(),
            }),
        })
    }

    async fn list_networks(&self, caller: &Caller) -> Result<Vec<NetworkView>, AppError> {
        let tenant = (!caller.is_admin()).then_some(caller.tenant_id.as_str());
        let rows = nets::list(self.pool(), tenant).await.map_err(internal)?;
        Ok(rows.iter().map(network_view).collect())
    }

    async fn create_network(&self, caller: &Caller, req: NewNetwork) -> Result<NetworkView, AppError> {
        let net = self.networking()?;
        let name = Label::parse("name", "Name", &req.name, 1, 64)?;
        let plan = net.plan();
        let mut tx = self
            .pool()
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(internal)?;
        if let Err((used, limit)) = nets::check_limit(&mut tx, &caller.tenant_id, Limit::Networks)
            .await
            .map_err(internal)?
        {
            return Err(AppError::QuotaExceeded {
                resource: "networks".into(),
                message: format!("networks quota exceeded: {used} of {limit} in use."),
            });
        }
        let row =
            match nets::create_network(&mut tx, &caller.tenant_id, name.as_str(), false, &plan, db::now())
                .await
            {
                Ok(r) => r,
                Err(nets::AllocError::Db(e)) if db::is_unique_violation(&e) => {
                    return Err(AppError::invalid(
                        "name",
                        format!("You already have a network named {}.", name.as_str()),
                    ))
                }
                Err(nets::AllocError::Db(e)) => return Err(internal(e)),
                Err(e) => return Err(AppError::conflict(format!("{e}."))),
            };
        tx.commit().await.map_err(internal)?;
        self.audit(
            Some(caller),
            "network_create",
            &format!("network:{}", row.id),
            &format!("name={} cidr={}", row.name, row.cidr),
        )
        .await;
        self.changed();
        Ok(network_view(&nets::NetworkWithPorts {
            network: row,
            ports: 0,
        }))
    }

    async fn delete_network(&self, caller: &Caller, id: String) -> Result<(), AppError> {
        let id = parse_id("network", &id)?;
        let row = match nets::get(self.pool(), &id).await.map_err(internal)? {
            Some(n) if n.tenant_id == caller.tenant_id => n,
            _ => return Err(AppError::not_found("Network")),
        };
        if !nets::delete_if_empty(self.pool(), &row.id)
            .await
            .map_err(internal)?
        {
            return Err(AppError::conflict(format!(
                "Network {} still has VMs on it; delete them first.",
                row.name
            )));
        }
        self.audit(
            Some(caller),
            "network_delete",
            &format!("network:{}", row.id),
            &format!("name={}", row.name),
        )
        .await;
        self.changed();
        Ok(())
    }

    async fn list_security_groups(&self, caller: &Caller) -> Result<Vec<SecurityGroupView>, AppError> {
        let rows = groups::list(self.pool(), &caller.tenant_id)
            .await
            .map_err(internal)?;
        let mut out = Vec::with_capacity(rows.len());
        for g in &rows {
            out.push(self.group_view(g).await?);
        }
        Ok(out)
    }

    async fn create_security_group(
        &self,
        caller: &Caller,
        req: NewSecurityGroup,
    ) -> Result<SecurityGroupView, AppError> {
        self.networking()?;
        let name = Label::parse("name", "Name", &req.name, 1, 64)?;
        let description = Label::parse("description", "Description", &req.description, 0, 255)?;
        let id = uuid::Uuid::new_v4().to_string();
        match groups::create(
            self.pool(),
            &id,
            &caller.tenant_id,
            name.as_str(),
            description.as_str(),
            db::now(),
        )
        .await
        {
            Ok(()) => {}
            Err(e) if db::is_unique_violation(&e) => {
                return Err(AppError::invalid(
                    "name",
                    format!("You already have a security group named {}.", name.as_str()),
                ))
            }
            Err(e) => return Err(internal(e)),
        }
        self.audit(
            Some(caller),
            "security_group_create",
            &format!("security_group:{id}"),
            &format!("name={}", name.as_str()),
        )
        .await;
        let g = self.tenant_group(caller, &id).await?;
        self.group_view(&g).await
    }

    async fn delete_security_group(&self, caller: &Caller, id: String) -> Result<(), AppError> {
        let g = self.tenant_group(caller, &id).await?;
        if g.group.is_default {
            return Err(AppError::conflict(
                "The default security group cannot be deleted.",
            ));
        }
        if !groups::delete_unused(self.pool(), &g.group.id)
            .await
            .map_err(internal)?
        {
            return Err(AppError::conflict(format!(
                "Security group {} is still used by {} VM(s).",
                g.group.name, g.vms
            )));
        }
        self.audit(
            Some(caller),
            "security_group_delete",
            &format!("security_group:{}", g.group.id),
            &format!("name={}", g.group.name),
        )
        .await;
        self.changed();
        Ok(())
    }

    async fn add_rule(
        &self,
        caller: &Caller,
        group_id: String,
        rule: NewRule,
    ) -> Result<SecurityGroupView, AppError> {
        self.networking()?;
        let g = self.tenant_group(caller, &group_id).await?;
        let ports = match (rule.port_min, rule.port_max) {
            (None, None) => None,
            (Some(a), b) => {
                let b = b.unwrap_or(a);
                if !matches!(rule.protocol, NetProtocol::Tcp | NetProtocol::Udp) {
                    return Err(AppError::invalid(
                        "port_min",
                        "Ports apply to TCP and UDP rules only.",
                    ));
                }
                if a == 0 || b < a {
                    return Err(AppError::invalid(
                        "port_max",
                        "Give ports 1-65535 with the lowest first.",
                    ));
                }
                Some((a, b))
            }
            (None, Some(_)) => {
                return Err(AppError::invalid("port_min", "Give the first port of the range."))
            }
        };
        let (cidr, source_group) = match (rule.source_cidr.as_deref(), rule.source_group_id.as_deref()) {
            (Some(c), None) => (Some(parse_cidr(c)?.to_string()), None),
            (None, Some(s)) => {
                let src = self.tenant_group(caller, s).await.map_err(|_| {
                    AppError::invalid("source_group_id", "Choose one of your security groups.")
                })?;
                (None, Some(src.group.id))
            }
            _ => {
                return Err(AppError::invalid(
                    "source_cidr",
                    "Give either a source block or a source group.",
                ))
            }
        };
        let mut conn = self.pool().acquire().await.map_err(internal)?;
        let rule_id = nets::add_rule(
            &mut conn,
            &g.group.id,
            rule.protocol.as_str(),
            ports,
            cidr.as_deref(),
            source_group.as_deref(),
            db::now(),
        )
        .await
        .map_err(internal)?;
        drop(conn);
        self.audit(
            Some(caller),
            "security_rule_add",
            &format!("security_group:{}", g.group.id),
            &format!(
                "rule={rule_id} protocol={} ports={ports:?} source={}",
                rule.protocol.as_str(),
                cidr.or(source_group).unwrap_or_default()
            ),
        )
        .await;
        self.changed();
        let g = self.tenant_group(caller, &g.group.id).await?;
        self.group_view(&g).await
    }

    async fn delete_rule(
        &self,
        caller: &Caller,
        group_id: String,
        rule_id: String,
    ) -> Result<SecurityGroupView, AppError> {
        let g = self.tenant_group(caller, &group_id).await?;
        let rule_id = parse_id("rule", &rule_id)?;
        if !groups::delete_rule(self.pool(), &g.group.id, &rule_id)
            .await
            .map_err(internal)?
        {
            return Err(AppError::not_found("Rule"));
        }
        self.audit(
            Some(caller),
            "security_rule_delete",
            &format!("security_group:{}", g.group.id),
            &format!("rule={rule_id}"),
        )
        .await;
        self.changed();
        let g = self.tenant_group(caller, &g.group.id).await?;
        self.group_view(&g).await
    }

    async fn set_vm_groups(
        &self,
        caller: &Caller,
        vm_id: String,
        req: SetVmGroups,
    ) -> Result<VmNetworkView, AppError> {
        self.networking()?;
        let vm = self.tenant_vm(caller, &vm_id).await?;
        if req.group_ids.is_empty() {
            return Err(AppError::invalid(
                "group_ids",
                "A VM needs at least one security group.",
            ));
        }
        if req.group_ids.len() > 16 {
            return Err(AppError::invalid(
                "group_ids",
                "A VM can be in at most 16 security groups.",
            ));
        }
        let mut ids = Vec::with_capacity(req.group_ids.len());
        for g in &req.group_ids {
            let g = self
                .tenant_group(caller, g)
                .await
                .map_err(|_| AppError::invalid("group_ids", "Choose your own security groups."))?;
            ids.push(g.group.id);
        }
        ids.sort();
        ids.dedup();
        groups::set_for_vm(self.pool(), &vm.id, &ids)
            .await
            .map_err(internal)?;
        self.audit(
            Some(caller),
            "vm_security_groups",
            &format!("vm:{}", vm.id),
            &format!("groups={}", ids.join(",")),
        )
        .await;
        self.changed();
        self.vm_network(&vm.id).await
    }

    async fn list_port_forwards(&self, caller: &Caller) -> Result<Vec<PortForwardView>, AppError> {
        let rows = access::forwards(self.pool(), &caller.tenant_id)
            .await
            .map_err(internal)?;
        Ok(rows.iter().map(|f| self.forward_view(f)).collect())
    }

    async fn create_port_forward(
        &self,
        caller: &Caller,
        req: NewPortForward,
    ) -> Result<PortForwardView, AppError> {
        let net = self.networking()?;
        if net.uplink().is_none() {
            return Err(AppError::conflict(
                "This cloud has no uplink: nothing can be forwarded from outside.",
            ));
        }
        let vm = self.tenant_vm(caller, &req.vm_id).await?;
        if nets::ports_of_vm(self.pool(), &vm.id)
            .await
            .map_err(internal)?
            .is_empty()
        {
            return Err(AppError::invalid("vm_id", "That VM has no network card."));
        }
        if !matches!(req.protocol, NetProtocol::Tcp | NetProtocol::Udp) {
            return Err(AppError::invalid("protocol", "Forward tcp or udp."));
        }
        if req.vm_port == 0 {
            return Err(AppError::invalid("vm_port", "Give the VM's port (1-65535)."));
        }
        let range = net.settings().forward_ports;
        if let Some(p) = req.host_port {
            if !(range.0..=range.1).contains(&p) {
                return Err(AppError::invalid(
                    "host_port",
                    format!("Host ports {}-{} can be forwarded.", range.0, range.1),
                ));
            }
        }
        let id = uuid::Uuid::new_v4().to_string();
        let new = access::NewForward {
            id: &id,
            tenant_id: &caller.tenant_id,
            vm_id: &vm.id,
            protocol: req.protocol.as_str(),
            host_port: req.host_port,
            vm_port: req.vm_port,
            range,
        };
        let host_port = access::create_forward(self.pool(), &new, db::now())
            .await
            .map_err(access_error)?;
        self.audit(
            Some(caller),
            "port_forward_create",
            &format!("vm:{}", vm.id),
            &format!("{} {host_port} -> {}", req.protocol.as_str(), req.vm_port),
        )
        .await;
        self.changed();
        Ok(PortForwardView {
            id,
            vm_id: vm.id,
            vm_name: vm.name,
            protocol: req.protocol,
            host_address: self.host_address().unwrap_or_default(),
            host_port,
            vm_port: req.vm_port,
        })
    }

    async fn delete_port_forward(&self, caller: &Caller, id: String) -> Result<(), AppError> {
        let id = parse_id("port forward", &id)?;
        if !access::delete_forward(self.pool(), &id, &caller.tenant_id)
            .await
            .map_err(internal)?
        {
            return Err(AppError::not_found("Port forward"));
        }
        self.audit(
            Some(caller),
            "port_forward_delete",
            &format!("port_forward:{id}"),
            "",
        )
        .await;
        self.changed();
        Ok(())
    }

    async fn list_floating_ips(&self, caller: &Caller) -> Result<Vec<FloatingIpView>, AppError> {
        let rows = access::floating(self.pool(), &caller.tenant_id)
            .await
            .map_err(internal)?;
        Ok(rows.into_iter().map(floating_view).collect())
    }

    async fn allocate_floating_ip(&self, caller: &Caller) -> Result<FloatingIpView, AppError> {
        let net = self.networking()?;
        let (Some(pool_net), Some(uplink)) = (net.settings().floating_pool, net.settings().uplink) else {
            return Err(AppError::conflict("This cloud has no floating IP pool."));
        };
        let reserved: Vec<Ipv4Addr> = uplink.hosts().take(2).collect();
        let id = uuid::Uuid::new_v4().to_string();
        let address = access::allocate_floating(
            self.pool(),
            &id,
            &caller.tenant_id,
            pool_net,
            &reserved,
            db::now(),
        )
        .await
        .map_err(access_error)?;
        self.audit(
            Some(caller),
            "floating_ip_allocate",
            &format!("floating_ip:{id}"),
            &format!("address={address}"),
        )
        .await;
        Ok(FloatingIpView {
            id,
            address: address.to_string(),
            vm_id: None,
            vm_name: None,
        })
    }

    async fn attach_floating_ip(
        &self,
        caller: &Caller,
        id: String,
        req: AttachFloatingIp,
    ) -> Result<FloatingIpView, AppError> {
        self.networking()?;
        let id = parse_id("floating IP", &id)?;
        match access::get_floating(self.pool(), &id).await.map_err(internal)? {
            Some(f) if f.floating.tenant_id == caller.tenant_id => {}
            _ => return Err(AppError::not_found("Floating IP")),
        }
        let vm = match &req.vm_id {
            Some(v) => {
                let vm = self.tenant_vm(caller, v).await?;
                if nets::ports_of_vm(self.pool(), &vm.id)
                    .await
                    .map_err(internal)?
                    .is_empty()
                {
                    return Err(AppError::invalid("vm_id", "That VM has no network card."));
                }
                Some(vm)
            }
            None => None,
        };
        match access::attach_floating(
            self.pool(),
            &id,
            &caller.tenant_id,
            vm.as_ref().map(|v| v.id.as_str()),
        )
        .await
        {
            Ok(true) => {}
            Ok(false) => return Err(AppError::not_found("Floating IP")),
            Err(e) if db::is_unique_violation(&e) => {
                return Err(AppError::conflict(
                    "That VM already has a floating IP; detach it first.",
                ))
            }
            Err(e) => return Err(internal(e)),
        }
        let detail = vm
            .as_ref()
            .map_or("detached".to_string(), |v| format!("vm={}", v.id));
        self.audit(
            Some(caller),
            "floating_ip_attach",
            &format!("floating_ip:{id}"),
            &detail,
        )
        .await;
        self.changed();
        let f = access::get_floating(self.pool(), &id)
            .await
            .map_err(internal)?
            .ok_or_else(|| AppError::not_found("Floating IP"))?;
        Ok(floating_view(f))
    }

    async fn release_floating_ip(&self, caller: &Caller, id: String) -> Result<(), AppError> {
        let id = parse_id("floating IP", &id)?;
        if !access::release_floating(self.pool(), &id, &caller.tenant_id)
            .await
            .map_err(internal)?
        {
            return Err(AppError::not_found("Floating IP"));
        }
        self.audit(
            Some(caller),
            "floating_ip_release",
            &format!("floating_ip:{id}"),
            "",
        )
        .await;
        self.changed();
        Ok(())
    }
}

fn floating_view(f: access::FloatingWithVm) -> FloatingIpView {
    FloatingIpView {
        id: f.floating.id,
        address: f.floating.address,
        vm_id: f.floating.vm_id,
        vm_name: f.vm_name,
    }
}
