"""A small seccomp-BPF program for the sandbox, assembled here so no libseccomp binding is needed.

bubblewrap installs it (`--seccomp FD`) after setting up the namespaces and just before it executes the sandboxed
program, together with `no_new_privs`. It is a deny list on top of the namespaces, not the boundary itself:

* system calls that a sandboxed program never needs and that widen the kernel's attack surface are refused with
  EPERM (ptrace, mount and the new mount API, namespaces, keyrings, BPF, perf, userfaultfd, io_uring, modules,
  kexec, handle-based opens, raw I/O ports);
* setting the set-user-ID or set-group-ID bit is refused (`chmod` and friends, and the mode of `open`/`creat`),
  and so is `mknod`: files the sandbox writes appear on the host with the host user's identity (root's, when
  partyflow runs as root), so a set-user-ID copy of a shell would otherwise be a way up for anyone who can reach
  the folder; `openat2` answers ENOSYS (its mode sits behind a pointer), so the C library uses `openat`;
* creating namespaces through `clone` is refused; with `processes=False` so is every `clone` that does not make a
  thread, plus `fork`/`vfork`, which stops fork bombs and `subprocess`/`posix_spawn` at the kernel;
* `clone3` answers ENOSYS: its flags sit behind a pointer a filter cannot read, and the C library then falls back
  to `clone`, whose flags it can;
* a call made through another ABI than the native one (i386 `int 0x80` on x86-64, x32) kills the process, so
  the numbers below cannot be sidestepped.

Only x86-64 and aarch64 are known; `program()` raises `UnsupportedArchitecture` elsewhere (the sandbox then
refuses to run rather than run without it).
"""

from __future__ import annotations

import platform
import struct

__all__ = ["UnsupportedArchitecture", "program"]


class UnsupportedArchitecture(RuntimeError):
    """No system-call table for this machine."""


# BPF opcodes (linux/bpf_common.h) and seccomp return values (linux/seccomp.h)
_LD_W_ABS = 0x20
_JEQ_K = 0x15
_JGE_K = 0x35
_JSET_K = 0x45
_RET_K = 0x06
_ALLOW = 0x7FFF0000
_KILL_PROCESS = 0x80000000
_ERRNO = 0x00050000
_EPERM, _ENOSYS = 1, 38

_OFFSET_NR, _OFFSET_ARCH, _OFFSET_ARG0 = 0, 4, 16  # struct seccomp_data; arg 0's low word (little-endian)
_CLONE_THREAD = 0x00010000
_CLONE_NAMESPACES = 0x7E020000  # NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET
_X32_BIT = 0x40000000
_SET_ID_BITS = 0o6000  # S_ISUID | S_ISGID
_MODE_ARGUMENT = {"chmod": 1, "fchmod": 1, "fchmodat": 2, "fchmodat2": 2, "open": 2, "creat": 1, "openat": 3}

_DENIED = ("ptrace", "process_vm_readv", "process_vm_writev", "mount", "umount2", "pivot_root", "chroot",
           "unshare", "setns", "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
           "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "reboot", "swapon",
           "swapoff", "acct", "quotactl", "open_by_handle_at", "name_to_handle_at", "iopl", "ioperm", "syslog",
           "io_uring_setup", "io_uring_enter", "io_uring_register", "fanotify_init", "open_tree", "move_mount",
           "fsopen", "fsconfig", "fsmount", "fspick", "mount_setattr", "mknod", "mknodat")

# (audit arch, syscall numbers); from asm/unistd_64.h and asm-generic/unistd.h
_X86_64 = (0xC000003E, {
    "fork": 57, "vfork": 58, "clone": 56, "clone3": 435, "ptrace": 101, "process_vm_readv": 310,
    "process_vm_writev": 311, "mount": 165, "umount2": 166, "pivot_root": 155, "chroot": 161, "unshare": 272,
    "setns": 308, "keyctl": 250, "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298,
    "userfaultfd": 323, "kexec_load": 246, "kexec_file_load": 320, "init_module": 175, "finit_module": 313,
    "delete_module": 176, "reboot": 169, "swapon": 167, "swapoff": 168, "acct": 163, "quotactl": 179,
    "open_by_handle_at": 304, "name_to_handle_at": 303, "iopl": 172, "ioperm": 173, "syslog": 103,
    "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "fanotify_init": 300,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "mount_setattr": 442, "chmod": 90, "fchmod": 91, "fchmodat": 268, "fchmodat2": 452, "open": 2, "creat": 85,
    "openat": 257, "mknod": 133, "mknodat": 259, "openat2": 437})
_AARCH64 = (0xC00000B7, {
    "clone": 220, "clone3": 435, "ptrace": 117, "process_vm_readv": 270, "process_vm_writev": 271, "mount": 40,
    "umount2": 39, "pivot_root": 41, "chroot": 51, "unshare": 97, "setns": 268, "keyctl": 219, "add_key": 217,
    "request_key": 218, "bpf": 280, "perf_event_open": 241, "userfaultfd": 282, "kexec_load": 104,
    "kexec_file_load": 294, "init_module": 105, "finit_module": 273, "delete_module": 106, "reboot": 142,
    "swapon": 224, "swapoff": 225, "acct": 89, "quotactl": 60, "open_by_handle_at": 265, "name_to_handle_at": 264,
    "syslog": 116, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427, "fanotify_init": 262,
    "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433,
    "mount_setattr": 442, "fchmod": 52, "fchmodat": 53, "fchmodat2": 452, "openat": 56, "mknodat": 33,
    "openat2": 437})
_TABLES = {"x86_64": _X86_64, "amd64": _X86_64, "aarch64": _AARCH64, "arm64": _AARCH64}


def _op(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return struct.pack("=HBBI", code, jt, jf, k)


def program(*, processes: bool, machine: str | None = None) -> bytes:
    """The filter as bubblewrap reads it: an array of `struct sock_filter`.

    `processes`: whether the program may start other processes (threads are always allowed).
    """
    name = (machine or platform.machine()).lower()
    if name not in _TABLES:
        raise UnsupportedArchitecture(f"no seccomp system-call table for {name!r} (known: x86_64, aarch64)")
    arch, numbers = _TABLES[name]
    out = [_op(_LD_W_ABS, _OFFSET_ARCH), _op(_JEQ_K, arch, 1, 0), _op(_RET_K, _KILL_PROCESS),
           _op(_LD_W_ABS, _OFFSET_NR)]
    if arch == _X86_64[0]:
        out += [_op(_JGE_K, _X32_BIT, 0, 1), _op(_RET_K, _KILL_PROCESS)]
    denied = [numbers[n] for n in _DENIED if n in numbers]
    if not processes:
        denied += [numbers[n] for n in ("fork", "vfork") if n in numbers]
    for number in denied:
        out += [_op(_JEQ_K, number, 0, 1), _op(_RET_K, _ERRNO | _EPERM)]
    for name in ("clone3", "openat2"):
        out += [_op(_JEQ_K, numbers[name], 0, 1), _op(_RET_K, _ERRNO | _ENOSYS)]
    for name, index in _MODE_ARGUMENT.items():  # no set-user-ID/set-group-ID bits: see the module docstring
        if name in numbers:
            out += [_op(_JEQ_K, numbers[name], 0, 4), _op(_LD_W_ABS, _OFFSET_ARG0 + 8 * index),
                    _op(_JSET_K, _SET_ID_BITS, 0, 1), _op(_RET_K, _ERRNO | _EPERM), _op(_RET_K, _ALLOW)]
    # clone: refuse new namespaces always; without processes, anything but a thread
    clone = [_op(_LD_W_ABS, _OFFSET_ARG0), _op(_JSET_K, _CLONE_NAMESPACES, 0, 1), _op(_RET_K, _ERRNO | _EPERM)]
    if not processes:
        clone += [_op(_JSET_K, _CLONE_THREAD, 0, 1), _op(_RET_K, _ALLOW), _op(_RET_K, _ERRNO | _EPERM)]
    out += [_op(_JEQ_K, numbers["clone"], 0, len(clone)), *clone, _op(_RET_K, _ALLOW)]
    return b"".join(out)
