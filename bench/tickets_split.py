"""Seeded stratified train/test split of the English help-desk tickets (SOURCES.md section 4)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from stream.datasets import TICKET_COLUMNS, TICKETS_CSV, read_tickets, split_tickets

SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / TICKETS_CSV


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", type=Path, help="Directory for train.csv and test.csv.")
    parser.add_argument("--source", type=Path, default=SOURCE)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--stratify", default="queue", help="Column the split keeps in proportion.")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    # The split lives in the package: the demo trains on this train part and sends test rows.
    rows = read_tickets(args.source)
    train_rows, test_rows = split_tickets(
        rows, test_fraction=args.test_fraction, stratify=args.stratify, seed=args.seed
    )
    train = pd.DataFrame(train_rows, columns=list(TICKET_COLUMNS))
    test = pd.DataFrame(test_rows, columns=list(TICKET_COLUMNS))
    args.out.mkdir(parents=True, exist_ok=True)
    for name, part in (("train", train), ("test", test)):
        part.to_csv(args.out / f"{name}.csv", index=False)
    english = len(train) + len(test)
    print(f"{english} English rows -> train {len(train)}, test {len(test)} ({args.out})")
    for column in ("queue", "priority"):
        counts = pd.DataFrame(
            {"train": train[column].value_counts(), "test": test[column].value_counts()}
        )
        print(counts.fillna(0).astype(int).to_string())


if __name__ == "__main__":
    main()
