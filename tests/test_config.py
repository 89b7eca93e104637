"""Config: profiles load into typed objects; every mistake names file, profile and field."""
from pathlib import Path

import pytest

from orchestra.config import SHIPPED_CONFIG, find_layers, load_config, parse_config
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
        assert "(?>a+)+" in message  # a rewrite is suggested


def test_repeats_that_cannot_nest_are_accepted():
    cfg = parse("agents:\n  a: {command: [p], completion: '✻ \\S+ for (?:\\d+h )?(?:\\d+m )?\\d+s',"
                " errors: ['(?>a+)+$', '(ab){2}x', '^\\s*DONE']}\n")
    assert cfg.agents["a"].completion.search("✻ Cooked for 1m 3s")
