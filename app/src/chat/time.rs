//! Times as people read them, in the interface's language: "just now" / "刚刚", "5 min. ago" /
//! "5分钟前", "yesterday" / "昨天", a weekday, a date; day separators; clock times.
//!
//! Which of those a time is (`ago`, `day`) is decided here on *local* milliseconds (UTC
//! milliseconds shifted by the browser's time-zone offset, see [`to_local`]), purely, and
//! tested on the host. The words and the order of day, month and year come from the
//! browser's `Intl` formatters in the chosen language; the words `Intl` has no single form
//! for ("just now", "Today") come from the translations.

use crate::i18n::{td_string, Locale};

const MINUTE: i64 = 60_000;
const HOUR: i64 = 60 * MINUTE;
const DAY: i64 = 24 * HOUR;

/// How long ago something happened, as the conversation list and the search results say it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ago {
    JustNow,
    Minutes(i64),
    /// Earlier today: the clock time.
    Today,
    Yesterday,
    /// Within the last week: the weekday.
    ThisWeek,
    /// Earlier this year: day and month.
    ThisYear,
    /// Day, month and year.
    Long,
}

/// The heading of a day in a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Day {
    Today,
    Yesterday,
    /// Weekday, day and month.
    ThisYear,
    /// Weekday, day, month and year.
    Long,
}

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

fn day_number(local_ms: i64) -> i64 {
    local_ms.div_euclid(DAY)
}

/// The calendar year of a day number (days since 1970-01-01), after Howard Hinnant's
/// `civil_from_days`.
fn year(days: i64) -> i64 {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    yoe + era * 400 + i64::from(month <= 2)
}

/// Which way to say how long ago `then_local` was, seen at `now_local`.
pub fn ago(now_local: i64, then_local: i64) -> Ago {
    let ago = now_local - then_local;
    if ago < MINUTE {
        return Ago::JustNow;
    }
    if ago < HOUR {
        return Ago::Minutes(ago / MINUTE);
    }
    let (now_day, then_day) = (day_number(now_local), day_number(then_local));
    match now_day - then_day {
        0 => Ago::Today,
        1 => Ago::Yesterday,
        2..=6 => Ago::ThisWeek,
        _ if year(then_day) == year(now_day) => Ago::ThisYear,
        _ => Ago::Long,
    }
}

/// Which heading the day of `then_local` gets, seen at `now_local`.
pub fn day(now_local: i64, then_local: i64) -> Day {
    let (now_day, then_day) = (day_number(now_local), day_number(then_local));
    match now_day - then_day {
        0 => Day::Today,
        1 => Day::Yesterday,
        _ if year(then_day) == year(now_day) => Day::ThisYear,
        _ => Day::Long,
    }
}

/// Whether two UTC times fall on the same local calendar day.
pub fn same_day(a_utc: i64, b_utc: i64) -> bool {
    day_number(to_local(a_utc)) == day_number(to_local(b_utc))
}

/// For the conversation list and search results: "just now", "5 min. ago", "14:05",
/// "yesterday", "Mon", "Nov 3", "Nov 3, 2025" (or their Chinese forms).
pub fn relative(locale: Locale, now_utc: i64, then_utc: i64) -> String {
    match ago(to_local(now_utc), to_local(then_utc)) {
        Ago::JustNow => td_string!(locale, time.just_now).to_owned(),
        Ago::Minutes(n) => intl::minutes_ago(locale, n),
        Ago::Today => clock(locale, then_utc),
        Ago::Yesterday => intl::yesterday(locale),
        Ago::ThisWeek => intl::date(locale, then_utc, Style::Weekday),
        Ago::ThisYear => intl::date(locale, then_utc, Style::DayMonth),
        Ago::Long => intl::date(locale, then_utc, Style::DayMonthYear),
    }
}

/// For the separator above a day's first message: "Today", "Yesterday", "Monday, November
/// 16", "Monday, November 16, 2025" (or "今天", "昨天", "11月16日星期一").
pub fn day_label(locale: Locale, now_utc: i64, then_utc: i64) -> String {
    match day(to_local(now_utc), to_local(then_utc)) {
        Day::Today => td_string!(locale, time.today).to_owned(),
        Day::Yesterday => td_string!(locale, time.yesterday).to_owned(),
        Day::ThisYear => intl::date(locale, then_utc, Style::LongDay),
        Day::Long => intl::date(locale, then_utc, Style::LongDayYear),
    }
}

/// A message's time of day: "2:05 PM", "14:05".
pub fn clock(locale: Locale, utc: i64) -> String {
    intl::date(locale, utc, Style::Clock)
}

/// How much of a date to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Style {
    Clock,
    Weekday,
    DayMonth,
    DayMonthYear,
    LongDay,
    LongDayYear,
}

/// The browser's `Intl` formatters, made once per language and style.
#[cfg(feature = "hydrate")]
mod intl {
    use super::Locale;
    use super::Style;
    use std::cell::RefCell;
    use wasm_bindgen::JsValue;
    use web_sys::js_sys::{Array, Date, Function, Intl, Object, Reflect};

    impl Style {
        fn options(self) -> &'static [(&'static str, &'static str)] {
            match self {
                Style::Clock => &[("hour", "numeric"), ("minute", "2-digit")],
                Style::Weekday => &[("weekday", "short")],
                Style::DayMonth => &[("day", "numeric"), ("month", "short")],
                Style::DayMonthYear => {
                    &[("day", "numeric"), ("month", "short"), ("year", "numeric")]
                }
                Style::LongDay => &[("weekday", "long"), ("day", "numeric"), ("month", "long")],
                Style::LongDayYear => &[
                    ("weekday", "long"),
                    ("day", "numeric"),
                    ("month", "long"),
                    ("year", "numeric"),
                ],
            }
        }
    }

    thread_local! {
        static DATES: RefCell<Vec<(Locale, Style, Function)>> = const { RefCell::new(Vec::new()) };
        static RELATIVE: RefCell<Vec<(Locale, Intl::RelativeTimeFormat)>> =
            const { RefCell::new(Vec::new()) };
    }

    /// The language tag handed to `Intl`: the browser's own preference when it is a form of
    /// the chosen language ("en-GB" writes 14:05 and 16 November), else the language itself.
    fn tags(locale: Locale) -> Array {
        use leptos_i18n::Locale as _;
        let chosen = locale.as_str();
        let base = chosen.split('-').next().unwrap_or(chosen);
        let preferred = web_sys::window()
            .map(|w| w.navigator().languages().to_vec())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|v| v.as_string())
            .find(|tag| tag.split('-').next() == Some(base));
        let tags = Array::new();
        if let Some(tag) = preferred {
            tags.push(&JsValue::from(tag));
        }
        tags.push(&JsValue::from(chosen));
        tags
    }

    fn options(pairs: &[(&str, &str)]) -> Object {
        let o = Object::new();
        for (k, v) in pairs {
            let _ = Reflect::set(&o, &JsValue::from(*k), &JsValue::from(*v));
        }
        o
    }

    pub fn date(locale: Locale, utc: i64, style: Style) -> String {
        let format = DATES.with_borrow_mut(|made| {
            if let Some((_, _, f)) = made.iter().find(|(l, s, _)| *l == locale && *s == style) {
                return f.clone();
            }
            let f = Intl::DateTimeFormat::new(&tags(locale), &options(style.options())).format();
            made.push((locale, style, f.clone()));
            f
        });
        let date = Date::new(&JsValue::from_f64(utc as f64));
        format
            .call1(&JsValue::NULL, &date)
            .ok()
            .and_then(|s| s.as_string())
            .unwrap_or_default()
    }

    fn relative(locale: Locale, value: f64, unit: &str) -> String {
        let format = RELATIVE.with_borrow_mut(|made| {
            if let Some((_, f)) = made.iter().find(|(l, _)| *l == locale) {
                return f.clone();
            }
            let f = Intl::RelativeTimeFormat::new(
                &tags(locale),
                &options(&[("numeric", "auto"), ("style", "short")]),
            );
            made.push((locale, f.clone()));
            f
        });
        format.format(value, unit).into()
    }

    pub fn minutes_ago(locale: Locale, n: i64) -> String {
        relative(locale, -(n as f64), "minute")
    }

    pub fn yesterday(locale: Locale) -> String {
        relative(locale, -1.0, "day")
    }
}

/// Without a browser (the server's rendering, host tests): numbers only, in ISO order.
#[cfg(not(feature = "hydrate"))]
mod intl {
    use super::Style;
    use super::{Locale, DAY, HOUR, MINUTE};

    pub fn date(_: Locale, utc: i64, style: Style) -> String {
        let in_day = utc.rem_euclid(DAY);
        match style {
            Style::Clock => format!("{:02}:{:02}", in_day / HOUR, (in_day % HOUR) / MINUTE),
            _ => format!("day {}", utc.div_euclid(DAY)),
        }
    }

    pub fn minutes_ago(_: Locale, n: i64) -> String {
        format!("-{n} min")
    }

    pub fn yesterday(_: Locale) -> String {
        "-1 day".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-22 (a Sunday) at 15:30, as local milliseconds.
    const NOW: i64 = 1_795_361_400_000;

    #[test]
    fn years_are_counted_from_days() {
        assert_eq!(year(day_number(NOW)), 2026);
        assert_eq!(year(0), 1970);
        assert_eq!(year(day_number(951_782_400_000)), 2000); // 2000-02-29
        assert_eq!(year(day_number(1_767_225_599_000)), 2025); // 2025-12-31 23:59:59
        assert_eq!(year(day_number(1_767_225_600_000)), 2026); // 2026-01-01
    }

    #[test]
    fn recent_times_read_naturally() {
        let cases = [
            (0, Ago::JustNow),
            (59_000, Ago::JustNow),
            (5 * MINUTE, Ago::Minutes(5)),
            (59 * MINUTE, Ago::Minutes(59)),
            (2 * HOUR, Ago::Today),
            (16 * HOUR, Ago::Yesterday),
            (2 * DAY, Ago::ThisWeek),
            (6 * DAY, Ago::ThisWeek),
            (7 * DAY, Ago::ThisYear),
            (330 * DAY, Ago::Long),
        ];
        for (ago_ms, want) in cases {
            assert_eq!(ago(NOW, NOW - ago_ms), want, "{ago_ms} ms ago");
        }
    }

    #[test]
    fn day_separators_name_the_day() {
        assert_eq!(day(NOW, NOW - HOUR), Day::Today);
        assert_eq!(day(NOW, NOW - DAY), Day::Yesterday);
        assert_eq!(day(NOW, NOW - 6 * DAY), Day::ThisYear);
        assert_eq!(day(NOW, NOW - 330 * DAY), Day::Long);
        assert!(same_day(NOW, NOW - HOUR));
        assert!(!same_day(NOW, NOW - 16 * HOUR));
    }

    #[test]
    fn the_words_intl_lacks_come_from_the_translations() {
        assert_eq!(relative(Locale::en, NOW, NOW - 1000), "just now");
        assert_eq!(relative(Locale::zh_CN, NOW, NOW - 1000), "刚刚");
        assert_eq!(day_label(Locale::en, NOW, NOW), "Today");
        assert_eq!(day_label(Locale::zh_CN, NOW, NOW - DAY), "昨天");
        assert_eq!(clock(Locale::en, NOW), "15:30");
    }
}
