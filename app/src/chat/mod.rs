//! The chat's browser-side model, kept free of the DOM so that it is tested on the host.
//!
//! - [`state`] — [`Chat`]: conversations, messages, echoes, unread counts, changed by frames.
//! - [`address`] — the path of each conversation (`/c/<conversation>`).
//! - [`rooms`] — running a room: its panel of members, bans and links; removals and bans.
//! - [`time`] — relative times, day separators.
//! - [`uploads`] — the files picked for the next message and how their uploads go.
//! - [`avatar`] — initials and a stable colour for a user or room.

pub mod address;
pub mod rooms;
pub mod state;
pub mod time;
pub mod uploads;

pub use state::{search_request, Alert, Chat, Found, Pending, PendingState, SearchRequest, Thread};

/// Initials and hue of the round avatar shown beside a name.
pub mod avatar {
    /// Up to two letters: the first of the first two words ("Ada Lovelace" -> "AL").
    pub fn initials(name: &str) -> String {
        let mut words = name.split_whitespace().filter_map(|w| w.chars().next());
        let mut out: String = words
            .next()
            .into_iter()
            .flat_map(char::to_uppercase)
            .collect();
        out.extend(words.next().into_iter().flat_map(char::to_uppercase));
        if out.is_empty() {
            out.push('?');
        }
        out
    }

    /// A hue (0–359) that always comes out the same for the same key (FNV-1a).
    pub fn hue(key: &str) -> u32 {
        let mut h: u32 = 0x811c_9dc5;
        for b in key.bytes() {
            h ^= u32::from(b);
            h = h.wrapping_mul(0x0100_0193);
        }
        h % 360
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn initials_take_the_first_two_words() {
            assert_eq!(initials("Ada Lovelace Byron"), "AL");
            assert_eq!(initials("bob"), "B");
            assert_eq!(initials("  "), "?");
            assert_eq!(initials("élodie"), "É");
        }

        #[test]
        fn hues_are_fnv1a_and_spread_over_the_wheel() {
            // FNV-1a of the key's bytes, modulo 360: the same in every browser and release.
            assert_eq!((hue("ann"), hue("bob"), hue("")), (320, 284, 61));
            let hues: std::collections::HashSet<u32> =
                (0..1000).map(|i| hue(&format!("user{i}"))).collect();
            assert!(hues.iter().all(|&h| h < 360));
            assert!(hues.len() > 300, "1,000 names share {} hues", hues.len());
        }
    }
}
