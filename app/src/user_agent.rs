//! A browser's `User-Agent` in words a person recognises ("Firefox", "Windows"), for the list
//! of signed-in devices. Pure; the order of the checks matters, since most browsers name
//! others in their agent string (Edge says "Chrome", Chrome says "Safari").

/// The browser an agent string names, when it names one, and its operating system, when
/// that is named too.
pub fn describe(agent: &str) -> Option<(&'static str, Option<&'static str>)> {
    let browser = [
        ("Edg/", "Edge"),
        ("OPR/", "Opera"),
        ("Firefox/", "Firefox"),
        ("HeadlessChrome/", "Chromium"),
        ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
    ]
    .into_iter()
    .find(|(marker, _)| agent.contains(marker))
    .map(|(_, name)| name)?;
    let os = [
        ("Windows", "Windows"),
        ("Android", "Android"),
        ("iPhone", "iOS"),
        ("iPad", "iPadOS"),
        ("CrOS", "ChromeOS"),
        ("Mac OS X", "macOS"),
        ("Linux", "Linux"),
    ]
    .into_iter()
    .find(|(marker, _)| agent.contains(marker))
    .map(|(_, name)| name);
    Some((browser, os))
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn common_browsers_are_told_apart() {
        let cases = [
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 Edg/120.0.0.0", ("Edge", "Windows")),
            ("Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0", ("Firefox", "Linux")),
            ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15", ("Safari", "macOS")),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1", ("Safari", "iOS")),
            ("Mozilla/5.0 (Linux; Android 14) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36", ("Chrome", "Android")),
            ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/156.0.0.0 Safari/537.36", ("Chromium", "Linux")),
        ];
        for (agent, expected) in cases {
            assert_eq!(
                describe(agent),
                Some((expected.0, Some(expected.1))),
                "{agent}"
            );
        }
    }

    #[test]
    fn other_clients_are_not_guessed() {
        assert_eq!(describe("curl/8.5.0"), None);
        assert_eq!(describe(""), None);
        assert_eq!(describe("Firefox/1.0 (Plan 9)"), Some(("Firefox", None)));
    }
}
