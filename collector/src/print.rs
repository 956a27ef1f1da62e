//! Output of versions: a readable table, or JSON lines (the contract).
//!
//! Everything a user could have chosen (paths, argv, program, user names,
//! tty, ssh client) reaches the terminal only through
//! [`quote`](filetrail_wire::path::quote) (git-style C quoting), and file
//! content in diffs only through [`visible`]: no byte a user wrote can move
//! the cursor or rewrite what the reviewer sees. JSON output is serde's,
//! which escapes C0 controls, with DEL, C1 and bidi controls escaped too
//! ([`json`]): the same JSON values, inert on a terminal.

use std::borrow::Cow;
use std::io::{self, Write};

use filetrail_wire::path::{hidden, quote};

use crate::model::{Record, VersionRow};
use crate::store::gaps::GapRow;
use crate::when::Clock;

/// A string from the store (argv, user, tty...) as it may be shown.
pub fn q(s: &str) -> Cow<'_, str> {
    quote(s.as_bytes())
}

/// Text for a reviewer's terminal with every control character made
/// visible: C0 controls other than tab, and DEL, as their Unicode control
/// pictures (ESC as `␛`, CR as `␍`), C1 and bidi controls as `<U+XXXX>`.
/// For content (diff lines) and for messages as a last resort: the text
/// stays readable, a literal `\033` in a script stays distinct from an ESC
/// byte, and `collector show` gives the exact bytes.
pub fn visible(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\t' && hidden(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push(c),
            '\0'..='\x1f' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('?')),
            '\x7f' => out.push('\u{2421}'),
            c if hidden(c) => out.push_str(&format!("<U+{:04X}>", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

pub fn json_lines(out: &mut impl Write, rows: &[Record]) -> io::Result<()> {
    rows.iter().try_for_each(|row| json(out, row))
}

/// `value` as one line of compact JSON.
pub fn json(out: &mut impl Write, value: &impl serde::Serialize) -> io::Result<()> {
    value.serialize(&mut serde_json::Serializer::with_formatter(&mut *out, InertJson))?;
    out.write_all(b"\n")
}

/// serde_json's compact format, also writing DEL, C1 and bidi controls
/// (which JSON allows raw) as `\uXXXX`.
struct InertJson;

impl serde_json::ser::Formatter for InertJson {
    fn write_string_fragment<W: ?Sized + Write>(&mut self, w: &mut W, fragment: &str) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices().filter(|&(_, c)| hidden(c)) {
            w.write_all(&fragment.as_bytes()[start..i])?;
            // Every hidden character is in the BMP: one \u escape.
            write!(w, "\\u{:04x}", c as u32)?;
            start = i + c.len_utf8();
        }
        w.write_all(&fragment.as_bytes()[start..])
    }
}

/// The program: the kernel-verified executable's name (argv[0] is
/// whatever the process chose to call itself).
fn program(row: &VersionRow) -> String {
    let name = if row.exe.is_empty() { row.argv.first().cloned().unwrap_or_default() } else { row.exe.clone() };
    q(name.rsplit('/').next().unwrap_or(&name)).into_owned()
}

/// argv as a shell would need it typed; an argument holding a control
/// character is C-quoted instead (it could not be shown raw).
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b)) {
                a.clone()
            } else if a.chars().any(hidden) {
                q(a).into_owned()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The users a change went through, login user first. A `?` after the
/// login user: no PAM login registered the session, so that name is only
/// what the process's login uid claims.
fn chain(r: &VersionRow, sep: &str) -> String {
    let mut users: Vec<String> = r.chain.iter().map(|u| q(u).into_owned()).collect();
    if r.unregistered_session
        && let Some(first) = users.first_mut()
    {
        first.push('?');
    }
    users.join(sep)
}

/// The path a row shows, with where it was renamed from or the temp file
/// it was written through.
fn shown_path(r: &VersionRow) -> String {
    match (&r.raw.old_path, &r.raw.via) {
        (Some(old), _) => format!("{} (from {})", quote(&r.raw.path), quote(old)),
        (None, Some(via)) => format!("{} (via {})", quote(&r.raw.path), quote(via)),
        (None, None) => quote(&r.raw.path).into_owned(),
    }
}

/// What the table's NOTE column says of a row: `kernel` (the collector's
/// kernel watch saw it; no library reported it), `gap` (the content before
/// it is not what the previous version left: a change went unseen).
fn note(r: &VersionRow) -> &'static str {
    match (r.seen_by == "kernel", r.gap_before) {
        (true, _) => "kernel",
        (false, true) => "gap",
        (false, false) => "",
    }
}

/// What a gap means, in words: `the library lost 5 events`.
pub fn gap_words(g: &GapRow) -> String {
    let n = g.versions;
    let s = if n == 1 { "" } else { "s" };
    let what = match g.what.as_str() {
        "lost_in_library" => format!("the library lost {n} event{s} (not delivered, not spooled)"),
        "spool_truncated" => "a spool file was cut off: its last event is lost".to_owned(),
        "spool_malformed" => "a spool file could not be read: moved aside, its changes are not recorded".to_owned(),
        "open_not_recorded" => format!("{n} open{s} not recorded (over the open files allowed per process)"),
        other => format!("{} ({n})", q(other)),
    };
    match g.bytes {
        0 => what,
        b => format!("{what}, {b} bytes of content"),
    }
}

fn gap_user(g: &GapRow) -> String {
    match (&g.user, g.uid) {
        (Some(u), _) => q(u).into_owned(),
        (None, Some(uid)) => uid.to_string(),
        (None, None) => "?".to_owned(),
    }
}

fn gap_program(g: &GapRow) -> String {
    let name = g.exe.as_deref().unwrap_or("-");
    q(name.rsplit('/').next().unwrap_or(name)).into_owned()
}

/// The versions as a table; a gap is a row of its own: `GAP` as its
/// action, what was lost in the PATH column (after the file, if it is
/// about one).
pub fn table(out: &mut impl Write, rows: &[Record], clock: &Clock) -> io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let time_header = format!("TIME ({})", clock.zone());
    let tw = time_header.chars().count().max(19);
    let who = |r: &Record| match r {
        Record::Version(v) => chain(v, "→"),
        Record::Gap(g) => gap_user(g),
    };
    let prog = |r: &Record| match r {
        Record::Version(v) => program(v),
        Record::Gap(g) => gap_program(g),
    };
    let uw = rows.iter().map(|r| who(r).chars().count()).max().unwrap_or(4).max(4);
    let pw = rows.iter().map(|r| prog(r).chars().count()).max().unwrap_or(7).max(7);
    // The NOTE column only when some row has a note.
    let notes = rows.iter().any(|r| matches!(r, Record::Version(v) if !note(v).is_empty()));
    let nw = if notes { 6 } else { 0 };
    let sep = if notes { "  " } else { "" };
    writeln!(
        out,
        "{:>5}  {:<tw$}  {:<uw$}  {:<8}{sep}{:<nw$}  {:>8}  {:<pw$}  PATH",
        "ID",
        time_header,
        "USER",
        "ACTION",
        if notes { "NOTE" } else { "" },
        "SIZE",
        "PROGRAM"
    )?;
    for r in rows {
        let (id, time, action, note, size, path) = match r {
            Record::Version(v) => (
                v.id.to_string(),
                &v.time,
                v.action.as_str(),
                note(v),
                v.size.map(|s| s.to_string()).unwrap_or_else(|| "-".into()),
                shown_path(v),
            ),
            Record::Gap(g) => {
                let words = gap_words(g);
                let path = match &g.raw_path {
                    Some(p) => format!("{}: {words}", quote(p)),
                    None => words,
                };
                ("-".to_owned(), &g.time, "GAP", "", "-".to_owned(), path)
            }
        };
        writeln!(
            out,
            "{id:>5}  {:<tw$}  {:<uw$}  {action:<8}{sep}{note:<nw$}  {size:>8}  {:<pw$}  {path}",
            clock.show_text(time),
            who(r),
            prog(r),
        )?;
    }
    Ok(())
}

/// When to colour diffs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

impl Color {
    pub fn enabled(self) -> bool {
        match self {
            Color::Always => true,
            Color::Never => false,
            // NO_COLOR set, even to the empty string, or a dumb terminal: none.
            Color::Auto => {
                crate::pager::terminal()
                    && std::env::var_os("NO_COLOR").is_none()
                    && std::env::var_os("TERM").is_none_or(|t| t != "dumb")
            }
        }
    }
}

fn is_binary(bytes: &[u8]) -> bool {
    bytes.contains(&0) || std::str::from_utf8(bytes).is_err()
}

/// A unified diff from `a` to `b` (either may be missing: the file did not
/// exist). Binary content gets a one-line note with sizes and hashes.
pub fn diff(
    out: &mut impl Write,
    a: Option<&[u8]>,
    b: Option<&[u8]>,
    label_a: &str,
    label_b: &str,
    color: bool,
) -> io::Result<()> {
    let (ta, tb) = (a.unwrap_or_default(), b.unwrap_or_default());
    if is_binary(ta) || is_binary(tb) {
        let desc = |x: Option<&[u8]>| match x {
            None => "(none)".to_owned(),
            Some(x) => format!("{} bytes, sha256 {}", x.len(), &crate::model::sha256_hex(x)[..12]),
        };
        return writeln!(out, "Binary content differs: {label_a} [{}] -> {label_b} [{}]", desc(a), desc(b));
    }
    let (sa, sb) = (std::str::from_utf8(ta).unwrap_or_default(), std::str::from_utf8(tb).unwrap_or_default());
    let text = similar::TextDiff::from_lines(sa, sb);
    let label = |l: &str, present: bool| if present { l.to_owned() } else { "/dev/null".to_owned() };
    let unified = text
        .unified_diff()
        .context_radius(3)
        .header(&label(label_a, a.is_some()), &label(label_b, b.is_some()))
        .to_string();
    for line in unified.split_inclusive('\n') {
        // Only the newline is taken off: a CR stays visible.
        let line = visible(line.strip_suffix('\n').unwrap_or(line));
        let code = match line.as_bytes().first() {
            _ if !color => None,
            _ if line.starts_with("+++") || line.starts_with("---") => Some("1"),
            Some(b'+') => Some("32"),
            Some(b'-') => Some("31"),
            Some(b'@') => Some("36"),
            _ => None,
        };
        match code {
            Some(c) => writeln!(out, "\x1b[{c}m{line}\x1b[0m")?,
            None => writeln!(out, "{line}")?,
        }
    }
    Ok(())
}

/// The header `collector log` prints above each version's diff.
pub fn log_header(out: &mut impl Write, r: &VersionRow, color: bool, clock: &Clock) -> io::Result<()> {
    let (y, n) = if color { ("\x1b[33m", "\x1b[0m") } else { ("", "") };
    writeln!(out, "{y}version {}{n}  {} {}", r.id, r.action, quote(&r.raw.path))?;
    if let Some(old) = &r.raw.old_path {
        writeln!(out, "From:    {}", quote(old))?;
    }
    if let Some(via) = &r.raw.via {
        writeln!(out, "Via:     {} (a temp file renamed over it)", quote(via))?;
    }
    if let Some(into) = r.folded_into.filter(|&into| into != r.id) {
        writeln!(out, "Folded:  a step of version {into}")?;
    }
    let unregistered = if r.unregistered_session { " [session not registered by a login: user claimed]" } else { "" };
    writeln!(out, "User:    {} (uid {}, euid {}){unregistered}", chain(r, " → "), r.uid, r.euid)?;
    writeln!(out, "Date:    {} ({})", clock.show_text(&r.time), clock.zone())?;
    writeln!(out, "Program: {} (pid {})  {}", q(&r.exe), r.pid, shell_words(&r.argv))?;
    let place: Vec<String> = [
        r.tty.as_deref().map(|t| format!("tty {}", q(t))),
        r.ssh_client.as_deref().map(|s| format!("ssh from {}", q(s))),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !place.is_empty() {
        writeln!(out, "Where:   {}", place.join(", "))?;
    }
    if r.seen_by == "kernel" {
        writeln!(out, "Seen by: the kernel watch (no library reported this change)")?;
    }
    if r.gap_before {
        writeln!(out, "Gap:     the file held other content before this change than the last version recorded")?;
    }
    if r.before_mode.is_some()
        && (r.before_mode != r.mode || (r.before_owner_uid, r.before_group_gid) != (r.owner_uid, r.group_gid))
    {
        let owner = |m: &Option<String>, u: Option<u32>, g: Option<u32>| {
            format!(
                "{} {}:{}",
                m.as_deref().unwrap_or("?"),
                u.map_or("?".into(), |u| u.to_string()),
                g.map_or("?".into(), |g| g.to_string())
            )
        };
        writeln!(
            out,
            "Mode:    {} -> {}",
            owner(&r.before_mode, r.before_owner_uid, r.before_group_gid),
            owner(&r.mode, r.owner_uid, r.group_gid)
        )?;
    }
    writeln!(out)
}

/// A gap in `collector log`: what was lost, whose, when.
pub fn log_gap(out: &mut impl Write, g: &GapRow, color: bool, clock: &Clock) -> io::Result<()> {
    let (y, n) = if color { ("\x1b[33m", "\x1b[0m") } else { ("", "") };
    let path = g.raw_path.as_deref().map(|p| format!(" {}", quote(p))).unwrap_or_default();
    writeln!(out, "{y}GAP{n}  {}{path}", q(&g.what))?;
    writeln!(out, "Lost:    {}", gap_words(g))?;
    let uid = g.uid.map(|u| format!(" (uid {u})")).unwrap_or_default();
    writeln!(out, "User:    {}{uid}", gap_user(g))?;
    match (&g.since, &g.until) {
        (Some(a), Some(b)) if a != b => {
            writeln!(out, "Date:    between {} and {} ({})", clock.show_text(a), clock.show_text(b), clock.zone())?
        }
        _ => writeln!(out, "Date:    {} ({})", clock.show_text(&g.time), clock.zone())?,
    }
    if let Some(exe) = &g.exe {
        let pid = g.pid.map(|p| format!(" (pid {p})")).unwrap_or_default();
        writeln!(out, "Program: {}{pid}", q(exe))?;
    }
    if let Some(source) = &g.source {
        writeln!(out, "Source:  {}", q(source))?;
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_quoted_like_a_shell_needs_it() {
        let argv: Vec<String> =
            ["sed", "-i", "s/port = 80/port = 8080/", "it's"].iter().map(|s| s.to_string()).collect();
        assert_eq!(shell_words(&argv), "sed -i 's/port = 80/port = 8080/' 'it'\\''s'");
    }

    #[test]
    fn unified_diff_and_binary_note() {
        let mut out = Vec::new();
        diff(&mut out, Some(b"a\nb\n"), Some(b"a\nc\n"), "x (before)", "x (after)", false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("-b\n+c\n"), "{text}");
        let mut out = Vec::new();
        diff(&mut out, Some(b"\0\x01"), None, "a", "b", false).unwrap();
        assert!(String::from_utf8(out).unwrap().starts_with("Binary content differs"));
    }

    #[test]
    fn diff_lines_show_control_characters_without_sending_them() {
        let mut out = Vec::new();
        let evil = "a\tb\x1b[2J\x1b]0;title\x07\r\nc\u{9b}1m\x7f\n";
        diff(&mut out, Some(b"x\n"), Some(evil.as_bytes()), "f (before)", "f (after)", false).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("+a\tb␛[2J␛]0;title␇␍\n+c<U+009B>1m␡\n"), "{text}");
        assert!(!text.bytes().any(|b| (b < 0x20 && b != b'\n' && b != b'\t') || b == 0x7f), "{text:?}");
        assert!(!text.contains('\u{9b}'));
    }

    #[test]
    fn json_escapes_what_a_terminal_would_act_on_and_means_the_same() {
        let value = serde_json::json!({ "path": "a\x1b[2J\x7f\u{9b}\u{202e}é" });
        let mut out = Vec::new();
        json(&mut out, &value).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "{\"path\":\"a\\u001b[2J\\u007f\\u009b\\u202eé\"}\n");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), value);
    }

    #[test]
    fn a_control_character_in_argv_is_c_quoted() {
        let argv: Vec<String> = ["printf", "\x1b[1A\r", "it's"].iter().map(|s| s.to_string()).collect();
        assert_eq!(shell_words(&argv), "printf \"\\033[1A\\r\" 'it'\\''s'");
    }

    #[test]
    fn a_gap_is_a_row_of_its_own_marked_gap() {
        let gap = GapRow {
            kind: "gap",
            id: 1,
            time: "2026-11-25T14:30:00Z".into(),
            what: "lost_in_library".into(),
            versions: 5,
            bytes: 0,
            since: None,
            until: None,
            recorded: "2026-11-25T14:30:00Z".into(),
            path: None,
            uid: Some(1000),
            user: Some("alice\x1b[2J".into()),
            pid: Some(123),
            exe: Some("/usr/bin/python3".into()),
            source: None,
            raw_path: None,
            time_us: 0,
        };
        let mut out = Vec::new();
        table(&mut out, &[Record::Gap(gap.clone())], &crate::when::Clock::new(true)).unwrap();
        let text = String::from_utf8(out).unwrap();
        let row = text.lines().nth(1).unwrap();
        assert!(row.contains(" GAP "), "{text}");
        assert!(row.contains("python3") && row.contains("the library lost 5 events"), "{text}");
        assert!(!text.contains('\x1b'), "{text:?}");
        let mut out = Vec::new();
        json(&mut out, &Record::Gap(gap)).unwrap();
        let value: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            (value["kind"].as_str(), value["versions"].as_u64(), value["pid"].as_i64()),
            (Some("gap"), Some(5), Some(123))
        );
        assert!(value.get("raw_path").is_none() && value.get("time_us").is_none());
    }
}
