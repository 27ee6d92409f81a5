"""Labels for string constants: what a literal says about the data it names (a credential store, a startup file,
an executable URL...).

The Python analysis attaches these labels to values and follows them through assignments and calls, so a rule can
ask "does a path that names SSH keys reach a network call?" without each rule re-reading strings. Keeping the word
lists here (and only here) makes them easy to review and extend.
"""

from __future__ import annotations

import re

__all__ = [
    "CRED_PATH", "DECODED", "DOWNLOAD_EXEC", "ENCODED_CMD", "ENV_DUMP", "EXE_REF", "HTTP_CLIENT", "NETWORK",
    "OUTSIDE_PATH", "PARAM", "PERSIST_CMD", "PERSIST_PATH", "PTH_NAME", "SECRET_ENV", "SITE_PACKAGES", "TEMP",
    "MINER", "MINER_PATTERN", "URL", "USER_HOME", "WEBHOOK", "is_secret_env_name", "miner_list", "string_labels",
]

DECODED = "decoded"            # produced by a decoder (base64, hex, zlib, marshal, chr chains)
NETWORK = "network"            # data received from the network
HTTP_CLIENT = "http_client"    # an object whose methods talk to the network (requests.Session(), socket...)
ENV_DUMP = "env_dump"          # the whole environment (os.environ itself, copies, items)
SECRET_ENV = "secret_env"      # one environment variable whose name says it is a secret
CRED_PATH = "cred_path"        # a path to a credential store (SSH keys, browser profiles, wallets, cloud configs)
PERSIST_PATH = "persist_path"  # a startup file, shell profile, cron or service location
PERSIST_CMD = "persist_cmd"    # a command that installs persistence (crontab, schtasks, systemctl enable)
PTH_NAME = "pth_name"          # a file name ending in .pth
SITE_PACKAGES = "site_packages"
OUTSIDE_PATH = "outside_path"  # system locations (/etc, /usr, C:\\Windows...)
USER_HOME = "user_home"        # the user's home directory (not partyflow's)
TEMP = "temp"
URL = "url"
EXE_REF = "exe_ref"            # names an executable or script file
WEBHOOK = "webhook"            # a drop box for stolen data (chat webhooks, paste sites, tunnels)
DOWNLOAD_EXEC = "download_exec"  # a shell command that downloads and runs something
ENCODED_CMD = "encoded_cmd"    # a shell command carrying an encoded payload (powershell -enc, base64 -d | sh)
PARAM = "param"                # a function parameter: input chosen by the caller (a node's user)
MINER = "miner"                # names a miner program, mining pool, miner option, stratum URL or Monero wallet

# Crypto-miner indicators. Named groups tell what matched; a text naming three or more different programs or pools
# is a list of them (a scanner's rules, a malware advisory), not a miner's configuration.
MINER_PATTERN = re.compile(
    r"(?P<stratum>stratum\+(tcp|ssl|tls)://[a-z0-9\[])|"
    r"(?P<program>\b(xmrig|xmr-stak|cpuminer|minerd|ccminer|nbminer|phoenixminer|lolminer|gminer|ethminer|"
    r"nanominer|srbminer|teamredminer)\b)|"
    r"(?P<pool>\b(supportxmr|moneroocean|nanopool|2miners|f2pool|hashvault|c3pool|minexmr|herominers|unmineable|"
    r"nicehash|ethermine|xmrpool|viabtc|antpool|miningpoolhub)\b)|"
    r"(?P<option>--donate-level|--cpu-max-threads-hint|\brandomx\b|\bcryptonight\b)|"
    r"(?P<wallet>\b4[0-9AB][1-9A-HJ-NP-Za-km-z]{93}\b)",
    re.IGNORECASE,
)

_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "AUTH", "COOKIE", "SESSION", "PRIVATE")
_NOT_SECRET = ("KEYBOARD", "MONKEY", "KEY_PATH_UNUSED")

_EXE_SUFFIXES = (".exe", ".dll", ".so", ".dylib", ".scr", ".msi", ".bat", ".cmd", ".ps1", ".sh", ".vbs", ".elf",
                 ".jar", ".apk", ".appimage", ".pyz", ".deb", ".rpm", ".pkg")

_CRED_MARKERS = (
    "/.ssh", "\\.ssh", "id_rsa", "id_ed25519", "id_ecdsa", "id_dsa", ".aws/credentials", ".aws\\credentials",
    ".config/gcloud", "application_default_credentials", ".azure/", ".kube/config", ".docker/config.json",
    ".netrc", ".git-credentials", ".pypirc", ".npmrc", "login data", "local state", "logins.json", "key4.db",
    "key3.db", "cookies.sqlite", "/cookies", "\\cookies", "user data/default", "user data\\default",
    "google/chrome", "google\\chrome", "bravesoftware", "mozilla/firefox", "mozilla\\firefox", "microsoft/edge",
    "microsoft\\edge", "wallet.dat", "exodus", "electrum", "metamask", "nkbihfbeogaeaoehlefnkodbefgpgknn",
    "ethereum/keystore", "ethereum\\keystore", ".bitcoin", "solana/id.json", "discord/local storage",
    "discord\\local storage", "telegram desktop/tdata", "telegram desktop\\tdata", ".gnupg", "login.keychain",
    ".password-store", "keychain-db",
)
_PERSIST_MARKERS = (
    ".bashrc", ".bash_profile", ".bash_login", ".profile", ".zshrc", ".zprofile", ".zshenv", ".zlogin",
    "config.fish", "/etc/profile", "/etc/rc.local", "/etc/cron", "/var/spool/cron", "cron.d/", ".config/autostart",
    "systemd/user", "/etc/systemd", "/etc/init.d", "launchagents", "launchdaemons", "start menu\\programs\\startup",
    "start menu/programs/startup", "currentversion\\run", "sitecustomize.py", "usercustomize.py", "authorized_keys",
    ".git/hooks", "/etc/ld.so.preload",
)
_PERSIST_COMMANDS = re.compile(
    r"\bcrontab\s+(-[a-z]*\s+)*-?\s*(-|/|\w+\.cron)|\bschtasks\b.*\s/create\b|\bsystemctl\b.*\benable\b|"
    r"\blaunchctl\s+(load|bootstrap)\b|\breg(\.exe)?\s+add\b.*\\run\b|\bupdate-rc\.d\b",
    re.IGNORECASE,
)
_DOWNLOAD_EXEC = re.compile(
    r"(curl|wget)\b[^|;&\n]*\|\s*(sudo\s+)?(ba|z|da)?sh\b|"
    r"(curl|wget)\b[^\n]*(&&|;)\s*(chmod\s+\+?[0-7]*x|(ba)?sh\s|\./)|"
    r"\b(iwr|invoke-webrequest|invoke-restmethod|irm)\b[^\n]*\|\s*(iex|invoke-expression)\b|"
    r"\bcertutil(\.exe)?\s+-urlcache\b|\bbitsadmin(\.exe)?\s+/transfer\b|downloadstring\(|"
    r"\bmshta(\.exe)?\s+https?:",
    re.IGNORECASE,
)
_ENCODED_CMD = re.compile(
    r"\b(powershell|pwsh)(\.exe)?\b[^\n]*\s-(e|en|enc|encodedcommand)\s|base64\s+(-d|--decode)[^\n]*\|\s*(ba)?sh\b",
    re.IGNORECASE,
)
_WEBHOOKS = ("/api/webhooks/", "api.telegram.org/bot", "hooks.slack.com",
             "pastebin.com/api", "webhook.site", "ngrok.io", "ngrok-free.app", "transfer.sh", "requestbin",
             "pipedream.net", "interact.sh", "oast.")
_WEBHOOK_MARKERS = frozenset(hook.strip("/") for hook in _WEBHOOKS)
_SYSTEM_ROOTS = ("etc", "usr", "bin", "sbin", "lib", "lib64", "opt", "boot", "root", "library", "system",
                 "applications", "var", "srv", "dev")
_HARMLESS_DEVICES = ("/dev/null", "/dev/tty", "/dev/stdout", "/dev/stderr", "/dev/stdin", "/dev/fd/",
                     "/proc/self/fd/", "/dev/zero", "/dev/urandom", "/dev/random")
_HOME_VARS = ("HOME", "USERPROFILE", "APPDATA", "LOCALAPPDATA", "XDG_CONFIG_HOME", "XDG_DATA_HOME")


def is_secret_env_name(name: str) -> bool:
    """True for names like OPENAI_API_KEY or AWS_SECRET_ACCESS_KEY (a word of the name says it is a secret)."""
    upper = name.upper()
    if any(word in upper for word in _NOT_SECRET):
        return False
    parts = re.split(r"[^A-Z0-9]+", upper)
    return any(word in part for part in parts for word in _SECRET_WORDS)


def home_env_name(name: str) -> bool:
    return name.upper() in _HOME_VARS


def string_labels(text: str) -> frozenset[str]:
    """Labels for one literal. Cheap enough to call on every string constant of a module."""
    if len(text) > 4096 or not text:
        return frozenset()
    low = text.lower().replace("\\\\", "\\")
    labels: set[str] = set()
    if low.startswith(("http://", "https://", "ftp://", "ws://", "wss://")):
        labels.add(URL)
        path = low.split("?", 1)[0].split("#", 1)[0]
        if path.endswith(_EXE_SUFFIXES):
            labels.add(EXE_REF)
    elif low.strip().endswith(_EXE_SUFFIXES) and " " not in low.strip():
        labels.add(EXE_REF)
    if any(hook in low for hook in _WEBHOOKS) and low.strip().strip("/") not in _WEBHOOK_MARKERS:
        labels.add(WEBHOOK)   # an endpoint; the bare marker alone is a pattern in someone's rule list
    if any(marker in low for marker in _CRED_MARKERS):
        labels.add(CRED_PATH)
    if any(marker in low for marker in _PERSIST_MARKERS):
        labels.add(PERSIST_PATH)
    if low.endswith(".pth"):
        labels.add(PTH_NAME)
    if "site-packages" in low or "dist-packages" in low:
        labels.add(SITE_PACKAGES)
    if low.startswith("~"):
        labels.add(USER_HOME)
    if low.startswith(_HARMLESS_DEVICES):
        pass  # /dev/null, the terminal, the process's own streams: not a place anything is stored
    elif low.startswith(("/tmp", "/var/tmp", "/dev/shm")) or "%temp%" in low:
        labels.add(TEMP)
    elif low.startswith("/") and low[1:].split("/", 1)[0] in _SYSTEM_ROOTS:
        labels.add(OUTSIDE_PATH)
    elif re.match(r"^[a-z]:\\(windows|program files|programdata)", low) or low.startswith(("%appdata%",
                                                                                          "%programdata%")):
        labels.add(OUTSIDE_PATH)
    if _PERSIST_COMMANDS.search(text):
        labels.add(PERSIST_CMD)
    if _DOWNLOAD_EXEC.search(text):
        labels.add(DOWNLOAD_EXEC)
    if _ENCODED_CMD.search(text):
        labels.add(ENCODED_CMD)
    if MINER_PATTERN.search(text) and not miner_list(text):
        labels.add(MINER)
    return frozenset(labels)


def miner_list(text: str) -> bool:
    """Three or more different miner programs or pools in one text: a list of them (detection rules, an advisory),
    which a miner's own configuration never is."""
    names = {m.group(0).lower() for m in MINER_PATTERN.finditer(text) if m.lastgroup in ("program", "pool")}
    return len(names) >= 3


def download_exec_in(text: str) -> re.Match[str] | None:
    """For shell scripts and other text files: a download piped into a shell or made executable."""
    return _DOWNLOAD_EXEC.search(text) or _ENCODED_CMD.search(text)


def persistence_command_in(text: str) -> re.Match[str] | None:
    return _PERSIST_COMMANDS.search(text)
