"""YOLO label files of a batch parsed in a few array operations: what `parse_label_text` returns for each, at a
fraction of the cost where most files are clean (Python's cost per value dominates the check of small images).

The layout of the batch (lines, and values per line) is read off its bytes by array operations; the values are
read by Python's own `float`. A file with anything else (a row that is not five finite numbers within range, a
character that no number or plain separator has) is parsed row by row by `parse_label_text`, so every problem is
named exactly as it would be alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.data.formats.yolo import LabelProblem, parse_label_text

Parsed = tuple[np.ndarray, np.ndarray, list[LabelProblem]]

# all that a plain file holds: digits, the signs of a number, spaces, tabs and line ends
_PLAIN_CHARS = b"0123456789.eE+- \t\r\n"
_SPACE, _TAB, _LF, _CR = 32, 9, 10, 13
CHUNK = 2048  # files parsed together at most


@dataclass
class LabelBatch:
    """The parse of a batch of label files: the valid boxes of all of them in one array, file after file."""

    boxes: np.ndarray  # (boxes, 4) float32: xyxy pixels
    ids: np.ndarray  # (boxes,) int64: class ids
    counts: list[int]  # boxes of each file
    problems: list  # of each file: its LabelProblems (an empty sequence for a clean file)
    maybe_repeated: list[bool]  # of each file: may it repeat a row? (every file that does is among them)

    def files(self) -> list[Parsed]:
        """What `parse_label_text` returns for each file."""
        out, end = [], 0
        for n, problems in zip(self.counts, self.problems, strict=True):
            start, end = end, end + n
            out.append((self.boxes[start:end], self.ids[start:end], problems))
        return out


def parse_label_batch(
    texts: list[str], paths: list[str], sizes: list[tuple[int, int]], num_classes: int | None = None
) -> LabelBatch:
    """`parse_label_text(texts[i], paths[i], *sizes[i], num_classes)` for every i, as one `LabelBatch`."""
    if len(texts) > CHUNK:  # the per-character arrays of a chunk stay small, whatever the batch
        parts = [
            _parse(texts[i : i + CHUNK], paths[i : i + CHUNK], sizes[i : i + CHUNK], num_classes)
            for i in range(0, len(texts), CHUNK)
        ]
        return LabelBatch(
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.ids for p in parts]),
            [n for p in parts for n in p.counts],
            [x for p in parts for x in p.problems],
            [x for p in parts for x in p.maybe_repeated],
        )
    return _parse(texts, paths, sizes, num_classes)


def _parse(
    texts: list[str], paths: list[str], sizes: list[tuple[int, int]], num_classes: int | None
) -> LabelBatch:
    n = len(texts)
    fast, counts, v = _plain_rows(texts)
    boxes, ids = np.zeros((0, 4), np.float32), np.zeros(0, np.int64)
    out_counts = np.zeros(n, np.int64)
    maybe_repeated = np.ones(n, bool)  # files parsed row by row are compared as text
    slow = np.ones(n, bool)
    keep = np.zeros(0, bool)
    if fast:
        c, cx, cy, w, h = v.T
        coords = v[:, 1:]
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(v).all(axis=1) | (np.abs(c) >= 2**31)
            cls = np.trunc(np.where(bad, 0, c))  # int(float(x)), as the row-by-row parse reads a class id
            if num_classes is not None:
                bad |= (cls < 0) | (cls >= num_classes)
            bad |= (coords < 0).any(axis=1) | (coords > 1.0 + 1e-6).any(axis=1) | (w <= 0) | (h <= 0)
        owner = np.repeat(np.arange(len(fast)), counts)
        width = np.repeat(np.asarray([sizes[i][0] for i in fast], np.float64), counts)
        height = np.repeat(np.asarray([sizes[i][1] for i in fast], np.float64), counts)
        boxes = np.stack(
            [
                np.maximum(0.0, cx - w / 2) * width,
                np.maximum(0.0, cy - h / 2) * height,
                np.minimum(1.0, cx + w / 2) * width,
                np.minimum(1.0, cy + h / 2) * height,
            ],
            axis=1,
        ).astype(np.float32)
        ids = cls.astype(np.int64)
        clean = np.bincount(owner[bad], minlength=len(fast)) == 0  # of the fast files
        files = np.asarray(fast)[clean]
        slow[files] = False
        out_counts[files] = np.asarray(counts)[clean]
        maybe_repeated[files] = _repeating_owners(v, owner, len(fast))[clean]
        keep = clean[owner]
    problems: list = [()] * n  # (read only: one empty tuple shared by the clean files)
    per_file: list[Parsed | None] = [None] * n
    for i in np.flatnonzero(slow).tolist():
        per_file[i] = parsed = parse_label_text(texts[i], Path(paths[i]), *sizes[i], num_classes)
        out_counts[i], problems[i] = len(parsed[0]), parsed[2]
    counts_list = out_counts.tolist()
    if slow.any():  # put the row-by-row files' boxes in their place
        boxes, ids = _in_file_order(per_file, boxes[keep], ids[keep], counts_list)
    return LabelBatch(boxes, ids, counts_list, problems, maybe_repeated.tolist())


def _in_file_order(
    per_file: list[Parsed | None], boxes: np.ndarray, ids: np.ndarray, counts: list[int]
) -> tuple[np.ndarray, np.ndarray]:
    """The boxes and ids of every file in file order: those parsed row by row (in `per_file`) among the others
    (`boxes` and `ids`, in file order)."""
    box_parts, id_parts, start = [np.zeros((0, 4), np.float32)], [np.zeros(0, np.int64)], 0
    for p, k in zip(per_file, counts, strict=True):
        if p is None:
            box_parts.append(boxes[start : start + k])
            id_parts.append(ids[start : start + k])
            start += k
        else:
            box_parts.append(p[0])
            id_parts.append(p[1])
    return np.concatenate(box_parts), np.concatenate(id_parts)


def _plain_rows(texts: list[str]) -> tuple[list[int], list[int], np.ndarray]:
    """The files whose every non-blank line is five plain values (and at least one is), their rows, and the
    values of those rows ((rows, 5) float64, file after file).

    Lines end as `str.splitlines` ends them: a plain file holds no line end but LF, CR and CRLF.
    """
    # each file's last line ends at the LF after it (a blank line more where the file ends with a line end)
    joined = "".join(t + "\n" for t in texts)
    if _plain(joined):  # the usual batch: one look at all of it
        plain = list(range(len(texts)))
    else:
        plain = [i for i, t in enumerate(texts) if _plain(t)]
        joined = "".join(texts[i] + "\n" for i in plain)
    if not plain:
        return [], [], np.zeros((0, 5))
    b = np.frombuffer(joined.encode("ascii"), np.uint8)
    lf, cr = b == _LF, b == _CR
    ends = lf.copy()
    ends[:-1] |= cr[:-1] & ~lf[1:]  # a CR ends a line unless an LF follows (CRLF ends it once, at the LF)
    space = (b == _SPACE) | (b == _TAB) | lf | cr
    starts = ~space
    starts[1:] &= space[:-1]  # the first character of each value
    # of each character: the line it is on (a line end is on the line it ends)
    line = np.cumsum(ends, dtype=np.int32) - ends
    n_lines = int(line[-1]) + 1
    per_line = np.bincount(line[starts], minlength=n_lines)
    first_char = np.cumsum([0] + [len(texts[i]) + 1 for i in plain[:-1]])
    first_line = line[first_char]
    file_of_line = np.repeat(np.arange(len(plain)), np.diff(first_line, append=n_lines))
    odd = np.bincount(file_of_line[(per_line != 0) & (per_line != 5)], minlength=len(plain)) > 0
    rows = np.bincount(file_of_line, weights=per_line == 5, minlength=len(plain)).astype(np.int64)
    keep = ~odd & (rows > 0)
    fast = [i for i, k in zip(plain, keep.tolist(), strict=True) if k]
    counts = rows[keep].tolist()
    tokens = " ".join(texts[i] for i in fast).split()
    if len(tokens) != 5 * sum(counts):  # (cannot be: the layout above splits as str.split does)
        return [], [], np.zeros((0, 5))
    try:
        values = np.fromiter(map(float, tokens), np.float64, len(tokens))
    except ValueError:  # a value such as "1e" or "--1": such files go row by row, the others stay
        good = [k for k, i in enumerate(fast) if _floats(texts[i])]
        fast, counts = [fast[k] for k in good], [counts[k] for k in good]
        tokens = " ".join(texts[i] for i in fast).split()
        values = np.fromiter(map(float, tokens), np.float64, len(tokens))
    return fast, counts, values.reshape(-1, 5)


def _plain(text: str) -> bool:
    """Whether `text` holds nothing but digits, the signs of a number, spaces, tabs and line ends."""
    return text.isascii() and not text.encode("ascii").translate(None, _PLAIN_CHARS)


def _floats(text: str) -> bool:
    try:
        for token in text.split():
            float(token)
    except ValueError:
        return False
    return True


def _repeating_owners(v: np.ndarray, owner: np.ndarray, owners: int) -> np.ndarray:
    """Of each of `owners` owners: may it have two rows of equal values? (Every owner that has is flagged.) Only
    such a file's text can repeat a row. Rows are compared by a mix of their values and owner: one sort, not six.
    """
    out = np.zeros(owners, bool)
    if len(v) < 2:
        return out
    # element-wise arithmetic only: equal rows give equal keys bit for bit (a dot product need not)
    key = owner * 4099.0
    for col, weight in zip(v.T, (1.0, 0.7548776662, 0.5698402910, 0.4301597090, 0.3247179572), strict=True):
        key = key + col * weight
    order = np.argsort(key, kind="stable")
    same = np.flatnonzero(key[order][1:] == key[order][:-1])
    out[owner[order][same]] = True
    out[owner[order][same + 1]] = True
    return out
