//! Running a room from the browser: the room panel's members, bans and invite links, and
//! how the room frames (`room_updated`, `member_added`, `member_removed`, `role_changed`,
//! `bans`, `invites`, a `left` with a reason) change the chat. What the panel offers comes
//! from [`crate::roles::may`], the rule the server decides by.

use super::state::Chat;
use crate::protocol::{
    ClientMsg, ConversationId, ConversationKind, LeftReason, Member, Role, RoomInvite, ServerMsg,
    UserInfo, MAX_LIST_PAGE,
};
use crate::roles::{may, RoomAction, Standing};

/// What the room panel shows, as the server last said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoomPanel {
    pub conversation_id: ConversationId,
    /// Username order (the first page of members; a room's first 100).
    pub members: Vec<Member>,
    pub bans: Vec<UserInfo>,
    /// Live invite links, newest first.
    pub invites: Vec<RoomInvite>,
}

/// Why the user is no longer in a room they did not leave, to tell them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Farewell {
    pub room: String,
    pub reason: LeftReason,
}

impl Chat {
    /// The user's role in a room they are in (`None` for a direct conversation).
    pub fn role_in(&self, id: &ConversationId) -> Option<Role> {
        self.summary(id)
            .filter(|s| s.kind == ConversationKind::Room)
            .map(|s| s.role.unwrap_or_default())
    }

    /// Whether the user may do `action` in the room `id` (see [`crate::roles`]).
    pub fn may(&self, id: &ConversationId, action: RoomAction) -> bool {
        let Some(summary) = self.summary(id) else {
            return false;
        };
        let Some(role) = self.role_in(id) else {
            return false;
        };
        may(
            Standing::In(role),
            self.server_admin,
            summary.private,
            action,
        )
    }

    /// Opens the room panel of `id`: asks for its members and, for its admins, its bans and
    /// invite links.
    pub fn open_panel(&mut self, id: &ConversationId) -> Vec<ClientMsg> {
        self.panel = Some(RoomPanel {
            conversation_id: id.clone(),
            ..RoomPanel::default()
        });
        let mut out = vec![ClientMsg::ListMembers {
            conversation_id: id.clone(),
            after: None,
            limit: Some(MAX_LIST_PAGE),
        }];
        if self.may(id, RoomAction::Unban) {
            out.push(ClientMsg::ListBans {
                conversation_id: id.clone(),
            });
        }
        if self.may(id, RoomAction::ManageLinks) {
            out.push(ClientMsg::ListInvites {
                conversation_id: id.clone(),
            });
        }
        out
    }

    pub fn close_panel(&mut self) {
        self.panel = None;
    }

    fn panel_of(&mut self, id: &ConversationId) -> Option<&mut RoomPanel> {
        self.panel.as_mut().filter(|p| p.conversation_id == *id)
    }

    /// Applies a room frame; `false` when `msg` is not one.
    pub(super) fn apply_room(&mut self, msg: &ServerMsg) -> bool {
        match msg {
            ServerMsg::RoomUpdated {
                conversation_id,
                name,
                topic,
                private,
                ..
            } => {
                if let Some(s) = self.summary_mut(conversation_id) {
                    s.title.clone_from(name);
                    s.topic = (!topic.is_empty()).then(|| topic.clone());
                    s.private = *private;
                }
            }
            ServerMsg::MemberAdded {
                conversation_id,
                member,
                ..
            } => {
                self.learn_user(&member.user);
                if let Some(p) = self.panel_of(conversation_id) {
                    if let Err(at) = p
                        .members
                        .binary_search_by(|m| m.user.username.cmp(&member.user.username))
                    {
                        p.members.insert(at, member.clone());
                    }
                    p.bans.retain(|b| b.username != member.user.username);
                }
            }
            ServerMsg::MemberRemoved {
                conversation_id,
                username,
                banned,
                ..
            } => {
                let display_name = self.name_of(username).to_owned();
                if let Some(p) = self.panel_of(conversation_id) {
                    p.members.retain(|m| m.user.username != *username);
                    if *banned && !p.bans.iter().any(|b| b.username == *username) {
                        p.bans.push(UserInfo::named(username.clone(), display_name));
                        p.bans.sort_by(|a, b| a.username.cmp(&b.username));
                    }
                }
            }
            ServerMsg::RoleChanged {
                conversation_id,
                username,
                role,
            } => {
                if *username == self.me.username {
                    if let Some(s) = self.summary_mut(conversation_id) {
                        s.role = Some(*role);
                    }
                }
                if let Some(p) = self.panel_of(conversation_id) {
                    for m in p
                        .members
                        .iter_mut()
                        .filter(|m| m.user.username == *username)
                    {
                        m.role = Some(*role);
                    }
                }
            }
            ServerMsg::Bans {
                conversation_id,
                users,
            } => {
                if let Some(p) = self.panel_of(conversation_id) {
                    p.bans.clone_from(users);
                }
            }
            ServerMsg::Invites {
                conversation_id,
                invites,
            } => {
                if let Some(p) = self.panel_of(conversation_id) {
                    p.invites.clone_from(invites);
                }
            }
            ServerMsg::Members {
                conversation_id,
                members,
                next: _,
            } => {
                // The panel's page (asked for when it opened); the chat learns the rest
                // from it as from any page of members.
                if let Some(p) = self.panel_of(conversation_id) {
                    p.members.clone_from(members);
                }
                return false;
            }
            _ => return false,
        }
        true
    }

    /// The user is out of a room: a removal or a ban is remembered to tell them.
    pub(super) fn farewell(&mut self, id: &ConversationId, reason: Option<LeftReason>) {
        if let (Some(reason), Some(s)) = (reason, self.summary(id)) {
            self.farewell = Some(Farewell {
                room: s.title.clone(),
                reason,
            });
        }
        if self
            .panel
            .as_ref()
            .is_some_and(|p| p.conversation_id == *id)
        {
            self.panel = None;
        }
    }

    /// The user has read the farewell.
    pub fn dismiss_farewell(&mut self) {
        self.farewell = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ConversationSummary, NotifyLevel};

    fn user(name: &str) -> UserInfo {
        UserInfo::named(name, name.to_uppercase())
    }

    fn member(name: &str, role: Role) -> Member {
        Member {
            user: user(name),
            online: false,
            last_read_seq: Some(0),
            role: Some(role),
        }
    }

    fn room(role: Role, private: bool) -> Chat {
        let mut c = Chat::new(user("ann"));
        c.apply(ServerMsg::Conversation {
            conversation: ConversationSummary {
                id: ConversationId("r1".into()),
                kind: ConversationKind::Room,
                title: "Ops".into(),
                peer: None,
                last_seq: 0,
                last_read_seq: 0,
                unread: 0,
                mentions: 0,
                notify: NotifyLevel::All,
                last_message: None,
                last_activity_ms: 1,
                topic: None,
                private,
                role: Some(role),
            },
        });
        c
    }

    fn r1() -> ConversationId {
        ConversationId("r1".into())
    }

    #[test]
    fn the_panel_asks_only_for_what_the_user_may_see() {
        let mut admin = room(Role::Admin, true);
        assert_eq!(admin.open_panel(&r1()).len(), 3, "members, bans, links");
        let mut member = room(Role::Member, true);
        assert_eq!(member.open_panel(&r1()).len(), 1, "members only");
        assert!(!member.may(&r1(), RoomAction::Invite));
        assert!(room(Role::Member, false).may(&r1(), RoomAction::Invite));
    }

    #[test]
    fn the_panel_follows_additions_removals_bans_and_roles() {
        let mut c = room(Role::Owner, false);
        c.open_panel(&r1());
        c.apply(ServerMsg::Members {
            conversation_id: r1(),
            members: vec![member("ann", Role::Owner), member("cy", Role::Member)],
            next: None,
        });
        c.apply(ServerMsg::MemberAdded {
            conversation_id: r1(),
            member: member("bob", Role::Member),
            by: "ann".into(),
        });
        let names = |c: &Chat| -> Vec<String> {
            let p = c.panel.as_ref().unwrap();
            p.members.iter().map(|m| m.user.username.clone()).collect()
        };
        assert_eq!(names(&c), ["ann", "bob", "cy"], "kept in username order");
        c.apply(ServerMsg::RoleChanged {
            conversation_id: r1(),
            username: "bob".into(),
            role: Role::Admin,
        });
        assert_eq!(c.panel.as_ref().unwrap().members[1].role, Some(Role::Admin));
        c.apply(ServerMsg::MemberRemoved {
            conversation_id: r1(),
            username: "cy".into(),
            by: "ann".into(),
            banned: true,
        });
        assert_eq!(names(&c), ["ann", "bob"]);
        assert_eq!(c.panel.as_ref().unwrap().bans, vec![user("cy")]);
    }

    #[test]
    fn a_removal_is_told_and_a_new_role_or_topic_shows_at_once() {
        let mut c = room(Role::Member, false);
        c.apply(ServerMsg::RoleChanged {
            conversation_id: r1(),
            username: "ann".into(),
            role: Role::Admin,
        });
        assert_eq!(c.role_in(&r1()), Some(Role::Admin));
        c.apply(ServerMsg::RoomUpdated {
            conversation_id: r1(),
            name: "Ops 值班".into(),
            topic: "on call".into(),
            private: true,
            by: "bob".into(),
        });
        let s = c.summary(&r1()).unwrap();
        assert_eq!(
            (s.title.as_str(), s.topic.as_deref(), s.private),
            ("Ops 值班", Some("on call"), true)
        );
        c.open(r1());
        c.apply(ServerMsg::Left {
            conversation_id: r1(),
            reason: Some(LeftReason::Banned),
        });
        assert_eq!(c.active, None);
        assert_eq!(
            c.farewell,
            Some(Farewell {
                room: "Ops 值班".into(),
                reason: LeftReason::Banned
            })
        );
    }

    #[test]
    fn a_moderator_may_delete_anyones_message_a_member_only_their_own() {
        for (role, allowed) in [(Role::Admin, true), (Role::Member, false)] {
            let mut c = room(role, false);
            c.open(r1());
            c.apply(ServerMsg::Resumed);
            c.apply(ServerMsg::Message {
                message: crate::protocol::Message {
                    conversation_id: r1(),
                    seq: 1,
                    sender: "bob".into(),
                    body: "spam".into(),
                    client_msg_id: "b1".into(),
                    ..Default::default()
                },
            });
            assert_eq!(c.delete(1).is_some(), allowed, "{role:?}");
        }
    }
}
