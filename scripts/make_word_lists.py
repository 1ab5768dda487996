"""Write the general English word lists of the language codebook.

Reads WordNet 3.0 as Debian's ``wordnet-base`` installs it (``apt-get install -y
wordnet-base``: ``/usr/share/wordnet``), ranks the lemmas with ``wordfreq`` (a dev
dependency: ``pip install -e '.[dev]'``) and writes
``src/sweettok/resources/words/{adjectives,nouns,adverbs,verbs}.txt``: one lower-case
alphabetic word per line, most frequent first, plus ``manifest.json`` recording sizes,
checksums and the wordfreq version.

Rules (all deterministic: the same inputs give the same bytes):

- Kept: one-word lemmas of ASCII letters, ``[a-z]{2,}`` (WordNet writes multi-word
  lemmas with ``_``; those are dropped).
- Dropped: names (a lemma WordNet's data files only ever write capitalised: "Paris",
  "Monday"); closed-class words WordNet lists under an open class by an obscure sense
  ("he" = helium, "are" = a unit of area, "in" = an adjective); prepositions except as
  adverbs ("up", "down", "in" are motion adverbs in captions); words at least half of
  whose senses in some part of speech are in WordNet's usage domains of obscenity,
  profanity, disparagement or ethnic slurs (codebook words are shown to people).
- One list per book: a word that is both adjective and noun (spatial book), or both
  adverb and verb (temporal book), goes to the part of speech it is used as more often
  in WordNet's sense-tagged corpus (``cntlist.rev`` tag counts summed over its senses);
  on a tie, the one with more WordNet senses; on a further tie, the modifier (adjective,
  adverb). "red" (tagged 69 times as adjective, 17 as noun) is an adjective; "bank" is
  a noun. Across books a word may appear twice ("run" as noun and verb).
- Order: the estimated Zipf frequency of the word *as this part of speech*,
  ``zipf(word) + log10(p(pos | word))`` with ``p`` from the tag counts over the four
  parts of speech, add-one smoothed; then alphabetical. So "time" is high among nouns
  and low among verbs. Words wordfreq does not know (zipf 0) come last, alphabetically;
  they are kept because the paper profile needs nearly every adverb and verb.
- Each list is cut to ``--max-<pos>`` words to keep the package small.

Usage::

    python scripts/make_word_lists.py [--wordnet-dir /usr/share/wordnet] [--out DIR]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

# Per part of speech: WordNet file suffix and the sense-key ss_type digits
# (5 = adjective satellite, counted as adjective).
POS_FILES = {"ADJ": ("adj", {"3", "5"}), "NOUN": ("noun", {"1"}), "ADV": ("adv", {"4"}), "VERB": ("verb", {"2"})}
LIST_FILES = {"ADJ": "adjectives.txt", "NOUN": "nouns.txt", "ADV": "adverbs.txt", "VERB": "verbs.txt"}
# Parts of speech that compete for a word within a book, modifier first (it wins ties).
BOOKS = {"spatial": ("ADJ", "NOUN"), "temporal": ("ADV", "VERB")}
WORD_RE = re.compile(r"^[a-z]{2,}$")
ADJ_MARKER_RE = re.compile(r"\((a|p|ip)\)$")  # adjective entries carry e.g. "galore(ip)"
# WordNet usage-domain synsets whose members are not to be shown as codebook words:
# disparagement, ethnic slur, obscenity/vulgarism, profanity (noun synset offsets, 3.0).
OFFENSIVE_DOMAINS = {"06717170", "06718862", "07124340", "07128527"}

# Closed-class words (determiners, pronouns, conjunctions, auxiliaries, numerals,
# interjections, abbreviations) that WordNet lists under an open class by a rare sense.
FUNCTION_WORDS = set(
    """
    the an this that these those some any each every either neither no none both all another such
    what which whose whatever whichever who whom whoever
    me my mine we us our ours you your yours he him his she her hers it its they them their theirs
    myself yourself himself herself itself ourselves yourselves themselves
    someone anyone everyone somebody anybody everybody nobody something anything everything nothing
    and or but nor yet so if because although though unless whereas whether than as not
    how when where why whence whither wherein whereby
    be am is are was were been being have has had having do does did doing done
    will would shall should can could may might must ought
    one two three four five six seven eight nine ten eleven twelve twenty thirty forty fifty
    sixty seventy eighty ninety hundred thousand million billion trillion
    oh ok okay yeah yea yes hey wow alright mr mrs ms dr re ii iii iv vi vii viii ix xi xii
    """.split()
)
# Prepositions: kept only as adverbs ("moves up", "goes in").
PREPOSITIONS = set(
    """
    in on at by for from of to with without into onto upon about above across after against along
    among amid around before behind below beneath beside besides between beyond during except
    off out over since through throughout toward towards under underneath until unto up via within down
    """.split()
)


@dataclass
class PosEntries:
    """WordNet entries of one part of speech."""

    senses: dict[str, list[str]] = field(default_factory=dict)  # lemma -> synset offsets
    lower_written: dict[str, bool] = field(default_factory=dict)  # lemma -> ever written lower-case
    offensive_synsets: set[str] = field(default_factory=set)


def read_index(path: Path) -> dict[str, list[str]]:
    """Lemma -> synset offsets from a WordNet ``index.<pos>`` file.

    Lines are ``lemma pos synset_cnt p_cnt [ptr...] sense_cnt tagsense_cnt offset...``.
    """
    senses: dict[str, list[str]] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if not line or line.startswith(" "):  # the licence header lines start with spaces
            continue
        fields = line.split()
        n_synsets = int(fields[2])
        senses[fields[0]] = fields[len(fields) - n_synsets:]
    return senses


def read_data(path: Path) -> tuple[dict[str, bool], set[str]]:
    """Scan a ``data.<pos>`` file.

    Lines are ``offset lex_filenum ss_type w_cnt(hex) word lex_id ... p_cnt ptr...``.

    Returns:
        lemma (lower-cased) -> whether WordNet ever writes it in lower case, and the
        offsets of synsets in an offensive usage domain (pointer ``;u``).
    """
    lower_written: dict[str, bool] = {}
    offensive: set[str] = set()
    for line in path.read_text(encoding="latin-1").splitlines():
        if not line or line.startswith(" "):
            continue
        fields = line.split()
        n_words = int(fields[3], 16)
        for k in range(n_words):
            written = ADJ_MARKER_RE.sub("", fields[4 + 2 * k])
            key = written.lower()
            lower_written[key] = lower_written.get(key, False) or written == key
        if any(fields[i] == ";u" and fields[i + 1] in OFFENSIVE_DOMAINS for i in range(len(fields) - 1)):
            offensive.add(fields[0])
    return lower_written, offensive


def read_tag_counts(path: Path) -> dict[tuple[str, str], int]:
    """(lemma, POS) -> sense-tagged corpus occurrences summed over senses (``cntlist.rev``).

    Lines are ``lemma%ss_type:lex_filenum:lex_id:head:head_id sense_number tag_count``.
    """
    digit_to_pos = {d: pos for pos, (_, digits) in POS_FILES.items() for d in digits}
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for line in path.read_text(encoding="latin-1").splitlines():
        key, _, count = line.split()
        lemma, rest = key.split("%", 1)
        pos = digit_to_pos.get(rest[0])
        if pos is not None:
            counts[(lemma, pos)] += int(count)
    return counts


def build_lists(wordnet_dir: Path, zipf: Callable[[str], float]) -> dict[str, list[str]]:
    """All kept words per part of speech (``ADJ``/``NOUN``/``ADV``/``VERB``), best first.

    Args:
        wordnet_dir: directory holding WordNet 3.0's ``index.*``, ``data.*``, ``cntlist.rev``.
        zipf: a word's Zipf frequency in English (``wordfreq.zipf_frequency(w, "en")``),
            0 for unknown words, about 7 for the most common ones.
    """
    entries: dict[str, PosEntries] = {}
    for pos, (suffix, _) in POS_FILES.items():
        lower_written, offensive = read_data(wordnet_dir / f"data.{suffix}")
        entries[pos] = PosEntries(read_index(wordnet_dir / f"index.{suffix}"), lower_written, offensive)
    tags = read_tag_counts(wordnet_dir / "cntlist.rev")

    # A word is unfit everywhere when at least half its senses in one part of speech are offensive.
    offensive_words = {
        w
        for e in entries.values()
        for w, offsets in e.senses.items()
        if 2 * sum(o in e.offensive_synsets for o in offsets) >= len(offsets)
    }

    def keep(word: str, pos: str) -> bool:
        return bool(
            WORD_RE.match(word)
            and entries[pos].lower_written.get(word, False)
            and word not in FUNCTION_WORDS
            and word not in offensive_words
            and (pos == "ADV" or word not in PREPOSITIONS)
        )

    candidates = {pos: {w for w in entries[pos].senses if keep(w, pos)} for pos in POS_FILES}

    lists: dict[str, list[str]] = {pos: [] for pos in POS_FILES}
    for first, second in BOOKS.values():
        for word in sorted(candidates[first] | candidates[second]):
            in_first, in_second = word in candidates[first], word in candidates[second]
            if in_first and in_second:
                score_first = (tags.get((word, first), 0), len(entries[first].senses[word]))
                score_second = (tags.get((word, second), 0), len(entries[second].senses[word]))
                lists[second if score_second > score_first else first].append(word)
            else:
                lists[first if in_first else second].append(word)

    def rank_key(word: str, pos: str) -> tuple[float, str]:
        z = zipf(word)
        if z <= 0:
            return (math.inf, word)
        total = sum(tags.get((word, p), 0) for p in POS_FILES)
        share = (tags.get((word, pos), 0) + 1) / (total + len(POS_FILES))
        return (-(z + math.log10(share)), word)

    for pos in lists:
        lists[pos].sort(key=lambda w: rank_key(w, pos))
    return lists


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--wordnet-dir", type=Path, default=Path("/usr/share/wordnet"))
    parser.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parents[1] / "src" / "sweettok" / "resources" / "words"
    )
    parser.add_argument("--max-adjectives", type=int, default=8000)
    parser.add_argument("--max-nouns", type=int, default=16000)
    parser.add_argument("--max-adverbs", type=int, default=5000)
    parser.add_argument("--max-verbs", type=int, default=10000)
    args = parser.parse_args()

    if not (args.wordnet_dir / "index.noun").is_file():
        raise SystemExit(f"no WordNet at {args.wordnet_dir}: apt-get install -y wordnet-base")
    import wordfreq  # dev-only dependency; imported here so that --help works without it
    from importlib.metadata import version

    lists = build_lists(args.wordnet_dir, lambda w: wordfreq.zipf_frequency(w, "en"))
    limits = {"ADJ": args.max_adjectives, "NOUN": args.max_nouns, "ADV": args.max_adverbs, "VERB": args.max_verbs}

    args.out.mkdir(parents=True, exist_ok=True)
    manifest: dict = {
        "source": "WordNet 3.0 (Debian wordnet-base), ranked by wordfreq",
        "wordfreq_version": version("wordfreq"),
        "rules": "scripts/make_word_lists.py",
        "lists": {},
    }
    for pos, words in lists.items():
        kept = words[: limits[pos]]
        text = "".join(f"{w}\n" for w in kept)
        path = args.out / LIST_FILES[pos]
        path.write_text(text, encoding="ascii")
        manifest["lists"][LIST_FILES[pos]] = {
            "pos": pos,
            "words": len(kept),
            "available": len(words),
            "sha256": hashlib.sha256(text.encode("ascii")).hexdigest(),
        }
        print(f"{pos:5s} {len(kept):6d} of {len(words):6d} -> {path}")
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
