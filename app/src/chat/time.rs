//! Times as people read them: "just now", "5 min", "yesterday"; day separators; clock times.
//!
//! The functions take *local* milliseconds (UTC milliseconds shifted by the user's time-zone
//! offset, see [`to_local`]), so that they are pure and tested on the host.

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// UTC milliseconds to the browser's local time (the server renders UTC).
pub fn to_local(utc_ms: i64) -> i64 {
    #[cfg(feature = "hydrate")]
    {
        let date = web_sys::js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(utc_ms as f64));
        utc_ms - (date.get_timezone_offset() * MINUTE as f64) as i64
    }
    #[cfg(not(feature = "hydrate"))]
    utc_ms
}

/// The browser's clock, in UTC milliseconds.
pub fn now_ms() -> i64 {
    #[cfg(feature = "hydrate")]
    {
        web_sys::js_sys::Date::now() as i64
    }
    #[cfg(not(feature = "hydrate"))]
    0
}

struct Civil {
    year: i64,
    /// 1–12.
    month: u32,
    day: u32,
    /// 0 = Sunday.
    weekday: usize,
}

fn day_number(local_ms: i64) -> i64 {
    local_ms.div_euclid(DAY)
}

/// Days since 1970-01-01 to a calendar date (Howard Hinnant's `civil_from_days`).
fn civil(days: i64) -> Civil {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        weekday: (days + 4).rem_euclid(7) as usize,
    }
}

/// "14:05".
pub fn clock(local_ms: i64) -> String {
    let in_day = local_ms.rem_euclid(DAY);
    format!("{:02}:{:02}", in_day / HOUR, (in_day % HOUR) / MINUTE)
}

/// For the conversation list: "just now", "5 min", "14:05", "yesterday", "Mon", "3 Nov",
/// "3 Nov 2025".
pub fn relative(now_local: i64, then_local: i64) -> String {
    let ago = now_local - then_local;
    if ago < MINUTE {
        return "just now".into();
    }
    if ago < HOUR {
        return format!("{} min", ago / MINUTE);
    }
    let days = day_number(now_local) - day_number(then_local);
    let then = civil(day_number(then_local));
    match days {
        0 => clock(then_local),
        1 => "yesterday".into(),
        2..=6 => WEEKDAYS[then.weekday][..3].to_owned(),
        _ if then.year == civil(day_number(now_local)).year => {
            format!("{} {}", then.day, &MONTHS[then.month as usize - 1][..3])
        }
        _ => format!(
            "{} {} {}",
            then.day,
            &MONTHS[then.month as usize - 1][..3],
            then.year
        ),
    }
}

/// For the separator above a day's first message: "Today", "Yesterday", "Monday 16 November",
/// "Monday 16 November 2025".
pub fn day_label(now_local: i64, then_local: i64) -> String {
    let days = day_number(now_local) - day_number(then_local);
    let then = civil(day_number(then_local));
    match days {
        0 => "Today".into(),
        1 => "Yesterday".into(),
        _ => {
            let mut label = format!(
                "{} {} {}",
                WEEKDAYS[then.weekday],
                then.day,
                MONTHS[then.month as usize - 1]
            );
            if then.year != civil(day_number(now_local)).year {
                label.push_str(&format!(" {}", then.year));
            }
            label
        }
    }
}

/// Whether two local times fall on the same calendar day.
pub fn same_day(a_local: i64, b_local: i64) -> bool {
    day_number(a_local) == day_number(b_local)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-22 (a Sunday) at 15:30, as local milliseconds.
    const NOW: i64 = 1_795_361_400_000;

    #[test]
    fn the_reference_date_is_what_the_tests_say() {
        let c = civil(day_number(NOW));
        assert_eq!((c.year, c.month, c.day, c.weekday), (2026, 11, 22, 0));
        assert_eq!(clock(NOW), "15:30");
        let epoch = civil(0);
        assert_eq!(
            (epoch.year, epoch.month, epoch.day, epoch.weekday),
            (1970, 1, 1, 4)
        );
        let leap = civil(day_number(951_782_400_000)); // 2000-02-29
        assert_eq!((leap.year, leap.month, leap.day), (2000, 2, 29));
    }

    #[test]
    fn recent_times_read_naturally() {
        let cases = [
            (0, "just now"),
            (59_000, "just now"),
            (5 * MINUTE, "5 min"),
            (59 * MINUTE, "59 min"),
            (2 * HOUR, "13:30"),
            (16 * HOUR, "yesterday"),
            (2 * DAY, "Fri"),
            (6 * DAY, "Mon"),
            (7 * DAY, "15 Nov"),
            (330 * DAY, "27 Dec 2025"),
        ];
        for (ago, want) in cases {
            assert_eq!(relative(NOW, NOW - ago), want, "{ago} ms ago");
        }
    }

    #[test]
    fn day_separators_name_the_day() {
        assert_eq!(day_label(NOW, NOW - HOUR), "Today");
        assert_eq!(day_label(NOW, NOW - DAY), "Yesterday");
        assert_eq!(day_label(NOW, NOW - 6 * DAY), "Monday 16 November");
        assert_eq!(day_label(NOW, NOW - 330 * DAY), "Saturday 27 December 2025");
        assert!(same_day(NOW, NOW - HOUR));
        assert!(!same_day(NOW, NOW - 16 * HOUR));
    }
}
