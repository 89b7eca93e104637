"""Load the config files and validate them into typed agent profiles, routing rules and prices.

The shipped config.yaml is the base; the user's config, then the project's ./orchestra.yaml (or --config FILE)
add to it and override it, profile by profile. A project's file is used only once the user trusts it (trust.py):
its profiles name commands orchestra runs."""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from . import trust
from .budget import Budget, from_mapping as budget_from
from .errors import ConfigError, OrchestraError

try:
    from re import _parser as sre_parse  # Python 3.11+
except ImportError:  # pragma: no cover
    import sre_parse  # type: ignore

DATA_DIR = Path(__file__).resolve().parent / "data"
SHIPPED_CONFIG = DATA_DIR / "config.yaml"

VIEWS = ("raw", "rendered")
# what orchestra puts in a profile's argv (session.argv); resume: also the session to go on with
PLACEHOLDERS = ("task", "task_file", "workdir", "python", "wrappers", "fixtures")
RESUME_PLACEHOLDERS = PLACEHOLDERS + ("session_id",)
_PLACEHOLDER = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)\}")  # ${HOME} in a `sh -c` script is the shell's

# where each layer of the config comes from, in the order they apply
SHIPPED, USER, PROJECT, EXPLICIT = "shipped", "user", "project", "--config"
DEFAULT_DELEGATE_START = r"^\s*DELEGATE:[ \t]*"
DEFAULT_DELEGATE_END = r"^\s*END(?: DELEGATE)?\s*$"


@dataclass
class AutoAnswer:
    pattern: re.Pattern
    send: str


@dataclass
class Login:
    """One way an agent can be logged in: all its conditions hold (env set, file there, its text matching)."""

    env: Optional[str] = None  # this variable is set
    file: Optional[str] = None  # this file exists (~ is the agent's HOME)
    contains: Optional[re.Pattern] = None  # ...and its text matches; a group names a variable that must be set
    about: str = ""  # how doctor names it


@dataclass
class Profile:
    """How to run one agent and how to read what it writes."""

    name: str
    command: list[str]
    parser: str = "generic"
    binary: Optional[str] = None
    install: str = ""
    version: Optional[str] = None  # the CLI's version its parser and patterns were tested with
    version_command: Optional[list[str]] = None  # how to ask the installed CLI its version (else BINARY --version)
    login: list[Login] = field(default_factory=list)  # ways it can be logged in; doctor checks one holds
    workdir: Optional[str] = None
    env: dict[str, str] = field(default_factory=dict)
    api_key_env: Optional[str] = None
    base_url_env: Optional[str] = None  # the variable holding its API's address: named when it cannot be reached
    prompt: Optional[re.Pattern] = None
    completion: Optional[re.Pattern] = None
    errors: list[re.Pattern] = field(default_factory=list)
    auto_answers: list[AutoAnswer] = field(default_factory=list)
    timeout: float = 1800.0
    submit: str = "\r"
    submit_on_echo: bool = False  # a TUI: send `submit` only once it has drawn the typed text
    paste_marker: Optional[re.Pattern] = None  # ...or what it draws instead of a long text
    exit: Optional[str] = None
    resume: Optional[list[str]] = None
    delegate_start: re.Pattern = field(default_factory=lambda: re.compile(DEFAULT_DELEGATE_START, re.M))
    delegate_end: re.Pattern = field(default_factory=lambda: re.compile(DEFAULT_DELEGATE_END, re.M))
    parse: dict[str, re.Pattern] = field(default_factory=dict)
    ignore_files: list[str] = field(default_factory=list)  # globs: the agent's own housekeeping files
    cols: int = 120
    rows: int = 40
    kill_grace: float = 2.0  # after SIGTERM, before SIGKILL
    linger: float = 1.0  # after its turn, how long it may take to exit by itself
    input_wait: float = 15.0  # quiet this long after what looks like a question: waiting_for_input
    retry: Optional[re.Pattern] = None  # a line that means the agent retries a failed request
    max_retries: Optional[int] = None  # retries in a row tolerated before `failed` (None: no limit)
    view: str = "raw"  # what its tmux window (and the web view) shows: raw bytes, or its parser's rendering
    checks: list[str] = field(default_factory=list)  # acceptance checks, command lines (checks.py)
    budget: Budget = field(default_factory=Budget)  # its own limits, over the config's `budget:` (budget.py)

    @property
    def takes_task_in_argv(self) -> bool:
        return any("{task}" in part or "{task_file}" in part for part in self.command)


@dataclass
class RouteRule:
    name: str
    agent: str
    words: list[str]
    checks: list[str] = field(default_factory=list)  # win over its agent's profile's


@dataclass
class Price:
    input_per_mtok: float
    output_per_mtok: float


@dataclass(frozen=True)
class Layer:
    """One config file and what it is to the user."""

    kind: str  # SHIPPED, USER, PROJECT or EXPLICIT
    path: Path


@dataclass
class Config:
    path: Path  # the last file read (the one that overrides the others)
    agents: dict[str, Profile]
    rules: list[RouteRule]
    default_agent: str
    prices: dict[str, Price]
    primary: str = "claude"
    demo_primary: str = "demo-claude"
    demo_secondary: str = "demo-droid"
    layers: list[Layer] = field(default_factory=list)
    sources: dict[str, Layer] = field(default_factory=dict)  # profile name -> the file that defined it
    budget: Budget = field(default_factory=Budget)  # every delegated agent's limits, unless its profile says
    cluster: Optional[str] = None  # `cluster: ADDRESS` (or address:, resources:): delegate's --cluster default
    cluster_resources: Optional[str] = None  # and its --cluster-resources

    def budget_of(self, name: str, given: Optional[Budget] = None) -> Budget:
        """An agent's limits: the config's, its profile's over them, `given` (options, an MCP call) over both."""
        profile = self.agents.get(name)
        return self.budget.over(profile.budget if profile else None).over(given)

    def profile(self, name: str) -> Profile:
        try:
            return self.agents[name]
        except KeyError:
            import difflib

            known = ", ".join(sorted(self.agents))
            files = ", ".join(str(layer.path) for layer in self.layers) or str(self.path)
            close = difflib.get_close_matches(name, list(self.agents), n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise ConfigError(f"no agent profile named '{name}' ({hint}known: {known}; read from {files})") from None

    def change_hint(self, name: str, field_name: str) -> str:
        """How a user changes a field of a profile: in the file that defined it, or, for a shipped profile (in
        the installed package, which an upgrade overwrites), in a copy of it in their own config."""
        layer = self.sources.get(name)
        if layer is not None and layer.kind != SHIPPED:
            return f"change {field_name} in {layer.path}"
        return (f"copy agent '{name}' from {SHIPPED_CONFIG} into {user_config_path()} under `agents:` and change "
                f"{field_name} there (a profile there replaces the shipped one whole)")


def compile_pattern(text: str, may_match_empty: bool = False) -> re.Pattern:
    """A pattern from the config or the command line, refused (ValueError, saying why) when it
    could hang orchestra: one that matches the empty string matches at every offset, so an
    auto-answer would answer forever; a nested repeat such as (a+)+ takes time exponential in
    the length of a line that almost matches, and Python's re cannot be interrupted."""
    try:
        pattern = re.compile(text, re.M)
    except re.error as exc:
        raise ValueError(f"bad regular expression {text!r}: {exc}") from None
    try:
        parsed = sre_parse.parse(text, re.M)
    except Exception:  # compiled above, so this does not happen; no check rather than a crash
        return pattern
    if _nested_repeat(parsed, False):
        part = _nested_part(text)
        atomic = ", or make the inner part atomic: (?>a+)+" if ATOMIC_GROUPS else ""
        raise ValueError(f"{text!r}: the nested repeat {part!r} can take time exponential in a line's length "
                         "when the line almost matches, and a regular expression cannot be interrupted: "
                         f"repeat once (e.g. (a+)+ as a+, (\\w+\\s?)* as [\\w\\s]*){atomic}")
    if not may_match_empty and parsed.getwidth()[0] == 0:
        raise ValueError(f"{text!r} can match the empty string, so it would match anywhere, at once and "
                         "again and again: make it need at least one character")
    return pattern


def _has_atomic_groups() -> bool:
    try:
        re.compile("(?>a)")
    except re.error:  # Python 3.10
        return False
    return True


ATOMIC_GROUPS = _has_atomic_groups()
_REPEATS = ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT")


def _nested_repeat(items, inside: bool) -> bool:
    """Whether a repeat that may match more than once holds another such repeat (outside an atomic group)."""
    for op, arg in items:
        name = str(op)
        if name in _REPEATS:
            lo, hi, body = arg
            if hi > 1 and inside:
                return True
            if _nested_repeat(body, inside or hi > 1):
                return True
        elif name == "ATOMIC_GROUP":  # no backtracking into it: what it holds is judged on its own
            if _nested_repeat(arg, False):
                return True
        else:
            for sub in _subpatterns(name, arg):
                if _nested_repeat(sub, inside):
                    return True
    return False


def _subpatterns(name: str, arg) -> list:
    if name == "SUBPATTERN":
        return [arg[-1]]
    if name == "BRANCH":
        return list(arg[1])
    if name in ("ASSERT", "ASSERT_NOT"):
        return [arg[1]]
    if name == "GROUPREF_EXISTS":
        return [p for p in arg[1:] if p is not None]
    return []


_QUANTIFIER = re.compile(r"[*+]|\{(\d*),(\d*)\}|\{(\d+)\}")


def _nested_part(text: str) -> str:
    """The first group in the pattern's text that, with its quantifier, is a nested repeat (for the message)."""
    opened, i, in_class = [], 0, False
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
            if text[i + 1:i + 2] == "]":
                i += 1
        elif c == "(":
            opened.append(i)
        elif c == ")" and opened:
            start = opened.pop()
            q = _QUANTIFIER.match(text, i + 1)
            if q:
                part = text[start:q.end()]
                try:
                    if _nested_repeat(sre_parse.parse(part), False):
                        return part
                except Exception:  # a back reference to a group outside it: look further
                    pass
        i += 1
    return text


def user_config_dir() -> Path:
    """Where the user's own config and the record of trusted project configs live."""
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "orchestra"


def user_config_path() -> Path:
    return user_config_dir() / "config.yaml"


def base_layers() -> list[Layer]:
    """The files that apply everywhere: the shipped config.yaml, then the user's own if there is one."""
    user = user_config_path()
    return [Layer(SHIPPED, SHIPPED_CONFIG)] + ([Layer(USER, user)] if user.is_file() else [])


def find_layers(explicit: Optional[str] = None, cwd: Optional[Path] = None) -> list[Layer]:
    """The config files that apply, base first: the shipped one, the user's, then --config FILE, or else
    ./orchestra.yaml of the working directory (--config stands in for it)."""
    layers = base_layers()
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found (given with --config)")
        layers.append(Layer(EXPLICIT, path))
    else:
        project = (cwd or Path.cwd()) / "orchestra.yaml"
        if project.is_file():
            layers.append(Layer(PROJECT, project))
    seen: set = set()
    out = []
    for layer in layers:  # a file named twice (--config naming the user's) counts once, as what it is first
        if layer.path.resolve() not in seen:
            seen.add(layer.path.resolve())
            out.append(layer)
    return out


def load_config(explicit: Optional[str] = None, cwd: Optional[Path] = None) -> Config:
    """The config that applies in cwd (default: the current directory). Refused while its ./orchestra.yaml is
    not trusted, or has changed since it was."""
    return merge([read_layer(layer) for layer in find_layers(explicit, cwd)])


def vet(path: Path) -> tuple[Config, str]:
    """For `orchestra trust`: the config that `path` as a project's config makes (over the shipped and user
    files), so its mistakes are said before it is trusted, and the sha256 of the very bytes read."""
    path = Path(path).absolute()
    reads = [read_layer(layer) for layer in base_layers() if layer.path.resolve() != path.resolve()]
    project = read_layer(Layer(PROJECT, path), check_trust=False)
    return merge(reads + [project]), project[2]


def read_layer(layer: Layer, check_trust: bool = True) -> tuple[Layer, Any, str]:
    """A config file's parsed YAML and the sha256 of its bytes; a project's file only when trusted (the same
    bytes are hashed and parsed: a file changed in between cannot slip through)."""
    try:
        raw = layer.path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{layer.path}: cannot read config: {exc.strerror or exc}") from None
    digest = hashlib.sha256(raw).hexdigest()
    if layer.kind == PROJECT and check_trust:
        trust.check(layer.path, digest, user_config_dir())
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{layer.path}: cannot read config: {exc}") from None
    return layer, _parse_yaml(text, layer.path), digest


def parse_config(text: str, path: Path) -> Config:
    """One file on its own, nothing under it."""
    return merge([(Layer(EXPLICIT, path), _parse_yaml(text, path), "")])


def _parse_yaml(text: str, path: Path) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: invalid YAML: {problem}") from None


def merge(reads: list[tuple[Layer, Any, str]]) -> Config:
    """Each file adds to and overrides the ones before it: a profile replaces the profile of its name whole;
    routing's `rules` (an ordered list: the first match wins) replace the rules before them whole, and its
    `default` the default; prices, defaults and budget count key by key. Each part is checked by the file it is in."""
    agents: dict[str, Profile] = {}
    sources: dict[str, Layer] = {}
    checked = []
    for layer, data, _ in reads:
        validator = _Validator(layer.path)
        data = validator.sections(data)
        checked.append((validator, data))
        for name, body in (data.get("agents") or {}).items():
            agents[str(name)] = validator.profile(str(name), body)
            sources[str(name)] = layer
    if not agents:
        raise checked[-1][0].fail("agents", "expected a mapping of agent name -> profile")
    rules: list[RouteRule] = []
    default: Optional[str] = None
    prices: dict[str, Price] = {}
    defaults: dict[str, str] = {}
    budget = Budget()
    cluster: dict = {}
    for validator, data in checked:
        if data.get("cluster") is not None:
            cluster.update(validator.cluster(data["cluster"]))
        if data.get("routing") is not None:
            layer_rules, layer_default = validator.routing(data["routing"], agents)
            rules = rules if layer_rules is None else layer_rules
            default = default if layer_default is None else layer_default
        prices.update(validator.prices(data.get("prices") or {}))
        budget = budget.over(budget_from(data.get("budget"), validator.fail, "budget{}"))  # limit by limit
        defaults.update(validator.defaults(data.get("defaults") or {}, agents))
    if default is None:
        default = "droid" if "droid" in agents else next(iter(agents))
    cfg = Config(reads[-1][0].path, agents, rules, default, prices, layers=[r[0] for r in reads], sources=sources,
                 budget=budget, cluster=cluster.get("address"), cluster_resources=cluster.get("resources"))
    for key, value in defaults.items():
        setattr(cfg, key, value)
    return cfg


def unknown_placeholders(argv: list[str], known: tuple) -> list[str]:
    """The {name}s in argv that orchestra does not fill in (a typo such as {tsk} would reach the agent as is)."""
    return sorted({m.group(1) for part in argv for m in _PLACEHOLDER.finditer(part)} - set(known))


def placeholder_problem(argv: list[str], known: tuple) -> str:
    unknown = unknown_placeholders(argv, known)
    if not unknown:
        return ""
    names = ", ".join("{" + u + "}" for u in unknown)
    return (f"unknown placeholder{'s' if len(unknown) > 1 else ''} {names} "
            f"(known: {', '.join('{' + k + '}' for k in known) or 'none here'})")


class _Validator:
    """Turns the parsed YAML into typed objects; every error names file, profile and field."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, message: str) -> ConfigError:
        return ConfigError(f"{self.path}: {where}: {message}")

    def sections(self, data: Any) -> dict:
        """A file's top level: any of agents, routing, prices, defaults, budget (an empty file adds nothing)."""
        if data is None:
            return {}
        if not isinstance(data, dict):
            raise self.fail("top level", "expected a mapping with an 'agents:' section")
        self.known(data, ("agents", "routing", "prices", "defaults", "budget", "cluster"), "top level")
        if "agents" in data and (not isinstance(data["agents"], dict) or not data["agents"]):
            raise self.fail("agents", "expected a mapping of agent name -> profile")
        return data

    def cluster(self, data: Any) -> dict:
        """`cluster: ADDRESS`, or `cluster: {address: ADDRESS, resources: 'cpu=1,memory=2G'}` (README: Ray)."""
        if isinstance(data, str) and data.strip():
            return {"address": data.strip()}
        if not isinstance(data, dict):
            raise self.fail("cluster", "expected a Ray address (HOST:PORT, ray://HOST:10001 or auto), or a mapping "
                            "with address: and resources:")
        self.known(data, ("address", "resources"), "cluster")
        for key, value in data.items():
            if not isinstance(value, str) or not value.strip():
                raise self.fail(f"cluster.{key}", "expected text")
        return {k: v.strip() for k, v in data.items()}

    def defaults(self, data: Any, agents: dict[str, Profile]) -> dict[str, str]:
        if not isinstance(data, dict):
            raise self.fail("defaults", "expected a mapping")
        self.known(data, ("primary", "demo_primary", "demo_secondary"), "defaults")
        for key, value in data.items():
            if not isinstance(value, str) or value not in agents:
                raise self.fail(f"defaults.{key}", f"unknown agent '{value}'")
        return dict(data)

    def profile(self, name: str, body: Any) -> Profile:
        where = f"agent '{name}'"
        if not isinstance(body, dict):
            raise self.fail(where, "expected a mapping of profile fields")
        known = set(Profile.__dataclass_fields__) - {"name"}
        for key in body:
            if key not in known:
                raise self.fail(f"{where}, field '{key}'", f"unknown field (known: {', '.join(sorted(known))})")
        if "command" not in body:
            raise self.fail(f"{where}, field 'command'", "missing (an argv list, e.g. [droid, exec, '{task}'])")
        command = self.str_list(body["command"], f"{where}, field 'command'")
        if not command or not command[0].strip():
            raise self.fail(f"{where}, field 'command'", "must not be empty (its first item is the program to run)")
        self.placeholders(command, PLACEHOLDERS, f"{where}, field 'command'")
        prof = Profile(name=name, command=command)
        prof.parser = self.string(body, "parser", where, prof.parser)
        from .parsers import PARSERS  # late: parsers import config types

        if prof.parser not in PARSERS:
            raise self.fail(f"{where}, field 'parser'", f"unknown parser '{prof.parser}' (known: {', '.join(sorted(PARSERS))})")
        prof.binary = self.string(body, "binary", where, None)
        prof.install = self.string(body, "install", where, "")
        if isinstance(body.get("version"), (int, float)) and not isinstance(body.get("version"), bool):
            raise self.fail(f"{where}, field 'version'", f"expected a string, got the number {body['version']!r} "
                                                         f"(quote it: version: \"{body['version']}\")")
        prof.version = self.string(body, "version", where, None)
        prof.workdir = self.string(body, "workdir", where, None)
        prof.api_key_env = self.string(body, "api_key_env", where, None)
        prof.base_url_env = self.string(body, "base_url_env", where, None)
        prof.submit = self.string(body, "submit", where, prof.submit)
        prof.exit = self.string(body, "exit", where, None)
        prof.submit_on_echo = self.boolean(body, "submit_on_echo", where, False)
        env = body.get("env") or {}
        if not isinstance(env, dict):
            raise self.fail(f"{where}, field 'env'", "expected a mapping of NAME: value")
        for key, value in env.items():
            if value is None or isinstance(value, (dict, list)):
                got = "null" if value is None else type(value).__name__
                raise self.fail(f"{where}, field 'env.{key}'", f"expected a string value, got {got}")
        prof.env = {str(k): str(v) for k, v in env.items()}
        for key in ("prompt", "completion", "paste_marker", "retry"):
            if body.get(key) is not None:
                setattr(prof, key, self.regex(body[key], f"{where}, field '{key}'"))
        prof.errors = [self.regex(p, f"{where}, field 'errors'") for p in self.str_list(body.get("errors") or [], f"{where}, field 'errors'")]
        for key in ("delegate_start", "delegate_end"):
            if body.get(key) is not None:
                setattr(prof, key, self.regex(body[key], f"{where}, field '{key}'"))
        prof.auto_answers = self.answers(body.get("auto_answers") or [], f"{where}, field 'auto_answers'")
        prof.ignore_files = self.str_list(body.get("ignore_files") or [], f"{where}, field 'ignore_files'")
        if body.get("resume") is not None:
            prof.resume = self.str_list(body["resume"], f"{where}, field 'resume'")
            self.placeholders(prof.resume, RESUME_PLACEHOLDERS, f"{where}, field 'resume'")
        if body.get("version_command") is not None:
            prof.version_command = self.str_list(body["version_command"], f"{where}, field 'version_command'")
            if not prof.version_command or not prof.version_command[0].strip():
                raise self.fail(f"{where}, field 'version_command'", "must not be empty (e.g. [mycli, --version])")
            self.placeholders(prof.version_command, (), f"{where}, field 'version_command'")
        prof.login = self.logins(body.get("login") or [], f"{where}, field 'login'")
        parse = body.get("parse") or {}
        if not isinstance(parse, dict):
            raise self.fail(f"{where}, field 'parse'", "expected a mapping of name: regex")
        prof.parse = {str(k): self.regex(v, f"{where}, field 'parse.{k}'", may_match_empty=True) for k, v in parse.items()}
        prof.timeout = self.number(body, "timeout", where, prof.timeout)
        prof.kill_grace = self.number(body, "kill_grace", where, prof.kill_grace)
        prof.linger = self.number(body, "linger", where, prof.linger)
        prof.input_wait = self.number(body, "input_wait", where, prof.input_wait)
        if body.get("max_retries") is not None:
            value = body["max_retries"]
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise self.fail(f"{where}, field 'max_retries'", f"expected a whole number of 0 or more, got {value!r}")
            if prof.retry is None:
                raise self.fail(f"{where}, field 'max_retries'", "needs a 'retry' pattern (what a retry looks like)")
            prof.max_retries = value
        prof.view = self.string(body, "view", where, prof.view)
        if prof.view not in VIEWS:
            raise self.fail(f"{where}, field 'view'", f"expected one of {', '.join(VIEWS)}, got {prof.view!r}")
        if prof.view == "rendered" and PARSERS[prof.parser].render is None:
            raise self.fail(f"{where}, field 'view'", f"parser '{prof.parser}' has no rendering (its agent's output "
                            "is not JSON events): use view: raw")
        prof.checks = self.checks(body.get("checks"), f"{where}, field 'checks'")
        prof.budget = budget_from(body.get("budget"), self.fail, where + ", field 'budget{}'")
        prof.cols = self.size(body, "cols", where, prof.cols)
        prof.rows = self.size(body, "rows", where, prof.rows)
        return prof

    def string(self, body: dict, key: str, where: str, default: Optional[str]) -> Optional[str]:
        value = body.get(key, default)
        if value is None and default is not None:
            raise self.fail(f"{where}, field '{key}'",
                            f"expected a string, got null (leave the field out for {default!r})")
        if value is not None and not isinstance(value, str):
            raise self.fail(f"{where}, field '{key}'", f"expected a string, got {type(value).__name__}")
        return value

    def boolean(self, body: dict, key: str, where: str, default: bool) -> bool:
        value = body.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"{where}, field '{key}'", f"expected true or false, got {value!r}")
        return value

    def number(self, body: dict, key: str, where: str, default: float) -> float:
        value = body.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < float("inf"):
            raise self.fail(f"{where}, field '{key}'", f"expected a positive number, got {value!r}")
        return float(value)

    def size(self, body: dict, key: str, where: str, default: int) -> int:
        """A terminal size: a whole number of columns or rows, as a pty can have."""
        value = body.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 10000:
            raise self.fail(f"{where}, field '{key}'", f"expected a whole number from 1 to 9999, got {value!r}")
        return value

    def known(self, body: dict, keys: tuple, where: str) -> None:
        for key in body:
            if key not in keys:
                raise self.fail(f"{where}, '{key}'", f"unknown key (known: {', '.join(keys)})")

    def str_list(self, value: Any, where: str) -> list[str]:
        if isinstance(value, str):
            raise self.fail(where, "expected a list (argv items or patterns), not a string: the task is never put into a shell string")
        if not isinstance(value, list) or not all(isinstance(v, (str, int, float)) for v in value):
            raise self.fail(where, "expected a list of strings")
        return [str(v) for v in value]

    def checks(self, value: Any, where: str) -> list[str]:
        """Acceptance checks: command lines, each split as a shell would (never run by one)."""
        from .checks import split

        if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise self.fail(where, f"expected a list of command lines, e.g. [\"pytest -q\"], got {value!r}")
        for command in value or []:
            try:
                split(command, where)
            except OrchestraError as exc:
                raise ConfigError(f"{self.path}: {exc}") from None
        return list(value or [])

    def regex(self, value: Any, where: str, may_match_empty: bool = False) -> re.Pattern:
        if not isinstance(value, str):
            raise self.fail(where, f"expected a regular expression string, got {type(value).__name__}")
        try:
            return compile_pattern(value, may_match_empty)
        except ValueError as exc:
            raise self.fail(where, str(exc)) from None

    def placeholders(self, argv: list[str], known: tuple, where: str) -> None:
        problem = placeholder_problem(argv, known)
        if problem:
            raise self.fail(where, problem)

    def logins(self, value: Any, where: str) -> list[Login]:
        shape = "expected a list of ways to log in, each {env: NAME} or {file: PATH, contains: REGEX}, with about: TEXT"
        if not isinstance(value, list):
            raise self.fail(where, shape)
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, dict) or not ({"env", "file"} & set(item)) or \
                    not set(item) <= {"env", "file", "contains", "about"}:
                raise self.fail(f"{where}[{i}]", shape)
            for key in ("env", "file", "about"):
                if key in item and not isinstance(item[key], str):
                    raise self.fail(f"{where}[{i}].{key}", f"expected a string, got {type(item[key]).__name__}")
            if "contains" in item and "file" not in item:
                raise self.fail(f"{where}[{i}].contains", "needs a file to look in")
            contains = self.regex(item["contains"], f"{where}[{i}].contains") if "contains" in item else None
            out.append(Login(env=item.get("env"), file=item.get("file"), contains=contains,
                             about=item.get("about", "")))
        return out

    def answers(self, value: Any, where: str) -> list[AutoAnswer]:
        if not isinstance(value, list):
            raise self.fail(where, "expected a list of {pattern: REGEX, send: TEXT}")
        out = []
        for i, item in enumerate(value):
            if not isinstance(item, dict) or set(item) != {"pattern", "send"} or not isinstance(item["send"], str):
                raise self.fail(f"{where}[{i}]", "expected {pattern: REGEX, send: TEXT}")
            out.append(AutoAnswer(self.regex(item["pattern"], f"{where}[{i}].pattern"), item["send"]))
        return out

    def routing(self, data: Any, agents: dict[str, Profile]) -> tuple[Optional[list[RouteRule]], Optional[str]]:
        """The file's rules and default, each None when it does not set it."""
        if not isinstance(data, dict):
            raise self.fail("routing", "expected a mapping with 'rules' and 'default'")
        self.known(data, ("rules", "default"), "routing")
        rules = None
        if "rules" in data:
            rules = []
            if not isinstance(data.get("rules") or [], list):
                raise self.fail("routing.rules", "expected a list of {name: ..., agent: ..., words: [...]}")
            for i, item in enumerate(data.get("rules") or []):
                where = f"routing.rules[{i}]"
                if not isinstance(item, dict) or not {"name", "agent", "words"} <= set(item):
                    raise self.fail(where, "expected {name: ..., agent: ..., words: [...]}")
                if not isinstance(item["agent"], str) or item["agent"] not in agents:
                    raise self.fail(f"{where}.agent", f"unknown agent '{item['agent']}'")
                words = self.str_list(item["words"], f"{where}.words")
                rules.append(RouteRule(str(item["name"]), str(item["agent"]), [w.lower() for w in words],
                                       self.checks(item.get("checks"), f"{where}.checks")))
        default = data.get("default")
        if "default" in data and (not isinstance(default, str) or default not in agents):
            raise self.fail("routing.default", f"unknown agent '{default}'")
        return rules, default

    def prices(self, data: Any) -> dict[str, Price]:
        if not isinstance(data, dict):
            raise self.fail("prices", "expected a mapping of agent -> {input_per_mtok, output_per_mtok}")
        out = {}
        for name, item in data.items():
            where = f"prices.{name}"
            if not isinstance(item, dict):
                raise self.fail(where, "expected {input_per_mtok: N, output_per_mtok: N}")
            try:
                out[str(name)] = Price(float(item["input_per_mtok"]), float(item["output_per_mtok"]))
            except (KeyError, TypeError, ValueError):
                raise self.fail(where, "expected numbers input_per_mtok and output_per_mtok") from None
        return out
