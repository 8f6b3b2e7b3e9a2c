//! Room policy for `mimi client create` (a template of room-policy §Role
//! examples, a policy file, a direct message) and `mimi templates`.

use std::path::Path;

use anyhow::{Context, bail};
use mimi_client::RoomOptions;
use mimi_protocol::MimiUri;
use mimi_protocol::components::room_policy::capabilities as cap;
use mimi_protocol::components::room_policy::{
    BaseRoomPolicy, Claim, PreAuthData, PreAuthRoleEntry,
};
use mimi_room::policy::preauth::{basic_claim, claim};
use mimi_room::policy::templates::{Template, capability_table, render_table};
use mimi_room::policy::{default_role, default_roles};
use serde::Deserialize;

/// A room from `template`, hosted by the domain of `room`.
pub fn from_template(template: Template, room: &str) -> anyhow::Result<RoomOptions> {
    let hub = MimiUri::parse(room)?.domain().to_owned();
    Ok(RoomOptions {
        roles: template.roles(),
        creator_role: template.creator_role(),
        base: template.base(),
        preauth: template.preauth(&hub),
        ..RoomOptions::default()
    })
}

/// A direct message with `user`: fixed membership, both listed from the
/// start, no role that could add anyone (room-policy §Base Room policy).
pub fn direct_message(user: &str) -> RoomOptions {
    let mut roles = default_roles();
    for role in &mut roles.roles {
        role.role_capabilities
            .retain(|c| *c != cap::CAN_ADD_PARTICIPANT);
    }
    RoomOptions {
        roles,
        creator_role: default_role::ADMIN,
        participants: vec![(user.to_owned(), default_role::ADMIN)],
        base: Some(BaseRoomPolicy {
            fixed_membership: true,
            ..BaseRoomPolicy::default()
        }),
        ..RoomOptions::default()
    }
}

/// A policy file: a template (default: the default roles) and what to
/// change of it.
///
/// ```toml
/// template = "moderated"
/// participants = [{ user = "mimi://b.example/u/bob", role = 5 }]
/// preauth = [{ domain = "b.example", role = 3 }]
/// max_users = 50
/// multi_device = true
/// fixed_membership = false
/// ```
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    pub template: Option<String>,
    #[serde(default)]
    pub participants: Vec<Listed>,
    pub preauth: Option<Vec<Preauthorized>>,
    pub fixed_membership: Option<bool>,
    pub multi_device: Option<bool>,
    pub max_users: Option<u32>,
    pub max_clients: Option<u32>,
    /// The parent room of a parent-dependent room (on the same hub).
    pub parent_room: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Listed {
    pub user: String,
    pub role: u32,
}

/// Users matching every claim given get `role`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preauthorized {
    pub domain: Option<String>,
    pub user: Option<String>,
    pub role: u32,
}

/// The claims of a preauthorization entry for users of `domain` and/or
/// the user `user` (basic-credential claims, docs/divergences.md C20).
pub fn claimset(domain: Option<&str>, user: Option<&str>) -> Vec<Claim> {
    let mut claims = Vec::new();
    if let Some(domain) = domain {
        claims.push(basic_claim(claim::DOMAIN, &domain.to_ascii_lowercase()));
    }
    if let Some(user) = user {
        claims.push(basic_claim(claim::USER, user));
    }
    claims
}

/// The room options a policy file at `path` describes for `room`.
pub fn from_file(path: &Path, room: &str) -> anyhow::Result<RoomOptions> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let file: PolicyFile =
        toml::from_str(&text).with_context(|| format!("policy file {}", path.display()))?;
    options(file, room)
}

fn options(file: PolicyFile, room: &str) -> anyhow::Result<RoomOptions> {
    let mut options = match &file.template {
        Some(name) => from_template(name.parse().map_err(|e| anyhow::anyhow!("{e}"))?, room)?,
        None => RoomOptions::default(),
    };
    options.participants = file
        .participants
        .into_iter()
        .map(|p| (p.user, p.role))
        .collect();
    if let Some(entries) = file.preauth {
        let mut preauth = PreAuthData::default();
        for entry in entries {
            let claimset = claimset(entry.domain.as_deref(), entry.user.as_deref());
            let Some(target_role) = options.roles.role(entry.role).cloned() else {
                bail!("preauth: the room has no role {}", entry.role);
            };
            preauth.preauthorized_entries.push(PreAuthRoleEntry {
                claimset,
                target_role,
            });
        }
        options.preauth = Some(preauth);
    }
    let mut base = options.base.clone().unwrap_or_default();
    let mut changed = false;
    let mut set = |field: &mut Option<u32>, value: Option<u32>| {
        if value.is_some() {
            *field = value;
            changed = true;
        }
    };
    set(&mut base.max_users, file.max_users);
    set(&mut base.max_clients, file.max_clients);
    if let Some(fixed) = file.fixed_membership {
        base.fixed_membership = fixed;
        changed = true;
    }
    if let Some(multi) = file.multi_device {
        base.multi_device = multi;
        changed = true;
    }
    if let Some(parent) = file.parent_room {
        base.parent_dependant = true;
        base.parent_room = vec![mimi_protocol::components::Uri::new(parent)];
        changed = true;
    }
    if changed {
        options.base = Some(base);
    }
    Ok(options)
}

/// `mimi templates [NAME]`: each template's description and table.
pub fn print_templates(only: Option<Template>) {
    for template in Template::all() {
        if only.is_some_and(|t| t != template) {
            continue;
        }
        println!("{}: {}", template.name(), template.description());
        println!("  the creator gets role {}", template.creator_role());
        print!("{}", render_table(&capability_table(&template.roles())));
        println!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_policy_file_starts_from_its_template_and_changes_what_it_names() {
        let file: PolicyFile = toml::from_str(
            r#"
template = "moderated"
participants = [{ user = "mimi://b.example/u/bob", role = 4 }]
preauth = [{ domain = "B.example", role = 4 }]
max_users = 50
"#,
        )
        .unwrap();
        let options = options(file, "mimi://a.example/r/town-hall").unwrap();
        assert_eq!(options.roles, Template::Moderated.roles());
        assert_eq!(options.creator_role, Template::Moderated.creator_role());
        assert_eq!(
            options.participants,
            [("mimi://b.example/u/bob".to_owned(), 4)]
        );
        let preauth = options.preauth.unwrap();
        assert_eq!(preauth.preauthorized_entries.len(), 1);
        assert_eq!(
            preauth.preauthorized_entries[0].claimset[0]
                .claim_value
                .as_slice(),
            b"b.example"
        );
        assert_eq!(options.base.unwrap().max_users, Some(50));
        assert!(toml::from_str::<PolicyFile>("tempalte = 'strict'").is_err());
        let unknown: PolicyFile = toml::from_str("template = 'anarchy'").unwrap();
        assert!(options_err(unknown).contains("anarchy"));
    }

    fn options_err(file: PolicyFile) -> String {
        options(file, "mimi://a.example/r/x")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn a_direct_message_is_fixed_and_lets_nobody_else_in() {
        let dm = direct_message("mimi://b.example/u/bob");
        assert!(dm.base.as_ref().unwrap().fixed_membership);
        mimi_room::policy::base::check_fixed_membership_roles(dm.base.as_ref().unwrap(), &dm.roles)
            .unwrap();
    }
}
