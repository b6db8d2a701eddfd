//! Property tests ("fuzzing" with proptest) of everything that parses untrusted input: the
//! frame decoder and every domain parser. None may panic, whatever the input; what they
//! accept must satisfy the documented rules; and valid frames survive a round trip.
//!
//! Case counts scale with `PROPTEST_CASES` (default below); RELIABILITY.md records a run.

use app::domain::{ClientMsgId, DisplayName, Emoji, MessageBody, Password, RoomName, Username};
use app::markdown::{parse, safe_href, Block, Inline, MAX_DEPTH};
use app::protocol::{ClientMsg, ConversationId, ErrorCode, Position, ServerMsg, MAX_FRAME_BYTES};
use proptest::prelude::*;

/// Cases per property unless `PROPTEST_CASES` says otherwise.
const CASES: u32 = 2_000;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CASES);
    ProptestConfig {
        cases,
        // No regression files in the source tree; failures print their minimal input.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Strings that look like what attackers send: any Unicode, control characters, markup,
/// JSON punctuation, very long runs.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\x00-\\x1f<>\"'&\\\\{}\\[\\]:, a-zA-Z0-9_.-]{0,80}",
        ".{0,5000}",
        Just(String::new()),
    ]
}

/// JSON values of any shape, a few levels deep.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(|f| serde_json::json!(f)),
        hostile_string().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::btree_map("[a-z_]{1,16}", inner, 0..6)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

const TYPES: &[&str] = &[
    "ping",
    "resume",
    "list_conversations",
    "open_direct",
    "create_room",
    "list_rooms",
    "join_room",
    "leave_room",
    "list_members",
    "search_users",
    "send",
    "history",
    "mark_read",
    "typing",
    "launch_rockets",
];
const FIELDS: &[&str] = &[
    "nonce",
    "positions",
    "username",
    "name",
    "conversation_id",
    "query",
    "client_msg_id",
    "body",
    "before_seq",
    "limit",
    "seq",
    "extra",
];

/// Objects with a real (or almost real) `type` and a random choice of real field names
/// holding values of any type: the frames most likely to reach deep into the decoder.
fn frame_like() -> impl Strategy<Value = String> {
    (
        prop::sample::select(TYPES),
        prop::collection::vec((prop::sample::select(FIELDS), json_value()), 0..5),
    )
        .prop_map(|(t, fields)| {
            let mut obj = serde_json::Map::new();
            obj.insert("type".into(), t.into());
            for (k, v) in fields {
                obj.insert(k.into(), v);
            }
            serde_json::Value::Object(obj).to_string()
        })
}

fn valid_client_msg() -> impl Strategy<Value = ClientMsg> {
    let conv = "[a-z0-9/|]{1,40}".prop_map(ConversationId);
    let body = "[^\\x00-\\x08\\x0b-\\x1f\\x7f]{0,200}[a-z]"
        .prop_filter_map("valid body", |s| MessageBody::parse(&s).ok());
    let cmid = "[A-Za-z0-9_-]{1,64}".prop_map(|s| ClientMsgId::parse(&s).unwrap());
    prop_oneof![
        any::<u64>().prop_map(|nonce| ClientMsg::Ping { nonce }),
        any::<Option<u32>>().prop_map(|limit| ClientMsg::ListConversations { limit }),
        (prop::option::of(conv.clone()), any::<Option<u32>>())
            .prop_map(|(after, limit)| ClientMsg::ListRooms { after, limit }),
        (
            conv.clone(),
            prop::option::of("[a-z0-9]{3,32}"),
            any::<Option<u32>>()
        )
            .prop_map(|(conversation_id, after, limit)| ClientMsg::ListMembers {
                conversation_id,
                after,
                limit,
            }),
        (conv.clone(), cmid, body.clone(), any::<Option<u64>>()).prop_map(
            |(conversation_id, client_msg_id, body, reply_to)| ClientMsg::Send {
                conversation_id,
                client_msg_id,
                body: Some(body),
                reply_to,
                attachments: Vec::new(),
            }
        ),
        (conv.clone(), any::<u64>(), body).prop_map(|(conversation_id, seq, body)| {
            ClientMsg::Edit {
                conversation_id,
                seq,
                body,
            }
        }),
        (conv.clone(), any::<u64>()).prop_map(|(conversation_id, seq)| ClientMsg::Delete {
            conversation_id,
            seq
        }),
        (
            conv.clone(),
            any::<u64>(),
            prop::sample::select(vec!["👍", "❤️", "🎉", "👍🏽"])
        )
            .prop_map(|(conversation_id, seq, e)| ClientMsg::React {
                conversation_id,
                seq,
                emoji: Emoji::parse(e).unwrap(),
            }),
        (
            conv.clone(),
            any::<u64>(),
            prop::sample::select(vec!["😂", "🇨🇳"])
        )
            .prop_map(|(conversation_id, seq, e)| ClientMsg::Unreact {
                conversation_id,
                seq,
                emoji: Emoji::parse(e).unwrap(),
            }),
        (conv.clone(), any::<Option<u64>>(), any::<Option<u32>>()).prop_map(
            |(conversation_id, before_seq, limit)| ClientMsg::History {
                conversation_id,
                before_seq,
                limit,
            }
        ),
        (conv.clone(), any::<u64>()).prop_map(|(conversation_id, seq)| ClientMsg::MarkRead {
            conversation_id,
            seq
        }),
        prop::collection::vec((conv, any::<u64>()), 0..5).prop_map(|ps| ClientMsg::Resume {
            positions: ps
                .into_iter()
                .map(|(conversation_id, seq)| Position {
                    conversation_id,
                    seq,
                })
                .collect(),
        }),
    ]
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn the_decoder_never_panics_on_arbitrary_text(s in hostile_string()) {
        let _ = ClientMsg::decode(&s);
        let _ = ServerMsg::decode(&s);
    }

    #[test]
    fn the_decoder_never_panics_on_arbitrary_json(v in json_value()) {
        let _ = ClientMsg::decode(&v.to_string());
        let _ = ServerMsg::decode(&v.to_string());
    }

    #[test]
    fn frame_like_objects_decode_or_get_a_typed_refusal(frame in frame_like()) {
        match ClientMsg::decode(&frame) {
            // Whatever decodes is a frame the server can encode back identically.
            Ok(msg) => prop_assert_eq!(ClientMsg::decode(&msg.encode()), Ok(msg)),
            Err(e) => prop_assert!(
                matches!(
                    e.code,
                    ErrorCode::BadFrame | ErrorCode::InvalidInput | ErrorCode::FrameTooLarge
                ),
                "{frame} -> {e:?}"
            ),
        }
    }

    #[test]
    fn valid_frames_survive_a_round_trip(msg in valid_client_msg()) {
        let text = msg.encode();
        prop_assert!(text.len() <= MAX_FRAME_BYTES);
        prop_assert_eq!(ClientMsg::decode(&text), Ok(msg));
    }

    #[test]
    fn oversized_frames_are_refused_by_size(pad in MAX_FRAME_BYTES..MAX_FRAME_BYTES * 2) {
        let frame = format!(r#"{{"type":"ping","nonce":1,"x":"{}"}}"#, "a".repeat(pad));
        prop_assert_eq!(ClientMsg::decode(&frame).unwrap_err().code, ErrorCode::FrameTooLarge);
    }

    #[test]
    fn usernames_accepted_are_normalised_and_within_the_rules(s in hostile_string()) {
        if let Ok(u) = Username::parse(&s) {
            let v = u.as_str();
            prop_assert!((Username::MIN..=Username::MAX).contains(&v.chars().count()));
            prop_assert!(v.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c)));
            prop_assert!(v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric()));
            let again = Username::parse(v);
            prop_assert_eq!(again.as_ref(), Ok(&u), "idempotent");
        }
    }

    #[test]
    fn names_accepted_have_no_control_characters(s in hostile_string()) {
        if let Ok(d) = DisplayName::parse(&s) {
            prop_assert!(!d.as_str().chars().any(char::is_control));
            prop_assert!(!d.as_str().trim().is_empty());
        }
        if let Ok(r) = RoomName::parse(&s) {
            prop_assert!(!r.as_str().chars().any(char::is_control));
            prop_assert!(!r.as_str().trim().is_empty());
        }
    }

    #[test]
    fn bodies_accepted_are_kept_exactly_and_within_the_rules(s in hostile_string()) {
        if let Ok(b) = MessageBody::parse(&s) {
            prop_assert_eq!(b.as_str(), s.as_str());
            prop_assert!(b.as_str().chars().count() <= MessageBody::MAX);
            prop_assert!(!b.as_str().trim().is_empty());
            prop_assert!(b.as_str().chars().all(|c| !c.is_control() || c == '\n' || c == '\t'));
            let p = b.preview(120);
            prop_assert!(p.chars().count() <= 120);
        }
    }

    #[test]
    fn client_ids_and_passwords_never_panic(s in hostile_string()) {
        if let Ok(id) = ClientMsgId::parse(&s) {
            prop_assert!(id.as_str().len() <= ClientMsgId::MAX);
        }
        if let Ok(p) = Password::parse(&s) {
            prop_assert_eq!(format!("{p:?}"), "Password(***)", "Debug never shows a password");
        }
    }

    #[test]
    fn formatting_any_text_never_panics_nests_shallowly_and_links_only_safely(
        s in prop_oneof![
            hostile_string(),
            // Markdown's own punctuation, in runs that open and close many spans.
            "[-*_~`>#\\[\\]()!<:/ \n.a-z0-9]{0,3000}",
        ]
    ) {
        fn spans(list: &[Inline], depth: usize) -> Result<usize, TestCaseError> {
            let mut deepest = depth;
            for s in list {
                match s {
                    Inline::Link { href, children } => {
                        prop_assert_eq!(safe_href(href), Some(href.clone()));
                        let nested = children.iter().any(|c| matches!(c, Inline::Link { .. }));
                        prop_assert!(!nested, "a link inside a link");
                        deepest = deepest.max(spans(children, depth + 1)?);
                    }
                    Inline::Strong(c) | Inline::Emphasis(c) | Inline::Strike(c) => {
                        deepest = deepest.max(spans(c, depth + 1)?);
                    }
                    _ => {}
                }
            }
            Ok(deepest)
        }
        fn blocks(list: &[Block], depth: usize) -> Result<usize, TestCaseError> {
            let mut deepest = depth;
            for b in list {
                deepest = deepest.max(match b {
                    Block::Paragraph(s) | Block::Heading(s) => spans(s, depth)?,
                    Block::Quote(inner) => blocks(inner, depth + 1)?,
                    Block::List { items, .. } => {
                        let mut d = depth + 1;
                        for item in items {
                            d = d.max(blocks(item, depth + 1)?);
                        }
                        d
                    }
                    Block::Code { .. } | Block::Rule => depth,
                });
            }
            Ok(deepest)
        }
        let parsed = parse(&s);
        prop_assert!(blocks(&parsed, 0)? <= MAX_DEPTH + 1);
    }
}
