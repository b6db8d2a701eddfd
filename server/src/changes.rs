//! What an edit, a deletion or a reaction does to a message, who may make it, and whom a
//! text mentions: pure rules over a [`MessageRecord`], used by the writers (which hold
//! every change to a conversation in order) and tested here apart from any I/O.

use app::{
    domain::{Emoji, MessageBody},
    protocol::{ErrorCode, Reaction, MAX_MENTIONS, MAX_REACTION_KINDS},
};

use crate::{refusal::Refusal, store::ChangeKind, store::MessageRecord};

/// A change a user asks for, to the message at `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Edit(MessageBody),
    /// The sender deletes their own message.
    Delete,
    /// A moderator (a room admin, a server admin) deletes anyone's message: made only by
    /// the chat service, once it checked the actor may (see [`app::roles`]).
    Remove,
    React(Emoji),
    Unreact(Emoji),
}

/// Applies `request` by `actor` at `now` to `message` (as it is now). `Ok(Some(kind))`: the
/// message changed, and a change of that kind is to be stored; `Ok(None)`: it already was
/// as asked (the same text, a reaction already there or already gone, a message already
/// deleted), so nothing is stored. Refused without changing anything when it is not the
/// actor's to make or the message cannot take it.
pub fn apply(
    request: &Request,
    actor: &str,
    now: i64,
    message: &mut MessageRecord,
) -> Result<Option<ChangeKind>, Refusal> {
    match request {
        Request::Edit(body) => {
            own(actor, message)?;
            not_deleted(message)?;
            if message.body == body.as_str() {
                return Ok(None);
            }
            message.body = body.as_str().to_owned();
            message.edited_at = Some(now);
            Ok(Some(ChangeKind::Edit))
        }
        Request::Delete | Request::Remove => {
            if *request == Request::Delete {
                own(actor, message)?;
            }
            if message.deleted {
                return Ok(None);
            }
            message.deleted = true;
            message.deleted_by = (message.sender != actor).then(|| actor.to_owned());
            message.body.clear();
            message.reactions.clear();
            message.mentions.clear();
            message.attachments.clear();
            Ok(Some(ChangeKind::Delete))
        }
        Request::React(emoji) => {
            not_deleted(message)?;
            let emoji = emoji.as_str();
            let kinds = message.reactions.len();
            match message.reactions.iter_mut().find(|r| r.emoji == emoji) {
                Some(r) if r.users.iter().any(|u| u == actor) => return Ok(None),
                Some(r) => r.users.push(actor.to_owned()),
                None if kinds >= MAX_REACTION_KINDS => {
                    return Err(Refusal::new(
                        ErrorCode::LimitReached,
                        format!("a message takes at most {MAX_REACTION_KINDS} different emoji"),
                    ))
                }
                None => message.reactions.push(Reaction {
                    emoji: emoji.to_owned(),
                    users: vec![actor.to_owned()],
                }),
            }
            Ok(Some(ChangeKind::React(emoji.to_owned())))
        }
        Request::Unreact(emoji) => {
            let emoji = emoji.as_str();
            let Some(r) = message
                .reactions
                .iter_mut()
                .find(|r| r.emoji == emoji && r.users.iter().any(|u| u == actor))
            else {
                return Ok(None);
            };
            r.users.retain(|u| u != actor);
            message.reactions.retain(|r| !r.users.is_empty());
            Ok(Some(ChangeKind::Unreact(emoji.to_owned())))
        }
    }
}

fn own(actor: &str, message: &MessageRecord) -> Result<(), Refusal> {
    if message.sender == actor {
        Ok(())
    } else {
        Err(Refusal::new(
            ErrorCode::Forbidden,
            "only its sender may edit or delete a message",
        ))
    }
}

fn not_deleted(message: &MessageRecord) -> Result<(), Refusal> {
    if message.deleted {
        Err(Refusal::new(
            ErrorCode::InvalidInput,
            "seq: the message was deleted",
        ))
    } else {
        Ok(())
    }
}

/// Whom a message by `sender` mentions, of the `names` its text gives (in order,
/// distinct): members of the conversation (`members`, sorted) other than the sender, at
/// most [`MAX_MENTIONS`].
pub fn mentions(names: Vec<String>, sender: &str, members: &[String]) -> Vec<String> {
    names
        .into_iter()
        .filter(|n| n != sender && members.binary_search(n).is_ok())
        .take(MAX_MENTIONS)
        .collect()
}

/// The refusal for a change to, or a reply to, a position that holds no message.
pub fn no_such_message(field: &str) -> Refusal {
    Refusal::new(ErrorCode::NotFound, format!("{field}: no such message"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_moderator_removes_anyones_message_and_is_named_for_it() {
        let mut m = MessageRecord {
            sender: "ann".into(),
            body: "spam".into(),
            ..MessageRecord::default()
        };
        assert_eq!(
            apply(&Request::Delete, "mod", 1, &mut m).unwrap_err().code,
            ErrorCode::Forbidden
        );
        assert_eq!(
            apply(&Request::Remove, "mod", 2, &mut m),
            Ok(Some(ChangeKind::Delete))
        );
        assert!(m.deleted && m.body.is_empty());
        assert_eq!(m.deleted_by.as_deref(), Some("mod"));
        assert_eq!(apply(&Request::Remove, "mod", 3, &mut m), Ok(None));
        let mut own = MessageRecord {
            sender: "mod".into(),
            body: "mine".into(),
            ..MessageRecord::default()
        };
        apply(&Request::Remove, "mod", 4, &mut own).unwrap();
        assert_eq!(
            own.deleted_by, None,
            "deleting one's own message names nobody"
        );
    }

    #[test]
    fn mentions_are_members_other_than_the_sender_up_to_the_cap() {
        let members: Vec<String> = (0..100).map(|i| format!("u{i:03}")).collect();
        let names = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            mentions(names(&["u001", "zed", "u000", "u002"]), "u000", &members),
            names(&["u001", "u002"])
        );
        let everyone = members.clone();
        let kept = mentions(everyone, "nobody", &members);
        assert_eq!(kept.len(), MAX_MENTIONS);
        assert_eq!(kept[0], "u000", "the first named are kept");
    }

    fn message() -> MessageRecord {
        MessageRecord {
            conversation: "r".into(),
            seq: 3,
            n: 3,
            sender: "ann".into(),
            body: "helo".into(),
            client_msg_id: "c".into(),
            sent_at: 1,
            ..MessageRecord::default()
        }
    }

    fn edit(text: &str) -> Request {
        Request::Edit(MessageBody::parse(text).unwrap())
    }

    fn emoji(e: &str) -> Emoji {
        Emoji::parse(e).unwrap()
    }

    #[test]
    fn only_the_sender_edits_or_deletes_and_a_refusal_changes_nothing() {
        let mut m = message();
        for request in [edit("hello"), Request::Delete] {
            let refused = apply(&request, "bob", 9, &mut m).unwrap_err();
            assert_eq!(refused.code, ErrorCode::Forbidden);
            assert_eq!(m, message());
        }
        assert_eq!(
            apply(&edit("hello"), "ann", 9, &mut m),
            Ok(Some(ChangeKind::Edit))
        );
        assert_eq!((m.body.as_str(), m.edited_at), ("hello", Some(9)));
        assert_eq!(
            apply(&edit("hello"), "ann", 10, &mut m),
            Ok(None),
            "same text"
        );
        assert_eq!(m.edited_at, Some(9));
    }

    #[test]
    fn a_deletion_erases_text_and_reactions_and_ends_every_other_change() {
        let mut m = message();
        apply(&Request::React(emoji("👍")), "bob", 2, &mut m).unwrap();
        assert_eq!(
            apply(&Request::Delete, "ann", 3, &mut m),
            Ok(Some(ChangeKind::Delete))
        );
        assert!(m.deleted && m.body.is_empty() && m.reactions.is_empty());
        assert_eq!(apply(&Request::Delete, "ann", 4, &mut m), Ok(None));
        for request in [edit("again"), Request::React(emoji("👍"))] {
            let refused = apply(&request, "ann", 5, &mut m).unwrap_err();
            assert_eq!(refused.code, ErrorCode::InvalidInput);
        }
        assert_eq!(
            apply(&Request::Unreact(emoji("👍")), "bob", 6, &mut m),
            Ok(None)
        );
    }

    #[test]
    fn reactions_are_sets_per_emoji_in_the_order_first_used() {
        let mut m = message();
        let react = |m: &mut MessageRecord, who: &str, e: &str| {
            apply(&Request::React(emoji(e)), who, 1, m).unwrap()
        };
        assert_eq!(
            react(&mut m, "bob", "👍"),
            Some(ChangeKind::React("👍".into()))
        );
        assert_eq!(react(&mut m, "bob", "👍"), None, "twice is once");
        react(&mut m, "cy", "🎉");
        react(&mut m, "ann", "👍");
        assert_eq!(m.reactions.len(), 2);
        assert_eq!(m.reactions[0].users, ["bob", "ann"]);
        assert_eq!(
            apply(&Request::Unreact(emoji("👍")), "bob", 2, &mut m),
            Ok(Some(ChangeKind::Unreact("👍".into())))
        );
        assert_eq!(
            apply(&Request::Unreact(emoji("👍")), "bob", 2, &mut m),
            Ok(None)
        );
        apply(&Request::Unreact(emoji("🎉")), "cy", 2, &mut m).unwrap();
        assert_eq!(m.reactions.len(), 1, "an emoji nobody uses any more goes");
    }

    #[test]
    fn a_message_takes_a_bounded_number_of_different_emoji() {
        let mut m = message();
        let all: Vec<&str> = [
            "😀", "😁", "😂", "🤣", "😃", "😄", "😅", "😆", "😉", "😊", "😋", "😎", "😍", "😘",
            "🥰", "😗", "😙", "🥲", "😚", "🙂", "🤗",
        ]
        .into_iter()
        .collect();
        for e in &all[..MAX_REACTION_KINDS] {
            apply(&Request::React(emoji(e)), "bob", 1, &mut m).unwrap();
        }
        let refused = apply(
            &Request::React(emoji(all[MAX_REACTION_KINDS])),
            "bob",
            1,
            &mut m,
        );
        assert_eq!(refused.unwrap_err().code, ErrorCode::LimitReached);
        assert_eq!(
            apply(&Request::React(emoji(all[0])), "cy", 1, &mut m),
            Ok(Some(ChangeKind::React(all[0].into()))),
            "a new person on a used emoji is fine"
        );
    }
}
