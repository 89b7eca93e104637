#!/usr/bin/env python3
"""What handling one pty read costs orchestra, in CPU µs per 4 KB, for four kinds of output.

    python bench/per_read.py [--mb 1] [--runs 20]

Each kind of output (plain lines, colour, a TUI's redraws, a headless agent's JSON events)
is cut into 4095-byte reads (what a Linux pty hands over at a time) and fed through
AgentSession's handling of a read (redaction, tmux window, decode, escape stripping, search,
parser, transcript event written to a file), best of --runs passes.
The same again with three API keys set (masked in what is stored and shown, cut apart by escape
sequences, line breaks or JSON escapes or not), as a user with Anthropic, OpenAI and GitHub keys has,
and with a 1.7 KB PEM key set too (a multi-line key: its line breaks may be written three ways).
Beside it, the two steps that have a straightforward baseline:
  transcript JSON   orchestra's json_string    against json.dumps(text).encode(), and the size of
                                               the one against the other's (with the C extension,
                                               non-ASCII text is written as UTF-8)
  cleaning          orchestra's Stream path    against ansi.py's Python strip() of the decoded text,
                    (plain reads: Cleaner.feed_plain;     the general path every read took before the
                    others: Cleaner.feed, in C where      plain shortcut and the C cleaner
                    orchestra._cclean was built)
"""
from __future__ import annotations

import argparse
import base64
import codecs
import json
import random
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

KINDS = {
    "plain lines": (b"x" * 70 + b" modified? \r\n"),
    "ANSI colour": (b"\x1b[31mflood\x1b[0m " * 8 + b"\r\n"),
    "TUI": ("\x1b[2K\x1b[1G\x1b[38;5;246m│\x1b[39m \x1b[1mRead\x1b[22m(src/app.py) ⎿  42 lines\r\n").encode(),
    # a headless agent's events: JSON escapes (backslashes) in every line
    "JSON events": (b'{"type":"assistant","message":{"content":[{"type":"text","text":"Read src/app.py:\\n'
                    b'def main():\\n    print(\\"ok\\")\\n"}]},"session_id":"5f1c"}\r\n'),
}


def reads_of(line: bytes, mb: float) -> list[bytes]:
    data = line * int(mb * 1024 * 1024 / len(line))
    return [data[i:i + 4095] for i in range(0, len(data), 4095)]


def best_us(make, items: list, runs: int) -> float:
    """make() gives a fresh function of one item; the best pass, in CPU µs per item (process time:
    what other processes on a busy machine take of it is not counted)."""
    best = float("inf")
    for _ in range(runs):
        fn = make()
        t0 = time.process_time()
        for item in items:
            fn(item)
        best = min(best, time.process_time() - t0)
    return best / len(items) * 1e6


def main() -> None:
    from orchestra import ansi
    from orchestra.ansi import _PLAIN, Cleaner
    from orchestra.config import Profile
    from orchestra.redact import Redactor
    from orchestra.session import WORKING, AgentSession
    from orchestra.transcript import CastWriter, json_string

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=float, default=1)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="orchestra-bench-"))
    prof = Profile(name="bench", command=["x"], completion=re.compile(r"^DONE \d", re.M), timeout=600,
                   parser="generic")

    keys = ["sk-ant-api03-" + "Zq7" * 30, "sk-proj-" + "a1B2" * 12, "ghp_" + "0aZ9" * 9]
    body = base64.b64encode(random.Random(0).randbytes(1200)).decode()  # an RSA 2048 key's size
    pem = "\n".join(["-----BEGIN PRIVATE KEY-----", *(body[i:i + 64] for i in range(0, len(body), 64)),
                     "-----END PRIVATE KEY-----"])
    with_pem = Redactor(keys + [pem])  # one for every pass: building it is not what is measured

    def handling(redactor=None):
        s = AgentSession(prof, "", tmp, tmp / "r.cast", redactor=redactor)
        s.cast = CastWriter(tmp / "r.cast", 120, 40)
        s.phase = WORKING
        return s._handle

    def handling_with_keys():
        return handling(Redactor(keys))

    def handling_with_pem():
        with_pem.flush()
        return handling(with_pem)

    def json_ours():  # items: (text, plain) as Stream gives them
        return lambda item: json_string(*item)

    def json_stdlib():
        return lambda item: json.dumps(item[0]).encode()

    def clean_ours():
        cleaner, decoder = Cleaner(), codecs.getincrementaldecoder("utf-8")("replace")

        def clean(r: bytes) -> str:
            text = cleaner.feed_plain(r)
            return text if text is not None else cleaner.feed(decoder.decode(r))
        return clean

    def clean_baseline():
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        return lambda r: python_strip(decoder.decode(r))

    def python_strip(text: str) -> str:  # ansi.strip() without the C cleaner
        return ansi._controls(ansi._unescape(text) if "\x1b" in text else text)

    print(f"# orchestra bench: CPU per 4 KB pty read (best of {args.runs} passes over {args.mb:g} MB); cleaning "
          f"and JSON {'in C (orchestra._cclean)' if ansi.native() else 'in Python (orchestra._cclean not built)'}")
    print(f"{'output':>12} | {'whole read µs':>13} | {'3 keys set µs':>13} | {'+ PEM key µs':>12} | "
          f"{'JSON µs':>8} | {'json.dumps µs':>13} | {'JSON size':>9} | {'cleaning µs':>11} | "
          f"{'Python strip() µs':>17}")
    print("-" * 137)
    try:
        for kind, line in KINDS.items():
            reads = reads_of(line, args.mb)
            decoder = codecs.getincrementaldecoder("utf-8")("replace")  # a read may cut a character
            texts = [(decoder.decode(r), not r.translate(None, _PLAIN)) for r in reads]
            row = [best_us(handling, reads, args.runs), best_us(handling_with_keys, reads, args.runs),
                   best_us(handling_with_pem, reads, args.runs), best_us(json_ours, texts, args.runs),
                   best_us(json_stdlib, texts, args.runs), best_us(clean_ours, reads, args.runs),
                   best_us(clean_baseline, reads, args.runs)]
            size = sum(len(json_string(*t)) for t in texts) / sum(len(json.dumps(t[0])) for t in texts)
            print(f"{kind:>12} | {row[0]:>13.1f} | {row[1]:>13.1f} | {row[2]:>12.1f} | {row[3]:>8.1f} | "
                  f"{row[4]:>13.1f} | {size:>8.0%} | {row[5]:>11.1f} | {row[6]:>17.1f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
