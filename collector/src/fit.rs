//! Fitting review output to a terminal: display widths (`unicode-width`),
//! text cut to a width (a path in its middle, so its file name stays; other
//! cells at their end), and sizes as people read them (`4.0K`, `1.2M`).
//! Cut text is marked with `…` (`...` in an ASCII locale); the exact
//! values are in `--json`.

use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Columns `text` takes on a terminal.
pub fn width(text: &str) -> usize {
    text.width()
}

/// The longest start of `text` at most `max` columns wide.
fn head(text: &str, max: usize) -> &str {
    let mut used = 0;
    for (i, c) in text.char_indices() {
        used += c.width().unwrap_or(0);
        if used > max {
            return &text[..i];
        }
    }
    text
}

/// The longest end of `text` at most `max` columns wide.
fn tail(text: &str, max: usize) -> &str {
    let mut used = 0;
    for (i, c) in text.char_indices().rev() {
        used += c.width().unwrap_or(0);
        if used > max {
            return &text[i + c.len_utf8()..];
        }
    }
    text
}

/// `text` in at most `max` columns: cut at its end, marked `…`.
pub fn end(text: &str, max: usize) -> String {
    end_marked(text, max, crate::locale::ellipsis())
}

fn end_marked(text: &str, max: usize, mark: &str) -> String {
    if width(text) <= max {
        return text.to_owned();
    }
    match max.checked_sub(width(mark)) {
        Some(room) => format!("{}{mark}", head(text, room)),
        None => head(text, max).to_owned(),
    }
}

/// A (quoted) path in at most `max` columns: cut in the middle of its
/// directories, keeping the start and the file name
/// (`/etc/nginx/s…f.d/default.conf`); a file name too long for `max` keeps
/// its end.
pub fn path(text: &str, max: usize) -> String {
    path_marked(text, max, crate::locale::ellipsis())
}

fn path_marked(text: &str, max: usize, mark: &str) -> String {
    if width(text) <= max {
        return text.to_owned();
    }
    let Some(room) = max.checked_sub(width(mark)) else { return tail(text, max).to_owned() };
    let (dir, name) = match text.rfind('/') {
        Some(cut) => text.split_at(cut),
        None => ("", text),
    };
    // Room for the directory part once the name (with its `/`) and the
    // mark are placed.
    let dir_room = room.saturating_sub(width(name));
    if dir.is_empty() || dir_room < 2 {
        return format!("{mark}{}", tail(text, room));
    }
    let front = dir_room.div_ceil(2);
    let back = dir_room - front;
    format!("{}{mark}{}{name}", head(dir, front), tail(dir, back))
}

/// A size as `ls -h` shows it: bytes below 1024, else one decimal below 10
/// of a unit (`4.0K`, `1.2M`) and whole units above (`12K`, `340M`),
/// rounded up, so a size is never shown smaller than it is.
pub fn size(bytes: u64) -> String {
    if bytes < 1024 {
        return bytes.to_string();
    }
    let mut value = bytes as f64;
    for unit in ["K", "M", "G", "T", "P", "E"] {
        value /= 1024.0;
        let tenths = (value * 10.0).ceil() / 10.0;
        if tenths < 10.0 {
            return format!("{tenths:.1}{unit}");
        }
        if value.ceil() < 1024.0 || unit == "E" {
            return format!("{}{unit}", value.ceil());
        }
    }
    unreachable!("the last unit returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_ls_h() {
        let cases = [
            (0, "0"),
            (1023, "1023"),
            (1024, "1.0K"),
            (1025, "1.1K"),
            (4096, "4.0K"),
            (12 * 1024, "12K"),
            (1024 * 1024 - 1, "1.0M"),
            (1_258_291, "1.2M"),
            (340 << 20, "340M"),
            (5 << 30, "5.0G"),
        ];
        for (bytes, shown) in cases {
            assert_eq!(size(bytes), shown, "{bytes}");
        }
    }

    #[test]
    fn paths_are_cut_in_the_middle_and_keep_their_name() {
        let path = |text, max| path_marked(text, max, "…");
        let p = "/etc/nginx/sites-available/conf.d/default.conf";
        assert_eq!(path(p, 100), p);
        let cut = path(p, 30);
        assert_eq!(width(&cut), 30, "{cut}");
        assert!(cut.starts_with("/etc/") && cut.ends_with("/default.conf") && cut.contains('…'), "{cut}");
        let cut = path("/a/very-long-file-name-indeed.conf", 12);
        assert_eq!((cut.as_str(), width(&cut)), ("…indeed.conf", 12));
        // Wide characters count as two columns and are never split.
        let cut = path("/srv/配置/目录/数据/設定.conf", 16);
        assert!(width(&cut) <= 16 && cut.ends_with("/設定.conf"), "{cut}");
        assert_eq!(end_marked("programname", 5, "…"), "prog…");
        assert_eq!(end_marked("ab", 5, "…"), "ab");
    }

    #[test]
    fn an_ascii_locale_marks_cuts_with_three_dots() {
        let cut = path_marked("/etc/nginx/sites-available/conf.d/default.conf", 30, "...");
        assert_eq!(width(&cut), 30, "{cut}");
        assert!(cut.starts_with("/etc/") && cut.ends_with("/default.conf") && cut.contains("..."), "{cut}");
        assert_eq!(path_marked("/a/very-long-file-name-indeed.conf", 12, "..."), "...deed.conf");
        assert_eq!(end_marked("programname", 5, "..."), "pr...");
        assert_eq!(end_marked("programname", 2, "..."), "pr");
        assert_eq!(path_marked("/a/b", 2, "..."), "/b");
    }
}
