"""The stream pieces: escape stripping, secret masking and pattern search survive any cut between reads."""
import base64
import json
import random
import re

import pytest

from orchestra.ansi import Cleaner, strip
from orchestra.redact import Redactor, secrets_from_env
from orchestra.searcher import SEAM, Searcher

TERMINAL_OUTPUT = (
    "\x1b]0;✳ Claude Code\x07\x1b[?25l\x1b[1;32m● Write\x1b[0m(models/user.py)\r\n"
    "  ⎿  Wrote 1 line\r\nprogress 10%\rprogress 100%\r\nDone:\x1b[9Gcreated\r\n"
    "héllo wörld ✻ Crunched for 0s\r\n\x1b(B\x1b[m"
)


@pytest.fixture(params=["c", "python"])
def cleaning(request, monkeypatch):
    """A test that takes it runs twice: with orchestra._cclean, and with ansi.py's own Python."""
    from orchestra import ansi

    if request.param == "python":
        monkeypatch.setattr(ansi, "_native", None)
    elif ansi._native is None:
        pytest.skip("orchestra._cclean is not built here (tests/test_cclean.py says why that fails in CI)")
    return request.param


def cuts(data, rng):
    i = 0
    while i < len(data):
        n = rng.randint(1, 17)
        yield data[i:i + n]
        i += n


@pytest.mark.parametrize("seed", range(20))
def test_cleaner_gives_the_same_text_however_the_stream_is_cut(seed, cleaning):
    c = Cleaner()
    text = "".join(c.feed(piece) for piece in cuts(TERMINAL_OUTPUT, random.Random(seed))) + c.flush()
    assert text == strip(TERMINAL_OUTPUT)


def ink_frame(i: int) -> str:
    """A TUI's redraw (Ink): the last frame's lines erased, then all drawn again; only the first changes."""
    erase = "\x1b[2K\x1b[1A" * 11 + "\x1b[2K\x1b[G"
    lines = [f"\x1b[38;5;214m{'⠋⠙⠹⠸'[i % 4]}\x1b[39m Working… ({i}s)"]
    lines += [f"\x1b[38;5;246m│\x1b[39m \x1b[36m{r:02d}\x1b[39m src/m{r}.py\x1b[5G\x1b[2m+{r}\x1b[22m" for r in range(10)]
    return erase + "\r\n".join(lines + ["\x1b[2m? for shortcuts\x1b[22m"])


def cleaned_in_reads(frames: str, rng) -> str:
    """What a Cleaner gives for frames read in pieces of random sizes: small ones, and about a pty read's."""
    c, pieces, i = Cleaner(), [], 0
    while i < len(frames):
        n = rng.choice([rng.randint(1, 300), rng.randint(1000, 4096)])
        pieces.append(c.feed(frames[i:i + n]))
        i += n
    return "".join(pieces) + c.flush()


@pytest.mark.parametrize("seed", range(10))
def test_a_tuis_redrawn_lines_are_cleaned_as_the_first_time_however_the_stream_is_cut(seed, cleaning):
    # lines seen before are looked up (see Cleaner), whole reads of frames or cut anywhere
    frames = "".join(ink_frame(i) for i in range(40))
    rng = random.Random(seed)
    assert cleaned_in_reads(frames, rng) == strip(frames)


@pytest.mark.parametrize("seed", range(10))
def test_redrawn_lines_with_lone_carriage_returns_and_backspaces_are_cleaned_as_the_first_time(seed, cleaning):
    # a lone CR or a backspace in a line is a line break of its own: a line looked up, or cleaned with
    # others it was not seen with, still gives what strip() gives the whole
    rng = random.Random(seed)
    lines = [f"\x1b[2K\x1b[36m{r:02d}\x1b[39m step {r}" + rng.choice(["", "\r", " 10%\r 99%", "ab\b\bcd", "\x1b]0;t\x07x"])
             for r in range(30)]
    frames = "".join("\x1b[1A" * 30 + "\r\n".join(rng.sample(lines, 20)) + "\r\n" for _ in range(60))
    assert cleaned_in_reads(frames, rng) == strip(frames)


def test_output_whose_lines_do_not_come_back_is_cleaned_whole_and_the_same(cleaning):
    c = Cleaner()
    reads = ["".join(f"\x1b[31mline {k}-{j}\x1b[0m\x1b[3Cdone\r\n" for j in range(40)) for k in range(200)]
    assert [c.feed(r) for r in reads] == [strip(r) for r in reads]
    assert len(c._seen) < 40 * 10  # tried the lines again now and then, not every read


def test_strip_removes_escapes_and_reads_carriage_returns_as_line_breaks(cleaning):
    text = strip(TERMINAL_OUTPUT)
    assert "\x1b" not in text and "\r" not in text
    assert "● Write(models/user.py)\n" in text
    assert "progress 10%\nprogress 100%\n" in text
    assert "Done: created" in text


@pytest.mark.parametrize("seed", range(20))
def test_a_secret_split_across_reads_is_still_masked(seed):
    secret = "sk-test-0123456789abcdef"
    data = f"key={secret}; again {secret[:5]} not a key; {secret}\n".encode()
    out = masked_as_a_session_would(Redactor([secret]), data, random.Random(seed))
    assert out == b"key=***; again sk-te not a key; ***\n"


def masked_as_a_session_would(r, data, rng):
    """The bytes a session stores and shows: each read masked, with the stream's cleaned text of it."""
    from orchestra.parsers import make_parser
    from orchestra.stream import Stream

    stream, out = Stream(make_parser("generic", None)), []
    for piece in cuts(data, rng):
        stream.feed(piece)
        out.append(r.feed(piece, stream.clean))
    return b"".join(out) + r.flush()


KEY = "sk-test-0123456789abcdefghijklmnopqrstuv"
PEM = "-----BEGIN TEST KEY-----\nMIIBVQIBADANBgkqhkiG9w0BAQEFAASCAT8wggE7AgEAAkEAq7BFUpkGp3+XQ\nxj9+eQfq1NwbCkDRn2TT8l4eXE0k\n-----END TEST KEY-----"


@pytest.mark.parametrize("shape, secret, data, expected", [
    ("escapes", KEY, f"key: {KEY[:12]}\x1b[1m{KEY[12:20]}\x1b[0m\x1b[33m{KEY[20:]}\x1b[0m ok\r\n",
     "key: ***\x1b[0m ok\r\n"),
    ("hard wrap", KEY, f"{'x' * 100} {KEY[:15]}\r\n   {KEY[15:]} and on\r\n", f"{'x' * 100} *** and on\r\n"),
    ("multi-line", PEM, "key:\r\n" + PEM.replace("\n", "\r\n") + "\r\ndone\r\n", "key:\r\n***\r\ndone\r\n"),
])
@pytest.mark.parametrize("seed", range(20))
def test_a_secret_cut_apart_on_the_terminal_is_masked_however_the_reads_fall(shape, secret, data, expected, seed):
    assert masked_as_a_session_would(Redactor([secret]), data.encode(), random.Random(seed)).decode() == expected
    text = strip(data)  # the summaries' text: escapes gone, line breaks kept
    assert "***" in Redactor([secret]).text(text) and secret[-8:] not in Redactor([secret]).text(text)


def pem_key(lines: int, seed: int = 0) -> str:
    """A PEM-shaped key: base64 lines of 64 characters (with their '/' and '+') between a header and a footer."""
    body = base64.b64encode(random.Random(seed).randbytes(48 * lines - 7)).decode()
    return "\n".join(["-----BEGIN TEST PRIVATE KEY-----", *(body[i:i + 64] for i in range(0, len(body), 64)),
                      "-----END TEST PRIVATE KEY-----"])


def leaked(text: str, secret: str) -> list[str]:
    """Pieces of the secret (12 characters or more) that a person could read in text: on a line, cut
    by a line break and indentation, or by JSON's escapes (\\n, \\r\\n, \\\\n, \\/)."""
    shown = re.sub(r"\n[ \t]*|\\+[rn]?", "", strip(text))
    core = secret.replace("\n", "")
    return sorted({core[i:i + 12] for i in range(len(core) - 11) if core[i:i + 12] in shown})


# A multi-line key as an agent writes it: through the pty, or in a JSON string (every headless agent)
KEY_ENCODINGS = {
    "the pty's CR LF": lambda key: key.replace("\n", "\r\n"),
    "JSON": lambda key: json.dumps(key)[1:-1],
    "JSON, CR LF": lambda key: json.dumps(key.replace("\n", "\r\n"))[1:-1],
    "JSON in a JSON string": lambda key: json.dumps(json.dumps(key.replace("\n", "\r\n")))[3:-3],
    "JSON, slashes escaped": lambda key: json.dumps(key)[1:-1].replace("/", "\\/"),
}
PEM_KEY = pem_key(4)


@pytest.mark.parametrize("encoding", KEY_ENCODINGS)
@pytest.mark.parametrize("seed", range(20))
def test_a_multi_line_key_is_masked_however_an_agent_writes_its_line_breaks(encoding, seed):
    assert "/" in PEM_KEY and "+" in PEM_KEY
    line = '{"type":"assistant","text":"the key: %s, kept"}\r\n'
    data = (line % KEY_ENCODINGS[encoding](PEM_KEY)).encode()
    assert masked_as_a_session_would(Redactor([PEM_KEY]), data, random.Random(seed)).decode() == line % "***"
    assert Redactor([PEM_KEY]).text(strip(data.decode())) == strip(line % "***")  # the summaries' text


@pytest.mark.parametrize("seed", range(20))
def test_a_key_with_a_slash_is_masked_when_json_escapes_it(seed):
    key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"  # an AWS secret access key's shape
    data = f'{{"text":"export AWS_SECRET_ACCESS_KEY={key}"}}\r\n'.replace("/", "\\/").encode()
    out = masked_as_a_session_would(Redactor([key]), data, random.Random(seed)).decode()
    assert out == '{"text":"export AWS_SECRET_ACCESS_KEY=***"}\r\n'


@pytest.mark.parametrize("encoding", KEY_ENCODINGS)
def test_a_key_that_begins_in_the_read_that_masks_another_is_masked_when_the_next_read_ends_it(encoding):
    from orchestra.parsers import make_parser
    from orchestra.stream import Stream

    written = KEY_ENCODINGS[encoding](PEM_KEY)
    data = f'{{"text":"{written}"}}\r\n{{"text":"{written}"}}\r\n'.encode()
    first = len(written) + 80  # the first key, and the start of the second
    stream, r, out = Stream(make_parser("generic", None)), Redactor([PEM_KEY]), []
    for piece in (data[:first], data[first:]):
        stream.feed(piece)
        out.append(r.feed(piece, stream.clean))
    assert (b"".join(out) + r.flush()).decode() == '{"text":"***"}\r\n' * 2


def test_the_lines_a_person_is_shown_are_masked_before_a_long_line_is_cut():
    from orchestra.parsers import make_parser
    from orchestra.stream import Stream

    key, r = pem_key(20), Redactor([pem_key(20)])  # 1.3 KB: across the 500 characters a last line keeps
    line = json.dumps({"type": "assistant", "text": "x" * 300 + key})
    stream = Stream(make_parser("generic", None))
    stream.feed((line + "\r\n").encode())
    for shown in (stream.lines_shown(r)[-1], stream.latest_shown(r)):
        assert "x" * 300 + "***" in shown and not leaked(shown, key)
    stream.feed(line[:-100].encode())  # a line under way, its key not whole yet (as a status line may see it)
    assert stream.latest_shown(r).endswith("***") and not leaked(stream.latest_shown(r), key)


def test_a_json_line_that_holds_part_of_a_key_is_left_whole():
    data = ('{"text":"C:\\\\new\\nfolder\\/x \\"%s\\" %s\\n"}\r\n' % (PEM_KEY[:40], json.dumps(PEM_KEY)[1:-60])).encode()
    for seed in range(10):
        assert masked_as_a_session_would(Redactor([PEM_KEY]), data, random.Random(seed)) == data


def test_masking_leaves_ordinary_output_alone_and_whole():
    data = b"tests passed\r\nsk-test-other-key stays\r\n\x1b[1mbold\x1b[0m\r\nprompt> "
    assert masked_as_a_session_would(Redactor([KEY]), data, random.Random(0)) == data


def test_secrets_come_from_named_and_suffixed_variables():
    env = {"MY_API_KEY": "abcdef123", "GH_TOKEN": "ghp_zzzzzz", "DB_SECRET": "hunter2hunter2",
           "CUSTOM": "custom-value", "SHORT_KEY": "1", "HOME": "/root"}
    assert set(secrets_from_env(env, ["CUSTOM"])) == {"abcdef123", "ghp_zzzzzz", "hunter2hunter2", "custom-value"}


def whole_stream_matches(text, pattern):
    return [m.group(0) for m in pattern.finditer(text)]


@pytest.mark.parametrize("seed", range(30))
def test_search_finds_every_match_whatever_the_cuts(seed):
    rng = random.Random(seed)
    words = ["noise", "more noise", "DONE 42", "x" * rng.randint(0, 3 * SEAM), "Proceed? (Y)es/(N)o"]
    text = "".join(rng.choice(words) + rng.choice(["\n", " "]) for _ in range(60))
    pattern = re.compile(r"\(Y\)es/\(N\)o|DONE 42")
    s = Searcher()
    found = []
    for piece in cuts(text, rng):
        s.feed(piece)
        while (m := s.search([pattern])) is not None:
            found.append(m.match.group(0))
            s.consume(m.end)
    assert found == whole_stream_matches(text, pattern)


def test_whole_line_patterns_wait_for_the_end_of_the_line():
    s = Searcher()
    done = re.compile(r'^\{"type":"result".*\}$', re.M)
    s.feed('{"type":"result","cost":')
    assert s.search([], [done]) is None
    s.feed(" 1.5" + "x" * (3 * SEAM) + "}\n")
    m = s.search([], [done])
    assert m is not None and not m.partial and m.match.group(0).endswith("}")


def test_prompt_patterns_match_an_unfinished_line():
    s = Searcher()
    s.feed("starting\n❯\xa0")
    m = s.search([re.compile("❯\xa0$", re.M)])
    assert m is not None and m.partial


def test_memory_is_bounded_by_the_longest_kept_line():
    s = Searcher()
    for _ in range(200):
        s.feed("z" * 8192)
    assert len(s.tail) <= 65536


def test_a_line_pattern_written_without_re_m_still_matches_a_line_in_the_middle_of_a_read(tmp_path):
    import sys

    from orchestra.config import Profile
    from orchestra.session import AgentSession, drive

    # one write, so one read: the error line does not begin the text searched
    hang = "import os, signal; os.write(1, b'working on: t\\nmodified: x.py\\n'); signal.pause()"
    prof = Profile(name="toy", command=[sys.executable, "-c", hang], completion=re.compile("^DONE"),
                   errors=[re.compile(r"^modified: x\.py")], timeout=20, kill_grace=1)
    s = AgentSession(prof, "t", tmp_path, tmp_path / "t.cast")
    s.start()
    drive([s])
    assert s.result().status == "failed" and "modified: x.py" in s.result().reason


@pytest.mark.parametrize("seed", range(30))
def test_a_stream_gives_the_same_text_lines_and_transcript_however_plain_or_mixed_the_reads(seed, cleaning):
    """Plain reads (printable ASCII, tabs, CR LF) take a shortcut; the result is the general path's."""
    import codecs
    import json

    from orchestra.parsers import make_parser
    from orchestra.stream import Stream
    from orchestra.transcript import json_string

    rng = random.Random(seed)
    pieces = ["plain line of output\r\n", "tab\tseparated\r\n", 'quote " and \\ backslash\r\n',
              "modified: a.py\r\n", "progress 10%\rprogress 100%\r\n", "\x1b[1mbold\x1b[0m\r\n",
              "héllo wörld ✓\r\n", "bell\x07 and form\x0cfeed\r\n", "\r\n", "no newline yet "]
    data = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 60))).encode()
    if rng.random() < 0.3:
        data = data.replace("é".encode(), "é".encode()[:1])  # a broken UTF-8 sequence
    stream = Stream(make_parser("generic", None))
    texts, lines, plain_reads = [], [], 0
    i = 0
    while i < len(data):
        n = rng.choice([1, 2, 3, 7, 40, 300, 4096])
        text, done = stream.feed(data[i:i + n])
        plain_reads += stream.plain
        assert json.loads(json_string(text, stream.plain)) == text  # (the bytes: tests/test_transcript.py)
        texts.append(text)
        lines.append(done)
        i += n
    text, done = stream.feed(b"", final=True)
    texts.append(text)
    lines.append(done)
    whole = codecs.decode(data, "utf-8", "replace")
    assert "".join(texts) == whole
    expected = strip(whole)
    assert "".join(lines) == expected + ("" if expected.endswith("\n") or not expected else "\n")
    files = ["a.py"] if re.search(r"(?m)^modified: a\.py$", expected) else []
    assert stream.parser.result().files == files


def test_a_character_cut_by_a_read_then_plain_output_is_decoded_as_one_stream():
    from orchestra.parsers import make_parser
    from orchestra.stream import Stream

    stream = Stream(make_parser("generic", None))
    texts = [stream.feed(b"caf\xc3")[0], stream.feed(b"\xa9 ok\r\n")[0],  # é cut in two
             stream.feed(b"bad \xc3")[0], stream.feed(b"plain\r\n")[0]]  # a lead byte never finished
    assert "".join(texts) == "café ok\r\nbad \ufffdplain\r\n"
    assert "".join(stream.last_lines) == "café okbad \ufffdplain"


@pytest.mark.parametrize("seed", range(5))
def test_strip_treats_control_characters_alike_in_ascii_and_in_any_other_text(seed, cleaning):
    """Controls go (a lone CR or a backspace is a line break), whatever else the text holds."""
    table = {c: None for c in [*range(0, 8), 11, 12, *range(14, 32), 127]}
    table.update({8: "\n", 13: "\n"})

    def reference(text):
        if re.search("\r(?!\n)", text) is None:
            return text.translate({**table, 13: None})
        return text.replace("\r\n", "\n").translate(table)

    rng = random.Random(seed)
    alphabet = [chr(c) for c in range(0, 128) if c != 0x1b] + ["é", "│", "⎿", "💰", "\udc80", "\r\n"] * 10
    for _ in range(2000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
        assert strip(text) == reference(text), repr(text)


def test_a_long_line_reaches_the_parser_whole_however_it_is_cut():
    """Claude Code puts its cost, tokens and verdict before "type":"result" in its result line."""
    import json

    from orchestra.parsers import make_parser
    from orchestra.stream import Stream

    answer = "word " * 400_000  # 2 MB
    line = json.dumps({"total_cost_usd": 0.25, "usage": {"input_tokens": 7, "output_tokens": 9}, "is_error": False,
                       "subtype": "success", "result": answer, "type": "result"}, separators=(",", ":"))
    data = ('{"type":"system","subtype":"init","session_id":"s1"}\n' + line + "\n").encode()
    stream = Stream(make_parser("claude", None))
    done = re.compile('"type":"result"')
    seen = 0
    for i in range(0, len(data), 4096):
        stream.feed(data[i:i + 4096])
        while (m := stream.searcher.search([], [done])) is not None:
            seen += 1
            stream.searcher.consume(m.end)
        stream.searcher.searched()
    parsed = stream.parser.result()
    assert seen == 1
    assert parsed.cost_usd == 0.25 and (parsed.tokens_in, parsed.tokens_out) == (7, 9) and parsed.is_error is False
    assert parsed.reply.endswith("word ") and len(parsed.reply) == 64 * 1024


def long_line_search(s, pattern, text, whole=True):
    found = []
    for i in range(0, len(text), 4096):
        s.feed(text[i:i + 4096])
        while (m := s.search([] if whole else [pattern], [pattern] if whole else [])) is not None:
            found.append(m.match.group(0))
            s.consume(m.end)
        s.searched()
    return found


@pytest.mark.parametrize("whole", [True, False])
@pytest.mark.parametrize("before", [300_000, 300_001, 65536 * 4 + 5])
def test_a_caret_matches_only_at_a_lines_start_however_long_the_line(whole, before):
    done = re.compile("^DONE", re.M)
    # "DONE" 64 KB before the line's end: where a searcher that kept the last 64 KB of a line cut it
    text = "x" * before + "DONE" + "z" * (65536 - 4)
    s = Searcher()
    assert long_line_search(s, done, text, whole) == []
    assert long_line_search(s, done, "\nDONE\n", whole) == ["DONE"]


def test_a_line_longer_than_the_limit_loses_its_start_never_a_false_match(monkeypatch):
    import orchestra.searcher as searcher_module

    monkeypatch.setattr(searcher_module, "MAX_LINE", 100_000)
    s = Searcher()
    done = re.compile("^DONE.*$", re.M)
    text = "x" * 250_000 + "DONE in the middle\nnext\nDONE at last\n"
    assert long_line_search(s, done, text) == ["DONE at last"]
    s.feed("y" * 1_000_000)
    assert s._held_len + len(s.tail) <= 100_000  # memory bounded by the limit, not by the output


UNTERMINATED = [
    "\x1b]0;a title cut short\r\nDONE\r\n",  # a line feed ends it
    "\x1b]0;a title cut short\r\nDONE\r\nlater a bell\x07\r\n",
    "\x1b]8;;http://x\x07link\x1b]8;;\x07 ok\x1b_an apc never ended\r\nDONE\r\n",
    "\x1bP" + "q#0;2;0;0;0" * 1000 + "DONE\r\n",  # binary-like data past the bound: the rest is text
]


@pytest.mark.parametrize("text", UNTERMINATED)
@pytest.mark.parametrize("seed", range(5))
def test_an_unterminated_escape_string_swallows_at_most_a_bounded_piece(text, seed, cleaning):
    expected = strip(text)
    assert "DONE\n" in expected and "\x1b" not in expected
    c = Cleaner()
    streamed = "".join(c.feed(piece) for piece in cuts(text, random.Random(seed)))  # before any flush
    assert "DONE\n" in streamed
    assert streamed + c.flush() == expected


@pytest.mark.parametrize("pattern, literal", [
    ('"type":"result"', '"type":"result"'), ("^DONE$", "DONE"), (".*DONE", "DONE"), ("(a|b)cde", "cde"),
    ('"subtype":"api_retry".*"error_status":40[13]', '"subtype":"api_retry"'), ("done|DONE", ""), ("(?i)done", ""),
])
def test_a_pattern_is_tried_only_on_lines_holding_a_literal_every_match_has(pattern, literal):
    """A pattern like .*DONE costs the square of a line's length where it fails: a 16 MB line must
    not be handed to it unless its literal is there."""
    from orchestra.searcher import needle

    compiled = re.compile(pattern, re.M)
    assert needle(compiled) == literal
    for text in ["xx DONE", "cde", 'a "subtype":"api_retry" "error_status":401', "nothing"]:
        if compiled.search(text):
            assert literal in text
