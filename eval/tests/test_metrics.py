"""Scorers against hand-computed cases and sacreBLEU's published examples."""
import math

import pytest

from wavllm_eval import metrics as m


# ---------------------------------------------------------------- WER / CER

def test_wer_substitution_and_deletion():
    r = m.wer("the cat sat on the mat", "the cat sit on mat")
    assert (r.substitutions, r.deletions, r.insertions, r.ref_len) == (1, 1, 0, 6)
    assert r.rate == pytest.approx(2 / 6)


def test_wer_insertion_and_corpus_totals():
    r = m.wer(["a b c", "d"], ["a b c", "e f"])
    # second pair: d->e substituted, f inserted; 2 errors over 4 reference words
    assert (r.errors, r.ref_len, r.substitutions, r.insertions) == (2, 4, 1, 1)
    assert r.rate == 0.5
    assert m.wer("a b", "a x b").insertions == 1


def test_wer_prefers_substitution_over_delete_insert():
    r = m.wer("a b c", "a x c")
    assert (r.substitutions, r.deletions, r.insertions) == (1, 0, 0)


def test_wer_plain_versus_normalized():
    ref, hyp = "Hello, World! Don't stop.", "hello world Don't stop"
    assert m.wer(ref, hyp).errors == 3          # Hello, / World! / stop. differ as tokens
    assert m.wer(ref, hyp, normalize=True).errors == 0
    assert m.normalize_text("Don't  STOP -- now!") == "don't stop now"


def test_wer_empty_reference():
    assert m.wer("", "").rate == 0.0
    assert math.isinf(m.wer("", "extra").rate)
    with pytest.raises(ValueError):
        m.wer(["a"], ["a", "b"])


def test_cer():
    assert m.cer("abc", "abd").rate == pytest.approx(1 / 3)
    r = m.cer("ab c", "abc")                    # the space is a character
    assert (r.deletions, r.ref_len) == (1, 4)
    assert m.cer("A  b", "a b", normalize=True).errors == 0


# ---------------------------------------------------------------- BLEU

REFS = [["The dog bit the man.", "It was not unexpected.", "The man bit him first."],
        ["The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."]]
HYPS = ["The dog bit the man.", "It wasn't surprising.", "The man had just bitten him."]


def test_bleu_sacrebleu_readme_example():
    b = m.corpus_bleu(HYPS, REFS)
    assert b.score == pytest.approx(48.530827, abs=1e-6)
    assert str(b) == "BLEU = 48.53 82.4/50.0/45.5/37.5 (BP = 0.943 ratio = 0.944 hyp_len = 17 ref_len = 18)"
    assert m.corpus_bleu(HYPS, REFS, tokenize="none").score == pytest.approx(49.1919566, abs=1e-6)
    assert m.corpus_bleu(HYPS, REFS, smooth="none").score == pytest.approx(48.530827, abs=1e-6)


def test_bleu_variable_references():
    refs = [[""] + REFS[0][1:], REFS[1]]
    b = m.corpus_bleu(HYPS, refs)
    assert str(b) == "BLEU = 29.44 82.4/42.9/27.3/12.5 (BP = 0.889 ratio = 0.895 hyp_len = 17 ref_len = 19)"


@pytest.mark.parametrize("order,expected", [(1, "77.65"), (2, "60.50"), (3, "53.93"),
                                            (4, "48.53"), (5, "46.14"), (6, "43.28")])
def test_bleu_max_order(order, expected):
    assert f"{m.corpus_bleu(HYPS, REFS, max_order=order).score:.2f}" == expected


def test_bleu_statistics_and_scoring():
    b = m.corpus_bleu(["am I am a character sequence"], ["I am a symbol string sequence a a"],
                      tokenize="none", smooth="floor", smooth_value=0.1)
    assert (b.counts, b.totals) == ([4, 2, 1, 0], [6, 5, 4, 3])
    assert b.score / 100 == pytest.approx(0.1555722182, abs=1e-8)
    s = m.bleu_from_stats([9, 7, 5, 3], [10, 8, 6, 4], 11, 11, smooth="none")
    assert s.score / 100 == pytest.approx(0.8375922397, abs=1e-8)
    assert m.corpus_bleu(["", "", ""], REFS).score == 0.0


def test_bleu_hand_count_exp_smoothing():
    # "the" x4 vs "the cat": clipped unigram matches 1/4; no 2-, 3-, 4-gram matches, so
    # exp smoothing gives them 1/(2*3), 1/(4*2), 1/(8*1); hypothesis longer: BP = 1.
    b = m.corpus_bleu(["the the the the"], ["the cat"])
    assert (b.counts, b.totals, b.bp) == ([1, 0, 0, 0], [4, 3, 2, 1], 1.0)
    assert b.score == pytest.approx(100 * (0.25 * (1 / 6) * (1 / 8) * (1 / 8)) ** 0.25)
    # hypothesis shorter than the reference: BP = exp(1 - 3/2)
    short = m.corpus_bleu(["a b"], ["a b c"])
    assert short.bp == pytest.approx(math.exp(1 - 3 / 2))


def test_tokenize_13a():
    assert m.tokenize_13a("Hello, world! It costs $3.50-4.") == \
        "Hello , world ! It costs $ 3.50 - 4 ."
    assert m.tokenize_13a("a &amp; b &quot;c&quot;") == 'a & b " c "'


# ---------------------------------------------------------------- accuracy extractors

@pytest.mark.parametrize("text,label", [
    ("Yes, there is only one speaker.", "yes"),
    ("No, I think two people are speaking.", "no"),
    ("There are two speakers in the clip.", "no"),
    ("Only one speaker is talking.", "yes"),
    ("I cannot tell.", None),
])
def test_extract_yes_no(text, label):
    assert m.extract_yes_no(text) == label


@pytest.mark.parametrize("text,label", [
    ("The speaker sounds sad.", "sad"),
    ("The speaker is not angry, rather calm.", "neutral"),
    ("Happiness.", "happy"),
    ("The tone suggests frustration and anger.", "angry"),
    ("hmm", None),
])
def test_extract_emotion(text, label):
    assert m.extract_emotion(text) == label


PROMPT = ("What will the man do next? A. Start to take exercise; B. Do as he always does; "
          "C. Change his working time.")


def test_parse_options():
    assert m.parse_options(PROMPT) == {"A": "Start to take exercise", "B": "Do as he always does",
                                       "C": "Change his working time"}


@pytest.mark.parametrize("prompt,options", [
    # Gaokao prompts separate options with ';', with nothing, or mix both.
    ("What are the speakers talking about? A. A class B. A trip C. A city",
     {"A": "A class", "B": "A trip", "C": "A city"}),
    ("Where is John's father? A. At work B. At home; C. At schoo1.",
     {"A": "At work", "B": "At home", "C": "At schoo1"}),
    ("How much? A. $70, B. $60, C. $50", {"A": "$70", "B": "$60", "C": "$50"}),
    ("No options here.", {}),
])
def test_parse_option_separators(prompt, options):
    assert m.parse_options(prompt) == options


def test_extract_option_by_text_when_options_start_with_articles():
    options = m.parse_options("What are the speakers talking about? A. A class B. A trip C. A city")
    assert m.extract_option("A trip.", options) == "B"
    assert m.extract_option("They are talking about a city.", options) == "C"


@pytest.mark.parametrize("text,letter", [
    ("The answer is B", "B"),
    ("B. Do as he always does", "B"),
    ("A", "A"),
    ("(C)", "C"),
    ("I think the correct option is (A).", "A"),
    ("He will change his working time.", "C"),
    ("A man would not do that.", None),
])
def test_extract_option(text, letter):
    assert m.extract_option(text, m.parse_options(PROMPT)) == letter


def test_accuracy_and_confusion():
    gold = ["sad", "sad", "happy", "angry"]
    pred = ["sad", "happy", "happy", None]
    assert m.accuracy(pred, gold) == 0.5
    t = m.confusion_table(gold, pred, labels=["angry", "happy", "neutral", "sad"])
    assert t["sad"] == {"angry": 0, "happy": 1, "neutral": 0, "sad": 1, None: 0}
    assert t["angry"][None] == 1 and t["happy"]["happy"] == 1
    text = m.format_confusion(t).splitlines()
    assert text[0].split() == ["gold\\pred", "angry", "happy", "neutral", "sad", "-", "recall"]
    assert text[4].split() == ["sad", "0", "1", "0", "1", "0", "50.0%"]
    with pytest.raises(ValueError):
        m.confusion_table(["joy"], ["sad"], labels=["sad"])
