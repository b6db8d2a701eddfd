//! Running a room: its name, topic and privacy, adding, removing and banning people, roles
//! and invite links. Every method first finds where the asking user stands in the room and
//! asks [`app::roles::may`]; a refusal changes nothing.

use app::{
    domain::{RoomName, RoomTopic},
    protocol::{
        ConversationId, ErrorCode, LeftReason, Member, Role, ServerMsg, UserInfo,
        DEFAULT_INVITE_HOURS, MAX_INVITE_HOURS,
    },
    roles::{may, RoomAction, Standing},
};

use super::{not_the_default_name, ChatService, Refusal, Reply};
use crate::{
    hub::Outbound,
    store::{Kind, RoomStanding, StoreError, DEFAULT_ROOM_KEY},
};

/// A room as the asking user stands in it.
pub(super) struct RoomCheck {
    pub room: RoomStanding,
    /// The asking user is a server administrator.
    pub server_admin: bool,
}

impl RoomCheck {
    pub fn allows(&self, action: RoomAction) -> bool {
        may(
            self.room.standing,
            self.server_admin,
            self.room.private,
            action,
        )
    }

    /// `Ok` when the user may do `action`; else the refusal they get: a private room does
    /// not exist to an outsider, a banned person is told so, a member is forbidden.
    pub fn require(&self, action: RoomAction) -> Result<(), Refusal> {
        if self.allows(action) {
            return Ok(());
        }
        Err(match self.room.standing {
            Standing::Banned => Refusal::new(ErrorCode::Banned, "you are banned from this room"),
            Standing::Outsider => Refusal::new(ErrorCode::NotFound, "no such conversation"),
            Standing::In(_) => Refusal::new(
                ErrorCode::Forbidden,
                match action {
                    RoomAction::SetRole
                    | RoomAction::Remove(Role::Admin)
                    | RoomAction::Ban(Role::Admin) => "only the room's owner may do that",
                    RoomAction::Remove(Role::Owner) | RoomAction::Ban(Role::Owner) => {
                        "nobody may remove or ban the room's owner"
                    }
                    _ => "only the room's admins may do that",
                },
            ),
        })
    }
}

impl ChatService {
    /// Where `me` stands in the room `key`. A direct conversation is refused as not a room
    /// (to its members; to anyone else it does not exist).
    pub(super) async fn room(&self, me: &str, key: &str) -> Result<RoomCheck, Refusal> {
        let room = self.store.standing(key, me).await?;
        if room.kind == Kind::Direct {
            return Err(match room.standing {
                Standing::In(_) => StoreError::NotARoom,
                _ => StoreError::NoSuchConversation,
            }
            .into());
        }
        self.check(me, room).await
    }

    /// `room` as `me` stands in it, with whether they administer the server.
    async fn check(&self, me: &str, room: RoomStanding) -> Result<RoomCheck, Refusal> {
        let server_admin = self.store.user(me).await?.is_some_and(|u| u.admin);
        Ok(RoomCheck { room, server_admin })
    }

    /// Whether `me` may delete anyone's message in `key` (a room admin there, or a server
    /// admin anywhere).
    pub(super) async fn moderates(&self, me: &str, key: &str) -> Result<bool, Refusal> {
        let room = match self.store.standing(key, me).await {
            Ok(room) => room,
            // Refused as every other path into a conversation that is not there.
            Err(StoreError::NoSuchConversation) => return Ok(false),
            Err(e) => return Err(e.into()),
        };
        Ok(self.check(me, room).await?.allows(RoomAction::DeleteAny))
    }

    /// Sends `msg` to every member of `key` (and to `also`).
    async fn tell_members(&self, key: &str, msg: &ServerMsg, also: &[&str]) {
        let mut to: Vec<String> = match self.store.members(key).await {
            Ok(members) => members.to_vec(),
            Err(_) => Vec::new(),
        };
        to.extend(also.iter().map(|s| (*s).to_owned()));
        to.sort();
        to.dedup();
        self.hub.push(&to, &Outbound::frame(msg), None);
    }

    /// `who` joined `key` (by `by`): they get the conversation, every member the news.
    pub(super) async fn announce_member(&self, key: &str, who: &str, by: &str) -> ServerMsg {
        if who != by {
            if let Ok(conversation) = self.conversation(who, key).await {
                self.hub
                    .push(&[who.to_owned()], &Outbound::frame(&conversation), None);
            }
        }
        let user = match self.store.user(who).await {
            Ok(Some(u)) => u.info(),
            _ => UserInfo::named(who, who),
        };
        let msg = ServerMsg::MemberAdded {
            conversation_id: ConversationId(key.to_owned()),
            member: Member {
                online: self.hub.is_online(who),
                user,
                last_read_seq: Some(0),
                role: Some(Role::Member),
            },
            by: by.to_owned(),
        };
        self.tell_members(key, &msg, &[]).await;
        msg
    }

    /// Changes the name, topic or privacy of a room.
    pub async fn update_room(
        &self,
        me: &str,
        key: &str,
        name: Option<&RoomName>,
        topic: Option<&RoomTopic>,
        private: Option<bool>,
    ) -> Reply {
        let check = self.room(me, key).await?;
        check.require(RoomAction::EditRoom)?;
        if key == DEFAULT_ROOM_KEY && (name.is_some() || private == Some(true)) {
            return Err(Refusal::new(
                ErrorCode::InvalidInput,
                "the server's own room keeps its name and stays public",
            ));
        }
        if let Some(name) = name {
            not_the_default_name(name)?;
        }
        if !self.budgets.sends.allow(me) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many changes; slow down",
            ));
        }
        self.store
            .update_room(key, &check.room.name, name, topic, private)
            .await?;
        let msg = ServerMsg::RoomUpdated {
            conversation_id: ConversationId(key.to_owned()),
            name: name.map_or(check.room.name, |n| n.as_str().to_owned()),
            topic: topic.map_or(check.room.topic, |t| t.as_str().to_owned()),
            private: private.unwrap_or(check.room.private),
            by: me.to_owned(),
        };
        self.tell_members(key, &msg, &[]).await;
        Ok(msg)
    }

    /// Adds `username` to a room.
    pub async fn add_member(&self, me: &str, key: &str, username: &str) -> Reply {
        let check = self.room(me, key).await?;
        check.require(RoomAction::Invite)?;
        if self.store.user(username).await?.is_none() {
            return Err(StoreError::NoSuchUser.into());
        }
        let added = match self
            .store
            .admit(key, username, crate::clock::now_ms())
            .await
        {
            Err(StoreError::Banned) => {
                return Err(Refusal::new(
                    ErrorCode::Banned,
                    format!("{username} is banned from this room; lift the ban first"),
                ))
            }
            added => added?,
        };
        if !added {
            return Err(Refusal::new(
                ErrorCode::InvalidInput,
                format!("{username} is already in this room"),
            ));
        }
        Ok(self.announce_member(key, username, me).await)
    }

    /// Removes `username` from a room, banning them too when `ban`.
    pub async fn remove_member(&self, me: &str, key: &str, username: &str, ban: bool) -> Reply {
        if username == me {
            return Err(Refusal::new(
                ErrorCode::InvalidInput,
                "to remove yourself, leave the room",
            ));
        }
        let check = self.room(me, key).await?;
        // Where they stand decides who may act on them.
        let target = self.store.standing(key, username).await?;
        let target_role = match target.standing {
            Standing::In(role) => role,
            _ if ban => Role::Member,
            _ => {
                check.require(RoomAction::TakePart)?;
                return Err(Refusal::new(
                    ErrorCode::NotFound,
                    format!("{username} is not in this room"),
                ));
            }
        };
        check.require(if ban {
            RoomAction::Ban(target_role)
        } else {
            RoomAction::Remove(target_role)
        })?;
        if ban && self.store.user(username).await?.is_none() {
            return Err(StoreError::NoSuchUser.into());
        }
        let was_member = self
            .store
            .remove_member(key, username, ban.then_some(me), crate::clock::now_ms())
            .await?;
        if was_member {
            let left = ServerMsg::Left {
                conversation_id: ConversationId(key.to_owned()),
                reason: Some(if ban {
                    LeftReason::Banned
                } else {
                    LeftReason::Removed
                }),
            };
            self.hub
                .push(&[username.to_owned()], &Outbound::frame(&left), None);
        }
        let msg = ServerMsg::MemberRemoved {
            conversation_id: ConversationId(key.to_owned()),
            username: username.to_owned(),
            by: me.to_owned(),
            banned: ban,
        };
        if was_member {
            self.tell_members(key, &msg, &[]).await;
        }
        Ok(msg)
    }

    /// Lifts a ban; answered with the bans left.
    pub async fn unban(&self, me: &str, key: &str, username: &str) -> Reply {
        self.room(me, key).await?.require(RoomAction::Unban)?;
        self.store.unban(key, username).await?;
        self.bans_of(key).await
    }

    pub async fn list_bans(&self, me: &str, key: &str) -> Reply {
        self.room(me, key).await?.require(RoomAction::Unban)?;
        self.bans_of(key).await
    }

    async fn bans_of(&self, key: &str) -> Reply {
        let users = self.store.bans(key).await?;
        Ok(ServerMsg::Bans {
            conversation_id: ConversationId(key.to_owned()),
            users: users
                .into_iter()
                .map(|(username, display_name)| UserInfo::named(username, display_name))
                .collect(),
        })
    }

    /// Makes a member an admin, or an admin a member.
    pub async fn set_role(&self, me: &str, key: &str, username: &str, role: Role) -> Reply {
        let check = self.room(me, key).await?;
        check.require(RoomAction::SetRole)?;
        if role == Role::Owner {
            return Err(Refusal::new(
                ErrorCode::InvalidInput,
                "role: a room has one owner, the person who created it",
            ));
        }
        match self.store.standing(key, username).await?.standing {
            Standing::In(Role::Owner) => {
                return Err(Refusal::new(
                    ErrorCode::InvalidInput,
                    "the owner's role does not change",
                ))
            }
            Standing::In(_) => {}
            _ => {
                return Err(Refusal::new(
                    ErrorCode::NotFound,
                    format!("{username} is not in this room"),
                ))
            }
        }
        self.store.set_role(key, username, role).await?;
        let msg = ServerMsg::RoleChanged {
            conversation_id: ConversationId(key.to_owned()),
            username: username.to_owned(),
            role,
        };
        self.tell_members(key, &msg, &[]).await;
        Ok(msg)
    }

    /// Creates an invite link that works for `hours`; answered with the room's live links.
    pub async fn create_invite(&self, me: &str, key: &str, hours: Option<u32>) -> Reply {
        self.room(me, key).await?.require(RoomAction::ManageLinks)?;
        let hours = hours.unwrap_or(DEFAULT_INVITE_HOURS);
        if !(1..=MAX_INVITE_HOURS).contains(&hours) {
            return Err(Refusal::new(
                ErrorCode::InvalidInput,
                format!("hours: must be 1–{MAX_INVITE_HOURS}"),
            ));
        }
        if !self.budgets.sends.allow(me) {
            return Err(Refusal::new(
                ErrorCode::RateLimited,
                "too many links made lately; wait a moment",
            ));
        }
        let now = crate::clock::now_ms();
        let token = crate::auth::random_hex(16);
        self.store
            .create_invite(key, &token, me, now, now + i64::from(hours) * 3_600_000)
            .await?;
        self.invites_of(key).await
    }

    pub async fn list_invites(&self, me: &str, key: &str) -> Reply {
        self.room(me, key).await?.require(RoomAction::ManageLinks)?;
        self.invites_of(key).await
    }

    pub async fn revoke_invite(&self, me: &str, key: &str, token: &str) -> Reply {
        self.room(me, key).await?.require(RoomAction::ManageLinks)?;
        if !crate::auth::valid_token(token) || !self.store.revoke_invite(key, token).await? {
            return Err(Refusal::new(
                ErrorCode::NotFound,
                "token: no such invite link to this room",
            ));
        }
        self.invites_of(key).await
    }

    async fn invites_of(&self, key: &str) -> Reply {
        Ok(ServerMsg::Invites {
            conversation_id: ConversationId(key.to_owned()),
            invites: self.store.invites(key, crate::clock::now_ms()).await?,
        })
    }

    /// Joins the room an invite link leads to.
    pub async fn join_by_invite(&self, me: &str, token: &str) -> Reply {
        let invalid = || {
            Refusal::new(
                ErrorCode::InviteInvalid,
                "this invite link has expired, was revoked or never existed",
            )
        };
        if !crate::auth::valid_token(token) {
            return Err(invalid());
        }
        let now = crate::clock::now_ms();
        let key = self
            .store
            .invite_room(token, now)
            .await?
            .ok_or_else(invalid)?;
        if self.store.admit(&key, me, now).await? {
            self.announce_member(&key, me, me).await;
        }
        self.conversation(me, &key).await
    }
}
