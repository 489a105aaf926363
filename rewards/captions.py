"""Caption scorers for dense captioning: METEOR (Java, via pycocoevalcap's jar), CIDEr, ROUGE-L,
or any `fn(hypothesis, reference) -> float`.

A scorer answers two questions: `pairs` (one score per hypothesis/reference pair, what SODA_c
weighs by IoU) and `corpus` (one score for a set of pairs, what the tIoU-averaged METEOR/CIDEr of
the ActivityNet evaluation computes per video). METEOR runs one long-lived Java process, started
on first use and reused; requests are pipelined in chunks so a batch costs few round trips.
"""

from __future__ import annotations

import atexit
import os
import re
import select
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

_KEEP = re.compile(r"[^a-z0-9' ]+")


def normalize_caption(text: str) -> str:
    """ASCII only, lower case, punctuation removed, whitespace collapsed: close to the PTB
    tokenisation the ActivityNet evaluation applies, and safe for METEOR's line protocol."""
    text = text.encode("ascii", "ignore").decode().lower()
    return " ".join(_KEEP.sub(" ", text).split())


class CaptionScorer:
    """Base class. Subclasses implement `pairs`; `corpus` defaults to the mean of the pairs.

    `batchable` says whether a pair's score is independent of the other pairs in the call (true
    for METEOR and ROUGE-L; false for CIDEr, whose IDF comes from the references in the call)."""

    name = "caption"
    batchable = True

    def pairs(self, hyps: Sequence[str], refs: Sequence[str]) -> list[float]:
        raise NotImplementedError

    def corpus(self, hyps: Sequence[str], refs: Sequence[str]) -> float:
        if not hyps:
            return 0.0
        scores = self.pairs(hyps, refs)
        return sum(scores) / len(scores)

    def corpus_many(self, groups: Sequence[tuple[Sequence[str], Sequence[str]]]) -> list[float]:
        """`corpus` of each (hyps, refs) group."""
        return [self.corpus(h, r) for h, r in groups]


class FunctionScorer(CaptionScorer):
    """Wrap `fn(hypothesis, reference) -> float` (e.g. a deterministic scorer for tests)."""

    def __init__(self, fn: Callable[[str, str], float], name: str | None = None):
        self.fn = fn
        self.name = name or getattr(fn, "__name__", "caption")

    def pairs(self, hyps: Sequence[str], refs: Sequence[str]) -> list[float]:
        return [float(self.fn(h, r)) for h, r in zip(hyps, refs, strict=True)]


class RougeLScorer(CaptionScorer):
    """ROUGE-L F-measure (rouge-score)."""

    name = "rouge_l"

    def pairs(self, hyps: Sequence[str], refs: Sequence[str]) -> list[float]:
        from rewards.accuracy import rouge_l

        return [rouge_l(h, r) for h, r in zip(hyps, refs, strict=True)]


class CiderScorer(CaptionScorer):
    """CIDEr-D as pycocoevalcap computes it; IDF comes from the references of the call."""

    name = "cider"
    batchable = False

    def pairs(self, hyps: Sequence[str], refs: Sequence[str]) -> list[float]:
        from pycocoevalcap.cider.cider import Cider

        if not hyps:
            return []
        gts = {i: [normalize_caption(r)] for i, r in enumerate(refs)}
        res = {i: [normalize_caption(h)] for i, h in enumerate(hyps)}
        if not any(g[0] for g in gts.values()):
            return [0.0] * len(hyps)
        _, scores = Cider().compute_score(gts, res)
        return [float(s) for s in scores]


class _JavaGone(Exception):
    """METEOR's JVM closed its output or did not answer in time."""


class MeteorScorer(CaptionScorer):
    """METEOR 1.5 (the jar shipped in pycocoevalcap, `-l en -norm`), in one reused Java process."""

    name = "meteor"
    # Replies read back per write: ~100 bytes each keeps Java's output under the 64 KiB pipe
    # buffer, so Java never blocks writing while we are still writing (no deadlock).
    _MAX_REPLIES = 256

    # A reply not seen within this many seconds means the JVM is stuck (stopped, swapping, deadlocked).
    read_timeout_s: float = 60.0
    startup_timeout_s: float = 180.0  # the first reply of a new JVM also waits for it to start

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._buffer = b""
        self._fresh = True
        self._stderr: Any = None
        self._lock = threading.Lock()
        self._atexit = False

    def _start(self) -> subprocess.Popen:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        java = shutil.which("java")
        if java is None:
            raise RuntimeError(
                "METEOR needs a Java runtime, and `java` is not on PATH. Install one (the project's setup "
                "does: e.g. `apt-get install -y default-jre-headless`), or score captions with "
                "caption_scorer='cider' or 'rouge_l'."
            )
        import pycocoevalcap.meteor.meteor as meteor_module

        jar_dir = os.path.dirname(os.path.abspath(meteor_module.__file__))
        self._stderr = tempfile.TemporaryFile()
        self._buffer = b""
        self._fresh = True
        self._proc = subprocess.Popen(
            [java, "-jar", "-Xmx2G", "meteor-1.5.jar", "-", "-", "-stdio", "-l", "en", "-norm"],
            cwd=jar_dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
        )
        if not self._atexit:
            atexit.register(self.close)
            self._atexit = True
        return self._proc

    def _exchange(self, lines: Sequence[str], replies_per_line: Sequence[int]) -> list[str]:
        """Send `lines`, read the replies; a dead or stuck JVM is killed and replaced once before this fails."""
        try:
            return self._exchange_once(lines, replies_per_line)
        except (OSError, _JavaGone) as first:
            self._kill()
            try:
                return self._exchange_once(lines, replies_per_line)
            except (OSError, _JavaGone) as second:
                self._kill()
                raise RuntimeError(
                    f"METEOR's Java process failed twice ({first}; after a restart: {second})") from second

    def _readline(self, proc: subprocess.Popen) -> bytes:
        """One reply line, or _JavaGone when the process closed its output or sent nothing for read_timeout_s."""
        fd = proc.stdout.fileno()  # type: ignore[union-attr]
        limit = self.startup_timeout_s if self._fresh else self.read_timeout_s
        deadline = time.monotonic() + limit
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise _JavaGone(f"no reply within {limit:g} s (the JVM is stuck or stopped)")
            chunk = os.read(fd, 65536)
            if not chunk:
                raise _JavaGone(f"the process stopped: {self._error_text()}")
            self._buffer += chunk
        self._fresh = False
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line + b"\n"

    def _exchange_once(self, lines: Sequence[str], replies_per_line: Sequence[int]) -> list[str]:
        proc = self._start()
        assert proc.stdin is not None and proc.stdout is not None
        out: list[str] = []
        i = 0
        while i < len(lines):
            j, expected = i, 0
            while j < len(lines) and (j == i or expected + replies_per_line[j] <= self._MAX_REPLIES):
                expected += replies_per_line[j]
                j += 1
            proc.stdin.write("".join(line + "\n" for line in lines[i:j]).encode())
            proc.stdin.flush()
            for _ in range(expected):
                out.append(self._readline(proc).decode().strip())
            i = j
        return out

    def _error_text(self) -> str:
        if self._stderr is None:
            return "(no output)"
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")[-2000:] or "(no output)"

    def _stats(self, hyps: Sequence[str], refs: Sequence[str]) -> list[str]:
        lines = [
            f"SCORE ||| {normalize_caption(r)} ||| {normalize_caption(h)}" for h, r in zip(hyps, refs, strict=True)
        ]
        return self._exchange(lines, [1] * len(lines))

    def pairs(self, hyps: Sequence[str], refs: Sequence[str]) -> list[float]:
        if not hyps:
            return []
        with self._lock:
            stats = self._stats(hyps, refs)
            replies = self._exchange(["EVAL ||| " + " ||| ".join(stats)], [len(stats) + 1])
        return [float(x) for x in replies[:-1]]

    def corpus_many(self, groups: Sequence[tuple[Sequence[str], Sequence[str]]]) -> list[float]:
        out = [0.0] * len(groups)
        live = [i for i, (h, _) in enumerate(groups) if h]
        if not live:
            return out
        with self._lock:
            hyps = [h for i in live for h in groups[i][0]]
            refs = [r for i in live for r in groups[i][1]]
            stats = self._stats(hyps, refs)
            evals, pos = [], 0
            for i in live:
                size = len(groups[i][0])
                evals.append("EVAL ||| " + " ||| ".join(stats[pos : pos + size]))
                pos += size
            replies = self._exchange(evals, [len(groups[i][0]) + 1 for i in live])
        pos = 0
        for i in live:
            pos += len(groups[i][0]) + 1
            out[i] = float(replies[pos - 1])
        return out

    def corpus(self, hyps: Sequence[str], refs: Sequence[str]) -> float:
        return self.corpus_many([(hyps, refs)])[0]

    def _kill(self) -> None:
        """End the current process for certain (also a stopped or dying one) so the next call starts afresh."""
        proc, self._proc = self._proc, None
        self._buffer = b""
        if proc is not None:
            proc.kill()  # SIGKILL also ends a stopped process; a no-op on one already gone
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass

    def close(self) -> None:
        """Stop the Java process (also done at exit)."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            try:
                proc.stdin.close()  # type: ignore[union-attr]
                proc.wait(timeout=5)
            except Exception:
                proc.kill()


_SHARED: dict[str, CaptionScorer] = {}
_FACTORIES: dict[str, Callable[[], CaptionScorer]] = {
    "meteor": MeteorScorer,
    "cider": CiderScorer,
    "rouge_l": RougeLScorer,
}
SCORER_NAMES = tuple(_FACTORIES)


def get_caption_scorer(spec: str | CaptionScorer | Callable[[str, str], float]) -> CaptionScorer:
    """A scorer by name ("meteor", "cider", "rouge_l"; one shared instance each), a scorer
    object, or a `fn(hypothesis, reference) -> float`."""
    if isinstance(spec, CaptionScorer):
        return spec
    if isinstance(spec, str):
        if spec not in _FACTORIES:
            raise ValueError(f"unknown caption scorer {spec!r}; allowed: {list(SCORER_NAMES)} or a callable")
        if spec not in _SHARED:
            _SHARED[spec] = _FACTORIES[spec]()
        return _SHARED[spec]
    if callable(spec):
        return FunctionScorer(spec)
    raise TypeError(f"caption scorer must be a name, a CaptionScorer or a callable, got {type(spec).__name__}")
