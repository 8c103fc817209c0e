//! Builds the XDP program (`ebpf/tapflow_xdp.c`) with clang into OUT_DIR; `src/xdp` embeds the
//! object with `aya::include_bytes_aligned!`.

use std::env;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    if env::var_os("CARGO_FEATURE_DAG").is_some() {
        link_libdag();
    }
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

/// Feature `dag`: link the Endace DAG library. `DAG_LIB_DIR` (or `DAG_ROOT/lib`) names its
/// directory, otherwise the usual library directories are searched. When it is not found the
/// build says so loudly; `cargo check` still works (it does not link), a real build then fails
/// at link time right after the message.
fn link_libdag() {
    println!("cargo:rerun-if-env-changed=DAG_LIB_DIR");
    println!("cargo:rerun-if-env-changed=DAG_ROOT");
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(d) = env::var_os("DAG_LIB_DIR") {
        dirs.push(PathBuf::from(d));
    }
    if let Some(d) = env::var_os("DAG_ROOT") {
        dirs.push(PathBuf::from(d).join("lib"));
    }
    for d in [
        "/usr/local/lib",
        "/usr/lib",
        "/usr/lib/x86_64-linux-gnu",
        "/usr/lib64",
        "/opt/endace/lib",
    ] {
        dirs.push(PathBuf::from(d));
    }
    let found = dirs
        .iter()
        .find(|d| d.join("libdag.so").exists() || d.join("libdag.a").exists());
    match found {
        Some(d) => println!("cargo:rustc-link-search=native={}", d.display()),
        None => println!(
            "cargo:warning=feature `dag`: libdag (Endace DAG software) not found in DAG_LIB_DIR, \
             DAG_ROOT/lib or the system library directories; linking anything that uses the DAG \
             backend will fail. Install the Endace DAG software or set DAG_LIB_DIR"
        ),
    }
    println!("cargo:rustc-link-lib=dag");
}
