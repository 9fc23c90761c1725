"""Child process of ``test_sigkill``: open the journal and catch every followed view up.

    python tests/projections/_catch_up_child.py STORE_URL VIEWS_PATH

Prints ``done <events processed> <max position>`` on success. The parent kills it
with SIGKILL at random moments; nothing here tries to survive that.
"""

from __future__ import annotations

import sys

from runjournal import Journal


def main(url: str, views_path: str) -> None:
    journal = Journal.open(url, views_path=views_path)
    try:
        processed = journal.catch_up()
        print(f"done {processed} {journal.max_position()}", flush=True)
    finally:
        journal.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
