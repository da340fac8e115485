"""Write the demo's sample review Parquet files (samples/reviews/*.parquet) from the texts below.

    python samples/make_samples.py

The reviews are short texts written for this project (not copied from any dataset). The output is
deterministic: rerunning rewrites the same rows.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

FOLDER = Path(__file__).resolve().parent / "reviews"

# (review_id, text): a Friday batch, a Saturday batch, and a Sunday batch with an extra column.
FRIDAY = [
    ("fri-001", "A wonderful film. The cast is superb and the story moved me to tears."),
    ("fri-002", "Boring from start to finish. I checked my watch every ten minutes."),
    ("fri-003", "One of the best movies I have seen this year, funny and smart."),
    ("fri-004", "The plot makes no sense and the acting is wooden. A waste of time."),
    ("fri-005", "Beautifully shot, with a score that stays with you. Loved it."),
    ("fri-006", "I wanted to like it, but the dialogue is awful and the ending is worse."),
    ("fri-007", "Great performances all round; the lead deserves every award."),
    ("fri-008", "Dull, predictable and far too long. Skip this one."),
    ("fri-009", "A charming little comedy that made the whole family laugh."),
    ("fri-010", "Terrible script, lazy direction, and not a single likeable character."),
    ("fri-011", "Brilliant! Tense, clever and surprisingly touching.<br /><br />Go see it."),
    ("fri-012", "The worst sequel ever made. It ruins everything the first film built."),
]
SATURDAY = [
    ("sat-001", "An excellent thriller with real suspense and a great twist."),
    ("sat-002", "Poorly acted and badly edited; I nearly walked out."),
    ("sat-003", "Heartwarming and genuinely funny. I would watch it again tomorrow."),
    ("sat-004", "What a mess. The effects are cheap and the story is a bore."),
    ("sat-005", "Stunning visuals and a moving performance from the young star."),
    ("sat-006", "I don't understand the hype: it's slow, shallow and forgettable."),
    ("sat-007", "A masterpiece. Every scene is perfectly judged."),
    ("sat-008", "Annoying characters, a silly plot and jokes that fall flat."),
    ("sat-009", "Smart, warm and beautifully written. Highly recommended!"),
    ("sat-010", "Painfully bad. Even the soundtrack is irritating."),
    ("sat-011", "Great fun from beginning to end, with a fantastic villain."),
    ("sat-012", "Disappointing. The trailer was better than the whole movie."),
    ("sat-013", "A quiet, lovely film about friendship. It stayed with me for days."),
    ("sat-014", "Stupid, loud and boring; two hours I will never get back."),
]
# Sunday carries an extra `source` column (carried through to the output) and one empty review,
# which the scoring flow keeps with status "empty_text" and no label.
SUNDAY = [
    ("sun-001", "Funny, sharp and full of heart. The best comedy in years.", "web"),
    ("sun-002", "Tedious and confusing. I gave up after an hour.", "app"),
    ("sun-003", "The acting is superb and the ending is perfect.", "web"),
    ("sun-004", "A lazy remake with none of the charm of the original.", "email"),
    ("sun-005", "", "app"),
    ("sun-006", "Gorgeous, moving and wonderfully acted. Loved every minute.", "web"),
    ("sun-007", "Awful. Just awful. The worst film I have seen in a long time.", "app"),
    ("sun-008", "An enjoyable adventure with great music and a clever script.", "web"),
    ("sun-009", "Flat characters, a weak story and a boring final act.", "email"),
    ("sun-010", "Excellent! A smart, thrilling film that respects its audience.", "web"),
]


def write_atomically(table: pa.Table, path: Path) -> None:
    """Write to a temporary name in the same folder, then rename into place."""
    temporary = path.with_name(f".{path.name}.tmp")
    pq.write_table(table, temporary)
    os.replace(temporary, path)


def main() -> None:
    FOLDER.mkdir(parents=True, exist_ok=True)
    for name, rows in (("friday", FRIDAY), ("saturday", SATURDAY)):
        ids, texts = zip(*rows, strict=True)
        write_atomically(
            pa.table({"review_id": list(ids), "text": list(texts)}), FOLDER / f"{name}.parquet"
        )
    ids, texts, sources = zip(*SUNDAY, strict=True)
    write_atomically(
        pa.table({"review_id": list(ids), "text": list(texts), "source": list(sources)}),
        FOLDER / "sunday.parquet",
    )
    print(f"wrote {len(FRIDAY) + len(SATURDAY) + len(SUNDAY)} reviews in 3 files to {FOLDER}")


if __name__ == "__main__":
    main()
