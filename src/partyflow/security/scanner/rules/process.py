"""PF103: starting processes.

Calling a known tool with an argument list (ffmpeg, git, pip on the pack's own requirements) is ordinary and only
noted. What droppers do is different: a shell or interpreter given inline code, a hidden or detached background
process, a command built from decoded or downloaded data, or a spawn the moment the module is imported.
`pip install` of named packages is checked like a requirements file (typosquats, blocklist, URLs).

"At import" means what `reach` found: the pack's `__init__` and everything it runs, across files. A package manager
(pip, apt-get, brew, npm...) or a shell run at import changes the machine every time the server starts, with no one
asking, often as root: high. The same in an install script (install.py, which the manager runs once, on request) is
expected for pip and noted for system package managers; in a function it runs when a person uses the node.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator

from partyflow.security.scanner import indicators as ind
from partyflow.security.scanner.model import Finding, Severity
from partyflow.security.scanner.pyfacts import CallFact, fold_string
from partyflow.security.scanner.rules import requirements
from partyflow.security.scanner.rules.base import PyContext, make

SPAWNERS = frozenset({
    "subprocess.run", "subprocess.call", "subprocess.check_call", "subprocess.check_output", "subprocess.Popen",
    "subprocess.getoutput", "subprocess.getstatusoutput", "os.system", "os.popen", "os.popen2", "os.popen3",
    "os.execv", "os.execve", "os.execl", "os.execle", "os.execlp", "os.execlpe", "os.execvp", "os.execvpe",
    "os.spawnl", "os.spawnle", "os.spawnlp", "os.spawnv", "os.spawnve", "os.spawnvp", "os.spawnvpe", "os.startfile",
    "os.posix_spawn", "os.posix_spawnp", "pty.spawn", "asyncio.create_subprocess_exec",
    "asyncio.create_subprocess_shell", "commands.getoutput", "platform.popen",
})
SHELL_FUNCS = frozenset({"os.system", "os.popen", "subprocess.getoutput", "subprocess.getstatusoutput",
                         "asyncio.create_subprocess_shell", "commands.getoutput", "platform.popen"})
KNOWN_TOOLS = frozenset({"ffmpeg", "ffprobe", "git", "nvidia-smi", "magick", "convert", "sox", "exiftool",
                         "rocm-smi", "nvcc", "where", "which", "uv", "pip", "pip3", "yt-dlp", "realesrgan-ncnn-vulkan"})
INTERPRETERS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "cmd", "cmd.exe", "powershell", "powershell.exe",
                          "pwsh", "python", "python3", "perl", "ruby", "node", "osascript", "mshta", "wscript",
                          "cscript", "rundll32", "regsvr32"})
_INLINE_FLAGS = ("-c", "/c", "-e", "-command", "-encodedcommand", "-enc", "-e:")
SYSTEM_PACKAGE_MANAGERS = frozenset({"apt", "apt-get", "aptitude", "dpkg", "yum", "dnf", "rpm", "zypper", "pacman",
                                     "apk", "brew", "port", "snap", "flatpak", "choco", "winget", "scoop", "emerge",
                                     "nix-env", "pkg", "sudo", "su", "doas", "msiexec"})
PACKAGE_MANAGERS = SYSTEM_PACKAGE_MANAGERS | frozenset({"pip", "pip3", "uv", "conda", "mamba", "micromamba", "npm",
                                                        "pnpm", "yarn", "npx", "gem", "cargo", "go", "poetry",
                                                        "pipx", "easy_install", "ensurepip", "playwright", "mim"})
_TERMINALS = frozenset({"start", "gnome-terminal", "xterm", "konsole", "x-terminal-emulator", "mate-terminal",
                        "xfce4-terminal", "terminator", "alacritty", "kitty", "wt", "open"})


def check(ctx: PyContext) -> Iterator[Finding]:
    for call in ctx.facts.calls:
        if call.name in SPAWNERS:
            yield from _spawn(ctx, call)


def _argv(ctx: PyContext, call: CallFact) -> tuple[list[str | None], bool]:
    """The command as far as literals tell (None for computed parts), and whether a shell parses it."""
    first = call.arg(0, "args")
    shell_kw = call.keyword("shell")
    shell = call.name in SHELL_FUNCS or (isinstance(shell_kw, ast.Constant) and bool(shell_kw.value)) \
        or (shell_kw is not None and not isinstance(shell_kw, ast.Constant))
    if first is None:
        return [], shell
    if isinstance(first, ast.List | ast.Tuple):
        words: list[str | None] = []
        for element in first.elts:
            if ctx.facts.resolve(element) == "sys.executable":
                words.append("python")
            else:
                words.append(fold_string(element))
        return words, shell
    text = fold_string(first)
    if text is None:
        return [None], shell
    return text.split(), True if call.name not in ("os.startfile",) else shell


def _program(word: str | None) -> str | None:
    if word is None:
        return None
    return word.replace("\\", "/").rsplit("/", 1)[-1].lower().removesuffix(".exe") or None


def _package_manager(argv: list[str | None]) -> str | None:
    """The package manager a command runs: its program, `python -m pip`, one after `sudo`, `&&` or `;`."""
    words = [_program(w) or "" for w in argv]
    for index, word in enumerate(words):
        before = words[index - 1] if index else ""
        if index and not (before in ("&&", ";", "||", "|", "-m", "exec") or before.endswith((";", "&&"))):
            continue
        if word in ("sudo", "doas", "su"):
            following = words[index + 1] if index + 1 < len(words) else ""
            return following if following in PACKAGE_MANAGERS else word
        if word in PACKAGE_MANAGERS and word != "pkg":
            return word
    return None


def _visible_terminal(program: str | None, argv: list[str | None], joined: str) -> bool:
    """Opening a terminal window for the user (`start cmd /k ...`, `osascript -e 'tell app "Terminal"...'`) is
    visible by design, unlike a detached process with its output thrown away."""
    lowered = joined.lower()
    return program in _TERMINALS or ("cmd" in lowered.split() and "/k" in lowered.split()) \
        or (program == "osascript" and "terminal" in lowered)


def _spawn(ctx: PyContext, call: CallFact) -> Iterator[Finding]:
    facts = ctx.facts
    labels = call.all_args
    argv, shell = _argv(ctx, call)
    program = _program(argv[0]) if argv else None
    joined = " ".join(w for w in argv if w)
    at_import = call.import_time and not facts.install_script
    if labels & {ind.DECODED, ind.NETWORK}:
        source = "downloaded" if ind.NETWORK in labels else "decoded"
        yield make(ctx, "PF103", Severity.CRITICAL, call.line, f"runs a command built from {source} data")
        return
    if labels & {ind.DOWNLOAD_EXEC, ind.ENCODED_CMD}:
        yield make(ctx, "PF105", Severity.HIGH, call.line,
                   "runs a shell command that downloads and executes code (or an encoded command)")
        return
    if ind.PERSIST_CMD in labels:
        yield make(ctx, "PF108", Severity.HIGH, call.line,
                   "runs a command that installs persistence (crontab, scheduled task, service, Run key)")
        return
    terminal = _visible_terminal(program, argv, joined)
    if _detached(call, joined) and not terminal:
        yield make(ctx, "PF103", Severity.HIGH, call.line,
                   "starts a detached or hidden background process that outlives the pack's work")
        return
    pip = _pip_install(argv)
    if pip is not None:
        yield from _pip_findings(ctx, call, pip)
        return
    manager = _package_manager(argv)
    if manager is not None:
        yield from _manager_findings(ctx, call, manager, at_import, argv)
        return
    if program in INTERPRETERS and len(argv) > 1 and (argv[1] or "").lower() in _INLINE_FLAGS:
        inline = argv[2] if len(argv) > 2 else None
        what = "computed inline code" if inline is None else "inline code"
        if at_import:
            yield make(ctx, "PF103", Severity.HIGH, call.line,
                       f"runs {program} with {what} when the pack is imported")
        elif terminal:
            yield make(ctx, "PF103", Severity.MEDIUM, call.line, f"opens a terminal window running {what}")
        else:
            yield make(ctx, "PF103", Severity.MEDIUM, call.line, f"runs {program} with {what}")
        return
    if at_import and shell:
        yield make(ctx, "PF103", Severity.HIGH, call.line,
                   f"runs a shell command ({(joined or 'computed')[:60]}) when the pack is imported")
        return
    if at_import and program not in KNOWN_TOOLS:
        yield make(ctx, "PF103", Severity.HIGH, call.line,
                   f"starts a process ({program or 'computed command'}) when the pack is imported")
        return
    if at_import:
        yield make(ctx, "PF103", Severity.MEDIUM, call.line, f"starts {program} when the pack is imported")
        return
    if terminal:
        yield make(ctx, "PF103", Severity.MEDIUM, call.line, "opens a terminal window running a command")
        return
    if shell and (not argv or None in argv):
        yield make(ctx, "PF103", Severity.MEDIUM, call.line,
                   "runs a computed command through a shell (command injection risk)")
        return
    yield make(ctx, "PF103", Severity.LOW, call.line, f"starts a process: {program or 'a computed command'}")


def _detached(call: CallFact, joined: str) -> bool:
    """A process meant to outlive the pack unseen: its own session (or DETACHED_PROCESS) with its output thrown
    away, or a shell command sent to the background. A new session alone is common and honest (so a timeout can
    kill the whole process group), and so is CREATE_NO_WINDOW (no console flashing up for ffmpeg on Windows)."""
    session = call.keyword("start_new_session")
    preexec = call.keyword("preexec_fn")
    flags = call.keyword("creationflags")
    own_session = (isinstance(session, ast.Constant) and session.value is True) \
        or (preexec is not None and "setsid" in ast.unparse(preexec))
    if flags is not None and any(word in ast.unparse(flags).upper() for word in ("DETACHED", "0X8")):
        return True
    silenced = any(kw is not None and "DEVNULL" in ast.unparse(kw)
                   for kw in (call.keyword("stdout"), call.keyword("stderr")))
    if own_session and silenced:
        return True
    words = joined.lower().split()
    return bool(words) and (words[-1] == "&" or joined.rstrip().endswith("&") and not joined.rstrip().endswith("&&")
                            or "nohup" in words or "disown" in words or "-windowstyle" in words)


_QUERIES = frozenset({"-s", "-q", "-l", "-qa", "-Q", "list", "show", "info", "status", "search", "--version",
                      "-v", "freeze", "check", "query", "policy"})


def _manager_findings(ctx: PyContext, call: CallFact, manager: str, at_import: bool,
                      argv: list[str | None]) -> Iterator[Finding]:
    if at_import:
        words = [_program(w) or "" for w in argv]
        after = words[words.index(manager) + 1:] if manager in words else []
        query = bool(after) and next((w for w in after if not w.startswith("-") or w in _QUERIES), "") in _QUERIES
        effect = "asks it about installed packages (a process at every server start)" if query else \
            "it changes the machine at every server start, unasked"
        yield make(ctx, "PF103", Severity.HIGH, call.line,
                   f"runs the package manager {manager} when the pack is imported: {effect}")
    elif manager in SYSTEM_PACKAGE_MANAGERS:
        where = "the install script" if ctx.facts.install_script else "the pack"
        yield make(ctx, "PF103", Severity.MEDIUM, call.line,
                   f"{where} runs the system package manager {manager} (needs root, changes the whole machine)")
    else:
        yield make(ctx, "PF103", Severity.LOW, call.line, f"runs the package manager {manager}")


def _pip_install(argv: list[str | None]) -> list[str | None] | None:
    """The arguments after `pip install`, when the command is a pip install (python -m pip, pip, uv pip)."""
    words = [w.lower() if w else w for w in argv]
    for i, word in enumerate(words):
        if word in ("pip", "pip3") or (word and word.endswith(("/pip", "/pip3"))):
            following = i + 1
            while following < len(words) and (words[following] or "").startswith("-"):
                following += 1   # pip's own options before the command (`pip -q install`)
            if following < len(words) and words[following] == "install":
                return argv[following + 1:]
    return None


def _pip_findings(ctx: PyContext, call: CallFact, args: list[str | None]) -> Iterator[Finding]:
    facts = ctx.facts
    specs: list[str] = []
    names: list[str] = []
    own_requirements = computed = False
    index = 0
    while index < len(args):
        word = args[index]
        following = args[index + 1] if index + 1 < len(args) else None
        index += 1
        if word is None:
            computed = True
        elif word in ("-r", "--requirement", "-c", "--constraint"):
            own_requirements = True
            index += 1
        elif word in requirements.INDEX_OPTIONS:
            specs.append(f"{word} {following or ''}".strip())
            index += 1
        elif word.startswith(tuple(o + "=" for o in requirements.INDEX_OPTIONS)):
            specs.append(word)
        elif not word.startswith("-"):
            specs.append(word)
            names.append(word)
    found = requirements.check_lines(specs, facts.relpath, line=call.line)
    yield from found
    at_import = call.import_time and not facts.install_script
    if at_import:
        what = ", ".join(names[:5]) if names else "the pack's requirements" if own_requirements else "computed names"
        yield make(ctx, "PF103", Severity.HIGH, call.line,
                   f"runs pip install ({what}) when the pack is imported: it changes the environment at every server "
                   "start, unasked")
    elif names and not any(f.severity >= Severity.HIGH for f in found):
        yield make(ctx, "PF103", Severity.LOW, call.line,
                   f"installs packages that are not in the pack's requirements: {', '.join(names[:5])}")
    elif computed and not own_requirements:
        yield make(ctx, "PF103", Severity.MEDIUM, call.line, "pip install of computed package names")
    elif own_requirements:
        yield make(ctx, "PF103", Severity.LOW, call.line, "runs pip on the pack's own requirements")
