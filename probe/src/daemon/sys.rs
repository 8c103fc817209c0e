//! Process-level plumbing: signals and dropping privileges.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// SIGTERM/SIGINT set `stop` (flush every flow, exit 0); SIGHUP sets `rotate`.
pub fn install_signals(stop: &Arc<AtomicBool>, rotate: &Arc<AtomicBool>) -> Result<(), String> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for (sig, flag) in [(SIGTERM, stop), (SIGINT, stop), (SIGHUP, rotate)] {
        signal_hook::flag::register(sig, flag.clone())
            .map_err(|e| format!("cannot install handler for signal {sig}: {e}"))?;
    }
    Ok(())
}

/// Looks a user up: (uid, primary gid).
fn lookup_user(user: &str) -> Result<(u32, u32), String> {
    let name = CString::new(user).map_err(|_| format!("bad user name {user:?}"))?;
    let mut pw: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16384];
    let mut res: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for the call; `buf` outlives the use of `pw`'s strings
    // (only the numeric ids are used).
    let rc = unsafe {
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pw,
            buf.as_mut_ptr(),
            buf.len(),
            &mut res,
        )
    };
    if rc != 0 || res.is_null() {
        // A numeric id works too (containers often have no passwd entry).
        if let Ok(uid) = user.parse::<u32>() {
            return Ok((uid, uid));
        }
        return Err(format!("no such user {user:?}"));
    }
    Ok((pw.pw_uid, pw.pw_gid))
}

/// Gives `dirs` to the user, then switches to it for good: supplementary groups reset, gid and
/// uid set (real, effective and saved), no-new-privs set. Changing uid away from 0 without
/// PR_SET_KEEPCAPS clears every capability, which is what the probe wants: once its sockets,
/// rings and XDP program exist it needs none (ring reads, poll and the XDP link's release at
/// exit are all unprivileged).
pub fn drop_privileges(user: &str, dirs: &[PathBuf]) -> Result<(u32, u32), String> {
    let (uid, gid) = lookup_user(user)?;
    for d in dirs {
        let c = CString::new(d.as_os_str().as_bytes()).map_err(|_| "bad path".to_string())?;
        // SAFETY: a valid C string.
        if unsafe { libc::chown(c.as_ptr(), uid, gid) } != 0 {
            return Err(format!(
                "cannot give {} to {user}: {}",
                d.display(),
                std::io::Error::last_os_error()
            ));
        }
    }
    // SAFETY: plain credential syscalls; each result is checked.
    unsafe {
        let groups = [gid];
        if libc::setgroups(1, groups.as_ptr()) != 0 {
            return Err(format!("setgroups: {}", std::io::Error::last_os_error()));
        }
        if libc::setresgid(gid, gid, gid) != 0 {
            return Err(format!(
                "setresgid({gid}): {}",
                std::io::Error::last_os_error()
            ));
        }
        if libc::setresuid(uid, uid, uid) != 0 {
            return Err(format!(
                "setresuid({uid}): {}",
                std::io::Error::last_os_error()
            ));
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(format!("no_new_privs: {}", std::io::Error::last_os_error()));
        }
        // Paranoia: getting root back must be impossible now.
        if uid != 0 && libc::setuid(0) == 0 {
            return Err("privileges not dropped: setuid(0) still works".into());
        }
    }
    Ok((uid, gid))
}

/// The effective user id.
pub fn euid() -> u32 {
    // SAFETY: no arguments, cannot fail.
    unsafe { libc::geteuid() }
}

/// The uid a user name (or number) stands for.
pub fn uid_of(user: &str) -> Result<u32, String> {
    lookup_user(user).map(|(uid, _)| uid)
}

/// For a probe started unprivileged with capabilities (systemd `User=` with
/// `AmbientCapabilities=`): once the sockets, rings and XDP program exist, gives up every
/// capability for good — ambient ones cleared, the effective, permitted and inheritable sets
/// emptied, no-new-privs set — so the packet threads run with none, as after a switch from
/// root. Capabilities are per thread: this must run before any thread is started.
pub fn drop_capabilities() -> Result<(), String> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: libc::c_int,
    }
    #[repr(C)]
    #[derive(Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    // _LINUX_CAPABILITY_VERSION_3: two 32-bit words per set.
    let mut hdr = Header {
        version: 0x2008_0522,
        pid: 0,
    };
    let data = [Data {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: prctl with integer arguments; capset with a valid header and two data words.
    unsafe {
        if libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong,
            0,
            0,
            0,
        ) != 0
        {
            return Err(format!(
                "clearing ambient capabilities: {}",
                std::io::Error::last_os_error()
            ));
        }
        if libc::syscall(libc::SYS_capset, &mut hdr as *mut Header, data.as_ptr()) != 0 {
            return Err(format!("capset: {}", std::io::Error::last_os_error()));
        }
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(format!("no_new_privs: {}", std::io::Error::last_os_error()));
        }
    }
    match effective_caps() {
        Some(0) | None => Ok(()),
        Some(c) => Err(format!("capabilities not dropped: {c:#x} left")),
    }
}

/// Effective capability mask of this process (from /proc/self/status), for logs and tests.
pub fn effective_caps() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("CapEff:"))?;
    u64::from_str_radix(line.split_whitespace().nth(1)?, 16).ok()
}
