"""orchestra._cclean, ansi.strip() in C: the same text as ansi.py's Python for any text, and built where CI runs."""
import random

import pytest

from orchestra import ansi
from support.ci import in_ci


def python_strip(text: str) -> str:
    return ansi._controls(ansi._unescape(text) if "\x1b" in text else text)


# what escape sequences are made of, whole and in pieces, and what surrounds them: the odd ones (a sequence cut
# short, one inside another, an erase-up pair inside a sequence, a string past MAX_STRING) most of all
PIECES = [
    "\x1b", "[", "]", "P", "^", "_", "(", ")", "*", "+", "0", "1", "2", ";", "?", ":", "<", "=", ">", " ", "!", "/",
    "A", "B", "C", "D", "G", "H", "K", "m", "~", "@", "Z", "\\", "7", "8", "a", "z", "\x07", "\x7f",
    "\n", "\r", "\b", "\t", "\x00", "\x0b", "\x0c", "\x1f", "é", "│", "⠋", "💰", "\udc80", "\x85", "\r\n",
    "\x1b[2K\x1b[1A", "\x1b[2K", "\x1b[1A", "\x1b[G", "\x1b[5C", "\x1b[1;2C", "\x1b[1:2C", "\x1b[ C",
    "\x1b[38;5;214m", "\x1b[0m", "\x1b]0;title", "\x1b]8;;http://x\x07", "\x1b\\", "\x1b(B", "\x1bM",
    "plain words ", "x" * 300,
]
LONG = ["\x1b]" + "t" * (ansi.MAX_STRING - 1) + "\x07", "\x1b]" + "t" * ansi.MAX_STRING + "\x07",
        "\x1b]" + "t" * (ansi.MAX_STRING + 1) + "\x07", "\x1bP" + "q" * (ansi.MAX_STRING + 50)]


def native():
    if ansi._native is None:
        pytest.skip("orchestra._cclean is not built here (see test_the_c_cleaner_is_built_where_ci_runs)")
    return ansi._native


@pytest.mark.parametrize("seed", range(10))
def test_the_c_cleaner_gives_what_ansis_python_gives_for_any_text(seed):
    clean = native()
    rng = random.Random(seed)
    for _ in range(4000):
        parts = [rng.choice(PIECES) if rng.random() < 0.9 else chr(rng.randrange(0, 0x800))
                 for _ in range(rng.randrange(0, 40))]
        if rng.random() < 0.02:
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(LONG))
        text = "".join(parts)
        assert clean(text) == python_strip(text), repr(text)


def test_the_c_cleaner_cleans_a_tui_frame_as_a_terminal_shows_it():
    clean = native()
    frame = ("\x1b[2K\x1b[1A" * 2 + "\x1b[2K\x1b[G" + "\x1b[1m\x1b[38;5;214m⠋\x1b[39m\x1b[22m Working…\r\n"
             "\x1b[38;5;246m│\x1b[39m src/a.py\x1b[5Cdone\r\n\x1b]0;title\x07progress 10%\rprogress 100%\r\n")
    assert clean(frame) == " ⠋ Working…\n│ src/a.py done\nprogress 10%\nprogress 100%\n"
    assert clean(frame) == python_strip(frame)


def test_the_c_cleaner_gives_back_text_with_nothing_to_clean_as_it_is():
    clean = native()
    for text in ("", "plain words\n", "héllo │ wörld 💰\tok\n"):
        assert clean(text) is text
    with pytest.raises(TypeError):
        clean(b"bytes")


def test_the_c_cleaner_is_built_where_ci_runs():
    """pip builds it where a C compiler is (setup.py; optional, so an install without one still works): in CI
    one is, and a build that silently failed would leave every run on the slower Python."""
    if ansi._native is None and in_ci():
        pytest.fail("orchestra._cclean was not built: `pip install -e .` printed why (a C compiler and Python's "
                    "headers are needed); ansi.py falls back to its Python")
    if ansi._native is None:
        pytest.skip("orchestra._cclean is not built here: ansi.py's Python does the cleaning")


def test_doctor_says_which_code_cleans_the_output(workdir, monkeypatch):
    """C where it was built; else Python, and how to build it (not a problem: the text is the same)."""
    from orchestra import doctor
    from orchestra.config import load_config

    config = load_config(None, workdir)
    if ansi.native():
        assert doctor.diagnose(config)["cleaner"] == {"native": True, "said": "C (orchestra._cclean)"}
    monkeypatch.setattr(ansi, "_native", None)
    report = doctor.diagnose(config)
    assert not report["cleaner"]["native"] and "C compiler" in report["cleaner"]["said"]
    assert not [line for line in report["problems"] + report["warnings"] if "_cclean" in line]
