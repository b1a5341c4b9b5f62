//! Number and text formatting for templates: sizes people can read at a glance, exact byte
//! counts they can compare, and subjects that stay on one header line.

/// Binary units above bytes, each 1024 times the one before.
const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// A size in binary units with one decimal: `512 B`, `1.5 KiB`, `16.0 MiB`.
///
/// Works in integer tenths so that values near a unit boundary round up into the next unit
/// (`1.0 MiB`, never `1024.0 KiB`) and `u64::MAX` needs no floating point.
pub fn size_human(bytes: u64) -> String {
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let (last, smaller) = UNITS.split_last().unwrap_or((&"EiB", &[]));
    let mut divisor: u128 = 1024;
    for unit in smaller {
        let tenths = rounded_tenths(bytes, divisor);
        if tenths < 10 * 1024 {
            return format!("{}.{} {unit}", tenths / 10, tenths % 10);
        }
        divisor *= 1024;
    }
    let tenths = rounded_tenths(bytes, divisor);
    format!("{}.{} {last}", tenths / 10, tenths % 10)
}

/// `bytes / divisor` in tenths, rounded half up.
fn rounded_tenths(bytes: u64, divisor: u128) -> u128 {
    (u128::from(bytes) * 10 + divisor / 2) / divisor
}

/// The exact number with a comma between each group of three digits: `16,777,216`.
pub fn size_exact(bytes: u64) -> String {
    let digits = bytes.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Forces text onto one line for a header: control characters (CR, LF, tab, ESC, ...) become
/// spaces, runs of whitespace collapse to one space, and the ends are trimmed.
///
/// A file name may carry CR or LF; in a subject that would start a new header.
pub fn one_line(text: &str) -> String {
    let spaced: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    spaced.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Makes characters that would hide or disguise part of a value visible, for values that come
/// from the uploader (file names, keys): control characters as escapes (`\r`, `\n`, `\t`,
/// `\u{1b}`) and bidirectional formatting characters as `\u{202e}`, so `txt.exe` spelt with a
/// right-to-left override reads as what it is.
///
/// Without this a CR or LF in a file name would put a bare line break into the text body,
/// which mail servers may refuse and readers may take for a header.
pub fn visible(text: &str) -> String {
    if !text.chars().any(needs_escape) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if needs_escape(c) => out.push_str(&format!("\\u{{{:x}}}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Control characters, and the Unicode bidirectional embedding, override and isolate marks.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visible_escapes_controls_and_bidi_marks_only() {
        assert_eq!(visible("Café 東京 (1).pdf"), "Café 東京 (1).pdf");
        assert_eq!(visible("a\r\nBcc: x"), "a\\r\\nBcc: x");
        assert_eq!(visible("tab\tesc\u{1b}"), "tab\\tesc\\u{1b}");
        assert_eq!(visible("invoice\u{202e}fdp.exe"), "invoice\\u{202e}fdp.exe");
        assert_eq!(visible("quote\"'"), "quote\"'");
    }

    #[test]
    fn small_sizes_stay_in_bytes() {
        assert_eq!(size_human(0), "0 B");
        assert_eq!(size_human(512), "512 B");
        assert_eq!(size_human(1023), "1023 B");
    }

    #[test]
    fn larger_sizes_use_binary_units_with_one_decimal() {
        assert_eq!(size_human(1024), "1.0 KiB");
        assert_eq!(size_human(1536), "1.5 KiB");
        assert_eq!(size_human(16 * 1024 * 1024), "16.0 MiB");
        assert_eq!(size_human(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(size_human(3 * (1 << 40) + (1 << 39)), "3.5 TiB");
    }

    #[test]
    fn rounding_up_moves_to_the_next_unit() {
        assert_eq!(size_human(1024 * 1024 - 1), "1.0 MiB");
        assert_eq!(size_human(1024 * 1024 - 51), "1.0 MiB");
        assert_eq!(size_human(1024 * 1024 - 52), "1023.9 KiB");
    }

    #[test]
    fn largest_size_does_not_overflow() {
        assert_eq!(size_human(u64::MAX), "16.0 EiB");
        assert_eq!(size_exact(u64::MAX), "18,446,744,073,709,551,615");
    }

    #[test]
    fn exact_size_groups_thousands() {
        assert_eq!(size_exact(0), "0");
        assert_eq!(size_exact(999), "999");
        assert_eq!(size_exact(1000), "1,000");
        assert_eq!(size_exact(16_777_216), "16,777,216");
        assert_eq!(size_exact(123_456), "123,456");
    }

    #[test]
    fn one_line_removes_breaks_and_controls() {
        assert_eq!(one_line("  a\r\nb\tc\u{1b}[31m  d \u{7f}"), "a b c [31m d");
        assert_eq!(
            one_line("line\u{2028}separator\u{85}next"),
            "line separator next"
        );
        assert_eq!(one_line("\r\n"), "");
    }
}
