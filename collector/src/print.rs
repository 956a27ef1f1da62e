//! Output of versions: a readable table, or JSON lines (the contract).

use std::io::{self, Write};

use crate::model::VersionRow;

pub fn json_lines(out: &mut impl Write, rows: &[VersionRow]) -> io::Result<()> {
    for row in rows {
        serde_json::to_writer(&mut *out, row)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

fn short_time(rfc3339: &str) -> String {
    // 2026-11-25T14:30:00.123456Z -> 2026-11-25 14:30:00
    rfc3339.get(..19).map(|t| t.replace('T', " ")).unwrap_or_else(|| rfc3339.to_owned())
}

/// The program: the kernel-verified executable's name (argv[0] is
/// whatever the process chose to call itself).
fn program(row: &VersionRow) -> String {
    let name = if row.exe.is_empty() { row.argv.first().cloned().unwrap_or_default() } else { row.exe.clone() };
    name.rsplit('/').next().unwrap_or(&name).to_owned()
}

/// argv as a shell would need it typed.
fn shell_words(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            if !a.is_empty() && a.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./=:,+@%".contains(&b)) {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', "'\\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn table(out: &mut impl Write, rows: &[VersionRow]) -> io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let who = |r: &VersionRow| r.chain.join("→");
    let uw = rows.iter().map(|r| who(r).chars().count()).max().unwrap_or(4).max(4);
    let pw = rows.iter().map(|r| program(r).chars().count()).max().unwrap_or(7).max(7);
    writeln!(
        out,
        "{:>5}  {:<19}  {:<uw$}  {:<8}  {:>8}  {:<pw$}  PATH",
        "ID", "TIME (UTC)", "USER", "ACTION", "SIZE", "PROGRAM"
    )?;
    for r in rows {
        let size = r.size.map(|s| s.to_string()).unwrap_or_else(|| "-".into());
        let path = match &r.old_path {
            Some(old) => format!("{} (from {old})", r.path),
            None => r.path.clone(),
        };
        writeln!(
            out,
            "{:>5}  {:<19}  {:<uw$}  {:<8}  {:>8}  {:<pw$}  {path}",
            r.id,
            short_time(&r.time),
            who(r),
            r.action,
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
        use std::io::IsTerminal;
        match self {
            Color::Always => true,
            Color::Never => false,
            Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
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
    for line in unified.lines() {
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
pub fn log_header(out: &mut impl Write, r: &VersionRow, color: bool) -> io::Result<()> {
    let (y, n) = if color { ("\x1b[33m", "\x1b[0m") } else { ("", "") };
    writeln!(out, "{y}version {}{n}  {} {}", r.id, r.action, r.path)?;
    if let Some(old) = &r.old_path {
        writeln!(out, "From:    {old}")?;
    }
    writeln!(out, "User:    {} (uid {}, euid {})", r.chain.join(" → "), r.uid, r.euid)?;
    writeln!(out, "Date:    {}", r.time)?;
    writeln!(out, "Program: {} (pid {})  {}", r.exe, r.pid, shell_words(&r.argv))?;
    let place: Vec<String> =
        [r.tty.as_ref().map(|t| format!("tty {t}")), r.ssh_client.as_ref().map(|s| format!("ssh from {s}"))]
            .into_iter()
            .flatten()
            .collect();
    if !place.is_empty() {
        writeln!(out, "Where:   {}", place.join(", "))?;
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
}
