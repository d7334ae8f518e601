"""Scorers for the WavLLM tasks: WER/CER (ASR), corpus BLEU (ST), accuracy extractors for
SV (yes/no), ER (emotion label) and SQA (option letter), and an ER confusion table.

Word error rates come in two flavours:
  * plain (normalize=False): the reference's own scoring (fairseq `--scoring wer`): split on
    whitespace, compare tokens as they are;
  * normalized (normalize=True): lowercase, punctuation stripped (apostrophes inside words
    kept: "don't"), whitespace collapsed - the usual way to report ASR WER.
BLEU reproduces sacreBLEU's defaults (13a tokenisation, case-sensitive, 4-grams, 'exp'
smoothing, brevity penalty against the closest reference length, corpus-level statistics).
"""
import math
import re
import unicodedata
from collections import Counter, namedtuple

__all__ = ["normalize_text", "edit_counts", "ErrorRate", "wer", "cer", "tokenize_13a",
           "BleuScore", "corpus_bleu", "extract_yes_no", "extract_emotion", "parse_options",
           "extract_option", "accuracy", "confusion_table", "format_confusion"]


# ---------------------------------------------------------------- error rates

def normalize_text(text, lowercase=True, strip_punctuation=True):
    """Lowercases, strips punctuation (keeping apostrophes between letters), collapses spaces."""
    if lowercase:
        text = text.lower()
    if strip_punctuation:
        text = re.sub(r"(?<=\w)'(?=\w)", "\0", text)  # protect in-word apostrophes
        text = "".join(" " if unicodedata.category(c).startswith("P") or c in "`^~|<>=+$"
                       else c for c in text)
        text = text.replace("\0", "'")
    return " ".join(text.split())


def edit_counts(ref, hyp):
    """(substitutions, deletions, insertions) of a minimum-edit alignment of two sequences.

    Among alignments with the fewest edits, prefers substitutions over a deletion plus an
    insertion (the convention of sclite and jiwer)."""
    # Each cell holds (edits, substitutions, deletions, insertions); tuples compare on edits
    # first, so min() keeps the cheapest and breaks ties consistently.
    prev = [(j, 0, 0, j) for j in range(len(hyp) + 1)]
    for i in range(1, len(ref) + 1):
        cur = [(i, 0, i, 0)]
        for j in range(1, len(hyp) + 1):
            e, s, d, n = prev[j - 1]
            if ref[i - 1] == hyp[j - 1]:
                best = (e, s, d, n)
            else:
                best = (e + 1, s + 1, d, n)
            e, s, d, n = prev[j]
            best = min(best, (e + 1, s, d + 1, n), key=lambda t: t[0])
            e, s, d, n = cur[j - 1]
            best = min(best, (e + 1, s, d, n + 1), key=lambda t: t[0])
            cur.append(best)
        prev = cur
    _, s, d, n = prev[-1]
    return s, d, n


class ErrorRate(namedtuple("ErrorRate", "errors ref_len substitutions deletions insertions")):
    """Corpus totals; `.rate` = errors / reference length (inf for an empty reference with
    insertions, 0 when both are empty)."""

    @property
    def rate(self):
        if self.ref_len == 0:
            return 0.0 if self.errors == 0 else math.inf
        return self.errors / self.ref_len

    def __str__(self):
        return (f"{100 * self.rate:.2f}% ({self.errors}/{self.ref_len}: {self.substitutions} sub, "
                f"{self.deletions} del, {self.insertions} ins)")


def _error_rate(refs, hyps, split):
    if isinstance(refs, str) or isinstance(hyps, str):
        refs, hyps = [refs], [hyps]
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    tot = [0, 0, 0, 0]
    for r, h in zip(refs, hyps):
        rt, ht = split(r), split(h)
        s, d, i = edit_counts(rt, ht)
        tot[0] += len(rt)
        tot[1] += s
        tot[2] += d
        tot[3] += i
    return ErrorRate(tot[1] + tot[2] + tot[3], tot[0], tot[1], tot[2], tot[3])


def wer(refs, hyps, normalize=False):
    """Corpus word error rate of hypotheses against references (strings or lists of them)."""
    prep = normalize_text if normalize else (lambda t: t)
    return _error_rate(refs, hyps, lambda t: prep(t).split())


def cer(refs, hyps, normalize=False):
    """Corpus character error rate; whitespace runs count as one space character."""
    prep = normalize_text if normalize else (lambda t: " ".join(t.split()))
    return _error_rate(refs, hyps, lambda t: list(prep(t)))


# ---------------------------------------------------------------- BLEU (sacreBLEU defaults)

_13A_RULES = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),  # symbols and punctuation
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),  # period/comma unless after a digit
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),  # ... unless before a digit
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),       # dash after a digit
]


def tokenize_13a(line):
    """mteval-v13a tokenisation, as sacreBLEU's default '13a' tokenizer."""
    line = line.replace("<skipped>", "").replace("-\n", "").replace("\n", " ")
    if "&" in line:
        line = (line.replace("&quot;", '"').replace("&amp;", "&")
                .replace("&lt;", "<").replace("&gt;", ">"))
    line = f" {line} "
    for pattern, repl in _13A_RULES:
        line = pattern.sub(repl, line)
    return " ".join(line.split())


class BleuScore(namedtuple("BleuScore", "score counts totals precisions bp sys_len ref_len")):
    """score in 0..100 as sacreBLEU prints it; counts/totals per n-gram order."""

    def __str__(self):
        p = "/".join(f"{x:.1f}" for x in self.precisions)
        ratio = self.sys_len / self.ref_len if self.ref_len else 0.0
        return (f"BLEU = {self.score:.2f} {p} (BP = {self.bp:.3f} ratio = {ratio:.3f} "
                f"hyp_len = {self.sys_len} ref_len = {self.ref_len})")


def _ngrams(tokens, max_order):
    return Counter(tuple(tokens[i:i + n]) for n in range(1, max_order + 1)
                   for i in range(len(tokens) - n + 1))


def bleu_from_stats(correct, total, sys_len, ref_len, smooth="exp", smooth_value=0.1):
    """BLEU from corpus n-gram statistics (sacreBLEU's compute_bleu, without effective order)."""
    order = len(correct)
    bp = 1.0
    if sys_len < ref_len:
        bp = math.exp(1 - ref_len / sys_len) if sys_len > 0 else 0.0
    precisions = [0.0] * order
    if not any(correct):
        return BleuScore(0.0, list(correct), list(total), precisions, bp, sys_len, ref_len)
    halvings = 1.0
    for n in range(order):
        if total[n] == 0:
            break
        if correct[n] == 0:
            if smooth == "exp":  # NIST: 1/2, 1/4, ... of a match for each empty order
                halvings *= 2
                precisions[n] = 100.0 / (halvings * total[n])
            elif smooth == "floor":
                precisions[n] = 100.0 * smooth_value / total[n]
        else:
            precisions[n] = 100.0 * correct[n] / total[n]
    # log(0) stands in as a huge negative number: the score is then 0.
    logs = [math.log(p) if p > 0 else -9999999999 for p in precisions]
    score = bp * math.exp(sum(logs) / order)
    return BleuScore(score, list(correct), list(total), precisions, bp, sys_len, ref_len)


def corpus_bleu(hyps, refs, tokenize="13a", lowercase=False, max_order=4, smooth="exp",
                smooth_value=0.1):
    """Corpus BLEU of `hyps` against `refs`.

    refs: one list of reference strings (one per hypothesis), or several such lists (reference
    sets, as sacreBLEU takes them). An empty or None reference is skipped for its segment."""
    if smooth not in ("exp", "floor", "none"):
        raise ValueError(f"unknown smoothing {smooth!r}")
    if tokenize not in ("13a", "none"):
        raise ValueError(f"unknown tokenize {tokenize!r} (13a or none)")
    if refs and isinstance(refs[0], str):
        refs = [refs]
    for r in refs:
        if len(r) != len(hyps):
            raise ValueError(f"a reference set has {len(r)} segments for {len(hyps)} hypotheses")

    def prep(t):
        t = t.lower() if lowercase else t
        return (tokenize_13a(t) if tokenize == "13a" else t).split()

    correct, total = [0] * max_order, [0] * max_order
    sys_len = ref_len = 0
    for k, hyp in enumerate(hyps):
        ref_counts, ref_lens = Counter(), []
        for ref_set in refs:
            if not ref_set[k]:
                continue
            toks = prep(ref_set[k])
            ref_lens.append(len(toks))
            for g, c in _ngrams(toks, max_order).items():
                ref_counts[g] = max(ref_counts[g], c)
        htoks = prep(hyp)
        sys_len += len(htoks)
        # Closest reference length; on a tie the first reference set wins (as sacreBLEU).
        ref_len += min(ref_lens, key=lambda n: abs(len(htoks) - n)) if ref_lens else 0
        for g, c in _ngrams(htoks, max_order).items():
            total[len(g) - 1] += c
            correct[len(g) - 1] += min(c, ref_counts.get(g, 0))
    return bleu_from_stats(correct, total, sys_len, ref_len, smooth, smooth_value)


# ---------------------------------------------------------------- accuracy extractors

def _words(text):
    return re.findall(r"[a-z']+", text.lower())


_NEGATORS = {"not", "no", "never", "isn't", "wasn't", "doesn't", "don't", "neither", "nor"}


def extract_yes_no(text):
    """'yes' / 'no' from an SV answer ("Yes, there is only one speaker." / "No, two people
    are talking."), or None. The first yes/no word decides; without one, phrases about the
    number of speakers do."""
    for w in _words(text):
        if w in ("yes", "yeah", "yep", "correct", "true"):
            return "yes"
        if w in ("no", "nope", "incorrect", "false"):
            return "no"
    t = " ".join(_words(text))
    if re.search(r"\b(two|three|several|multiple|different|more than one|many)\s+(speakers|people|persons|voices)\b", t):
        return "no"
    if re.search(r"\b(only one|one|a single|single)\s+(speaker|person|voice)\b", t):
        return "yes"
    return None


# Label -> words that name it (IEMOCAP's four classes, as the WavLLM ER data uses).
EMOTION_WORDS = {
    "neutral": ("neutral", "calm", "normal", "indifferent"),
    "happy": ("happy", "happiness", "joy", "joyful", "excited", "excitement", "glad",
              "cheerful", "delighted", "pleased"),
    "sad": ("sad", "sadness", "unhappy", "sorrow", "sorrowful", "upset", "depressed",
            "melancholy", "disappointed"),
    "angry": ("angry", "anger", "annoyed", "furious", "mad", "irritated", "frustrated",
              "frustration"),
}


def extract_emotion(text, labels=EMOTION_WORDS):
    """The emotion label an ER answer names first ("The speaker sounds sad." -> 'sad'), or
    None. A word right after a negation ("not angry") does not count."""
    lookup = {w: label for label, words in labels.items() for w in words}
    words = _words(text)
    for i, w in enumerate(words):
        if w in lookup and not (i and words[i - 1] in _NEGATORS):
            return lookup[w]
    return None


def parse_options(prompt):
    """{'A': 'Start to take exercise', ...} from an SQA prompt "... A. xxx; B. yyy; C. zzz.".

    Options are the longest run of markers "A. ", "B. ", "C. "... in letter order (separated by
    ';', ',' or nothing, as the Gaokao prompts vary); each text runs to the next marker."""
    marks = [(m.group(1), m.start(1), m.end()) for m in
             re.finditer(r"(?<![A-Za-z0-9])([A-Z])\.\s+", prompt)]
    best = []
    for i, (letter, _, _) in enumerate(marks):
        if letter != "A":
            continue
        chain = [marks[i]]
        for m in marks[i + 1:]:
            if ord(m[0]) == ord(chain[-1][0]) + 1:
                chain.append(m)
        if len(chain) >= len(best):  # the last, longest chain: the options end the prompt
            best = chain
    if len(best) < 2:
        return {}
    options = {}
    for k, (letter, _, end) in enumerate(best):
        stop = best[k + 1][1] if k + 1 < len(best) else len(prompt)
        options[letter] = prompt[end:stop].strip().rstrip(";,").strip().rstrip(".").strip()
    return options


def extract_option(text, options=None):
    """The option letter an SQA answer picks, or None.

    In order: "answer/option is B" phrasing; an answer starting with the letter ("B",
    "B.", "(B)", "B) ..."); a letter marked "B." or "(B)" anywhere; else the option text
    (from `options`, see parse_options) that the answer contains - the unique one, or the
    longest when several do."""
    letters = "".join(sorted(options)) if options else "ABC"
    cls = f"[{letters}]"
    patterns = [
        rf"\b(?:answer|option|choice)\s*(?:is|would be|should be|:)?\s*:?\s*\(?({cls})\b",
        rf"^\s*\(?({cls})(?:[\.\):,;]|\s*$)",
        rf"(?:^|[\s(])\(?({cls})[\.\)](?=\s|$)",
    ]
    for p in patterns:
        m = re.search(p, text)
        if m:
            return m.group(1)
    if options:
        norm = normalize_text(text)
        hits = [(len(normalize_text(t)), k) for k, t in options.items()
                if normalize_text(t) and normalize_text(t) in norm]
        if hits:
            hits.sort(reverse=True)
            if len(hits) == 1 or hits[0][0] > hits[1][0]:
                return hits[0][1]
    return None


def accuracy(predicted, gold):
    """Fraction of predictions equal to the gold labels (None never matches)."""
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions but {len(gold)} gold labels")
    if not gold:
        return 0.0
    return sum(p is not None and p == g for p, g in zip(predicted, gold)) / len(gold)


def confusion_table(gold, predicted, labels=None):
    """{gold label: {predicted label or None: count}} over `labels` (default: those seen)."""
    if len(predicted) != len(gold):
        raise ValueError(f"{len(predicted)} predictions but {len(gold)} gold labels")
    labels = list(labels) if labels else sorted(set(gold) | {p for p in predicted if p is not None})
    table = {g: {p: 0 for p in labels + [None]} for g in labels}
    for g, p in zip(gold, predicted):
        if g not in table:
            raise ValueError(f"gold label {g!r} is not one of {labels}")
        table[g][p if p in labels else None] += 1
    return table


def format_confusion(table):
    """Plain-text rendering: rows gold, columns predicted ('-' = no label found), recall."""
    labels = list(table)
    cols = labels + [None]
    width = max(8, *(len(str(c)) + 1 for c in labels))
    head = "gold\\pred".ljust(width) + "".join(str(c if c else "-").rjust(width) for c in cols)
    lines = [head + "recall".rjust(width)]
    for g in labels:
        row = table[g]
        n = sum(row.values())
        rec = f"{100 * row[g] / n:.1f}%" if n else "-"
        lines.append(str(g).ljust(width) + "".join(str(row[c]).rjust(width) for c in cols)
                     + rec.rjust(width))
    return "\n".join(lines)
