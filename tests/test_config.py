"""Config: profiles load into typed objects; every mistake names file, profile and field; the user's and a
project's files add to the shipped one."""
import os
from pathlib import Path

import pytest

from orchestra.config import ATOMIC_GROUPS, SHIPPED_CONFIG, compile_pattern, find_layers, load_config, parse_config
from orchestra.errors import ConfigError


def parse(text: str):
    return parse_config(text, Path("/x/orchestra.yaml"))


def test_shipped_config_loads_every_profile_with_its_patterns():
    cfg = load_config(str(SHIPPED_CONFIG))
    assert {"claude", "droid", "aider", "cursor", "demo-claude", "demo-droid"} <= set(cfg.agents)
    droid = cfg.agents["droid"]
    assert droid.completion.search('{"type":"completion","finalText":"ok"}')
    assert droid.takes_task_in_argv
    assert [r.name for r in cfg.rules] == ["ui", "backend", "git"]


def test_profile_fields_are_typed():
    cfg = parse("""
agents:
  a:
    command: [prog, --flag, "{task}"]
    prompt: '^ready> $'
    completion: '^DONE'
    errors: ['^FATAL']
    auto_answers: [{pattern: '\\(Y\\)es/\\(N\\)o', send: "y\\r"}]
    timeout: 5
    env: {X: 1}
""")
    a = cfg.agents["a"]
    assert a.command == ["prog", "--flag", "{task}"]
    assert a.prompt.search("ready> ") and a.completion.search("DONE\n")
    assert a.auto_answers[0].send == "y\r"
    assert a.timeout == 5.0 and a.env == {"X": "1"}
    assert a.parser == "generic"


@pytest.mark.parametrize("body, field", [
    ("{completion: x}", "'command'"),
    ("{command: 'prog {task}'}", "'command'"),
    ("{command: [p], completion: '(unclosed'}", "'completion'"),
    ("{command: [p], parser: nosuch}", "'parser'"),
    ("{command: [p], timeout: soon}", "'timeout'"),
    ("{command: [p], errors: ['[']}", "'errors'"),
    ("{command: [p], auto_answers: [{pattern: x}]}", "'auto_answers'"),
    ("{command: [p], colour: red}", "'colour'"),
    ("{command: ['', x]}", "'command'"),
    ("{command: [p], timeout: .nan}", "'timeout'"),
    ("{command: [p], kill_grace: .inf}", "'kill_grace'"),
    ("{command: [p], cols: 70000}", "'cols'"),
    ("{command: [p], rows: 24.5}", "'rows'"),
    ("{command: [p], submit: null}", "'submit'"),
    ("{command: [p], env: {PATH: null}}", "'env.PATH'"),
])
def test_a_bad_field_names_file_profile_and_field(body, field):
    with pytest.raises(ConfigError) as err:
        parse(f"agents:\n  broken: {body}\n")
    message = str(err.value)
    assert "/x/orchestra.yaml" in message and "agent 'broken'" in message and field in message


def test_a_shell_string_command_is_refused():
    with pytest.raises(ConfigError, match="never put into a shell string"):
        parse("agents:\n  a: {command: 'droid exec {task}'}\n")


def test_yaml_syntax_error_gives_the_line():
    with pytest.raises(ConfigError, match=r"orchestra.yaml: line 4, column 4: invalid YAML"):
        parse("agents:\n  a:\n    command: [p\n  b: {}\n")


def test_routing_to_an_unknown_agent_is_an_error():
    with pytest.raises(ConfigError, match=r"routing.rules\[0\].agent"):
        parse("agents:\n  a: {command: [p]}\nrouting:\n  rules: [{name: x, agent: zz, words: [w]}]\n")


@pytest.mark.parametrize("section, where", [
    ("routing: {rules: 5}", "routing.rules"),
    ("routing: {rules: [{name: x, agent: [a], words: [w]}]}", "routing.rules[0].agent"),
    ("routing: {default: [a]}", "routing.default"),
    ("routing: {defualt: a}", "routing, 'defualt'"),
    ("defaults: {primary: [a]}", "defaults.primary"),
    ("defaults: {primry: a}", "defaults, 'primry'"),
    ("route: {default: a}", "top level, 'route'"),
])
def test_a_bad_section_names_file_and_section(section, where):
    with pytest.raises(ConfigError) as err:
        parse(f"agents:\n  a: {{command: [p]}}\n{section}\n")
    assert str(err.value).startswith(f"/x/orchestra.yaml: {where}")


def test_config_files_apply_in_order_shipped_user_then_project_or_the_config_option(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    kinds = lambda *args: [(layer.kind, layer.path) for layer in find_layers(*args)]
    assert kinds(None, tmp_path) == [("shipped", SHIPPED_CONFIG)]
    user = tmp_path / "xdg" / "orchestra" / "config.yaml"
    user.parent.mkdir(parents=True)
    user.write_text("agents: {a: {command: [p]}}\n")
    assert kinds(None, tmp_path) == [("shipped", SHIPPED_CONFIG), ("user", user)]
    local = tmp_path / "orchestra.yaml"
    local.write_text("agents: {a: {command: [p]}}\n")
    assert kinds(None, tmp_path) == [("shipped", SHIPPED_CONFIG), ("user", user), ("project", local)]
    explicit = tmp_path / "other.yaml"
    explicit.write_text("agents: {a: {command: [p]}}\n")  # in place of the project's
    assert kinds(str(explicit), tmp_path) == [("shipped", SHIPPED_CONFIG), ("user", user), ("--config", explicit)]
    assert kinds(str(SHIPPED_CONFIG), tmp_path) == [("shipped", SHIPPED_CONFIG), ("user", user)]  # once
    with pytest.raises(ConfigError, match="not found"):
        find_layers(str(tmp_path / "missing.yaml"), tmp_path)


@pytest.mark.parametrize("body, field", [
    ("{command: [p], completion: 'z*'}", "field 'completion'"),
    ("{command: [p], prompt: '^'}", "field 'prompt'"),
    ("{command: [p], errors: ['x', '(?=FATAL)']}", "field 'errors'"),
    ("{command: [p], auto_answers: [{pattern: 'z*', send: y}]}", "field 'auto_answers'[0].pattern"),
    ("{command: [p], paste_marker: '\\s*'}", "field 'paste_marker'"),
    ("{command: [p], retry: '(retrying)?'}", "field 'retry'"),
])
def test_a_pattern_that_matches_the_empty_string_is_refused_naming_its_field(body, field):
    # it would match at every offset: an auto-answer answered forever, holding the loop
    with pytest.raises(ConfigError) as err:
        parse(f"agents:\n  broken: {body}\n")
    assert f"agent 'broken', {field}" in str(err.value) and "can match the empty string" in str(err.value)


@pytest.mark.parametrize("pattern, part", [
    ("(a+)+$", "(a+)+"),
    ("^x(a*)*y", "(a*)*"),
    ("^(\\w+\\s?)*:", "(\\w+\\s?)*"),
    ("^(?:ab|(c+))+!", "(?:ab|(c+))+"),
])
def test_a_nested_repeat_is_refused_naming_the_field_and_the_part(pattern, part):
    # Python's re cannot be interrupted: (a+)+$ on 27 a's and a b held the loop for 16 s
    for field in ("completion", "parse.cost"):
        body = f"{{command: [p], {field.split('.')[0]}: {{cost: '{pattern}'}}}}" if "." in field \
            else f"{{command: [p], {field}: '{pattern}'}}"
        with pytest.raises(ConfigError) as err:
            parse(f"agents:\n  broken: {body}\n")
        message = str(err.value)
        assert f"agent 'broken', field '{field}'" in message and f"nested repeat {part!r}" in message, message
        assert ("(?>a+)+" in message) is ATOMIC_GROUPS  # a rewrite is suggested where Python has them (3.11+)


def test_repeats_that_cannot_nest_are_accepted():
    atomic = "'(?>a+)+$', " if ATOMIC_GROUPS else ""  # (Python 3.11+)
    cfg = parse("agents:\n  a: {command: [p], completion: '✻ \\S+ for (?:\\d+h )?(?:\\d+m )?\\d+s',"
                f" errors: [{atomic}'(ab){{2}}x', '^\\s*DONE']}}\n")
    assert cfg.agents["a"].completion.search("✻ Cooked for 1m 3s")


def layered(tmp_path, monkeypatch, user: str, project: str = ""):
    """The config with this user file (and this file as --config, standing in for a project's)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    path = tmp_path / "xdg" / "orchestra" / "config.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(user)
    explicit = None
    if project:
        explicit = tmp_path / "project.yaml"
        explicit.write_text(project)
    return load_config(str(explicit) if explicit else None, tmp_path)


def test_a_profile_in_the_users_config_replaces_the_shipped_one_whole_and_the_others_stay(tmp_path, monkeypatch):
    cfg = layered(tmp_path, monkeypatch, "agents:\n  droid: {command: [my-droid, '{task}']}\n  mine: {command: [m]}\n")
    shipped = load_config(str(SHIPPED_CONFIG))
    assert set(cfg.agents) == set(shipped.agents) | {"mine"}
    droid = cfg.agents["droid"]
    assert droid.command == ["my-droid", "{task}"] and droid.completion is None and droid.version is None
    assert cfg.agents["claude"].command == shipped.agents["claude"].command
    assert (cfg.sources["droid"].kind, cfg.sources["mine"].kind, cfg.sources["claude"].kind) == \
        ("user", "user", "shipped")
    assert (cfg.demo_primary, cfg.demo_secondary, cfg.default_agent) == ("demo-claude", "demo-droid", "droid")


def test_routing_rules_and_default_replace_the_earlier_ones_prices_and_defaults_count_key_by_key(
        tmp_path, monkeypatch):
    cfg = layered(tmp_path, monkeypatch,
                  "agents: {mine: {command: [m]}}\nprices: {mine: {input_per_mtok: 1, output_per_mtok: 2}}\n"
                  "defaults: {primary: mine}\n",
                  "routing: {rules: [{name: web, agent: mine, words: [css]}]}\n"
                  "prices: {codex: {input_per_mtok: 9, output_per_mtok: 9}}\n")
    assert [(r.name, r.agent) for r in cfg.rules] == [("web", "mine")]  # not the shipped ui, backend, git
    assert cfg.default_agent == "droid"  # no file but the shipped one set it
    assert cfg.prices["mine"].input_per_mtok == 1 and cfg.prices["codex"].input_per_mtok == 9
    assert cfg.prices["gemini"].input_per_mtok == 0.30  # shipped
    assert (cfg.primary, cfg.demo_primary) == ("mine", "demo-claude")
    cfg = layered(tmp_path, monkeypatch, "routing: {default: aider}\n")  # a file may hold no profile
    assert cfg.default_agent == "aider" and [r.name for r in cfg.rules] == ["ui", "backend", "git"]


def test_a_mistake_in_the_users_config_names_that_file(tmp_path, monkeypatch):
    with pytest.raises(ConfigError) as err:
        layered(tmp_path, monkeypatch, "routing: {default: nobody}\n")
    assert str(err.value).startswith(f"{tmp_path / 'xdg' / 'orchestra' / 'config.yaml'}: routing.default")


@pytest.mark.parametrize("field, argv, unknown, known", [
    ("command", "[prog, '{tsk}']", "{tsk}", "{task}, {task_file}, {workdir}, {python}, {wrappers}, {fixtures}"),
    ("command", "[prog, '{session_id}']", "{session_id}", "{task}, {task_file}"),
    ("resume", "[prog, '--id={sesion_id}', '{tsk}']", "placeholders {sesion_id}, {tsk}", "{session_id}"),
])
def test_an_unknown_placeholder_is_refused_naming_it_and_the_known_ones(field, argv, unknown, known):
    body = f"{{command: [p], {field}: {argv}}}" if field != "command" else f"{{command: {argv}}}"
    with pytest.raises(ConfigError) as err:
        parse(f"agents:\n  a: {body}\n")
    message = str(err.value)
    assert f"agent 'a', field '{field}': unknown " in message and unknown in message and known in message, message


def test_braces_that_are_not_placeholders_are_left_alone():
    cfg = parse("agents:\n  a: {command: [sh, -c, 'echo ${HOME} {} {\"k\": 1} \"$1\"', '{task}']}\n")
    assert cfg.agents["a"].command[2] == 'echo ${HOME} {} {"k": 1} "$1"'


def test_the_nested_repeat_message_suggests_atomic_groups_only_on_a_python_that_has_them(tmp_path):
    import glob
    import subprocess
    import sys

    import yaml

    pythons = sorted(glob.glob(str(Path.home() / ".pyenv" / "versions" / "3.10*" / "bin" / "python")))
    if not pythons:
        pytest.skip("no Python 3.10 in ~/.pyenv/versions")
    # orchestra's config module under Python 3.10, with the pure-Python part of this PyYAML
    (tmp_path / "yaml").symlink_to(Path(yaml.__file__).parent)
    code = ("from orchestra.config import compile_pattern\n"
            "try:\n    compile_pattern('(a+)+$')\nexcept ValueError as exc:\n    print(exc)\n")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run([pythons[-1], "-c", code], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": f"{root}{os.pathsep}{tmp_path}", "PATH": os.environ["PATH"],
                               "PYTHONDONTWRITEBYTECODE": "1"})
    assert "nested repeat '(a+)+'" in done.stdout and "repeat once" in done.stdout, done.stdout + done.stderr
    assert "(?>" not in done.stdout  # Python 3.10 refuses atomic groups
    if sys.version_info < (3, 11):
        return  # (this is 3.10 itself: CI runs the unit tests under it too)
    with pytest.raises(ValueError, match=r"\(\?>a\+\)\+"):  # and this Python (3.11+) takes them
        compile_pattern("(a+)+$")
    assert sys.version_info >= (3, 11)


@pytest.mark.parametrize("login, where", [
    ("{env: X}", "field 'login'"),
    ("[{contains: x}]", "field 'login'[0]"),
    ("[{env: X, colour: red}]", "field 'login'[0]"),
    ("[{file: ~/f, contains: '(unclosed'}]", "field 'login'[0].contains"),
    ("[{env: [X]}]", "field 'login'[0].env"),
])
def test_a_bad_login_names_its_field(login, where):
    with pytest.raises(ConfigError) as err:
        parse(f"agents:\n  a: {{command: [p], login: {login}}}\n")
    assert f"agent 'a', {where}" in str(err.value), str(err.value)
