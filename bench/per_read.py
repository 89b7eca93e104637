#!/usr/bin/env python3
"""What handling one pty read costs orchestra, in CPU µs per 4 KB, for three kinds of output.

    python bench/per_read.py [--mb 1] [--runs 20]

Each kind of output is cut into 4095-byte reads (what a Linux pty hands over at a time) and
fed through AgentSession's handling of a read (redaction, tmux window, decode, escape
stripping, search, parser, transcript event written to a file), best of --runs passes.
The same again with three API keys set (masked in what is stored and shown, cut apart by escape
sequences or line breaks or not), as a user with Anthropic, OpenAI and GitHub keys has.
Beside it, the two steps that have a straightforward baseline:
  transcript JSON   orchestra's json_string    against json.dumps(text).encode()
  cleaning          orchestra's Stream path    against ansi.strip() of the decoded text, the
                    (plain reads: Cleaner.feed_plain;     general path every read took before
                    others: Cleaner.feed)                 the plain shortcut
"""
from __future__ import annotations

import argparse
import codecs
import json
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
}


def reads_of(line: bytes, mb: float) -> list[bytes]:
    data = line * int(mb * 1024 * 1024 / len(line))
    return [data[i:i + 4095] for i in range(0, len(data), 4095)]


def best_us(make, items: list, runs: int) -> float:
    """make() gives a fresh function of one item; the best pass, in µs per item."""
    best = float("inf")
    for _ in range(runs):
        fn = make()
        t0 = time.perf_counter()
        for item in items:
            fn(item)
        best = min(best, time.perf_counter() - t0)
    return best / len(items) * 1e6


def main() -> None:
    from orchestra.ansi import _PLAIN, Cleaner, strip
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

    def handling(redactor=None):
        s = AgentSession(prof, "", tmp, tmp / "r.cast", redactor=redactor)
        s.cast = CastWriter(tmp / "r.cast", 120, 40)
        s.phase = WORKING
        return s._handle

    def handling_with_keys():
        return handling(Redactor(keys))

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
        return lambda r: strip(decoder.decode(r))

    print(f"# orchestra bench: CPU per 4 KB pty read (best of {args.runs} passes over {args.mb:g} MB)")
    print(f"{'output':>12} | {'whole read µs':>13} | {'3 keys set µs':>13} | {'JSON µs':>8} | "
          f"{'json.dumps µs':>13} | {'cleaning µs':>11} | {'strip() µs':>10}")
    print("-" * 100)
    try:
        for kind, line in KINDS.items():
            reads = reads_of(line, args.mb)
            decoder = codecs.getincrementaldecoder("utf-8")("replace")  # a read may cut a character
            texts = [(decoder.decode(r), not r.translate(None, _PLAIN)) for r in reads]
            row = [best_us(handling, reads, args.runs), best_us(handling_with_keys, reads, args.runs),
                   best_us(json_ours, texts, args.runs),
                   best_us(json_stdlib, texts, args.runs), best_us(clean_ours, reads, args.runs),
                   best_us(clean_baseline, reads, args.runs)]
            print(f"{kind:>12} | {row[0]:>13.1f} | {row[1]:>13.1f} | {row[2]:>8.1f} | {row[3]:>13.1f} | "
                  f"{row[4]:>11.1f} | {row[5]:>10.1f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
