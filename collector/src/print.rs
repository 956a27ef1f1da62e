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

fn program(row: &VersionRow) -> String {
    let name = row.argv.first().cloned().unwrap_or_else(|| row.exe.clone());
    name.rsplit('/').next().unwrap_or(&name).to_owned()
}

pub fn table(out: &mut impl Write, rows: &[VersionRow]) -> io::Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let who = |r: &VersionRow| r.chain.join("→");
    let uw = rows.iter().map(|r| who(r).chars().count()).max().unwrap_or(4).max(4);
    let pw = rows.iter().map(|r| program(r).chars().count()).max().unwrap_or(7).max(7);
    writeln!(out, "{:>5}  {:<19}  {:<uw$}  {:<8}  {:>8}  {:<pw$}  PATH", "ID", "TIME (UTC)", "USER", "ACTION", "SIZE", "PROGRAM")?;
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
