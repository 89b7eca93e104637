"""Claude Code's interactive screen as the primary: its reply is the model's words alone, and the wait for
a turn ends on that turn's end, never on an earlier turn's `✻ ... for Ns` line that the TUI redraws."""
import dataclasses
import sys

from conftest import ROOT
from orchestra.config import SHIPPED_CONFIG, Profile, load_config
from orchestra.parsers import make_parser
from orchestra.screen import Screen
from orchestra.session import IDLE, AgentSession, drive
from orchestra.stream import Stream
from orchestra.transcript import read_cast

# Claude Code 2.1.328 (alternate screen) as the primary of `delegate --to droid`, against the scripted
# model server: the summary typed in its second turn makes it redraw the first turn, `✻ Baked for 1s`
# included, 0.1 s before the second turn's own reply and `✻ Worked for 0s`.
SECOND_TURN = ROOT / "fixtures" / "outputs" / "claude-tui-second-turn.cast"
REPLY = "The secondary created models/user.py; the task is done. Check the User class."
CFG = load_config(str(SHIPPED_CONFIG))


def typed(cast) -> list[str]:
    """The messages orchestra typed in the recording (not the Enters, not /exit)."""
    return [e.data for e in read_cast(cast).events() if e.kind == "i" and e.data not in ("\r", "/exit")]


def replayed_claude_tui(cast) -> Profile:
    """The shipped claude-tui profile, the recording standing in for Claude Code (it waits for each input)."""
    return dataclasses.replace(CFG.agents["claude-tui"], binary=None, timeout=30, kill_grace=2,
                               command=[sys.executable, "-m", "orchestra.replay", str(cast), "--speed", "0"])


def test_an_earlier_turns_end_redrawn_on_screen_does_not_end_the_wait_for_this_turn(tmp_path):
    task, summary = typed(SECOND_TURN)
    s = AgentSession(replayed_claude_tui(SECOND_TURN), task, tmp_path, tmp_path / "t.cast", keep_alive=True)
    s.start()
    try:
        _two_turns(s, summary)
    finally:
        s.abort()  # an assertion that failed leaves nothing running


def _two_turns(s: AgentSession, summary: str) -> None:
    drive([s])
    assert s.phase == IDLE and s.result().ended_by["line"] == "✻ Baked for 1s · done 9:12 PM"
    s.send_turn(summary)
    drive([s])
    r = s.result()
    assert r.status == "completed" and r.ended_by["line"] == "✻ Worked for 0s · done 9:12 PM", r.ended_by
    assert r.parsed.reply == REPLY
    s.close()
    drive([s])
    assert s.result().exit_code == 0


def test_the_reply_is_the_models_words_without_logo_tips_spinner_or_mode_line():
    parser = make_parser("claude-tui", CFG.agents["claude-tui"])
    stream = Stream(parser)
    first = True
    for e in read_cast(SECOND_TURN).events():
        if e.kind == "i" and e.data not in ("\r", "/exit"):
            if not first:
                parser.new_turn()
            parser.typed(e.data)
            first = False
        elif e.kind == "o":
            stream.feed(e.data.encode())
    assert parser.result().reply == REPLY


def test_the_first_turns_reply_keeps_its_lines():
    parser = make_parser("claude-tui", CFG.agents["claude-tui"])
    stream = Stream(parser)
    events = list(read_cast(SECOND_TURN).events())
    parser.typed(typed(SECOND_TURN)[0])
    for e in events:
        if e.kind == "o":
            stream.feed(e.data.encode())
        if parser.turn_over():
            break
    assert parser.turn_over() == "✻ Baked for 1s · done 9:12 PM"
    assert parser.result().reply == ("Here is the plan.\nDELEGATE: Create models/user.py with a User class that has "
                                     "a name.\nEND")


def test_a_screen_keeps_what_cursor_moves_laid_out_and_only_changed_cells_rewrote():
    screen = Screen(40, 5)
    screen.feed("● Done:\x1b[9Gcreated\r\n  line two\r\n")
    screen.feed("\x1b[1;3HD\x1b[2;5Hx")  # a redraw that rewrites only what changed
    assert screen.text().splitlines()[:2] == ["● Done: created", "  lixe two"]


def test_a_screen_keeps_the_rows_that_scroll_off_the_main_screen_but_not_the_alternate_ones():
    screen = Screen(20, 3)
    screen.feed("one\r\ntwo\r\nthree\r\nfour")
    assert screen.history == ["one"] and screen.text() == "one\ntwo\nthree\nfour\n"
    screen.feed("\x1b[?1049h\x1b[2J\x1b[Ha\r\nb\r\nc\r\nd")
    assert screen.history == ["one"] and screen.row(0) == "b"
    screen.feed("\x1b[?1049l")
    assert screen.row(2) == "four"


def test_a_screen_gives_wide_characters_two_cells_and_keeps_the_window_title():
    screen = Screen(10, 2)
    screen.feed("\x1b]0;✳ Claude Code\x07日本x\x1b[5Gy")
    assert screen.row(0) == "日本y" and screen.title == "✳ Claude Code"


def test_a_tool_call_and_its_result_are_not_part_of_the_reply():
    parser = make_parser("claude-tui", CFG.agents["claude-tui"])
    parser.typed("Check the model")
    parser.feed_screen("❯ Check the model\r\n\r\n● Read(models/user.py)\r\n  ⎿  Read 3 lines\r\n\r\n"
                       "● The model is fine:\r\n  - it has a name\r\n\r\n✻ Baked for 2s\r\n")
    assert parser.turn_over() == "✻ Baked for 2s"
    assert parser.result().reply == "The model is fine:\n- it has a name"


def small_screen_parser():
    return make_parser("claude-tui", dataclasses.replace(CFG.agents["claude-tui"], cols=40, rows=6))


def test_an_earlier_turns_end_is_not_this_turns_before_this_turns_message_is_echoed():
    parser = small_screen_parser()
    parser.typed("Second message")
    parser.feed_screen("❯ First message\r\n\r\n● First reply.\r\n\r\n✻ Baked for 1s\r\n")
    assert parser.turn_over() is None
    parser.feed_screen("❯ Second message\r\n\r\n● Second reply.\r\n\r\n✻ Brewed for 0s")
    assert parser.turn_over() == "✻ Brewed for 0s" and parser.result().reply == "Second reply."


def test_a_reply_longer_than_the_alternate_screen_ends_its_turn_with_what_is_left_of_it():
    parser = small_screen_parser()
    parser.typed("Check")
    parser.feed_screen("\x1b[?1049h\x1b[H❯ Check\r\n\r\n● one\r\n")
    parser.feed_screen("  two\r\n  three\r\n  four\r\n  five\r\n\r\n✻ Baked for 2s")  # the echo is gone
    assert parser.turn_over() == "✻ Baked for 2s" and parser.result().reply == "two\nthree\nfour\nfive"
