//! Builds the C shim (`shim/filetrail.c`) into `libfiletrail.so` beside this
//! crate's own library (`target/<profile>/`), so that `cargo build` alone
//! produces both objects a session loads. The shim stays a plain C shared
//! object, not a Rust crate: it is mapped into every process of a session
//! and must cost next to nothing at exec (docs/architecture.md, "Two
//! stages"); these are the flags it was measured with.

use std::path::PathBuf;
use std::process::Command;

const FLAGS: &[&str] = &[
    "-O2",
    "-fPIC",
    "-shared",
    "-fvisibility=hidden",
    "-fno-delete-null-pointer-checks",
    "-Wall",
    "-Wextra",
    "-Wno-nonnull-compare",
    "-Werror",
];

fn main() {
    println!("cargo:rerun-if-changed=shim/filetrail.c");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    // OUT_DIR is <target dir>/<profile>/build/<package>-<hash>/out.
    let dir = out.ancestors().nth(3).expect("OUT_DIR lies in the target directory");
    let (dest, partial) = (dir.join("libfiletrail.so"), out.join("libfiletrail.so"));
    let compiler = cc::Build::new().cargo_metadata(false).get_compiler();
    let status = Command::new(compiler.path())
        .args(FLAGS)
        .arg("-o")
        .arg(&partial)
        .arg("shim/filetrail.c")
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler {}: {e}", compiler.path().display()));
    assert!(status.success(), "compiling shim/filetrail.c failed");
    // Renamed into place: a process that has the old one mapped keeps it.
    std::fs::copy(&partial, dir.join(".libfiletrail.so.new")).expect("copy the shim beside the core");
    std::fs::rename(dir.join(".libfiletrail.so.new"), &dest).expect("put the shim in place");
}
