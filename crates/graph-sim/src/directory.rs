//! The tenant's Entra side: device objects, users and groups (docs/graph-facts.md §7).
//!
//! A device object's `deviceId` is the managed device's `azureADDeviceId`. The generated fixture
//! holds the traps a client must survive: groups nested three deep, user members, two managed
//! devices sharing one Entra id, an all-zero id on both sides, a dynamic-looking group, and two
//! groups with the same display name.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// Entra's "no device".
pub const ZERO_ID: &str = "00000000-0000-0000-0000-000000000000";

#[derive(Debug, Clone)]
pub struct EntraDevice {
    pub object_id: String,
    /// The managed device's `azureADDeviceId`.
    pub device_id: String,
    pub name: String,
    pub os: String,
}

#[derive(Debug, Clone)]
pub struct User {
    pub id: String,
    pub upn: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Member {
    Device(usize),
    User(usize),
    Group(usize),
}

#[derive(Debug, Clone)]
pub struct Group {
    pub id: String,
    pub name: String,
    /// Set on dynamic groups (`groupTypes: ["DynamicMembership"]`).
    pub membership_rule: Option<String>,
    pub members: Vec<Member>,
}

#[derive(Debug, Clone, Default)]
pub struct Directory {
    pub devices: Vec<EntraDevice>,
    pub users: Vec<User>,
    pub groups: Vec<Group>,
}

fn guid(rng: &mut StdRng) -> String {
    let b: [u8; 16] = rng.random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// What the directory is built from, of each managed device.
pub trait Enrolled {
    fn os(&self) -> &str;
    fn name(&self) -> &str;
    fn user_id(&self) -> &str;
    fn upn(&self) -> &str;
    /// The device's `azureADDeviceId`.
    fn entra_id(&self) -> &str;
    fn set_entra_id(&mut self, id: String);
}

impl Directory {
    /// Builds the directory of `devices`, first giving a few Macs the fixture's shared and zero
    /// Entra ids. Its own seeded generator leaves the device list's draws unchanged.
    pub fn build<D: Enrolled>(devices: &mut [D], seed: u64) -> Directory {
        let mut rng = StdRng::seed_from_u64(seed ^ 0x6772_6f75_7073);
        let macs: Vec<usize> = (0..devices.len())
            .filter(|&i| devices[i].os() == "macOS")
            .collect();
        let fixture = macs.len() >= 40;
        if fixture {
            // A re-enrolled Mac: two managed devices, one Entra device.
            let shared = devices[macs[20]].entra_id().to_string();
            devices[macs[21]].set_entra_id(shared);
            // A managed device Entra does not know.
            devices[macs[22]].set_entra_id(ZERO_ID.to_string());
        }
        let mut dir = Directory::default();
        let mut entra_of = std::collections::HashMap::new();
        for d in devices.iter() {
            if d.entra_id() == ZERO_ID || entra_of.contains_key(d.entra_id()) {
                continue;
            }
            entra_of.insert(d.entra_id().to_string(), dir.devices.len());
            dir.devices.push(EntraDevice {
                object_id: guid(&mut rng),
                device_id: d.entra_id().to_string(),
                name: d.name().to_string(),
                os: if d.os() == "macOS" { "MacMDM" } else { d.os() }.to_string(),
            });
        }
        let mut user_of = std::collections::HashMap::new();
        for d in devices.iter() {
            user_of.entry(d.user_id().to_string()).or_insert_with(|| {
                dir.users.push(User {
                    id: d.user_id().to_string(),
                    upn: d.upn().to_string(),
                });
                dir.users.len() - 1
            });
        }
        // An Entra device object whose deviceId is all zeros: it must join no managed device.
        let stale = dir.devices.len();
        if fixture {
            dir.devices.push(EntraDevice {
                object_id: guid(&mut rng),
                device_id: ZERO_ID.to_string(),
                name: "MAC-STALE-REGISTRATION".into(),
                os: "MacMDM".into(),
            });
        }
        let entra = |i: usize| Member::Device(entra_of[devices[i].entra_id()]);
        let mut groups = Vec::new();
        let mut group = |name: &str, rule: Option<&str>, members: Vec<Member>| {
            groups.push(Group {
                id: guid(&mut rng),
                name: name.to_string(),
                membership_rule: rule.map(str::to_string),
                members,
            });
            groups.len() - 1
        };
        let all_macs: Vec<Member> = macs
            .iter()
            .filter(|&&i| devices[i].entra_id() != ZERO_ID)
            .map(|&i| entra(i))
            .collect();
        group(
            "All Macs (dynamic)",
            Some("(device.deviceOSType -eq \"MacMDM\")"),
            all_macs,
        );
        if fixture {
            let users = vec![
                Member::User(user_of[devices[macs[25]].user_id()]),
                Member::User(user_of[devices[macs[26]].user_id()]),
            ];
            let staff = group("FIN-Staff", None, users);
            let mut loaners: Vec<Member> = (18..21).map(|k| entra(macs[k])).collect();
            // Also a member of FIN-Macs-Laptops: listed once by transitiveMembers.
            loaners.extend([Member::Device(stale), entra(macs[15])]);
            let loaners = group("FIN-Macs-Loaners", None, loaners);
            let mut laptops: Vec<Member> = (15..18).map(|k| entra(macs[k])).collect();
            laptops.push(Member::Group(loaners));
            let laptops = group("FIN-Macs-Laptops", None, laptops);
            let mut fin: Vec<Member> = (10..15).map(|k| entra(macs[k])).collect();
            fin.extend([Member::Group(laptops), Member::Group(staff)]);
            group("FIN-Macs", None, fin);
            group("Pilot Macs", None, vec![entra(macs[30]), entra(macs[31])]);
            group("Pilot Macs", None, vec![entra(macs[32])]);
        }
        dir.groups = groups;
        dir
    }

    pub fn group(&self, id: &str) -> Option<usize> {
        self.groups
            .iter()
            .position(|g| g.id.eq_ignore_ascii_case(id))
    }

    /// A group's members; nested groups' members too when `transitive` (each once, cycles safe).
    pub fn members(&self, group: usize, transitive: bool) -> Vec<Member> {
        let mut out: Vec<Member> = Vec::new();
        let mut queue = vec![group];
        let mut seen_groups = vec![group];
        while let Some(g) = queue.pop() {
            for &m in &self.groups[g].members {
                if !out.contains(&m) {
                    out.push(m);
                }
                if let Member::Group(inner) = m
                    && transitive
                    && !seen_groups.contains(&inner)
                {
                    seen_groups.push(inner);
                    queue.push(inner);
                }
            }
        }
        out
    }

    pub fn group_json(&self, g: usize) -> Value {
        let g = &self.groups[g];
        json!({
            "@odata.type": "#microsoft.graph.group",
            "id": g.id,
            "displayName": g.name,
            "groupTypes": if g.membership_rule.is_some() { vec!["DynamicMembership"] } else { Vec::new() },
            "membershipRule": g.membership_rule,
            "securityEnabled": true,
            "mailEnabled": false,
        })
    }

    /// A member as `transitiveMembers` lists it; without `details` (no Device.Read.All), only
    /// `id` and `@odata.type`.
    pub fn member_json(&self, m: Member, details: bool) -> Value {
        match m {
            Member::Device(i) => {
                let d = &self.devices[i];
                if details {
                    json!({"@odata.type": "#microsoft.graph.device", "id": d.object_id, "deviceId": d.device_id, "displayName": d.name, "operatingSystem": d.os})
                } else {
                    json!({"@odata.type": "#microsoft.graph.device", "id": d.object_id})
                }
            }
            Member::User(i) => {
                let u = &self.users[i];
                json!({"@odata.type": "#microsoft.graph.user", "id": u.id, "userPrincipalName": u.upn, "displayName": u.upn})
            }
            Member::Group(g) => {
                let mut v = self.group_json(g);
                if !details {
                    v = json!({"@odata.type": "#microsoft.graph.group", "id": v["id"]});
                }
                v
            }
        }
    }

    /// The cast a member passes (`microsoft.graph.device` etc.; `None` passes all).
    pub fn is_cast(m: Member, cast: Option<&str>) -> bool {
        let Some(cast) = cast else { return true };
        let kind = match m {
            Member::Device(_) => "microsoft.graph.device",
            Member::User(_) => "microsoft.graph.user",
            Member::Group(_) => "microsoft.graph.group",
        };
        kind.eq_ignore_ascii_case(cast)
    }
}
