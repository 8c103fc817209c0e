//! Builds the XDP program (`ebpf/tapflow_xdp.c`) with clang into OUT_DIR; `src/xdp` embeds the
//! object with `aya::include_bytes_aligned!`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let src = manifest.join("../ebpf/tapflow_xdp.c");
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR")).join("tapflow_xdp.o");
    println!("cargo:rerun-if-changed={}", src.display());
    println!("cargo:rerun-if-env-changed=CLANG");

    let clang = env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let mut cmd = Command::new(&clang);
    cmd.args(["-O2", "-g", "-target", "bpf", "-Wall"]);
    // <linux/bpf.h> includes <asm/types.h>, which Debian keeps in the multiarch directory that
    // clang does not search for the bpf target.
    if let Some(dir) = multiarch_include_dir() {
        cmd.arg("-I").arg(dir);
    }
    cmd.arg("-c").arg(&src).arg("-o").arg(&out);

    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => fail(&format!(
            "building the XDP program failed: `{cmd:?}` exited with {s}. It needs clang with the \
             BPF target and the kernel UAPI headers (Debian/Ubuntu: apt-get install clang \
             linux-libc-dev)"
        )),
        Err(e) => fail(&format!(
            "cannot run `{clang}` to build the XDP program {}: {e}. Install clang and the kernel \
             UAPI headers (Debian/Ubuntu: apt-get install clang linux-libc-dev), or set the \
             CLANG environment variable to a clang binary",
            src.display()
        )),
    }
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    std::process::exit(1);
}

/// `/usr/include/<arch>-linux-gnu` of the build host, when it has the asm headers (the BPF
/// object does not depend on the target; only the UAPI headers are needed).
fn multiarch_include_dir() -> Option<PathBuf> {
    let host = env::var("HOST").ok()?;
    let arch = host.split('-').next()?;
    let dir = PathBuf::from(format!("/usr/include/{arch}-linux-gnu"));
    dir.join("asm/types.h").exists().then_some(dir)
}
