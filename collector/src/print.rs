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

use crate::fit;
use crate::model::{Record, VersionRow};
use crate::store::gaps::GapRow;
use crate::when::Clock;

/// A string from the store (argv, user, tty...) as it may be shown.
pub fn q(s: &str) -> Cow<'_, str> {
    quote(s.as_bytes())
}

/// Text for a reviewer's terminal with every control character made
/// visible: C0 controls other than tab, and DEL, as their Unicode control
/// pictures (ESC as `␛`, CR as `␍`; in an ASCII locale as `cat -v` shows
/// them, `^[`, `^M`), C1 and bidi controls as `<U+XXXX>`.
/// For content (diff lines) and for messages as a last resort: the text
/// stays readable, a literal `\033` in a script stays distinct from an ESC
/// byte, and `collector show` gives the exact bytes.
pub fn visible(text: &str) -> Cow<'_, str> {
    visible_as(text, crate::locale::utf8())
}

fn visible_as(text: &str, utf8: bool) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\t' && hidden(c)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\t' => out.push(c),
            '\0'..='\x1f' | '\x7f' if !utf8 => {
                out.push('^');
                out.push((c as u8 ^ 0x40) as char);
            }
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

/// The users a change went through, login user first, joined by
/// [`arrow`] (`spaced`: with a space either side). A `?` after the
/// login user: no PAM login registered the session, so that name is only
/// what the process's login uid claims.
fn chain(r: &VersionRow, spaced: bool) -> String {
    let sep = if spaced { format!(" {} ", crate::locale::arrow()) } else { crate::locale::arrow().to_owned() };
    let mut users: Vec<String> = r.chain.iter().map(|u| q(u).into_owned()).collect();
    if r.unregistered_session
        && let Some(first) = users.first_mut()
    {
        first.push('?');
    }
    users.join(&sep)
}

/// The path a row shows, with where it was renamed from or the temp file
/// it was written through, in at most `max` columns (`None`: all of it):
/// cut in the middle, the new name first.
fn shown_path(r: &VersionRow, max: Option<usize>) -> String {
    let path = quote(&r.raw.path);
    let (word, other) = match (&r.raw.old_path, &r.raw.via) {
        (Some(old), _) => ("from", quote(old)),
        (None, Some(via)) => ("via", quote(via)),
        (None, None) => return max.map_or(path.to_string(), |m| fit::path(&path, m)),
    };
    let full = format!("{path} ({word} {other})");
    let Some(max) = max.filter(|&m| fit::width(&full) > m) else { return full };
    // The other name gets what the new one leaves, if that is enough to read.
    let room = max.saturating_sub(fit::width(&path) + word.len() + 3);
    if room >= 12 {
        format!("{path} ({word} {})", fit::path(&other, room))
    } else {
        let cut = crate::locale::ellipsis();
        format!("{} ({word} {cut})", fit::path(&path, max.saturating_sub(word.len() + 3 + fit::width(cut))))
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

/// The versions as a table; a gap is a row of its own (`GAP` as its
/// action, what was lost in the PATH column, after the file if it is about
/// one). On a terminal ([`pager::width`](crate::pager::width)) every row
/// fits its width: USER and PROGRAM give up columns first, then the PATH is
/// cut in its middle (its file name stays); a row is never wrapped. Piped,
/// nothing is cut. Sizes are human-readable (`4.0K`).
pub fn table(out: &mut impl Write, rows: &[Record], clock: &Clock) -> io::Result<()> {
    table_in(out, rows, clock, crate::pager::width())
}

/// More than one host among `rows`: the table shows HOST, `log` names
/// versions HOST:ID.
pub fn many_hosts(rows: &[Record]) -> bool {
    let host = |r: &Record| match r {
        Record::Version(v) => v.host.clone(),
        Record::Gap(g) => g.host.clone(),
    };
    rows.iter().map(host).collect::<std::collections::BTreeSet<_>>().len() > 1
}

/// One table row's cells but the path.
struct Cells<'a> {
    id: String,
    host: String,
    time: &'a str,
    who: String,
    action: &'a str,
    note: &'static str,
    size: String,
    program: String,
}

fn cells(r: &Record) -> Cells<'_> {
    match r {
        Record::Version(v) => Cells {
            id: v.id.to_string(),
            host: q(v.host.as_deref().unwrap_or("-")).into_owned(),
            time: &v.time,
            who: chain(v, false),
            action: &v.action,
            note: note(v),
            size: v.size.map(fit::size).unwrap_or_else(|| "-".into()),
            program: program(v),
        },
        Record::Gap(g) => Cells {
            id: "-".into(),
            host: q(g.host.as_deref().unwrap_or("-")).into_owned(),
            time: &g.time,
            who: gap_user(g),
            action: "GAP",
            note: "",
            size: "-".into(),
            program: gap_program(g),
        },
    }
}

/// The PATH column of a row, in at most `max` columns.
fn row_path(r: &Record, max: Option<usize>) -> String {
    match r {
        Record::Version(v) => shown_path(v, max),
        Record::Gap(g) => {
            let words = gap_words(g);
            let text = match &g.raw_path {
                Some(p) => format!("{}: {words}", quote(p)),
                None => words,
            };
            max.map_or(text.clone(), |m| fit::end(&text, m))
        }
    }
}

fn table_in(out: &mut impl Write, rows: &[Record], clock: &Clock, columns: Option<usize>) -> io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let time_header = format!("TIME ({})", clock.zone());
    let tw = fit::width(&time_header).max(19);
    let all: Vec<Cells> = rows.iter().map(cells).collect();
    let widest = |f: &dyn Fn(&Cells) -> usize, min: usize| all.iter().map(f).fold(min, usize::max);
    let mut uw = widest(&|c| fit::width(&c.who), 4);
    let mut pw = widest(&|c| fit::width(&c.program), 7);
    let sw = widest(&|c| fit::width(&c.size), 4);
    let iw = widest(&|c| c.id.len(), 2);
    // The HOST column only when rows of several hosts are shown.
    let hw = if many_hosts(rows) { widest(&|c| fit::width(&c.host), 4) + 2 } else { 0 };
    // The NOTE column only when some row has a note.
    let notes = all.iter().any(|c| !c.note.is_empty());
    let nw = if notes { 6 } else { 0 };
    let sep = if notes { "  " } else { "" };
    let fixed = |uw: usize, pw: usize| iw + 2 + hw + tw + 2 + uw + 2 + 8 + sep.len() + nw + 2 + sw + 2 + pw + 2;
    // On a terminal, leave the path at least this much before cutting it.
    const PATH_MIN: usize = 24;
    if let Some(cols) = columns {
        while fixed(uw, pw) + PATH_MIN > cols && (uw > 6 || pw > 6) {
            if uw >= pw { uw -= 1 } else { pw -= 1 }
        }
    }
    let path_max = columns.map(|cols| cols.saturating_sub(fixed(uw, pw)).max(8));
    let line = |text: String| -> String {
        // The last resort on a very narrow terminal: cut the row itself.
        match columns {
            Some(cols) => fit::end(text.trim_end(), cols),
            None => text.trim_end().to_owned(),
        }
    };
    let pad = |text: &str, w: usize| format!("{text}{}", " ".repeat(w.saturating_sub(fit::width(text))));
    let host = |h: &str| if hw == 0 { String::new() } else { pad(h, hw) };
    let header = format!(
        "{:>iw$}  {}{}  {}  {:<8}{sep}{:<nw$}  {:>sw$}  {}  PATH",
        "ID",
        host("HOST"),
        pad(&time_header, tw),
        pad("USER", uw),
        "ACTION",
        if notes { "NOTE" } else { "" },
        "SIZE",
        pad("PROGRAM", pw)
    );
    writeln!(out, "{}", line(header))?;
    for (r, c) in rows.iter().zip(&all) {
        let row = format!(
            "{:>iw$}  {}{}  {}  {:<8}{sep}{:<nw$}  {:>sw$}  {}  {}",
            c.id,
            host(&c.host),
            pad(&clock.show_text(c.time), tw),
            pad(&fit::end(&c.who, uw), uw),
            c.action,
            c.note,
            c.size,
            pad(&fit::end(&c.program, pw), pw),
            row_path(r, path_max)
        );
        writeln!(out, "{}", line(row))?;
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

/// What `collector log --session` prints first: the login as a unit (who,
/// from where, how many changes to how many files, from when to when).
pub fn session_header(out: &mut impl Write, session: u32, rows: &[VersionRow], clock: &Clock) -> io::Result<()> {
    let seen = |f: &dyn Fn(&VersionRow) -> Option<String>| {
        let mut all: Vec<String> = rows.iter().filter_map(f).collect();
        all.sort();
        all.dedup();
        all.join(", ")
    };
    let users = seen(&|r| Some(chain(r, true)));
    let places = seen(&|r| r.ssh_client.as_deref().map(|s| format!("ssh from {}", q(s))));
    let ttys = seen(&|r| r.tty.as_deref().map(|t| format!("tty {}", q(t))));
    let times: Vec<String> = rows.iter().map(|r| clock.show_text(&r.time)).collect();
    let (first, last) =
        (times.iter().min().cloned().unwrap_or_default(), times.iter().max().cloned().unwrap_or_default());
    writeln!(out, "Session {session}: {users}")?;
    let place: Vec<&str> = [places.as_str(), ttys.as_str()].into_iter().filter(|s| !s.is_empty()).collect();
    if !place.is_empty() {
        writeln!(out, "From:    {}", place.join(", "))?;
    }
    let n_files = rows.iter().map(|r| &r.raw.path).collect::<std::collections::BTreeSet<_>>().len();
    writeln!(
        out,
        "Changes: {} to {n_files} file{}, {first} to {last} ({})",
        rows.len(),
        if n_files == 1 { "" } else { "s" },
        clock.zone()
    )?;
    writeln!(out)
}

/// The header `collector log` prints above each version's diff; with
/// `hosts` (versions of several hosts shown) the version is HOST:ID.
pub fn log_header(out: &mut impl Write, r: &VersionRow, color: bool, clock: &Clock, hosts: bool) -> io::Result<()> {
    let (y, n) = if color { ("\x1b[33m", "\x1b[0m") } else { ("", "") };
    let id = match (&r.host, hosts) {
        (Some(host), true) => format!("{}:{}", q(host), r.id),
        _ => r.id.to_string(),
    };
    writeln!(out, "{y}version {id}{n}  {} {}", r.action, quote(&r.raw.path))?;
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
    writeln!(out, "User:    {} (uid {}, euid {}){unregistered}", chain(r, true), r.uid, r.euid)?;
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
        let ascii = visible_as("b\x1b[2J\x07\r\0\x7f\u{9b}", false);
        assert_eq!(ascii, "b^[[2J^G^M^@^?<U+009B>", "as cat -v shows them");
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
    fn a_table_fits_the_width_it_is_given_and_keeps_file_names() {
        let long = b"/etc/nginx/sites-available/some/deeply/nested/directory/of/configs/default.conf".to_vec();
        let row = |id: i64, path: &[u8], size: u64| VersionRow {
            raw: crate::model::RawPaths { path: path.to_vec(), ..Default::default() },
            id,
            time: "2026-11-25T10:00:00Z".into(),
            action: "write".into(),
            size: Some(size),
            chain: vec!["alice".into(), "root".into()],
            exe: "/usr/bin/vim.basic".into(),
            seen_by: "library".into(),
            ..Default::default()
        };
        let rows = [row(1, &long, 4096), row(12, b"/etc/hosts", 1_258_291)].map(Record::Version);
        let clock = Clock::at("2026-11-25T15:00:00+00:00[UTC]".parse().unwrap());
        for cols in [80, 100, 120] {
            let mut out = Vec::new();
            table_in(&mut out, &rows, &clock, Some(cols)).unwrap();
            let text = String::from_utf8(out).unwrap();
            assert_eq!(text.lines().count(), 3, "{text}");
            for line in text.lines() {
                assert!(fit::width(line) <= cols, "{cols}: {line:?}");
            }
            assert!(text.contains("/default.conf\n") && text.contains('…'), "{text}");
            assert!(text.contains(" 4.0K ") && text.contains(" 1.2M "), "{text}");
        }
        // Too narrow for every column: the rows are cut, never wrapped.
        let mut out = Vec::new();
        table_in(&mut out, &rows, &clock, Some(40)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.lines().count() == 3 && text.lines().all(|l| fit::width(l) <= 40), "{text}");
        // Piped: nothing is cut.
        let mut out = Vec::new();
        table_in(&mut out, &rows, &clock, None).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains(std::str::from_utf8(&long).unwrap()) && !text.contains('…'), "{text}");
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
            host: None,
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
