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

use crate::model::VersionRow;
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

pub fn json_lines(out: &mut impl Write, rows: &[VersionRow]) -> io::Result<()> {
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
pub(crate) fn shell_words(argv: &[String]) -> String {
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

/// The path a row shows, with where it was renamed from.
fn shown_path(r: &VersionRow) -> String {
    match &r.raw.old_path {
        Some(old) => format!("{} (from {})", quote(&r.raw.path), quote(old)),
        None => quote(&r.raw.path).into_owned(),
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

pub fn table(out: &mut impl Write, rows: &[VersionRow], clock: &Clock) -> io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let time_header = format!("TIME ({})", clock.zone());
    let tw = time_header.chars().count().max(19);
    let who = |r: &VersionRow| chain(r, "→");
    let uw = rows.iter().map(|r| who(r).chars().count()).max().unwrap_or(4).max(4);
    let pw = rows.iter().map(|r| program(r).chars().count()).max().unwrap_or(7).max(7);
    // The NOTE column only when some row has a note.
    let notes = rows.iter().any(|r| !note(r).is_empty());
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
        let size = r.size.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
        let path = shown_path(r);
        writeln!(
            out,
            "{:>5}  {:<tw$}  {:<uw$}  {:<8}{sep}{:<nw$}  {:>8}  {:<pw$}  {path}",
            r.id,
            clock.show_text(&r.time),
            who(r),
            r.action,
            note(r),
            size,
            program(r)
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
}
