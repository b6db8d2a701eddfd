//! Who may do what in a room: one table, which the server decides by and the browser reads
//! to offer only what will be allowed. Pure, tested here apart from any I/O.
//!
//! A room's creator is its owner; the owner makes and unmakes admins; admins invite, manage
//! invite links, rename the room and change its topic and privacy, delete anyone's message,
//! remove and ban members (not admins: only the owner removes or bans an admin; nobody the
//! owner). A server administrator counts as an admin in every room they are in, and may
//! delete any message anywhere. A banned person may do nothing in the room, not even join.

use serde::{Deserialize, Serialize};

/// A member's role in a room (direct conversations have none).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    #[default]
    Member,
    Admin,
    Owner,
}

impl Role {
    /// Its name on the wire and in storage.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "member",
            Role::Admin => "admin",
            Role::Owner => "owner",
        }
    }

    pub fn parse(s: &str) -> Option<Role> {
        [Role::Member, Role::Admin, Role::Owner]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// Where someone stands in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Standing {
    /// A member, with their role.
    In(Role),
    /// Not a member (and not banned).
    Outsider,
    /// Banned from the room (never a member at the same time).
    Banned,
}

/// What someone may ask to do in a room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomAction {
    /// Join by themselves (public rooms only; private ones by invitation).
    Join,
    /// Read, post, react, edit and delete their own messages, leave.
    TakePart,
    /// Add a person by name.
    Invite,
    /// Create, list and revoke invite links.
    ManageLinks,
    /// Change the name, the topic or whether the room is private.
    EditRoom,
    /// Delete someone else's message.
    DeleteAny,
    /// Remove a member who has this role.
    Remove(Role),
    /// Ban someone who has this role (an outsider counts as a member).
    Ban(Role),
    /// Lift a ban.
    Unban,
    /// Make a member an admin, or an admin a member.
    SetRole,
}

/// Whether someone standing so, a server administrator or not, may do `action` in a room
/// that is `private` or public.
pub fn may(standing: Standing, server_admin: bool, private: bool, action: RoomAction) -> bool {
    use RoomAction::*;
    let role = match standing {
        // A server administrator moderates every room they are in.
        Standing::In(role) if server_admin => role.max(Role::Admin),
        Standing::In(role) => role,
        Standing::Outsider => {
            return (action == DeleteAny && server_admin) || (action == Join && !private)
        }
        Standing::Banned => return action == DeleteAny && server_admin,
    };
    match action {
        // Already in: joining again changes nothing, and is allowed.
        Join | TakePart => true,
        // Anyone may join a public room, so any member may bring someone in.
        Invite => !private || role >= Role::Admin,
        ManageLinks | EditRoom | DeleteAny | Unban => role >= Role::Admin,
        Remove(target) | Ban(target) => match target {
            Role::Member => role >= Role::Admin,
            Role::Admin => role == Role::Owner,
            Role::Owner => false,
        },
        SetRole => role == Role::Owner,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RoomAction::*;

    const EVERY_ACTION: [RoomAction; 13] = [
        Join,
        TakePart,
        Invite,
        ManageLinks,
        EditRoom,
        DeleteAny,
        Remove(Role::Member),
        Remove(Role::Admin),
        Remove(Role::Owner),
        Ban(Role::Member),
        Ban(Role::Admin),
        Unban,
        SetRole,
    ];

    /// The actions allowed to each standing, in a private room and in a public one.
    fn allowed(standing: Standing, server_admin: bool, private: bool) -> Vec<RoomAction> {
        EVERY_ACTION
            .into_iter()
            .filter(|a| may(standing, server_admin, private, *a))
            .collect()
    }

    #[test]
    fn the_owner_may_do_everything_but_remove_the_owner() {
        for private in [false, true] {
            let all: Vec<_> = EVERY_ACTION
                .into_iter()
                .filter(|a| *a != Remove(Role::Owner))
                .collect();
            assert_eq!(allowed(Standing::In(Role::Owner), false, private), all);
        }
    }

    #[test]
    fn an_admin_moderates_members_but_not_admins_or_roles() {
        let expected = vec![
            Join,
            TakePart,
            Invite,
            ManageLinks,
            EditRoom,
            DeleteAny,
            Remove(Role::Member),
            Ban(Role::Member),
            Unban,
        ];
        for private in [false, true] {
            assert_eq!(allowed(Standing::In(Role::Admin), false, private), expected);
        }
    }

    #[test]
    fn a_member_takes_part_and_invites_only_to_a_public_room() {
        assert_eq!(
            allowed(Standing::In(Role::Member), false, false),
            vec![Join, TakePart, Invite]
        );
        assert_eq!(
            allowed(Standing::In(Role::Member), false, true),
            vec![Join, TakePart]
        );
    }

    #[test]
    fn an_outsider_may_only_join_a_public_room_and_a_banned_person_nothing() {
        assert_eq!(allowed(Standing::Outsider, false, false), vec![Join]);
        assert_eq!(allowed(Standing::Outsider, false, true), vec![]);
        assert_eq!(allowed(Standing::Banned, false, false), vec![]);
        assert_eq!(allowed(Standing::Banned, false, true), vec![]);
    }

    #[test]
    fn a_server_admin_moderates_rooms_they_are_in_and_deletes_anywhere() {
        assert_eq!(
            allowed(Standing::In(Role::Member), true, true),
            allowed(Standing::In(Role::Admin), false, true)
        );
        assert_eq!(
            allowed(Standing::In(Role::Owner), true, true),
            allowed(Standing::In(Role::Owner), false, true)
        );
        assert_eq!(allowed(Standing::Outsider, true, true), vec![DeleteAny]);
        assert_eq!(allowed(Standing::Banned, true, false), vec![DeleteAny]);
    }

    #[test]
    fn roles_have_one_name_each() {
        for role in [Role::Member, Role::Admin, Role::Owner] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert_eq!(
                serde_json::to_string(&role).unwrap(),
                format!("\"{}\"", role.as_str())
            );
        }
        assert_eq!(Role::parse("king"), None);
    }
}
