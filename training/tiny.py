"""Tiny BERT models trained in seconds on generated data, saved as real artifacts: for the
benchmarks' smoke runs and for the tests (2 layers, 32 wide, a 150-word vocabulary)."""

from __future__ import annotations

import csv
import random
import shutil
from pathlib import Path
from typing import Any

# A vocabulary big enough for the generated test sentences; unknown words map to [UNK].
TINY_VOCAB = [
    "[PAD]",
    "[UNK]",
    "[CLS]",
    "[SEP]",
    "[MASK]",
    *"abcdefghijklmnopqrstuvwxyz0123456789.,!?'-:;()$%",
    "the",
    "a",
    "of",
    "to",
    "in",
    "and",
    "is",
    "on",
    "for",
    "with",
    "at",
    "by",
    "from",
    "game",
    "team",
    "win",
    "season",
    "coach",
    "player",
    "score",
    "match",
    "league",
    "cup",
    "market",
    "stock",
    "shares",
    "profit",
    "bank",
    "price",
    "oil",
    "company",
    "deal",
    "sales",
    "war",
    "president",
    "minister",
    "election",
    "police",
    "government",
    "troops",
    "talks",
    "software",
    "internet",
    "computer",
    "space",
    "nasa",
    "science",
    "chip",
    "phone",
    "web",
    "john",
    "smith",
    "paris",
    "london",
    "google",
    "apple",
    "reuters",
    "berlin",
    "mary",
    "who",
    "what",
    "where",
    "when",
    "did",
    "was",
    "visited",
    "works",
    "lives",
    "said",
    "##s",
    "##ed",
    "##ing",
    "##er",
    "##ly",
]


def build_tiny_base_model(out: Path, *, seed: int = 0) -> Path:
    """Save a 2-layer, 32-wide random BERT and its WordPiece tokenizer to `out`."""
    import torch
    from transformers import (  # type: ignore[attr-defined]  # BertTokenizerFast: lazy export
        BertConfig,
        BertModel,
        BertTokenizerFast,
    )

    out.mkdir(parents=True, exist_ok=True)
    vocab = out / "vocab.txt"
    vocab.write_text("\n".join(TINY_VOCAB) + "\n", encoding="utf-8")
    # transformers 5 ignores `vocab_file=` here (leaving 5 special tokens); `vocab=` loads it.
    tokenizer = BertTokenizerFast(vocab=str(vocab), do_lower_case=True)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(TINY_VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(out)  # type: ignore[no-untyped-call]
    tokenizer.save_pretrained(out)
    return out


# Four topics whose keywords are all in the tiny vocabulary (TINY_VOCAB).
TOPIC_WORDS = {
    "World": ["war", "president", "minister", "election", "police", "government", "troops"],
    "Sports": ["game", "team", "win", "season", "coach", "player", "match", "league", "cup"],
    "Business": ["market", "stock", "shares", "profit", "bank", "price", "oil", "sales"],
    "Sci/Tech": ["software", "internet", "computer", "space", "nasa", "science", "chip", "web"],
}
TOPICS = list(TOPIC_WORDS)
FILLER = ["the", "a", "of", "to", "in", "and", "is", "on", "for", "with", "at", "by", "from"]

NER_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
PEOPLE = [["john", "smith"], ["mary"], ["mary", "smith"], ["john"]]
PLACES = [["paris"], ["london"], ["berlin"]]
ORGS = [["google"], ["apple"], ["reuters"]]
VERBS = ["visited", "works", "lives", "said"]


def topic_texts(n: int, *, seed: int) -> tuple[list[str], list[str]]:
    """`n` short texts with their topic: three to five topic words among filler words."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        words = rng.sample(TOPIC_WORDS[topic], rng.randint(3, 5))
        words += rng.sample(FILLER, rng.randint(1, 4))
        rng.shuffle(words)
        texts.append(" ".join(words))
        labels.append(topic)
    return texts, labels


def ner_sentences(n: int, *, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """`n` sentences like 'john smith visited paris for google' with their IOB2 tags."""
    rng = random.Random(seed)
    sentences, tags = [], []
    for _ in range(n):
        words: list[str] = []
        sent_tags: list[str] = []
        parts = [
            ([], "O"),
            (rng.choice(PEOPLE), "PER"),
            ([rng.choice(VERBS)], "O"),
            (rng.choice(PLACES), "LOC"),
            ([], "O"),
            (rng.choice(ORGS), "ORG"),
            ([], "O"),
        ]
        # Filler words before, between and after the entities.
        for slot, (lo, hi) in zip((0, 4, 6), ((0, 2), (1, 2), (0, 2)), strict=True):
            parts[slot] = (rng.sample(FILLER, rng.randint(lo, hi)), "O")
        for span, kind in parts:
            words.extend(span)
            if kind == "O":
                sent_tags.extend(["O"] * len(span))
            else:
                sent_tags.extend([f"B-{kind}"] + [f"I-{kind}"] * (len(span) - 1))
        sentences.append(words)
        tags.append(sent_tags)
    return sentences, tags


def _train(model: Any, batches: list[dict[str, Any]], steps: int) -> None:
    import torch

    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for step in range(steps):
        loss = model(**batches[step % len(batches)]).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def _text_batches(
    tokenizer: Any, texts: list[str], targets: list[Any], size: int = 32
) -> list[dict[str, Any]]:
    """Padded batches of `texts` with their `targets` as `labels` (class ids or 0/1 rows)."""
    import torch

    batches = []
    for i in range(0, len(texts), size):
        enc = tokenizer(texts[i : i + size], padding=True, return_tensors="pt")
        enc["labels"] = torch.tensor(targets[i : i + size])
        batches.append(dict(enc))
    return batches


def build_tiny_classifier(out: Path, *, steps: int = 60) -> Path:
    """Train a tiny BERT topic classifier for a few seconds and save it as an artifact."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from schemas import DataRef, ModelManifest, TaskKind
    from training.artifact import save_artifact

    base = build_tiny_base_model(out.parent / f"{out.name}-base")
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(TOPICS),
        id2label=dict(enumerate(TOPICS)),
        label2id={t: i for i, t in enumerate(TOPICS)},
    )
    texts, labels = topic_texts(256, seed=1)
    _train(model, _text_batches(tokenizer, texts, [TOPICS.index(lab) for lab in labels]), steps)
    manifest = ModelManifest(
        name="tiny-topics",
        version="20250101T000000Z",
        task=TaskKind.CLASSIFICATION,
        labels=TOPICS,
        base_model=str(base),
        max_length=64,
        text_columns=["text"],
        train_data=DataRef(source="generated:topic_texts(seed=1)", rows=len(texts)),
    )
    save_artifact(out, model, tokenizer, manifest)
    shutil.rmtree(base)
    return out


def build_tiny_ner(out: Path, *, steps: int = 60) -> Path:
    """Train a tiny BERT PER/LOC/ORG tagger for a few seconds and save it as an artifact."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from schemas import DataRef, ModelManifest, TaskKind
    from training.artifact import save_artifact

    base = build_tiny_base_model(out.parent / f"{out.name}-base", seed=1)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForTokenClassification.from_pretrained(
        base,
        num_labels=len(NER_LABELS),
        id2label=dict(enumerate(NER_LABELS)),
        label2id={t: i for i, t in enumerate(NER_LABELS)},
    )
    sentences, tags = ner_sentences(256, seed=1)
    batches = []
    for i in range(0, len(sentences), 32):
        enc = tokenizer(
            sentences[i : i + 32], is_split_into_words=True, padding=True, return_tensors="pt"
        )
        label_rows = []
        for j, sent_tags in enumerate(tags[i : i + 32]):
            previous = None
            row = []
            for w in enc.word_ids(j):
                # Only a word's first sub-token is trained, as the training package does.
                row.append(-100 if w is None or w == previous else NER_LABELS.index(sent_tags[w]))
                previous = w
            label_rows.append(row)
        enc["labels"] = torch.tensor(label_rows)
        batches.append(dict(enc))
    _train(model, batches, steps)
    manifest = ModelManifest(
        name="tiny-ner",
        version="20250101T000000Z",
        task=TaskKind.TOKEN_CLASSIFICATION,
        labels=NER_LABELS,
        base_model=str(base),
        max_length=64,
        text_columns=["tokens"],
        train_data=DataRef(source="generated:ner_sentences(seed=1)", rows=len(sentences)),
    )
    save_artifact(out, model, tokenizer, manifest)
    shutil.rmtree(base)
    return out


def write_topics_csv(path: Path, n: int, *, seed: int) -> Path:
    """`n` generated topic texts as a CSV with `text` and `label` columns."""
    texts, labels = topic_texts(n, seed=seed)
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        writer.writerows(zip(texts, labels, strict=True))
    return path


def tagged_sentences(n: int, *, seed: int) -> tuple[list[list[str]], list[list[str]]]:
    """`n` generated PER/LOC/ORG sentences, each ending with two topic words tagged O: the
    tagger learns only from these sentences, so topic words must appear in them to be O."""
    rng = random.Random(seed)
    words, tags = ner_sentences(n, seed=seed)
    topic_words = [w for ws in TOPIC_WORDS.values() for w in ws]
    for sentence, sentence_tags in zip(words, tags, strict=True):
        sentence += rng.sample(topic_words, 2)
        sentence_tags += ["O", "O"]
    return words, tags


def write_tagged_conll(path: Path, n: int, *, seed: int) -> Path:
    """`n` generated sentences (`tagged_sentences`) as a CoNLL file (token, POS, chunk, tag)."""
    words, tags = tagged_sentences(n, seed=seed)
    lines = ["-DOCSTART- -X- -X- O", ""]
    for sentence, sentence_tags in zip(words, tags, strict=True):
        lines += [f"{w} NN O {t}" for w, t in zip(sentence, sentence_tags, strict=True)] + [""]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_multitask_data(root: Path, *, rows: int = 160) -> tuple[Path, Path, Path]:
    """Training texts, held-out texts and a CoNLL directory (train/valid/test) under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    conll = root / "conll"
    conll.mkdir(exist_ok=True)
    write_tagged_conll(conll / "train.txt", rows, seed=0)
    write_tagged_conll(conll / "valid.txt", rows // 4, seed=1)
    write_tagged_conll(conll / "test.txt", rows // 4, seed=2)
    train = write_topics_csv(root / "topics.csv", rows, seed=0)
    test = write_topics_csv(root / "topics_test.csv", rows // 4, seed=3)
    return train, test, conll


def build_tiny_multitask(root: Path, *, epochs: float = 8.0) -> Path:
    """Train a tiny BERT for topics and entities with the real pipeline; the artifact dir."""
    from training.pipelines.multitask import MultiTaskConfig, train_multitask
    from training.trainer import Hyperparameters

    base = build_tiny_base_model(root / "base", seed=2)
    train, test, conll = write_multitask_data(root / "data")
    cfg = MultiTaskConfig(
        classify_data=str(train),
        classify_eval_data=str(test),
        label_names=TOPICS,
        ner_data=str(conll),
        base_model=str(base),
        name="tiny-multitask",
        output=root / "artifact",
        # The encoder alone, so tests compare the predictor with the PyTorch model; the
        # lexical expert's fusion has its own tests (tests/inference/test_lexical.py).
        lexical=False,
        work_dir=root / "run",
        hp=Hyperparameters.model_validate(
            {
                "learning_rate": 5e-3,
                "epochs": epochs,
                "batch_size": 16,
                "max_length": 32,
                "early_stopping_patience": None,
            }
        ),
    )
    train_multitask(cfg)
    return root / "artifact"


def multilabel_texts(n: int, *, seed: int) -> tuple[list[str], list[list[str]]]:
    """`n` short texts each about one or two topics (alternately), with their topic sets: two
    or three words of each topic among filler words."""
    rng = random.Random(seed)
    texts, label_sets = [], []
    for i in range(n):
        topics = sorted(rng.sample(TOPICS, 1 + i % 2), key=TOPICS.index)
        words = [w for t in topics for w in rng.sample(TOPIC_WORDS[t], rng.randint(2, 3))]
        words += rng.sample(FILLER, rng.randint(1, 3))
        rng.shuffle(words)
        texts.append(" ".join(words))
        label_sets.append(topics)
    return texts, label_sets


def write_multilabel_data(path: Path, n: int, *, seed: int, layout: str = "list") -> Path:
    """`n` generated multi-label texts (`multilabel_texts`) in one of the layouts `train
    multilabel` reads: "list" (JSONL, `labels` a list), "separated" (CSV, `labels` joined by
    '|') or "columns" (CSV, one 0/1 column per topic, named like the topic)."""
    import json

    texts, label_sets = multilabel_texts(n, seed=seed)
    if layout == "list":
        lines = [
            json.dumps({"text": t, "labels": s}) for t, s in zip(texts, label_sets, strict=True)
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path
    with path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if layout == "separated":
            writer.writerow(["text", "labels"])
            writer.writerows([t, "|".join(s)] for t, s in zip(texts, label_sets, strict=True))
        elif layout == "columns":
            writer.writerow(["text", *TOPICS])
            writer.writerows(
                [t, *(int(topic in s) for topic in TOPICS)]
                for t, s in zip(texts, label_sets, strict=True)
            )
        else:
            raise ValueError(f"unknown layout {layout!r}: list, separated or columns")
    return path


def build_tiny_multilabel(
    out: Path, *, steps: int = 200, thresholds: list[float] | None = None
) -> Path:
    """Train a tiny BERT multi-label topic model (one sigmoid per topic of TOPICS) for a few
    seconds and save it as an artifact at `out`; `thresholds`: one per topic, 0.5 each by
    default. A text about sports and business gets both labels."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from schemas import DataRef, ModelManifest, TaskKind
    from training.artifact import save_artifact

    base = build_tiny_base_model(out.parent / f"{out.name}-base", seed=3)
    tokenizer = AutoTokenizer.from_pretrained(base)
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=len(TOPICS),
        id2label=dict(enumerate(TOPICS)),
        label2id={t: i for i, t in enumerate(TOPICS)},
        problem_type="multi_label_classification",  # the model's own loss: BCE per label
    )
    texts, label_sets = multilabel_texts(256, seed=1)
    targets = [[float(t in s) for t in TOPICS] for s in label_sets]
    _train(model, _text_batches(tokenizer, texts, targets), steps)
    manifest = ModelManifest(
        name="tiny-multilabel",
        version="20250101T000000Z",
        task=TaskKind.MULTI_LABEL,
        labels=TOPICS,
        thresholds=thresholds if thresholds is not None else [0.5] * len(TOPICS),
        base_model=str(base),
        max_length=64,
        text_columns=["text"],
        train_data=DataRef(source="generated:multilabel_texts(seed=1)", rows=len(texts)),
    )
    save_artifact(out, model, tokenizer, manifest)
    shutil.rmtree(base)
    return out
