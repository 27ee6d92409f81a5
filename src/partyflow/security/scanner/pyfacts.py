"""One pass over a Python module that records the facts every rule needs: each call with its resolved name, the
labels of the data it receives, the scope it runs in and whether that code runs at import time.

Why a shared pass: the rules ask flow questions ("does decoded data reach exec?", "is a credential read followed
by a network call?"). A small forward data-flow (labels follow assignments, calls and f-strings inside a scope,
module-level names are visible to functions) answers them once, so each rule stays a few lines of policy. It is
deliberately approximate: it never runs code, it over-approximates through calls, and it does not follow data across
modules.

When code runs is decided elsewhere (`reach`): this pass records, per scope, what the scope imports, which functions
it calls or hands to something that calls them right away, and what it loads by name; `reach` follows those edges
across the pack's modules and sets each scope's `import_time`.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from partyflow.security.scanner import indicators as ind

__all__ = ["CallFact", "ImportFact", "LoadFact", "ModuleFacts", "Scope", "analyse", "fold_string", "is_install_script",
           "is_network_call"]

Labels = frozenset[str]
_EMPTY: Labels = frozenset()

DECODERS = frozenset({
    "base64.b64decode", "base64.b32decode", "base64.b16decode", "base64.b85decode", "base64.a85decode",
    "base64.decodebytes", "base64.urlsafe_b64decode", "base64.standard_b64decode", "base64.decodestring",
    "binascii.a2b_base64", "binascii.unhexlify", "binascii.a2b_hex", "bytes.fromhex", "bytearray.fromhex",
    "codecs.decode", "zlib.decompress", "gzip.decompress", "bz2.decompress", "lzma.decompress", "marshal.loads",
    "chr", "zlib.decompressobj",
})
NETWORK_FETCH = frozenset({
    "urllib.request.urlopen", "urllib.request.urlretrieve", "urllib.urlopen", "urllib.urlretrieve", "urllib2.urlopen",
    "requests.get", "requests.post", "requests.put", "requests.patch", "requests.delete", "requests.head",
    "requests.request", "requests.options", "httpx.get", "httpx.post", "httpx.put", "httpx.patch", "httpx.delete",
    "httpx.request", "httpx.stream", "httpx.head", "wget.download", "socket.create_connection",
    "urllib3.request", "aiohttp.request", "websocket.create_connection", "websockets.connect",
    "smtplib.SMTP.sendmail", "paramiko.SSHClient",
})
HTTP_CLIENTS = frozenset({
    "requests.Session", "requests.session", "httpx.Client", "httpx.AsyncClient", "aiohttp.ClientSession",
    "urllib3.PoolManager", "http.client.HTTPConnection", "http.client.HTTPSConnection", "httplib.HTTPConnection",
    "httplib.HTTPSConnection", "socket.socket", "ftplib.FTP", "ftplib.FTP_TLS", "smtplib.SMTP", "smtplib.SMTP_SSL",
    "urllib.request.build_opener", "telnetlib.Telnet", "xmlrpc.client.ServerProxy",
})
CLIENT_METHODS = frozenset({
    "get", "post", "put", "patch", "delete", "head", "options", "request", "send", "sendall", "sendto", "connect",
    "connect_ex", "urlopen", "stream", "open", "storbinary", "storlines", "retrbinary", "sendmail", "send_message",
    "getresponse", "fetch", "ws_connect",
})
ENV_GETTERS = frozenset({"os.getenv", "os.environ.get", "os.environ.setdefault", "os.environ.pop", "os.getenvb"})
ENV_DUMPERS = frozenset({"os.environ.copy", "os.environ.items", "os.environ.keys", "os.environ.values"})
HOME_CALLS = frozenset({"pathlib.Path.home", "os.path.expanduser", "pathlib.Path.expanduser", "Path.home"})
SITE_CALLS = frozenset({"site.getsitepackages", "site.getusersitepackages", "sysconfig.get_paths",
                        "sysconfig.get_path", "distutils.sysconfig.get_python_lib"})
TEMP_CALLS = frozenset({"tempfile.mkdtemp", "tempfile.gettempdir", "tempfile.mkstemp", "tempfile.NamedTemporaryFile",
                        "tempfile.TemporaryDirectory"})
_INSTALL_SCRIPTS = frozenset({"install.py", "setup.py", "prestartup_script.py"})


def is_install_script(relpath: str) -> bool:
    """install.py (ComfyUI-Manager runs it), setup.py and prestartup_script.py run as scripts, not imports."""
    return relpath.replace("\\", "/").rsplit("/", 1)[-1].lower() in _INSTALL_SCRIPTS


@dataclass(frozen=True)
class ImportFact:
    """One `import` statement: `level` dots, the module named, and the names taken from it (`from m import a`)."""

    level: int
    module: str
    names: tuple[tuple[str, str], ...]   # (imported name, local name); empty for `import m`
    local: str                           # the local name `import a.b` / `import a.b as c` binds ("" for from)
    line: int


@dataclass(frozen=True)
class LoadFact:
    """Code loaded by name at run time: `importlib.import_module(x)` (kind "module"), a file loaded or executed
    (`spec_from_file_location`, `runpy.run_path`, `exec(open(...).read())`: kind "file") or a script started as a
    program, its `__main__` block included (`[sys.executable, "x.py"]`: kind "script"). `target` is None when the
    name is computed."""

    kind: str
    target: str | None
    line: int


@dataclass
class Scope:
    """A function body (or the module body) and what it does with secrets.

    `name` is the qualified name (`Class.method`, `outer.inner`; `<module>` for the module body and `<main>` for its
    `if __name__ == "__main__":` block). `import_time` is set by `reach`: true when the scope runs as the pack is
    imported (or, in an install script, when the script runs)."""

    name: str
    import_time: bool
    secret_env_keys: dict[str, int] = field(default_factory=dict)    # name -> first line
    cred_reads: list[tuple[int, str]] = field(default_factory=list)  # (line, literal) of credential paths
    env_dumps: list[int] = field(default_factory=list)
    calls: list[CallFact] = field(default_factory=list)
    refs: set[str] = field(default_factory=set)        # dotted names this scope calls ("@name": applies as decorator)
    imports: list[ImportFact] = field(default_factory=list)
    loads: list[LoadFact] = field(default_factory=list)
    literals: set[str] = field(default_factory=set)   # short one-word literals: folder names a loader may use


@dataclass(frozen=True)
class CallFact:
    node: ast.Call
    name: str                     # resolved dotted name; "?.method" when the receiver is unknown
    scope: Scope
    args: tuple[Labels, ...]      # labels per positional argument
    kwargs: dict[str, Labels]
    receiver: Labels              # labels of `x` in `x.method(...)`
    all_args: Labels              # every argument's labels together

    @property
    def import_time(self) -> bool:
        """Whether this call runs when the pack is imported (its scope was reached from the pack's import)."""
        return self.scope.import_time

    @property
    def line(self) -> int:
        return self.node.lineno

    @property
    def method(self) -> str:
        return self.name.rsplit(".", 1)[-1]

    def arg(self, index: int, keyword: str | None = None) -> ast.expr | None:
        if len(self.node.args) > index and not isinstance(self.node.args[index], ast.Starred):
            return self.node.args[index]
        for kw in self.node.keywords:
            if kw.arg == keyword and keyword is not None:
                return kw.value
        return None

    def arg_labels(self, index: int, keyword: str | None = None) -> Labels:
        if len(self.args) > index:
            return self.args[index]
        return self.kwargs.get(keyword or "", _EMPTY)

    def keyword(self, name: str) -> ast.expr | None:
        return next((kw.value for kw in self.node.keywords if kw.arg == name), None)


@dataclass
class ModuleFacts:
    relpath: str
    source: str
    tree: ast.Module
    install_script: bool             # runs as an install script (install.py, setup.py) and is not imported
    aliases: dict[str, str]
    scopes: list[Scope]
    calls: list[CallFact]
    strings: list[tuple[int, str]]   # every string literal with its line
    functions: dict[str, ast.FunctionDef | ast.AsyncFunctionDef] = field(default_factory=dict)  # qualname -> def
    classes: dict[str, ast.ClassDef] = field(default_factory=dict)                              # qualname -> class
    main_guard: bool = False         # has an `if __name__ == "__main__":` block (a script)
    reach: str = "import"            # how the pack runs this module (see `reach`); set by `reach`
    _by_name: dict[str, list[Scope]] = field(default_factory=dict, repr=False)
    _indexed: int = field(default=-1, repr=False)

    def scopes_named(self, name: str) -> list[Scope]:
        """Every scope with this qualified name (a def repeated in if/else branches gives several)."""
        if self._indexed != len(self.scopes):   # (re)built once the walk has made every scope
            self._by_name.clear()
            for scope in self.scopes:
                self._by_name.setdefault(scope.name, []).append(scope)
            self._indexed = len(self.scopes)
        return self._by_name.get(name, [])

    def line_text(self, line: int) -> str:
        lines = self.source.splitlines()
        return lines[line - 1].strip()[:160] if 0 < line <= len(lines) else ""

    def resolve(self, node: ast.expr) -> str:
        return _resolve(node, self.aliases)


def analyse(tree: ast.Module, source: str, relpath: str) -> ModuleFacts:
    """The facts of one module. Every scope starts as not running at import; `reach.single()` (one module on its
    own) or `reach.resolve()` (a whole pack) decides which do."""
    aliases = _aliases(tree)
    facts = ModuleFacts(relpath, source, tree, is_install_script(relpath), aliases, [], [], [])
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            facts.strings.append((getattr(node, "lineno", 0), node.value))
    _Walker(facts).run()
    return facts


def dotted(node: ast.expr) -> str:
    """`a.b.c` for a chain of attributes on a name, "" for anything else (calls, subscripts)."""
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return ""
    parts.append(node.id)
    return ".".join(reversed(parts))


def fold_string(node: ast.expr) -> str | None:
    """The value of an expression made only of string literals ('a' + 'b', f'{"x"}', ''.join([...]), s[::-1])."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str | bytes):
        value = node.value
        return value.decode("latin-1") if isinstance(value, bytes) else value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = fold_string(node.left), fold_string(node.right)
        return None if left is None or right is None else left + right
    if isinstance(node, ast.JoinedStr):
        parts = [fold_string(v.value if isinstance(v, ast.FormattedValue) else v) for v in node.values]
        return None if any(p is None for p in parts) else "".join(p or "" for p in parts)
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
        inner = fold_string(node.value)
        s = node.slice
        step = s.step.value if isinstance(s.step, ast.Constant) and isinstance(s.step.value, int) else None
        if inner is not None and s.lower is None and s.upper is None and step == -1:
            return inner[::-1]
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join" \
            and len(node.args) == 1 and isinstance(node.args[0], ast.List | ast.Tuple):
        sep = fold_string(node.func.value)
        parts = [fold_string(e) for e in node.args[0].elts]
        if sep is not None and all(p is not None for p in parts):
            return sep.join(p or "" for p in parts)
    return None


# --- name resolution ---------------------------------------------------------------------------------------------

def _aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> dotted origin, from every import in the module (`import subprocess as sp`, `from os import
    system`). Imports inside functions count too: an approximation that favours finding things."""
    names: dict[str, str] = {"Path": "pathlib.Path"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    names[alias.asname] = alias.name
                else:
                    names.setdefault(alias.name.split(".")[0], alias.name.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return names


def _resolve(node: ast.expr, aliases: dict[str, str]) -> str:
    if isinstance(node, ast.Name):
        name = aliases.get(node.id, node.id)
        return name.removeprefix("builtins.").removeprefix("__builtins__.")
    if isinstance(node, ast.Attribute):
        if isinstance(node.value, ast.Name) and node.value.id not in aliases:
            return f"?.{node.attr}"  # a local variable's method: the receiver's labels say what it is
        base = _resolve(node.value, aliases)
        name = f"{base}.{node.attr}" if base and not base.startswith("?") else f"?.{node.attr}"
        return name.removeprefix("builtins.").removeprefix("__builtins__.")
    if isinstance(node, ast.Call):
        func = _resolve(node.func, aliases)
        first = node.args[0] if node.args else None
        if func in ("__import__", "importlib.import_module") and isinstance(first, ast.Constant) \
                and isinstance(first.value, str):
            return first.value
        if func == "getattr" and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) \
                and isinstance(node.args[1].value, str):
            base = _resolve(node.args[0], aliases)
            name = f"{base}.{node.args[1].value}" if base and not base.startswith("?") else f"?.{node.args[1].value}"
            return name.removeprefix("builtins.").removeprefix("__builtins__.")
        if func in ("pathlib.Path", "pathlib.PurePath"):
            return "pathlib.Path()"
    return ""


# --- the walk ----------------------------------------------------------------------------------------------------

# Calls that run a function handed to them right away (or on a thread they start): handing a function to one of
# these at import time runs it at import time. Registrations (routes, callbacks, signal handlers) are not here: they
# run when something happens, not when the pack loads.
_INVOKERS = frozenset({
    "threading.Thread", "threading.Timer", "multiprocessing.Process", "_thread.start_new_thread",
    "thread.start_new_thread", "atexit.register", "map", "filter", "sorted", "min", "max", "functools.reduce",
    "asyncio.run", "asyncio.to_thread", "asyncio.create_task", "asyncio.ensure_future",
})
_INVOKER_METHODS = frozenset({"submit", "run_in_executor", "run_until_complete", "call_soon", "call_later",
                              "call_soon_threadsafe", "start_new_thread", "apply_async", "create_task"})
_MODULE_LOADERS = frozenset({"importlib.import_module", "__import__", "importlib.__import__", "runpy.run_module",
                             "imp.load_module", "importlib.reload"})
_FILE_LOADERS = frozenset({"runpy.run_path", "importlib.util.spec_from_file_location", "imp.load_source",
                           "importlib.machinery.SourceFileLoader", "imp.load_compiled", "execfile",
                           "importlib.util.spec_from_loader"})
_EXECUTORS = frozenset({"exec", "eval", "compile"})
_SPAWN_MODULES = frozenset({"subprocess", "os", "asyncio", "pty", "multiprocessing"})


class _Walker:
    def __init__(self, facts: ModuleFacts) -> None:
        self.facts = facts
        self.instances: dict[str, dict[str, str]] = {}   # scope -> variable -> the dotted name it was made by
        self.aliases: dict[str, dict[str, list[str]]] = {}  # scope -> variable -> the functions it stands for
        self.lambdas: set[str] = set()
        self.defs: list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]] = []
        self._qualify(facts.tree.body, "", False)

    def _qualify(self, body: Iterable[ast.stmt], prefix: str, in_function: bool) -> None:
        """Qualified names for every def and class (`Class.method`, `outer.inner`), in any nesting."""
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                name = prefix + node.name
                self.facts.functions.setdefault(name, node)
                self.defs.append((name, node))
                self._qualify(node.body, name + ".", True)
            elif isinstance(node, ast.ClassDef):
                name = prefix + node.name
                self.facts.classes.setdefault(name, node)
                self._qualify(node.body, name + ".", in_function)
            else:
                for field_name in ("body", "orelse", "finalbody", "handlers", "cases"):
                    inner = getattr(node, field_name, None)
                    if isinstance(inner, list):
                        for child in inner:
                            if isinstance(child, ast.ExceptHandler | ast.match_case):
                                self._qualify(child.body, prefix, in_function)
                        self._qualify([c for c in inner if isinstance(c, ast.stmt)], prefix, in_function)

    def run(self) -> None:
        module = Scope("<module>", import_time=False)
        main = Scope("<main>", import_time=False)
        self.facts.scopes += [module, main]
        env: dict[str, Labels] = {}
        self._block(self.facts.tree.body, module, env, main)
        for name, fn in self.defs:  # every def, also a second one under the same name (if/else variants)
            scope = Scope(name, import_time=False)
            self.facts.scopes.append(scope)
            local = dict(env)
            for arg in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs, fn.args.vararg,
                        fn.args.kwarg]:
                if arg is not None and arg.arg not in ("self", "cls"):
                    local[arg.arg] = frozenset({ind.PARAM})
            self._block(fn.body, scope, local, None)

    def _lambda(self, node: ast.Lambda, env: dict[str, Labels]) -> None:
        """A lambda's body is a scope of its own: it runs when something calls the lambda."""
        name = _lambda_name(node)
        if name in self.lambdas:
            return
        self.lambdas.add(name)
        scope = Scope(name, import_time=False)
        self.facts.scopes.append(scope)
        local = dict(env)
        for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs, node.args.vararg,
                    node.args.kwarg]:
            if arg is not None:
                local[arg.arg] = frozenset({ind.PARAM})
        self._expr(node.body, scope, local)

    def _functions_of(self, node: ast.expr, scope: Scope) -> list[str]:
        """The functions an expression stands for: a name (through `x = f` aliases), a lambda, `getattr(m, "f")`."""
        if isinstance(node, ast.Lambda):
            return [_lambda_name(node)]
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr" \
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) \
                and isinstance(node.args[1].value, str) and dotted(node.args[0]):
            return [f"{dotted(node.args[0])}.{node.args[1].value}"]
        name = dotted(node)
        if not name:
            return []
        if "." not in name:
            aliased = self.aliases.get(scope.name, {}).get(name) or self.aliases.get("<module>", {}).get(name)
            if aliased:
                return list(aliased)
        return [name]

    def _import(self, stmt: ast.Import | ast.ImportFrom, scope: Scope) -> None:
        if isinstance(stmt, ast.Import):
            for alias in stmt.names:
                local = alias.asname or alias.name.split(".")[0]
                scope.imports.append(ImportFact(0, alias.name, (), local if alias.asname else alias.name,
                                                stmt.lineno))
        else:
            names = tuple((alias.name, alias.asname or alias.name) for alias in stmt.names)
            scope.imports.append(ImportFact(stmt.level, stmt.module or "", names, "", stmt.lineno))

    # statements, in order, so labels flow forward
    def _block(self, body: Iterable[ast.stmt], scope: Scope, env: dict[str, Labels], main: Scope | None) -> None:
        for stmt in body:
            if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                for deco in stmt.decorator_list:  # decorators run where the def is
                    self._expr(deco, scope, env)
                    target = dotted(deco.func if isinstance(deco, ast.Call) else deco)
                    if target:
                        scope.refs.add("@" + target)
                if isinstance(stmt, ast.ClassDef):
                    for base in [*stmt.bases, *(k.value for k in stmt.keywords)]:
                        self._expr(base, scope, env)
                    self._block(stmt.body, scope, env, main)
                continue
            if isinstance(stmt, ast.Import | ast.ImportFrom):
                self._import(stmt, scope)
                continue
            if main is not None and isinstance(stmt, ast.If) and _is_main_guard(stmt.test):
                self.facts.main_guard = True
                self._block(stmt.body, main, env, None)
                self._block(stmt.orelse, scope, env, main)
                continue
            if isinstance(stmt, ast.Assign):
                if isinstance(stmt.value, ast.Call) and dotted(stmt.value.func):
                    for target in stmt.targets:   # `x = Updater()`: `x.check()` calls Updater.check
                        if isinstance(target, ast.Name):
                            self.instances.setdefault(scope.name, {})[target.id] = dotted(stmt.value.func)
                labels = self._expr(stmt.value, scope, env)
                functions = self._functions_of(stmt.value, scope)
                for target in stmt.targets:      # `run = beacon` / `run = lambda: ...`: `run()` calls it
                    if isinstance(target, ast.Name) and functions:
                        self.aliases.setdefault(scope.name, {})[target.id] = functions
                for target in stmt.targets:
                    self._bind(target, labels, env)
            elif isinstance(stmt, ast.AnnAssign | ast.AugAssign):
                labels = self._expr(stmt.value, scope, env) if stmt.value is not None else _EMPTY
                if isinstance(stmt, ast.AugAssign):
                    labels |= self._expr(stmt.target, scope, env)
                self._bind(stmt.target, labels, env)
            elif isinstance(stmt, ast.For | ast.AsyncFor):
                self._bind(stmt.target, self._expr(stmt.iter, scope, env), env)
                if isinstance(stmt.target, ast.Name) and isinstance(stmt.iter, ast.List | ast.Tuple | ast.Set):
                    functions = [f for element in stmt.iter.elts for f in self._functions_of(element, scope)]
                    if functions:                # `for step in (a, b): step()`
                        self.aliases.setdefault(scope.name, {})[stmt.target.id] = functions
                self._block(stmt.body, scope, env, main)
                self._block(stmt.orelse, scope, env, main)
            elif isinstance(stmt, ast.With | ast.AsyncWith):
                for item in stmt.items:
                    labels = self._expr(item.context_expr, scope, env)
                    if item.optional_vars is not None:
                        self._bind(item.optional_vars, labels, env)
                self._block(stmt.body, scope, env, main)
            elif isinstance(stmt, ast.If | ast.While):
                self._expr(stmt.test, scope, env)
                self._block(stmt.body, scope, env, main)
                self._block(stmt.orelse, scope, env, main)
            elif isinstance(stmt, ast.Try | ast.TryStar):
                self._block(stmt.body, scope, env, main)
                for handler in stmt.handlers:
                    self._block(handler.body, scope, env, main)
                self._block(stmt.orelse, scope, env, main)
                self._block(stmt.finalbody, scope, env, main)
            elif isinstance(stmt, ast.Match):
                self._expr(stmt.subject, scope, env)
                for case in stmt.cases:
                    self._block(case.body, scope, env, main)
            else:
                for child in ast.iter_child_nodes(stmt):
                    if isinstance(child, ast.expr):
                        self._expr(child, scope, env)

    def _bind(self, target: ast.expr, labels: Labels, env: dict[str, Labels]) -> None:
        if isinstance(target, ast.Name):
            env[target.id] = labels
        elif isinstance(target, ast.Attribute):
            key = ast.unparse(target)
            env[key] = env.get(key, _EMPTY) | labels
        elif isinstance(target, ast.Tuple | ast.List):
            for element in target.elts:
                self._bind(element, labels, env)
        elif isinstance(target, ast.Starred):
            self._bind(target.value, labels, env)
        elif isinstance(target, ast.Subscript):
            self._bind(target.value, labels | self._labels_only(target.value, env), env)

    def _labels_only(self, node: ast.expr, env: dict[str, Labels]) -> Labels:
        if isinstance(node, ast.Name):
            return env.get(node.id, _EMPTY)
        return _EMPTY

    # expressions: labels of the value, recording every call on the way
    def _expr(self, node: ast.expr | None, scope: Scope, env: dict[str, Labels]) -> Labels:
        if node is None:
            return _EMPTY
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str) and len(node.value) <= 120 and " " not in node.value:
                scope.literals.add(node.value)
            return ind.string_labels(node.value) if isinstance(node.value, str) else _EMPTY
        if isinstance(node, ast.Name):
            resolved = self.facts.aliases.get(node.id, "")
            if resolved == "os.environ":
                scope.env_dumps.append(node.lineno)
                return frozenset({ind.ENV_DUMP})
            return env.get(node.id, _EMPTY)
        if isinstance(node, ast.Attribute):
            name = _resolve(node, self.facts.aliases)
            if name == "os.environ":
                scope.env_dumps.append(node.lineno)
                return frozenset({ind.ENV_DUMP})
            key = ast.unparse(node) if isinstance(node.value, ast.Name) else None
            own = env.get(key, _EMPTY) if key else _EMPTY
            return own | self._expr(node.value, scope, env)
        if isinstance(node, ast.Subscript):
            if _resolve(node.value, self.facts.aliases) == "os.environ":
                return self._env_read(node.slice, scope, env, node.lineno)
            return self._expr(node.value, scope, env) | self._expr(node.slice, scope, env)
        if isinstance(node, ast.Call):
            return self._call(node, scope, env)
        if isinstance(node, ast.Lambda):
            self._lambda(node, env)
            return _EMPTY
        if isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            inner = dict(env)
            for gen in node.generators:
                self._bind(gen.target, self._expr(gen.iter, scope, inner), inner)
                for cond in gen.ifs:
                    self._expr(cond, scope, inner)
            if isinstance(node, ast.DictComp):
                return self._expr(node.key, scope, inner) | self._expr(node.value, scope, inner)
            return self._expr(node.elt, scope, inner)
        if isinstance(node, ast.NamedExpr):
            labels = self._expr(node.value, scope, env)
            self._bind(node.target, labels, env)
            return labels
        labels: set[str] = set()
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                labels |= self._expr(child, scope, env)
            elif isinstance(child, ast.keyword):
                labels |= self._expr(child.value, scope, env)
        return frozenset(labels)

    def _env_read(self, key: ast.expr | None, scope: Scope, env: dict[str, Labels], line: int) -> Labels:
        if isinstance(key, ast.Constant) and isinstance(key.value, str):
            if ind.home_env_name(key.value):
                return frozenset({ind.USER_HOME})
            if ind.is_secret_env_name(key.value):
                scope.secret_env_keys.setdefault(key.value, line)
                return frozenset({ind.SECRET_ENV})
            return _EMPTY
        if key is not None:
            self._expr(key, scope, env)
        return _EMPTY  # a computed name: configuration indirection, one key at a time

    def _call(self, node: ast.Call, scope: Scope, env: dict[str, Labels]) -> Labels:
        name = _resolve(node.func, self.facts.aliases)
        receiver = _EMPTY
        if isinstance(node.func, ast.Attribute) and not name.startswith("os.environ."):
            receiver = self._expr(node.func.value, scope, env)
        elif not isinstance(node.func, ast.Name | ast.Attribute):
            receiver = self._expr(node.func, scope, env)
        if name in ENV_GETTERS:
            labels = self._env_read(node.args[0] if node.args else None, scope, env, node.lineno)
            for extra in node.args[1:]:
                labels |= self._expr(extra, scope, env)
            self._record(node, name, scope, (labels,), {}, receiver, labels)
            return labels
        args = tuple(self._expr(a, scope, env) for a in node.args)
        kwargs = {kw.arg or "**": self._expr(kw.value, scope, env) for kw in node.keywords}
        everything = frozenset().union(*args, *kwargs.values())
        self._record(node, name, scope, args, kwargs, receiver, everything)
        self._edges(node, name, scope)
        result = set(everything | receiver)
        method = name.rsplit(".", 1)[-1]
        if ind.HTTP_CLIENT in result and ind.HTTP_CLIENT not in everything and method not in _CLIENT_PRESERVING:
            # what a client's method returns is a response or data, not another client: `r.json().get(...)` and
            # `data.get(...)` are dictionary look-ups, not network use
            result.discard(ind.HTTP_CLIENT)
        if name in DECODERS or (method == "decode" and _rot_or_b64(node)):
            result.add(ind.DECODED)
        if name in NETWORK_FETCH or (ind.HTTP_CLIENT in receiver and method in CLIENT_METHODS):
            result.add(ind.NETWORK)
        if name in HTTP_CLIENTS:
            result.add(ind.HTTP_CLIENT)
        if name in ENV_DUMPERS:
            scope.env_dumps.append(node.lineno)
            result.add(ind.ENV_DUMP)
        if name in HOME_CALLS or name.endswith("Path.home") or name == "pathlib.Path().home":
            result.add(ind.USER_HOME)
        if name in SITE_CALLS:
            result.add(ind.SITE_PACKAGES)
        if name in TEMP_CALLS:
            result.add(ind.TEMP)
        if ind.CRED_PATH in everything | receiver and _reads_files(name):
            text = next((s for a in node.args for s in _literals(a) if ind.CRED_PATH in ind.string_labels(s)), "")
            scope.cred_reads.append((node.lineno, text or ast.unparse(node)[:80]))
        return frozenset(result)

    def _edges(self, node: ast.Call, name: str, scope: Scope) -> None:
        """What this call makes run: the function it calls, functions handed to an invoker, code loaded by name."""
        target = dotted(node.func)
        if not target or "." not in target:   # `f()` through an alias, `(lambda: ...)()`, `getattr(m, "f")()`
            for function in self._functions_of(node.func, scope):
                scope.refs.add(function)
        if isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Call) \
                and dotted(node.func.value.func):
            target = f"{dotted(node.func.value.func)}().{node.func.attr}"   # `Updater().check()`
        elif target and "." in target:
            head, rest = target.split(".", 1)
            made_by = self.instances.get(scope.name, {}).get(head) or self.instances.get("<module>", {}).get(head)
            if made_by:
                target = f"{made_by}().{rest}"
        if target:
            scope.refs.add(target)
        method = name.rsplit(".", 1)[-1]
        if name in _INVOKERS or (name.startswith("?.") and method in _INVOKER_METHODS) \
                or method in ("Thread", "Timer", "Process"):
            for value in [*node.args, *(k.value for k in node.keywords if k.arg in (None, "target", "function"))]:
                scope.refs.update(self._functions_of(value, scope))
        first = node.args[0] if node.args else None
        if name in _MODULE_LOADERS:
            literal = fold_string(first) if first is not None else None
            package = node.args[1] if len(node.args) > 1 else None
            if literal is not None and literal.startswith(".") and package is not None:
                literal = "\x00" + literal  # relative to the calling package
            scope.loads.append(LoadFact("module", literal, node.lineno))
        elif name in _FILE_LOADERS or name.endswith("SourceFileLoader"):
            scope.loads.append(LoadFact("file", _py_literal(node), node.lineno))
        elif name in _EXECUTORS and first is not None and not isinstance(first, ast.Constant) \
                and any(isinstance(n, ast.Call) and dotted(n.func).rsplit(".", 1)[-1] in ("open", "read",
                                                                                          "read_text")
                        for n in ast.walk(first)):
            scope.loads.append(LoadFact("file", _py_literal(node), node.lineno))
        elif name.split(".", 1)[0] in _SPAWN_MODULES and any(
                self.facts.resolve(n) == "sys.executable" for n in ast.walk(node) if isinstance(n, ast.Attribute)):
            script = _py_literal(node)
            if script is not None:
                scope.loads.append(LoadFact("script", script, node.lineno))

    def _record(self, node: ast.Call, name: str, scope: Scope, args: tuple[Labels, ...], kwargs: dict[str, Labels],
                receiver: Labels, everything: Labels) -> None:
        fact = CallFact(node, name, scope, args, kwargs, receiver, everything)
        scope.calls.append(fact)
        self.facts.calls.append(fact)


_FILE_READERS = frozenset({
    "open", "io.open", "codecs.open", "shutil.copy", "shutil.copy2", "shutil.copyfile", "shutil.copytree",
    "shutil.make_archive", "sqlite3.connect", "os.listdir", "os.walk", "os.scandir", "glob.glob", "glob.iglob",
    "os.path.exists", "os.path.isfile", "os.path.isdir", "pathlib.Path().read_text", "pathlib.Path().read_bytes",
    "pathlib.Path().open", "pathlib.Path().exists", "pathlib.Path().iterdir", "pathlib.Path().glob",
    "pathlib.Path().rglob", "zipfile.ZipFile.write", "tarfile.open", "plyvel.DB", "json.load",
})
_READ_METHODS = frozenset({"read_text", "read_bytes", "open", "exists", "is_file", "iterdir", "glob", "rglob",
                           "write", "add", "read"})


def _reads_files(name: str) -> bool:
    """Calls that read (or list, copy, archive) a path: a credential path reaching one of them is a credential
    read; the same string in a lookup table is not."""
    return name in _FILE_READERS or (name.startswith("?.") and name[2:] in _READ_METHODS)


_CLIENT_PRESERVING = frozenset({"accept", "dup", "makefile", "__enter__", "__aenter__", "session", "Session",
                                "cursor", "channel", "open_session", "get_transport", "invoke_shell"})


def _lambda_name(node: ast.Lambda) -> str:
    return f"<lambda:{node.lineno}:{node.col_offset}>"


def _py_literal(node: ast.AST) -> str | None:
    """The first `something.py` literal inside a call (the script it runs or loads), None when there is none."""
    for child in ast.walk(node):
        if isinstance(child, ast.Constant) and isinstance(child.value, str) \
                and child.value.strip().lower().endswith((".py", ".pyw")):
            return child.value.strip()
    return None


def _is_main_guard(test: ast.expr) -> bool:
    """`__name__ == "__main__"`, also as one part of an `and` (`sys.platform != "win32" and __name__ == ...`)."""
    if isinstance(test, ast.BoolOp) and isinstance(test.op, ast.And):
        return any(_is_main_guard(value) for value in test.values)
    return isinstance(test, ast.Compare) and isinstance(test.left, ast.Name) and test.left.id == "__name__" \
        and any(isinstance(c, ast.Constant) and c.value == "__main__" for c in test.comparators)


def _rot_or_b64(node: ast.Call) -> bool:
    """`x.decode("rot13")`/`"base64"`/`"hex"`-style codec decodes (plain utf-8 decoding is not obfuscation)."""
    codec = node.args[1] if len(node.args) > 1 else node.args[0] if node.args else None
    return isinstance(codec, ast.Constant) and isinstance(codec.value, str) \
        and codec.value.lower().replace("_", "").replace("-", "") in ("rot13", "base64", "hex", "zlib", "bz2")


def _literals(node: ast.AST) -> Iterator[str]:
    for child in ast.walk(node):
        if isinstance(child, ast.Constant) and isinstance(child.value, str):
            yield child.value


_CONNECTING_CONSTRUCTORS = frozenset({"smtplib.SMTP", "smtplib.SMTP_SSL", "ftplib.FTP", "ftplib.FTP_TLS",
                                      "telnetlib.Telnet", "socket.create_connection"})


def is_network_call(call: CallFact) -> bool:
    """A call that talks to the network: a fetch function, a method of a client object, or a connecting
    constructor. Creating a Session or a socket object alone is not network use."""
    if call.name in NETWORK_FETCH:
        return True
    if ind.HTTP_CLIENT in call.receiver and call.method in CLIENT_METHODS:
        return True
    return call.name in _CONNECTING_CONSTRUCTORS and bool(call.node.args)
